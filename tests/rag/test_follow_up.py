"""The follow-up detector: only messages that depend on the conversation are rewritten."""
from __future__ import annotations

import json

import pytest

from rag.follow_up import carried_topic, is_follow_up, topic_questions
from rag.retrieve.variants import KeywordExtractor
from rag.text import BM25Tokenizer
from tests.conftest import SHARED

SHARED_EVAL = SHARED / "eval"

FOLLOW_UPS = [
    "What is its battery life?", "and the battery?", "What about the price?", "How long does it last?",
    "What does that mean?", "Why?", "How do they compare?", "What did they find?", "Is that true?",
    "那电池呢？", "它有什么缺点？", "多少钱？", "这个模型有多大？", "其作者是谁？", "他们用了什么数据集？", "详细一点", "还有别的办法吗？",
]
STANDALONE = [
    "模型量化是什么意思？", "室外传感器的电池能用多久？", "其他型号支持充电吗？", "L2 正则化为什么能防止过拟合？", "王沈是哪里人？",
    "2023年土耳其地震的时间", "张帅在2022年辛辛那提赛的成绩", "《林投姐》这部作品是由什么改编的？",
    "How long does it take to charge the Lumen L2?", "What is LoRA?", "Is it possible to export the chat?",
    "Which model did the authors propose that beats BERT?", "What is the capital of France?",
    "All hematopoietic stem cells segregate their chromosomes randomly.",
]


@pytest.fixture(scope="module")
def tokenizer() -> BM25Tokenizer:
    return BM25Tokenizer()


@pytest.mark.parametrize("message", FOLLOW_UPS)
def test_messages_that_refer_back_are_follow_ups(message: str, tokenizer: BM25Tokenizer):
    assert is_follow_up(message, tokenizer)


@pytest.mark.parametrize("message", STANDALONE)
def test_questions_that_stand_alone_are_not(message: str, tokenizer: BM25Tokenizer):
    assert not is_follow_up(message, tokenizer)


@pytest.mark.skipif(not SHARED_EVAL.is_dir(), reason=f"shared eval sets not found at {SHARED_EVAL}")
def test_the_public_question_sets_are_read_as_standalone(tokenizer: BM25Tokenizer):
    """Every pdf_qa, SciFact and RGB question was written to stand alone: at most 1% may be read as follow-ups."""
    questions = [json.loads(line)["question"] for line in (SHARED_EVAL / "pdf_qa" / "questions.jsonl").open(encoding="utf-8")]
    for name in ("scifact", "rgb_zh"):
        questions += [json.loads(line)["text"] for line in (SHARED_EVAL / name / "queries.jsonl").open(encoding="utf-8")]
    misread = [q for q in questions if is_follow_up(q, tokenizer)]
    assert len(misread) <= len(questions) // 100, misread


def test_the_topic_is_carried_from_the_last_standalone_question_on(tokenizer: BM25Tokenizer):
    history = ["What is the warranty of the Lumen L2?", "How long is its battery life?"]
    assert topic_questions(history, tokenizer) == history
    assert topic_questions(["模型量化是什么意思？", *history], tokenizer) == history
    keywords = KeywordExtractor(tokenizer)
    topic = carried_topic("and the price?", history, keywords).split()
    assert {"warranty", "lumen", "l2", "battery"} <= set(topic)
    assert "price" not in topic
    assert carried_topic("它有什么缺点？", ["模型量化是什么意思？"], keywords).split()[:2] == ["量化", "模型"]
