"""The retriever as a LangChain ``BaseRetriever``, to drop into users' own chains.

Example:
    >>> from pathlib import Path
    >>> from langchain_core.runnables import RunnableLambda
    >>> from rag.config import Settings
    >>> from rag.retrieve import Retriever
    >>> retriever = Retriever.open(Path("rag-index"), Settings.resolve({}, env={}))
    >>> chain = LangChainRetriever(retriever=retriever, mode=Mode.FUSION, k=3) | RunnableLambda(
    ...     lambda docs: [d.metadata["page"] for d in docs])
    >>> chain.invoke("How long is the warranty?")
    [3, 3, 2]
"""
from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.retrieve.filters import Filters
from rag.retrieve.retriever import Hit, Mode, Retriever


def hit_to_document(hit: Hit) -> Document:
    return Document(
        page_content=hit.context or hit.text,
        metadata={"source": hit.source, "page": hit.page, "chunk_id": hit.chunk.id, "score": hit.score,
                  "rank": hit.rank, "found_by": hit.found_by, "start": hit.chunk.start, "end": hit.chunk.end},
    )


class LangChainRetriever(BaseRetriever):
    """Wraps a :class:`Retriever`; each hit becomes a ``Document`` with source, page, score and provenance."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    retriever: Retriever
    mode: Mode = Mode.HYBRID
    k: int = 5
    filters: Filters | None = None
    window: int = 0

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any) -> list[Document]:
        result = self.retriever.search(query, mode=self.mode, k=self.k, filters=self.filters, window=self.window)
        return [hit_to_document(hit) for hit in result.hits]
