"""The BM25 index: bm25s sparse matrices, saved as numpy arrays and memory-mapped when read.

Beside bm25s's score matrix the index keeps each entry's term frequency and each chunk's length, so a
commit updates it in time proportional to its size with numpy (no pass over every chunk's tokens in
Python) and gives exactly the scores a rebuild from scratch would.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import bm25s
import numpy as np

K1 = 1.2
B = 0.75
"""BM25 parameters, measured best of (0.9, 0.4), (1.2, 0.75), (1.5, 0.75) on SciFact and RGB-zh."""
_IDS = "chunk_ids.npy"
_EMPTY = "empty.json"
_TF = "term_frequencies.npy"
_LENGTHS = "chunk_lengths.npy"


class SparseIndex:
    """BM25 (Lucene variant, k1=1.2, b=0.75) over pre-tokenised chunks, addressed by chunk id.

    Example:
        >>> index = SparseIndex.build([3, 9], [["red", "apple"], ["green", "pear"]])
        >>> index.search(["pear"], 1)[1].tolist()
        [9]
        >>> index.updated(removed=[9], added=[(12, ["pear", "pie"])]).search(["pear"], 1)[1].tolist()
        [12]
    """

    def __init__(self, engine: bm25s.BM25 | None, ids: np.ndarray, term_frequencies: np.ndarray | None = None,
                 lengths: np.ndarray | None = None) -> None:
        self._engine = engine
        self._ids = ids
        self._tf = term_frequencies
        """Term frequency of each entry of the engine's term-major matrix (None in indexes from before them)."""
        self._lengths = lengths
        """Tokens in each chunk, in chunk-id order."""

    @classmethod
    def build(cls, ids: Sequence[int], tokens: Sequence[list[str]]) -> SparseIndex:
        """The index of these chunks (``ids`` ascending, as the store lists them)."""
        return cls(None, np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int32)).updated([], zip(ids, tokens, strict=True))

    @property
    def updatable(self) -> bool:
        return self._tf is not None and self._lengths is not None

    def updated(self, removed: Iterable[int], added: Iterable[tuple[int, Sequence[str]]]) -> SparseIndex:
        """A new index without the ``removed`` chunk ids and with ``added`` ``(id, tokens)``, whose ids are
        all above the kept ones; scores equal a rebuild's. Costs one numpy pass over the index's entries."""
        if not self.updatable:
            raise ValueError("this BM25 index has no term frequencies; rebuild it with SparseIndex.build")
        assert self._tf is not None and self._lengths is not None
        vocab: dict[str, int] = dict(self._engine.vocab_dict) if self._engine is not None else {}
        if self._engine is not None:
            indptr = np.asarray(self._engine.scores["indptr"], dtype=np.int64)
            docs = np.asarray(self._engine.scores["indices"])
        else:
            indptr, docs = np.zeros(1, np.int64), np.zeros(0, np.int32)
        keep = ~np.isin(self._ids, np.fromiter(removed, dtype=np.int64))
        position = np.cumsum(keep) - 1
        alive = keep[docs]
        old_terms = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))[alive]
        old_docs, old_tf = position[docs[alive]], np.asarray(self._tf)[alive]

        new_ids, new_lengths, terms, new_docs, new_tf = [], [], [], [], []
        first = int(keep.sum())
        for doc, (chunk_id, tokens) in enumerate(sorted(added, key=lambda item: item[0]), start=first):
            new_ids.append(chunk_id)
            new_lengths.append(len(tokens))
            for token, count in Counter(tokens).items():
                terms.append(vocab.setdefault(token, len(vocab)))
                new_docs.append(doc)
                new_tf.append(count)
        ids = np.concatenate([np.asarray(self._ids)[keep], np.asarray(new_ids, dtype=np.int64)])
        if first and new_ids and new_ids[0] <= ids[first - 1]:
            raise ValueError("added chunk ids must be above every kept id")
        lengths = np.concatenate([np.asarray(self._lengths)[keep], np.asarray(new_lengths, dtype=np.int32)])
        if not vocab or not len(old_terms) + len(terms):
            return SparseIndex(None, ids, np.zeros(0, np.float32), lengths)

        # Merge term-major: each term's kept entries, then its new ones (whose chunks come after).
        terms_new = np.asarray(terms, dtype=np.int64)
        order = np.lexsort((np.asarray(new_docs, dtype=np.int64), terms_new))
        terms_new = terms_new[order]
        old_count = np.bincount(old_terms, minlength=len(vocab))
        new_count = np.bincount(terms_new, minlength=len(vocab))
        merged_indptr = np.concatenate([[0], np.cumsum(old_count + new_count)])
        old_start = np.concatenate([[0], np.cumsum(old_count)])
        new_start = np.concatenate([[0], np.cumsum(new_count)])
        slot_old = merged_indptr[old_terms] + np.arange(len(old_terms)) - old_start[old_terms]
        slot_new = merged_indptr[terms_new] + old_count[terms_new] + np.arange(len(terms_new)) - new_start[terms_new]
        merged_docs = np.empty(merged_indptr[-1], dtype=np.int32)
        merged_tf = np.empty(merged_indptr[-1], dtype=np.float32)
        merged_docs[slot_old], merged_docs[slot_new] = old_docs, np.asarray(new_docs, dtype=np.int32)[order]
        merged_tf[slot_old], merged_tf[slot_new] = old_tf, np.asarray(new_tf, dtype=np.float32)[order]

        scores = _lucene_scores(merged_indptr, merged_docs, merged_tf, lengths)
        engine = bm25s.BM25(k1=K1, b=B, method="lucene")
        engine.scores = {"data": scores, "indices": merged_docs, "indptr": merged_indptr, "num_docs": len(ids)}
        engine.vocab_dict = vocab
        engine.nonoccurrence_array = None  # Lucene BM25 has no score for absent terms
        return SparseIndex(engine, ids, merged_tf, lengths)

    @classmethod
    def load(cls, directory: Path, mmap: bool = True) -> SparseIndex:
        ids = np.load(directory / _IDS, mmap_mode="r" if mmap else None)
        extra = [np.load(directory / name, mmap_mode="r" if mmap else None) if (directory / name).exists() else None
                 for name in (_TF, _LENGTHS)]
        if (directory / _EMPTY).exists():
            return cls(None, ids, *extra)
        return cls(bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False), ids, *extra)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / _IDS, self._ids)
        if self._tf is not None and self._lengths is not None:
            np.save(directory / _TF, self._tf)
            np.save(directory / _LENGTHS, self._lengths)
        if self._engine is None:
            (directory / _EMPTY).write_text(json.dumps({"chunks": len(self._ids)}))
        else:
            self._engine.save(str(directory), show_progress=False)

    @property
    def ids(self) -> np.ndarray:
        """Chunk ids in index order (ascending)."""
        return self._ids

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


def _lucene_scores(indptr: np.ndarray, docs: np.ndarray, tf: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """BM25 of every entry of a term-major matrix, as bm25s computes it (Lucene idf, float32)."""
    n = len(lengths)
    df = np.diff(indptr).astype(np.float32)
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5)).astype(np.float32)
    average = lengths.mean() if n else 1.0
    scores = np.repeat(idf, np.diff(indptr))
    scores *= tf / (K1 * ((1 - B) + B * lengths[docs] / average) + tf)
    return scores.astype(np.float32)
