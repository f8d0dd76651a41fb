"""Reading the index: open the live generation once and query it; never waits on a writer."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from rag.index.dense import DenseIndex, DenseSegments
from rag.index.generations import live_generation
from rag.index.layout import DENSE, FORMAT, SPARSE, IndexNotFoundError, read_manifest
from rag.index.segments import SegmentedStore
from rag.index.sparse import Postings, SparseIndex
from rag.index.store import ChunkRow, FileRecord


class Index:
    """A published generation: dense and BM25 search over its segments plus chunk and file look-ups.

    Example:
        >>> index = Index.open(Path("rag-index"))
        >>> index.manifest["counts"]
        {'files': 4, 'pages': 8, 'chunks': 8}
    """

    def __init__(self, generation: Path) -> None:
        self.generation = generation
        self.manifest: dict[str, Any] = read_manifest(generation)
        if self.manifest.get("format") != FORMAT:
            raise IndexNotFoundError(f"{generation}: index format {self.manifest.get('format')}, this version reads {FORMAT}; "
                                     "run `rag ingest` on the index once to upgrade it")
        names = self.manifest["segments"]
        try:
            self.store = SegmentedStore.open_readonly(generation, names)
            dead = self.store.dead_array()
            self.sparse = SparseIndex([Postings.load(generation / name / SPARSE) for name in names], dead)
            dense = [DenseIndex.load(generation / name / DENSE).excluding(dead) for name in names
                     if (generation / name / DENSE).exists()]
            self.dense = DenseSegments(dense) if dense else None
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
        return [(i, s) for i, s in zip(ids[0].tolist(), scores[0].tolist(), strict=True) if i >= 0]

    def search_bm25(self, tokens: list[str], k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """``(chunk id, BM25 score)`` best first, positive scores only."""
        scores, ids = self.sparse.search(tokens, k, allowed)
        return list(zip(ids.tolist(), scores.tolist(), strict=True))

    def vectors(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """Stored vectors of these chunks (for feedback and near-duplicate checks)."""
        if self.dense is None:  # an index without chunks has no dense part
            if len(ids):
                raise KeyError(f"{self.generation}: no vectors stored, so none for chunks {[int(i) for i in ids[:5]]}")
            return np.zeros((0, int(self.embedder.get("dimension", 0))), np.float32)
        return self.dense.vectors(ids)

    def is_empty(self) -> bool:
        """True when the knowledge base holds no chunks (nothing ingested, or every file failed)."""
        return not self.manifest.get("counts", {}).get("chunks")

    def close(self) -> None:
        self.store.close()
        if self.dense is not None:
            self.dense.close()


def built_with(index_dir: Path) -> str | None:
    """The embedder name the index's live generation records, or None when there is no index yet."""
    generation = live_generation(index_dir)
    return None if generation is None else read_manifest(generation).get("embedder", {}).get("name")
