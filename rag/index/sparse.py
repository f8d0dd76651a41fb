"""The BM25 index: bm25s sparse matrices, saved as numpy arrays and memory-mapped when read."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Mapping, Sequence

import bm25s
import numpy as np

K1 = 1.2
B = 0.75
"""BM25 parameters, measured best of (0.9, 0.4), (1.2, 0.75), (1.5, 0.75) on SciFact and RGB-zh."""
_IDS = "chunk_ids.npy"
_EMPTY = "empty.json"


class SparseIndex:
    """BM25 (Lucene variant, k1=1.2, b=0.75) over pre-tokenised chunks, addressed by chunk id.

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
        engine = bm25s.BM25(k1=K1, b=B, method="lucene")
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

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene idf of each token (unknown tokens get the idf of a term found nowhere)."""
        n = len(self._ids)
        if self._engine is None:
            return {t: math.log(1 + (n + 0.5) / 0.5) for t in tokens}
        indptr = self._engine.scores["indptr"]
        vocab = self._engine.vocab_dict
        result = {}
        for token in tokens:
            df = int(indptr[vocab[token] + 1] - indptr[vocab[token]]) if token in vocab else 0
            result[token] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return result

    def search(self, tokens: Sequence[str], k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, chunk ids)`` of the best ``k`` chunks with a positive score, best first.

        A token given twice counts twice. ``allowed`` (sorted chunk ids) restricts the result.
        """
        weights: dict[str, float] = {}
        for token in tokens:
            weights[token] = weights.get(token, 0.0) + 1.0
        return self.search_weighted(weights, k, allowed)

    def _scores(self, weights: Mapping[str, float]) -> np.ndarray | None:
        """``sum_t w_t * bm25(t, chunk)`` for every chunk, in index order; None when no term is known."""
        if self._engine is None:
            return None
        vocab = self._engine.vocab_dict
        known = {t: w for t, w in weights.items() if t in vocab and w > 0}
        if not known:
            return None
        if len(set(known.values())) == 1:
            return next(iter(known.values())) * self._engine.get_scores(list(known))
        scores = np.zeros(len(self._ids), np.float32)
        for token, weight in known.items():
            scores += weight * self._engine.get_scores([token])
        return scores

    def scores_for(self, weights: Mapping[str, float], ids: np.ndarray) -> np.ndarray:
        """The weighted query's BM25 score of each of these chunk ids (0 for a chunk without its terms)."""
        scores = self._scores(weights)
        if scores is None or not len(ids):
            return np.zeros(len(ids), np.float32)
        order = np.argsort(self._ids, kind="stable")
        return scores[order[np.searchsorted(self._ids[order], ids)]]

    def search_weighted(self, weights: Mapping[str, float], k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search` for a weighted query: ``score = sum_t w_t * bm25(t, chunk)``."""
        empty = np.zeros(0, np.float32), np.zeros(0, np.int64)
        scores = self._scores(weights)
        if scores is None:
            return empty
        if allowed is not None:
            scores = np.where(np.isin(self._ids, allowed, assume_unique=True), scores, 0)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        top = top[scores[top] > 0]
        return scores[top].astype(np.float32), np.asarray(self._ids[top], dtype=np.int64)
