"""The BM25 index: one term-major postings list per segment (term frequencies and chunk lengths as
numpy arrays), scored at query time with the statistics of every live chunk.

Scoring at query time, instead of storing scores, is what lets segments be shared between generations:
a new segment changes every chunk's idf and the average length, and a stored score would go stale. It
costs one pass over the query terms' postings, as summing stored scores does; the scores are Lucene's
BM25, exactly as one index over the live chunks would give them.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from rag.index.lookup import find_sorted

K1 = 1.2
B = 0.75
"""BM25 parameters, measured best of (0.9, 0.4), (1.2, 0.75), (1.5, 0.75) on SciFact and RGB-zh."""
_ARRAYS = ("ids", "lengths", "indptr", "docs", "tf")
ScoreTables = list[np.ndarray]
"""A weighted query's BM25 score of every chunk, one array per segment (by position in the segment)."""
_VOCABULARY = "vocabulary.json"


class Postings:
    """One segment's BM25 postings: for each term, the positions of the chunks holding it and how often.

    Example:
        >>> postings = Postings.build([3, 9], [["red", "apple"], ["green", "pear"]])
        >>> postings.vocabulary["pear"], postings.ids.tolist()
        (3, [3, 9])
    """

    def __init__(self, ids: np.ndarray, lengths: np.ndarray, indptr: np.ndarray, docs: np.ndarray, tf: np.ndarray,
                 vocabulary: dict[str, int]) -> None:
        self.ids = ids
        """Chunk ids, ascending; a chunk's position here is its ``doc`` number."""
        self.lengths = lengths
        self.indptr = indptr
        """Term ``t``'s postings are ``docs[indptr[t]:indptr[t + 1]]``, ascending."""
        self.docs = docs
        self.tf = tf
        self.vocabulary = vocabulary

    @classmethod
    def build(cls, ids: Sequence[int], tokens: Sequence[Sequence[str]]) -> Postings:
        """The postings of these chunks (``ids`` ascending)."""
        builder = PostingsBuilder()
        builder.add(ids, tokens)
        return builder.finish()

    @classmethod
    def concatenated(cls, parts: Sequence[tuple[Postings, np.ndarray]]) -> Postings:
        """One segment holding the chunks of ``parts`` (``(postings, chunk ids to leave out)``, in id order)."""
        vocabulary: dict[str, int] = {}
        ids, lengths, terms, docs, tf = [], [], [], [], []
        offset = 0
        for postings, dead in parts:
            keep = ~np.isin(postings.ids, dead)
            position = np.cumsum(keep) - 1 + offset
            remap = np.fromiter((vocabulary.setdefault(t, len(vocabulary)) for t in postings.vocabulary), np.int64,
                                count=len(postings.vocabulary))
            order = np.argsort(np.fromiter(postings.vocabulary.values(), np.int64, count=len(postings.vocabulary)))
            term_of_row = remap[order]  # vocabulary row -> merged term
            entry_terms = np.repeat(term_of_row, np.diff(postings.indptr))
            alive = keep[postings.docs]
            terms.append(entry_terms[alive])
            docs.append(position[postings.docs[alive]])
            tf.append(np.asarray(postings.tf)[alive])
            ids.append(np.asarray(postings.ids)[keep])
            lengths.append(np.asarray(postings.lengths)[keep])
            offset += int(keep.sum())
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        if len(all_ids) > 1 and np.any(np.diff(all_ids) <= 0):
            raise ValueError("segments must be concatenated in chunk id order")
        return cls.from_entries(all_ids, np.concatenate(lengths) if lengths else np.zeros(0, np.int32),
                                np.concatenate(terms) if terms else np.zeros(0, np.int64),
                                np.concatenate(docs).astype(np.int32) if docs else np.zeros(0, np.int32),
                                np.concatenate(tf) if tf else np.zeros(0, np.float32), vocabulary)

    @classmethod
    def from_entries(cls, ids: np.ndarray, lengths: np.ndarray, terms: np.ndarray, docs: np.ndarray, tf: np.ndarray,
                     vocabulary: dict[str, int]) -> Postings:
        """The postings of ``(term, doc, tf)`` entries in any order (``docs`` are positions in ``ids``)."""
        order = np.lexsort((docs, terms))
        counts = np.bincount(terms, minlength=len(vocabulary))
        return cls(ids, lengths, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64), docs[order], tf[order], vocabulary)

    @classmethod
    def load(cls, directory: Path) -> Postings:
        # read whole, not memory-mapped: numpy backs arrays this large with transparent huge pages, and a
        # query's scattered look-ups into mapped 4 KiB pages missed the TLB (BM25 scoring after a query's
        # embedding 3.1 -> 2.3 ms at a million chunks, for 212 MB read at open)
        ids, lengths, indptr, docs, tf = (np.load(directory / f"{name}.npy") for name in _ARRAYS)
        return cls(ids, lengths, indptr, docs, tf, json.loads((directory / _VOCABULARY).read_text(encoding="utf-8")))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", np.asarray(getattr(self, name)))
        (directory / _VOCABULARY).write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")

    def __len__(self) -> int:
        return len(self.ids)


