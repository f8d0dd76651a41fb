"""Reading the index: open the live generation once and query it; never waits on a writer."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from rag.index.dense import DenseIndex
from rag.index.generations import live_generation
from rag.index.layout import CHUNKS, DENSE, SPARSE, IndexNotFoundError, read_manifest
from rag.index.sparse import SparseIndex
from rag.index.store import ChunkRow, ChunkStore, FileRecord


class Index:
    """A published generation: dense and BM25 search plus chunk and file look-ups.

    Example:
        >>> index = Index.open(Path("rag-index"))
        >>> index.manifest["counts"]
        {'files': 9, 'pages': 101, 'chunks': 420}
    """

    def __init__(self, generation: Path) -> None:
        self.generation = generation
        self.manifest: dict[str, Any] = read_manifest(generation)
        try:
            self.store = ChunkStore.open_readonly(generation / CHUNKS)
            self.sparse = SparseIndex.load(generation / SPARSE)
            self.dense = DenseIndex.load(generation / DENSE) if (generation / DENSE).exists() else None
        except (sqlite3.Error, OSError, ValueError, RuntimeError) as exc:
            raise IndexNotFoundError(f"{generation}: cannot open the index ({exc})") from exc

    @classmethod
    def open(cls, index_dir: Path) -> Index:
        generation = live_generation(index_dir)
        if generation is None:
            raise IndexNotFoundError(f"{index_dir}: no index here yet; run `rag ingest FOLDER --index {index_dir}` first")
        return cls(generation)

    @property
    def embedder(self) -> dict[str, Any]:
        return self.manifest["embedder"]

    def files(self) -> list[FileRecord]:
        return self.store.files()

    def chunks(self, ids: list[int]) -> list[ChunkRow]:
        """Chunks in the order of ``ids``."""
        rows = self.store.chunks_by_id(ids)
        return [rows[i] for i in ids if i in rows]

    def search_dense(self, query_vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(chunk id, cosine)`` best first; ``allowed`` restricts to those chunk ids."""
        if self.dense is None or not len(self.dense) or (allowed is not None and not len(allowed)):
            return []
        scores, ids = self.dense.search(query_vector.reshape(1, -1), k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def search_bm25(self, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(chunk id, BM25 score)`` best first, positive scores only."""
        scores, ids = self.sparse.search(tokens, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def search_bm25_weighted(self, weights: dict[str, float], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        scores, ids = self.sparse.search_weighted(weights, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def vectors(self, ids: list[int]) -> np.ndarray:
        """Stored vectors of these chunks (for feedback and near-duplicate checks)."""
        assert self.dense is not None
        return self.dense.vectors(ids)

    def close(self) -> None:
        self.store.close()


def built_with(index_dir: Path) -> str | None:
    """The embedder name the index's live generation records, or None when there is no index yet."""
    generation = live_generation(index_dir)
    return None if generation is None else read_manifest(generation).get("embedder", {}).get("name")
