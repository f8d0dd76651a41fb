"""What the UI loads once and shares between sessions: the live index, models, the answer pipeline.

Everything is keyed by the index generation, so a new ingest is picked up by the next rerun, and the
embedder comes from the index's manifest, so queries always use the model the index was built with.
:func:`warm_in_background` loads all of it, and answers one question, before the first user question:
when the server starts and after every ingest.
"""
from __future__ import annotations

import threading
from pathlib import Path

import streamlit as st

from app.background import in_background
from app.conversation import ConversationStore
from app.preferences import Preferences
from app.watching import WatchedFolders
from rag.config import Settings
from rag.embed import Embedder, load_embedder
from rag.generate.base import Generator
from rag.index import Index
from rag.index.generations import live_generation
from rag.pipeline import AnswerPipeline
from rag.retrieve import Mode, Retriever
from rag.retrieve.rerank import Reranker


def live_index(index_dir: Path) -> Index | None:
    """The published generation, or None before the first ingest."""
    generation = live_generation(index_dir)
    return _index(str(generation)) if generation is not None else None


@st.cache_resource(max_entries=2, show_spinner=False)
def _index(generation: str) -> Index:
    return Index(Path(generation))


@st.cache_resource(show_spinner="Loading the embedding model…")
def embedder(name: str, batch_size: int) -> Embedder:
    return load_embedder(name, batch_size=batch_size)


@st.cache_resource(max_entries=2, show_spinner="Loading the retriever…")
def _retriever(generation: str, reranker: str, batch_size: int) -> Retriever:
    index = _index(generation)
    return Retriever(index, embedder(index.embedder["name"], batch_size), reranker=Reranker(reranker) if reranker else None)


@st.cache_resource(max_entries=2, show_spinner="Loading the language model…")
def _generator(generation: str, reranker: str, batch_size: int, llm: str, adapter: str | None,
               api_key: str | None) -> Generator:
    from rag.generate.factory import make_generator

    retriever = _retriever(generation, reranker, batch_size)
    return make_generator(llm, retriever.embedder, retriever.tokenizer, adapter, dense_weight=retriever.dense_weight_for,
                          api_key=api_key)


def answer_pipeline(index: Index, prefs: Preferences, batch_size: int, api_key: str | None = None) -> AnswerPipeline:
    """The pipeline for these sidebar choices; models are shared, the pipeline itself is cheap to make.
    ``api_key`` is the operator's LLM key, given only when the chosen backend is the operator's own."""
    generation = str(index.generation)
    retriever = _retriever(generation, prefs.reranker.strip(), batch_size)
    generator = _generator(generation, prefs.reranker.strip(), batch_size, prefs.llm_spec, prefs.adapter_spec, api_key)
    return AnswerPipeline(retriever, generator, mode=prefs.retrieval_mode, k=prefs.top_k)


@st.cache_resource
def conversations() -> ConversationStore:
    """Every session's conversations, for a reload of the same browser tab."""
    return ConversationStore()


@st.cache_resource(max_entries=2, show_spinner=False)
def _warmed(generation: str, reranker: str, batch_size: int, llm: str, adapter: str | None, api_key: str | None,
            mode: Mode) -> bool:
    """Load the retriever and backend for these choices (see :meth:`AnswerPipeline.warm_up`)."""
    AnswerPipeline(_retriever(generation, reranker, batch_size),
                   _generator(generation, reranker, batch_size, llm, adapter, api_key), mode=mode).warm_up()
    return True


def warm(settings: Settings) -> bool:
    """Load the live generation with the saved sidebar choices, as the first question would; False when
    there is no index yet. Blocks; see :func:`warm_in_background`."""
    index = live_index(settings.index_dir)
    if index is None:
        return False
    prefs = Preferences.load(settings.index_dir, settings)
    return _warmed(str(index.generation), prefs.reranker.strip(), settings.embed_batch_size, prefs.llm_spec,
                   prefs.adapter_spec, prefs.operator_key(settings), prefs.retrieval_mode)


def warm_in_background(settings: Settings) -> threading.Thread:
    """:func:`warm` in a daemon thread: the page stays usable, and a question asked meanwhile waits only
    for what is still loading (each model loads once, whoever asks first)."""
    return in_background(lambda: warm(settings), f"warming up {settings.index_dir}")


@st.cache_resource
def watched_folders() -> WatchedFolders:
    """The folders this server keeps in sync; after each sync the new generation is warmed up."""
    return WatchedFolders(embedder, on_sync=lambda settings, result: warm_in_background(settings))