class PostingsBuilder:
    """Postings gathered a batch of chunks at a time as numpy arrays (no Python object per token is kept),
    so that building a segment of a million chunks stays small in memory.

    Example:
        >>> builder = PostingsBuilder()
        >>> builder.add([4, 5], [["solar", "lamp"], ["solar"]])
        >>> builder.finish(dropped={5}).ids.tolist()
        [4]
    """

    def __init__(self) -> None:
        self.vocabulary: dict[str, int] = {}
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        """``(terms, chunk ids, tf)`` of each batch's entries."""
        self._chunks: list[tuple[np.ndarray, np.ndarray]] = []
        """``(chunk ids, lengths)`` of each batch."""

    def add(self, ids: Sequence[int], tokens: Sequence[Sequence[str]]) -> None:
        terms, owners, tf = [], [], []
        for chunk_id, chunk_tokens in zip(ids, tokens, strict=True):
            for token, count in Counter(chunk_tokens).items():
                terms.append(self.vocabulary.setdefault(token, len(self.vocabulary)))
                owners.append(chunk_id)
                tf.append(count)
        self._parts.append((np.asarray(terms, np.int64), np.asarray(owners, np.int64), np.asarray(tf, np.float32)))
        self._chunks.append((np.asarray(ids, np.int64), np.asarray([len(t) for t in tokens], np.int32)))

    def __len__(self) -> int:
        return sum(len(ids) for ids, _ in self._chunks)

    def finish(self, dropped: set[int] | frozenset[int] = frozenset()) -> Postings:
        """The postings of every chunk added but the ``dropped`` ones (replaced again before the segment closed)."""
        gone = np.fromiter(dropped, np.int64, count=len(dropped))
        ids = np.concatenate([i for i, _ in self._chunks] or [np.zeros(0, np.int64)])
        lengths = np.concatenate([n for _, n in self._chunks] or [np.zeros(0, np.int32)])
        keep = ~np.isin(ids, gone)
        order = np.argsort(ids[keep], kind="stable")
        ids, lengths = ids[keep][order], lengths[keep][order]
        if len(ids) > 1 and np.any(np.diff(ids) <= 0):
            raise ValueError("chunk ids must be distinct")
        terms = np.concatenate([t for t, _, _ in self._parts] or [np.zeros(0, np.int64)])
        owners = np.concatenate([o for _, o, _ in self._parts] or [np.zeros(0, np.int64)])
        tf = np.concatenate([f for _, _, f in self._parts] or [np.zeros(0, np.float32)])
        alive = ~np.isin(owners, gone)
        return Postings.from_entries(ids, lengths, terms[alive], np.searchsorted(ids, owners[alive]).astype(np.int32), tf[alive],
                                     self.vocabulary)


