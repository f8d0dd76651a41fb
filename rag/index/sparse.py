"""The BM25 index: bm25s sparse matrices, saved as numpy arrays and memory-mapped when read."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import bm25s
import numpy as np

_IDS = "chunk_ids.npy"
_EMPTY = "empty.json"


class SparseIndex:
    """BM25 (Lucene variant, k1=1.5, b=0.75) over pre-tokenised chunks, addressed by chunk id.

    Example:
        >>> index = SparseIndex.build([3, 9], [["red", "apple"], ["green", "pear"]])
        >>> index.search(["pear"], 1)[1].tolist()
        [9]
    """

    def __init__(self, engine: bm25s.BM25 | None, ids: np.ndarray) -> None:
        self._engine = engine
        self._ids = ids

    @classmethod
    def build(cls, ids: Sequence[int], tokens: Sequence[list[str]]) -> "SparseIndex":
        if not any(tokens):
            return cls(None, np.asarray(ids, dtype=np.int64))
        engine = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
        engine.index(list(tokens), show_progress=False)
        return cls(engine, np.asarray(ids, dtype=np.int64))

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> "SparseIndex":
        ids = np.load(directory / _IDS, mmap_mode="r" if mmap else None)
        if (directory / _EMPTY).exists():
            return cls(None, ids)
        return cls(bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False), ids)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / _IDS, self._ids)
        if self._engine is None:
            (directory / _EMPTY).write_text(json.dumps({"chunks": 0}))
        else:
            self._engine.save(str(directory), show_progress=False)

    def __len__(self) -> int:
        return len(self._ids)

    def search(self, tokens: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, chunk ids)`` of the best ``k`` chunks with a positive score, best first."""
        if self._engine is None or not tokens:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        vocab = self._engine.vocab_dict
        known = [t for t in tokens if t in vocab]
        if not known:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores = self._engine.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return scores[top].astype(np.float32), np.asarray(self._ids[top], dtype=np.int64)
