"""The Hugging Face backend's plumbing with a tiny random Llama made offline (its words are noise)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from peft import PeftModel

from rag.generate.base import GenerationError, GenerationRequest
from rag.generate.factory import make_generator
from rag.generate.hf import HuggingFaceGenerator
from rag.generate.prompt import Passage
from rag.pipeline import AnswerPipeline
from rag.text import BM25Tokenizer
from testkit.tiny_models import make_causal_lm
from tests.rag.test_generation import pipeline  # noqa: F401 - the shared index fixture

PASSAGES = [Passage(1, "/docs/guide.pdf", 3, "The warranty lasts two years. 保修期为一年。")]


def test_loads_once_per_process_and_uses_the_chat_template(tiny_llm: Path):
    generator = HuggingFaceGenerator.load(str(tiny_llm))
    assert HuggingFaceGenerator.load(str(tiny_llm)) is generator
    prompt = generator.prompt(GenerationRequest("How long?", PASSAGES).messages)
    assert prompt.startswith("<|system|>") and prompt.endswith("<|assistant|>")
    assert "[1] guide.pdf, page 3" in prompt
    assert generator.context_window == 4096 and generator.count_tokens("保修期为一年") > 0


def test_streams_text_within_the_token_limit(tiny_llm: Path):
    generator = HuggingFaceGenerator.load(str(tiny_llm))
    pieces = list(generator.stream(GenerationRequest("How long?", PASSAGES, max_new_tokens=12)))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert len(pieces) <= 12  # the streamer emits at most one piece per generated token


def test_the_stop_signal_ends_generation(tiny_llm: Path):
    generator = HuggingFaceGenerator.load(str(tiny_llm))
    request = GenerationRequest("How long?", PASSAGES, max_new_tokens=200, stop=threading.Event())
    request.stop.set()
    assert len(list(generator.stream(request))) <= 1


def test_lora_adapter_loads_unmerged_and_merged_with_the_same_effect(tiny_llm: Path, tiny_lora: Path):
    base = HuggingFaceGenerator.load(str(tiny_llm))
    adapted = HuggingFaceGenerator.load(str(tiny_llm), adapter=str(tiny_lora))
    merged = HuggingFaceGenerator.load(str(tiny_llm), adapter=str(tiny_lora), merge_adapter=True)
    assert isinstance(adapted.model, PeftModel)
    assert type(merged.model).__name__ == "LlamaForCausalLM"
    ids = base.tokenizer("The warranty lasts", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        plain, lora, folded = (g.model(input_ids=ids).logits for g in (base, adapted, merged))
    assert not torch.allclose(plain, lora)
    assert torch.allclose(lora, folded, atol=1e-4)


def test_a_model_without_a_chat_template_gets_a_plain_one(tmp_path: Path):
    generator = HuggingFaceGenerator.load(str(make_causal_lm(tmp_path / "plain", chat_template=False)))
    assert generator.prompt([{"role": "user", "content": "hi"}]) == "<|user|>\nhi\n<|assistant|>\n"


def test_missing_model_and_adapter_are_one_line_errors(tmp_path: Path, tiny_llm: Path, embedder):
    with pytest.raises(GenerationError, match="cannot load a causal language model from"):
        make_generator(f"hf:{tmp_path / 'nothing'}", embedder, BM25Tokenizer())
    with pytest.raises(GenerationError, match="cannot load LoRA adapter"):
        HuggingFaceGenerator.load(str(tiny_llm), adapter=str(tmp_path / "no-adapter"))
    with pytest.raises(GenerationError, match="an adapter needs a model"):
        make_generator("extractive", embedder, BM25Tokenizer(), adapter=str(tmp_path))


def test_the_pipeline_runs_on_the_hf_backend(pipeline: AnswerPipeline, tiny_llm: Path):  # noqa: F811
    llm = AnswerPipeline(pipeline.retriever, HuggingFaceGenerator.load(str(tiny_llm)), max_new_tokens=16)
    answer = llm.answer("How long is the Lumen L2 warranty?")
    assert not answer.refused and answer.passages
    assert isinstance(answer.grounded, bool) and answer.to_json()["question"] == "How long is the Lumen L2 warranty?"