class SparseIndex:
    """BM25 (Lucene variant, k1=1.2, b=0.75) over the live chunks of one or more segments.

    ``dead`` chunk ids (replaced or removed since their segment was written) count nowhere: not in the
    number of chunks, the average length, a term's document frequency or the results.

    Example:
        >>> index = SparseIndex.build([3, 9], [["red", "apple"], ["green", "pear"]])
        >>> index.search(["pear"], 1)[1].tolist()
        [9]
        >>> SparseIndex([Postings.build([3, 9], [["red", "pear"], ["green", "pear"]])], dead=np.array([9])).search(["pear"], 2)[1].tolist()
        [3]
    """

    def __init__(self, segments: Sequence[Postings], dead: np.ndarray | None = None) -> None:
        dead = np.zeros(0, np.int64) if dead is None else np.asarray(dead, np.int64)
        self._segments = list(segments)
        self._alive = [~np.isin(s.ids, dead) for s in self._segments]
        self._has_dead = [not bool(a.all()) for a in self._alive]
        self._frequencies: dict[str, int] = {}
        """Live document frequency by token, counted on first use (the index never changes)."""
        self._count = sum(int(a.sum()) for a in self._alive)
        total_length = sum(int(np.asarray(s.lengths, np.int64)[a].sum()) for s, a in zip(self._segments, self._alive, strict=True))
        average = total_length / self._count if self._count else 1.0
        self._table_ends = np.cumsum([len(s) for s in self._segments], dtype=np.int64)
        """Where each segment's score table ends in a search's one block of tables."""
        self._norms = [(K1 * ((1 - B) + B * np.asarray(s.lengths, np.float32) / np.float32(average))).astype(np.float32)
                       for s in self._segments]

    @classmethod
    def build(cls, ids: Sequence[int], tokens: Sequence[Sequence[str]]) -> SparseIndex:
        """One segment's index of these chunks (``ids`` ascending)."""
        return cls([Postings.build(ids, tokens)])

    @property
    def ids(self) -> np.ndarray:
        """Live chunk ids, ascending."""
        parts = [np.asarray(s.ids)[a] for s, a in zip(self._segments, self._alive, strict=True)]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self._count

    def _postings(self, token: str) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """``(segment, docs, their tf)`` of a token in each segment that has it, live docs only."""
        found = []
        for number, segment in enumerate(self._segments):
            row = segment.vocabulary.get(token)
            if row is not None:
                start, end = int(segment.indptr[row]), int(segment.indptr[row + 1])
                docs, tf = np.asarray(segment.docs[start:end]), np.asarray(segment.tf[start:end])
                if self._has_dead[number]:
                    alive = self._alive[number][docs]
                    docs, tf = docs[alive], tf[alive]
                found.append((number, docs, tf))
        return found

    def _frequency(self, token: str) -> int:
        """How many live chunks hold the token."""
        if token not in self._frequencies:
            self._frequencies[token] = sum(len(docs) for _, docs, _ in self._postings(token))
        return self._frequencies[token]

    def _idf(self, document_frequency: int) -> float:
        return math.log(1 + (self._count - document_frequency + 0.5) / (document_frequency + 0.5))

    def idf(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene idf of each token (unknown tokens get the idf of a term found nowhere)."""
        return {t: self._idf(self._frequency(t)) for t in tokens}

    def score_tables(self, weights: Mapping[str, float]) -> ScoreTables | None:
        """``sum_t w_t * bm25(t, chunk)`` for every chunk of each segment; None when no term is found.
        A search keeps them to complete fused lists (:meth:`scores_for`) without scoring again."""
        # one zeroed block split by segment: seven small arrays a query were seven fresh mappings to fault in
        scores = np.split(np.zeros(self._table_ends[-1], np.float32), self._table_ends[:-1]) if self._segments else []
        found = False
        for token, weight in weights.items():
            if weight <= 0:
                continue
            postings = self._postings(token)
            frequency = self._frequencies[token] = sum(len(docs) for _, docs, _ in postings)  # idf() reads it next
            if not frequency:
                continue
            found = True
            factor = np.float32(weight * self._idf(frequency))
            for number, docs, tf in postings:  # add.at: numpy's indexed in-place add, not a gather and a scatter
                np.add.at(scores[number], docs, factor * tf / (self._norms[number][docs] + tf))
        return scores if found else None

    def search(self, tokens: Sequence[str], k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, chunk ids)`` of the best ``k`` chunks with a positive score, best first.

        A token given twice counts twice. ``allowed`` (chunk ids) restricts the result.
        """
        return self.search_weighted(Counter(tokens), k, allowed)

    def scores_for(self, weights: Mapping[str, float], ids: np.ndarray, tables: ScoreTables | None = None) -> np.ndarray:
        """The weighted query's BM25 score of each of these chunk ids (0 for a chunk without its terms or
        not live), looked up in its score ``tables`` (made here when not given). A search passes the
        tables of its own BM25 search: scoring the ids again through every term's postings cost 2.4 ms
        a query at a million chunks."""
        result = np.zeros(len(ids), np.float32)
        scores = tables if tables is not None else self.score_tables(weights)
        if scores is None:
            return result
        wanted = np.asarray(ids, np.int64)
        for segment, table in zip(self._segments, scores, strict=True):  # dead chunks score 0 in the tables
            position, inside = find_sorted(segment.ids, wanted)
            result[inside] = table[position[inside]]
        return result

    def search_weighted(self, weights: Mapping[str, float], k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search` for a weighted query: ``score = sum_t w_t * bm25(t, chunk)``."""
        return self.best(self.score_tables(weights), k, allowed)

    def best(self, tables: ScoreTables | None, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, chunk ids)`` of the ``k`` best chunks with a positive score in these tables, best first."""
        if tables is None or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        best_scores: list[np.ndarray] = []
        best_ids: list[np.ndarray] = []
        bar = np.float32(0)  # the k-th best score so far: a later segment's chunk must reach it (few do, so few are sorted)
        for segment, segment_scores in zip(self._segments, tables, strict=True):
            if allowed is not None:
                segment_scores = np.where(np.isin(segment.ids, allowed), segment_scores, 0)
            top = np.flatnonzero(segment_scores >= bar if bar > 0 else segment_scores > 0)
            if len(top) > k:
                top = top[np.argpartition(-segment_scores[top], k - 1)[:k]]
            best_scores.append(segment_scores[top])
            best_ids.append(np.asarray(segment.ids)[top])
            if sum(map(len, best_scores)) >= k:
                bar = max(bar, np.partition(np.concatenate(best_scores), -k)[-k])
        merged_scores, merged_ids = np.concatenate(best_scores), np.concatenate(best_ids)
        order = np.lexsort((merged_ids, -merged_scores))[:k]
        return merged_scores[order].astype(np.float32), merged_ids[order].astype(np.int64)
