"""Making the configured backend from its spec: ``extractive``, ``hf:MODEL_DIR`` or ``openai:BASE_URL#MODEL``."""
from __future__ import annotations

from collections.abc import Callable

from rag.embed import Embedder
from rag.generate.base import GenerationError, Generator
from rag.generate.extractive import ExtractiveGenerator
from rag.text import BM25Tokenizer

SPECS = "extractive | hf:MODEL_DIR | openai:BASE_URL#MODEL"


def make_generator(spec: str, embedder: Embedder, tokenizer: BM25Tokenizer, adapter: str | None = None,
                   dense_weight: Callable[[str], float] | None = None, api_key: str | None = None) -> Generator:
    """The backend for ``spec``; raises :class:`GenerationError` for a spec it cannot use. ``api_key`` goes
    to an ``openai:`` server only: pass the operator's key only for the operator's own spec."""
    kind, _, rest = spec.partition(":")
    if spec == "extractive":
        if adapter:
            raise GenerationError("an adapter needs a model: use --llm hf:MODEL_DIR with --adapter")
        return ExtractiveGenerator(embedder, tokenizer, dense_weight=dense_weight)
    if kind == "hf" and rest:
        from rag.generate.hf import HuggingFaceGenerator

        return HuggingFaceGenerator.load(rest, adapter=adapter)
    if kind == "openai" and "#" in rest:
        from rag.generate.openai_server import OpenAIServerGenerator

        base_url, _, model = rest.partition("#")
        return OpenAIServerGenerator(base_url, model, api_key=api_key)
    raise GenerationError(f"unknown LLM spec {spec!r}; use {SPECS}")
