"""The knowledge base a process serves: the live index generation with its embedder, retriever and answer
backend, opened once and opened again when an ingest publishes a new generation. The CLI, the HTTP API
and the UI all open their index through it."""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.background import in_background
from app.uploads import is_upload
from rag.config import Settings
from rag.embed import Embedder, choose_embedder, load_embedder
from rag.generate.base import Generator
from rag.index import Index, IndexNotFoundError
from rag.index.generations import live_generation
from rag.pipeline import Answer, AnswerPipeline, Turn, final_answer
from rag.retrieve import Mode, Retriever
from rag.retrieve.rerank import Reranker

GeneratorFactory = Callable[[Settings, Retriever], Generator]


def default_generator(settings: Settings, retriever: Retriever) -> Generator:
    """The configured answer backend (``extractive``, ``hf:``, ``openai:``)."""
    from rag.generate.factory import make_generator

    return make_generator(settings.llm, retriever.embedder, retriever.tokenizer, settings.adapter,
                          dense_weight=retriever.dense_weight_for, api_key=settings.openai_api_key)


class KnowledgeBase:
    """The index behind the server: its retriever and answer backend (both made again when a new generation
    goes live; models themselves load once), the embedders, and the backend's concurrency limit.

    Example:
        >>> kb = KnowledgeBase(Settings.resolve({"index_dir": "rag-index"}))
        >>> kb.retriever().search("warranty", k=1).hits[0].page
        3
    """

    def __init__(self, settings: Settings, generators: GeneratorFactory = default_generator,
                 embedders: Callable[[str, int], Embedder] = load_embedder, indexes: Callable[[Path], Index] = Index) -> None:
        self.settings = settings
        self.name = settings.index_dir.resolve().name
        self._generators = generators
        self._embedders = embedders
        self._indexes = indexes
        """Opens a generation (the UI shares one open index between its knowledge bases)."""
        self._lock = threading.Lock()
        self._loaded: dict[str, Embedder] = {}
        self._retriever: Retriever | None = None
        self._generation: Path | None = None
        self._generator: Generator | None = None
        self.generation_slots = threading.BoundedSemaphore(1 if settings.llm.startswith("hf:") else 16)
        """One local model answers one question at a time; servers and extractive answers take more."""
        self.stopped_streams = 0
        """Streams whose client left before the answer was complete (their generation was stopped)."""

    def embedder(self, name: str, batch_size: int = 32) -> Embedder:
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._embedders(name, batch_size)
            return self._loaded[name]

    def retriever(self) -> Retriever:
        generation = live_generation(self.settings.index_dir)
        if generation is None:
            raise IndexNotFoundError(f"{self.settings.index_dir}: no index here yet; add documents with `rag ingest FOLDER "
                                     f"--index {self.settings.index_dir}`, the UI or POST /api/documents")
        if self._retriever is not None and generation == self._generation:
            return self._retriever
        index = self._indexes(generation)
        name = choose_embedder(self.settings.embed_model, index.embedder["name"], self.settings.index_dir)
        embedder = self.embedder(name, self.settings.embed_batch_size)
        with self._lock:
            if generation != self._generation:  # the previous generation stays on disk for requests still reading it
                reranker = self._retriever.reranker if self._retriever is not None else (
                    Reranker(self.settings.reranker) if self.settings.reranker else None)
                self._retriever, self._generation = Retriever(index, embedder, reranker=reranker), generation
                self._generator = None  # made again for this generation: a backend reads its retriever's index
            assert self._retriever is not None
            return self._retriever

    def pipeline(self, mode: Mode = Mode.FUSION, k: int = 5) -> AnswerPipeline:
        retriever = self.retriever()
        with self._lock:
            if self._generator is None:
                self._generator = self._generators(self.settings, retriever)
            generator = self._generator
        return AnswerPipeline(retriever, generator, mode=mode, k=k)

    def warm_in_background(self) -> threading.Thread | None:
        """Load the live generation and the answer backend now, as the first question would (see
        :meth:`AnswerPipeline.warm_up`): at start and after each change to the documents. None before
        the first ingest."""
        if live_generation(self.settings.index_dir) is None:
            return None
        return in_background(lambda: self.pipeline().warm_up(), f"warming up {self.name}")

    def answer_stream(self, pipeline: AnswerPipeline, question: str, history: list[Turn],
                      stop: threading.Event) -> Iterator[str | Answer]:
        """The pipeline's stream, holding one of the backend's slots while it generates."""
        with self.generation_slots:
            yield from pipeline.stream(question, history, stop=stop)

    def answer(self, pipeline: AnswerPipeline, question: str, history: list[Turn]) -> Answer:
        """The whole answer, generated under one of the backend's slots."""
        return final_answer(self.answer_stream(pipeline, question, history, threading.Event()))

    def documents(self) -> list[dict[str, Any]]:
        """The live generation's files (read through the retriever's open index: no second copy in memory)."""
        if live_generation(self.settings.index_dir) is None:
            return []
        return [{"id": document_id(f.path), "source": f.path, "name": Path(f.path).name, "pages": f.pages,
                 "chunks": f.chunks, "status": f.status, "error": f.error or None,
                 "uploaded": is_upload(Path(f.path), self.settings.index_dir)} for f in self.retriever().index.files()]

    def ingestor(self) -> Any:
        from ingest.pipeline import Ingestor

        return Ingestor(self.settings, embedders=self.embedder, progress=False, lock_wait=600.0)


def document_id(path: str) -> str:
    """A document's id in URLs: stable for its path, free of the path's characters."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]
