"""Retrieval over an index: dense, BM25, hybrid and RAG-Fusion, with optional cross-encoder reranking."""
from rag.retrieve.filters import Filters
from rag.retrieve.fusion import FusionMethod
from rag.retrieve.policy import RetrieverConfig
from rag.retrieve.retriever import Hit, Mode, RetrievalResult, Retriever

__all__ = ["Filters", "FusionMethod", "Hit", "Mode", "RetrievalResult", "Retriever", "RetrieverConfig"]
