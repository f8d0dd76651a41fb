"""What the UI loads once and shares between sessions: the live index, models, the answer pipeline.

Answers come from a :class:`~app.knowledge_base.KnowledgeBase` per set of sidebar choices, the service the
CLI and the API use too: it follows the live generation, so a new ingest is picked up by the next
question, and takes the embedder from the index's manifest, so queries always use the model the index
was built with.
:func:`warm_in_background` loads all of it, and answers one question, before the first user question:
when the server starts and after every ingest.
"""
from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import streamlit as st

from app.background import in_background
from app.conversation import ConversationStore
from app.knowledge_base import KnowledgeBase
from app.preferences import Preferences
from app.watching import WatchedFolders
from rag.config import Settings
from rag.embed import Embedder, load_embedder
from rag.index import Index
from rag.index.generations import live_generation
from rag.pipeline import AnswerPipeline
from rag.retrieve import Mode


def live_index(index_dir: Path) -> Index | None:
    """The published generation, or None before the first ingest."""
    generation = live_generation(index_dir)
    return _open_index(generation) if generation is not None else None


@st.cache_resource(max_entries=2, show_spinner=False)
def _index(generation: str) -> Index:
    return Index(Path(generation))


def _open_index(generation: Path) -> Index:
    """One open index per generation, shared by every knowledge base and page of this server."""
    return _index(str(generation))


@st.cache_resource(show_spinner="Loading the embedding model…")
def embedder(name: str, batch_size: int) -> Embedder:
    return load_embedder(name, batch_size=batch_size)


@st.cache_resource(max_entries=4, show_spinner="Loading the models…")
def knowledge_base(settings: Settings) -> KnowledgeBase:
    """The knowledge base for these settings (which hold the sidebar's backend, adapter and reranker): the
    same service the CLI and the API open, following the live generation."""
    return KnowledgeBase(settings, embedders=embedder, indexes=_open_index)


def with_choices(settings: Settings, prefs: Preferences, api_key: str | None) -> Settings:
    """``settings`` with the sidebar's choices; ``api_key`` is the operator's LLM key, given only when the
    chosen backend is the operator's own."""
    return replace(settings, llm=prefs.llm_spec, adapter=prefs.adapter_spec, reranker=prefs.reranker.strip() or None,
                   openai_api_key=api_key)


def answer_pipeline(settings: Settings, prefs: Preferences, api_key: str | None = None) -> AnswerPipeline:
    """The pipeline for these sidebar choices; models are shared, the pipeline itself is cheap to make."""
    return knowledge_base(with_choices(settings, prefs, api_key)).pipeline(prefs.retrieval_mode, prefs.top_k)


@st.cache_resource
def conversations() -> ConversationStore:
    """Every session's conversations, for a reload of the same browser tab."""
    return ConversationStore()


@st.cache_resource(max_entries=2, show_spinner=False)
def _warmed(settings: Settings, generation: str, mode: Mode) -> bool:
    """Load the retriever and backend of these settings for this generation (see :meth:`AnswerPipeline.warm_up`)."""
    knowledge_base(settings).pipeline(mode).warm_up()
    return True


def warm(settings: Settings) -> bool:
    """Load the live generation with the saved sidebar choices, as the first question would; False when
    there is no index yet. Blocks; see :func:`warm_in_background`."""
    generation = live_generation(settings.index_dir)
    if generation is None:
        return False
    prefs = Preferences.load(settings.index_dir, settings)
    return _warmed(with_choices(settings, prefs, prefs.operator_key(settings)), str(generation), prefs.retrieval_mode)


def warm_in_background(settings: Settings) -> threading.Thread:
    """:func:`warm` in a daemon thread: the page stays usable, and a question asked meanwhile waits only
    for what is still loading (each model loads once, whoever asks first)."""
    return in_background(lambda: warm(settings), f"warming up {settings.index_dir}")


@st.cache_resource
def watched_folders() -> WatchedFolders:
    """The folders this server keeps in sync; after each sync the new generation is warmed up."""
    return WatchedFolders(embedder, on_sync=lambda settings, result: warm_in_background(settings))
