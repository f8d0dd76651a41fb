"""The retriever: one query in, ranked chunks out, with the provenance and timings of every stage.

Example:
    >>> retriever = Retriever.open(Path("rag-index"), Settings.resolve({}, env={}))
    >>> result = retriever.search("How long is the warranty?", mode=Mode.FUSION, k=5)
    >>> Path(result.hits[0].source).name, result.hits[0].page, result.hits[0].found_by
    ('lumen-l2-guide.pdf', 3, ['original/bm25', 'original/dense'])
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.embed import Embedder, Role, choose_embedder, load_embedder
from rag.index import Index
from rag.index.lookup import find_sorted
from rag.index.sparse import ScoreTables
from rag.index.store import ChunkRow
from rag.retrieve import policy
from rag.retrieve.filters import Filters
from rag.retrieve.fusion import FusionMethod, Ranking, fuse
from rag.retrieve.policy import RetrieverConfig
from rag.retrieve.rerank import Reranker
from rag.retrieve.variants import KeywordExtractor, QueryVariant, Rewriter, rm3_expansion, rocchio, term_weights
from rag.text import BM25Tokenizer, language_of


class SearchMemo:
    """What one search has looked up, for its later stages to reuse: each query variant's BM25 score tables
    (by variant name), so that completing the fused lists looks BM25 scores up instead of scoring again,
    and the stored vectors of the chunks it has scored (a Chinese question's dense feedback completes
    its lists twice, and gathering a vector costs a cache miss at a million chunks).

    Example:
        >>> memo = SearchMemo(Index.open(Path("rag-index")))
        >>> memo.vectors(np.array([3, 1])).shape, memo.vectors(np.array([1])).shape
        ((2, 384), (1, 384))
    """

    def __init__(self, index: Index) -> None:
        self.index = index
        self.tables: dict[str, ScoreTables | None] = {}
        self._ids = np.zeros(0, np.int64)
        """Chunk ids whose vectors were fetched, ascending, and their vectors in that order."""
        self._rows: np.ndarray | None = None

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these chunk ids, each fetched from the index once per search."""
        ids = np.asarray(ids, np.int64)
        missing = np.setdiff1d(ids, self._ids)
        if len(missing) or self._rows is None:
            rows = self.index.vectors(missing)
            known = np.concatenate([self._ids, missing])
            order = np.argsort(known, kind="stable")
            self._ids = known[order]
            self._rows = (np.vstack([self._rows, rows]) if self._rows is not None else rows)[order]
        return self._rows[np.searchsorted(self._ids, ids)]


MIXED_SHARE = 0.1
"""Dense scores are corrected for the embedder's language bias only when each language holds this share
of the knowledge base's chunks."""


class Mode(StrEnum):
    """Which retrievers run and how their lists combine."""

    BM25 = "bm25"
    DENSE = "dense"
    HYBRID = "hybrid"
    """BM25 and dense, fused."""
    FUSION = "fusion"
    """RAG-Fusion: hybrid first; when unsure, query variants each run through both, all lists fused."""


@dataclass
class Hit:
    """A retrieved chunk: its rank, final score, and which variant/retriever lists found it (with scores)."""

    rank: int
    chunk: ChunkRow
    score: float
    found_by: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    context: str | None = None

    @property
    def source(self) -> str:
        return self.chunk.path

    @property
    def page(self) -> int:
        return self.chunk.page

    @property
    def text(self) -> str:
        return self.chunk.text

    def to_json(self) -> dict[str, Any]:
        data = {"rank": self.rank, "chunk_id": self.chunk.id, "source": self.source, "page": self.page,
                "score": round(self.score, 6), "text": self.text, "found_by": self.found_by,
                "scores": {k: round(v, 6) for k, v in self.scores.items()}}
        if self.context is not None:
            data["context"] = self.context
        return data


@dataclass
class RetrievalResult:
    """Everything one search did: hits, the fusion gate's decision, variants, dense weight, timings (ms)."""

    query: str
    mode: Mode
    hits: list[Hit]
    timings: dict[str, float]
    dense_weight: float = 1.0
    fusion_ran: bool | None = None
    gate_reason: str = ""
    variants: list[QueryVariant] = field(default_factory=list)
    duplicates_dropped: int = 0
    query_vector: np.ndarray | None = None
    """The question's embedding (query role), when the mode embedded it."""
    bm25_weight: float = 1.0

    @property
    def ms(self) -> float:
        return self.timings.get("total", 0.0)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"query": self.query, "mode": self.mode.value, "hits": [h.to_json() for h in self.hits],
                                "ms": round(self.ms, 2), "dense_weight": round(self.dense_weight, 3),
                                "bm25_weight": round(self.bm25_weight, 3),
                                "timings": {k: round(v, 2) for k, v in self.timings.items()},
                                "duplicates_dropped": self.duplicates_dropped}
        if self.fusion_ran is not None:
            data["fusion"] = {"ran": self.fusion_ran, "reason": self.gate_reason,
                              "variants": [{"name": v.name, "text": v.text} for v in self.variants]}
        return data


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._last) * 1000
        self._last = now

    def total(self) -> dict[str, float]:
        self.timings["total"] = (time.perf_counter() - self._start) * 1000
        return self.timings


class Retriever:
    """Dense, BM25, hybrid and RAG-Fusion retrieval over one index, with optional reranking.

    Example:
        >>> from rag.embed import load_embedder
        >>> retriever = Retriever(Index.open(Path("rag-index")), load_embedder("e5-small"))
        >>> [(Path(h.source).name, h.page) for h in retriever.search("保修期多长？", mode=Mode.FUSION, k=3).hits]
        [('晴川-w3-说明书.pdf', 3), ('晴川-w3-说明书.pdf', 2), ('lumen-l2-guide.pdf', 3)]
    """

    def __init__(self, index: Index, embedder: Embedder, tokenizer: BM25Tokenizer | None = None,
                 config: RetrieverConfig | None = None, reranker: Reranker | None = None,
                 rewriter: Rewriter | None = None) -> None:
        self.index = index
        self.embedder = embedder
        self.tokenizer = tokenizer or BM25Tokenizer()
        self.config = config or RetrieverConfig.for_embedder(embedder.name)
        self.reranker = reranker
        self.rewriter = rewriter
        self._keywords = KeywordExtractor(self.tokenizer)
        self._allowed = lru_cache(maxsize=32)(lambda filters: filters.allowed_ids(self.index.store))
        self._languages: tuple[np.ndarray, np.ndarray, list[str]] | None = None
        self._mixed: bool | None = None

    @classmethod
    def open(cls, index_dir: Path, settings: Settings, config: RetrieverConfig | None = None,
             rewriter: Rewriter | None = None, dedup: bool = True) -> Retriever:
        """The retriever for an index, with the embedder it was built with, its tuned settings (unless
        ``config`` is given) and the configured reranker; ``dedup=False`` keeps near-duplicates (for
        evaluations, where each corpus entry is judged on its own)."""
        index = Index.open(index_dir)
        name = choose_embedder(settings.embed_model, index.embedder["name"], index_dir)
        config = replace(config or RetrieverConfig.for_embedder(name), dedup=dedup)
        reranker = Reranker(settings.reranker) if settings.reranker else None
        return cls(index, load_embedder(name, batch_size=settings.embed_batch_size), config=config,
                   reranker=reranker, rewriter=rewriter)

    # the stages -------------------------------------------------------------------------------
    def dense_weight_for(self, query: str) -> float:
        """The dense retriever's weight for this query, lowered as the embedder's grasp of it falls.

        The grasp is the worse of two [UNK] shares: the query's own, and that of the indexed text in the
        query's language (an English model knows a few Chinese characters, but not Chinese).
        """
        tokens, unknown = self.embedder.unknown_token_counts([query])[0]
        by_language = self.index.manifest.get("unknown_token_share_by_language", {})
        return policy.dense_weight(self.config, max(unknown / tokens if tokens else 1.0, by_language.get(language_of(query), 0.0)))

    def _lists(self, variant: QueryVariant, dense: bool, allowed: np.ndarray | None, memo: SearchMemo,
               bm25: bool = True) -> dict[str, Ranking]:
        """The variant's BM25 and dense lists (each as asked); its BM25 score tables go to the ``memo``."""
        lists = {}
        if bm25:
            memo.tables[variant.name] = found = self.index.sparse.score_tables(variant.bm25_weights)
            scores, ids = self.index.sparse.best(found, self.config.depth, allowed)
            lists[f"{variant.name}/bm25"] = list(zip(ids.tolist(), scores.tolist(), strict=True))
        if dense and variant.vector is not None:
            ranked = self.index.search_dense(variant.vector, self.config.depth, allowed)
            lists[f"{variant.name}/dense"] = self._debiased(variant.text, ranked)
        return lists

    def _debiased(self, query: str, ranked: Ranking) -> Ranking:
        """Dense scores with the embedder's language offset added for chunks in another language than the
        query's (a multilingual model's cosine favours the query's own language), best first.

        Only in a knowledge base with at least ``MIXED_SHARE`` of its chunks in each language: in a
        monolingual one the few chunks in the other language are mostly boilerplate ("Shop Syncro on
        Powerslide."), which the offset would lift above the passages that answer (RGB-zh dense nDCG@10
        0.77 -> 0.66 when applied there)."""
        if not self.embedder.language_offsets or not ranked or not self._mixed_languages():
            return ranked
        offsets = self._language_offsets(language_of(query), np.array([i for i, _ in ranked], np.int64))
        adjusted = [(i, s + offset) for (i, s), offset in zip(ranked, offsets.tolist(), strict=True)]
        return sorted(adjusted, key=lambda pair: -pair[1])

    def _language_offsets(self, asked: str, ids: np.ndarray) -> np.ndarray:
        """Each chunk's language offset for a question in language ``asked`` (0 for a chunk in that language)."""
        known, codes, names = self._chunk_languages()
        table = np.array([self.embedder.language_offset(asked, name, self.config.language_offset_scale) for name in names])
        slot, found = find_sorted(known, ids)
        return np.where(found, table[codes[slot]] if len(known) else 0.0, 0.0)

    def bm25_weight_for(self, query: str) -> float:
        """BM25's weight for this query: full, or less when few of its words occur in the knowledge base
        (see :attr:`RetrieverConfig.bm25_full_match`)."""
        return policy.bm25_weight(self.config, self.matched_share(query) if self.config.bm25_full_match > 0 else 1.0)

    def matched_share(self, query: str) -> float:
        """The share of the query's idf mass carried by words that occur in the knowledge base."""
        idf = self.index.sparse.idf(sorted(set(self.tokenizer.tokenize(query))))
        if not idf:
            return 1.0
        nowhere = math.log(1 + (len(self.index.sparse) + 0.5) / 0.5)
        return sum(v for v in idf.values() if v < nowhere - 1e-9) / sum(idf.values())

    def _mixed_languages(self) -> bool:
        """Counted once per retriever (its index generation never changes): counting per query cost
        4 ms at 100k chunks and 40 ms at 1M."""
        if self._mixed is None:
            _, codes, _ = self._chunk_languages()
            counts = np.bincount(codes)
            self._mixed = len(counts) > 1 and int(counts.min()) >= MIXED_SHARE * len(codes)
        return self._mixed

    def _chunk_languages(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """``(chunk ids ascending, each one's language code, the languages by code)``, read once: a lookup
        table over arrays, as a dict per chunk cost 1.3 ms a query at a million chunks."""
        if self._languages is None:
            rows = sorted((chunk_id, language) for chunk_id, _, _, language in self.index.store.chunk_locations())
            names = sorted({language for _, language in rows})
            code = {name: number for number, name in enumerate(names)}
            self._languages = (np.array([i for i, _ in rows], np.int64), np.array([code[lang] for _, lang in rows], np.int64), names)
        return self._languages

    def _dense_feedback(self, original: QueryVariant, lists: dict[str, Ranking], dense_weight: float,
                        allowed: np.ndarray | None, bm25_weight: float, memo: SearchMemo) -> QueryVariant:
        """The query with its vector moved toward the fused first pass's top chunks; ``lists`` gets the dense
        search of the moved vector in place of the first one."""
        assert original.vector is not None
        first = {"original/bm25": lists["original/bm25"], "original/dense": lists["original/dense"]}
        ranking = self._ranking(first, [original], dense_weight, bm25_weight, memo)
        top = [chunk_id for chunk_id, _ in ranking[: self.config.dense_feedback_docs]]
        moved = replace(original, vector=rocchio(original.vector, memo.vectors(np.array(top, np.int64)), self.config.dense_feedback_original_weight))
        lists.update(self._lists(moved, True, allowed, memo, bm25=False))
        return moved

    def _variants(self, query: str, original: QueryVariant, lists: dict[str, Ranking], dense_weight: float,
                  memo: SearchMemo) -> list[QueryVariant]:
        c = self.config
        variants = []
        if language_of(query) not in c.variant_languages:
            return self._rewrites(query, dense_weight)
        keywords = self._keywords.keywords(query) if c.keywords_weight > 0 else ""
        if keywords and keywords != query:
            vector = self.embedder.encode([keywords], Role.QUERY)[0] if dense_weight > 0 else None
            variants.append(QueryVariant("keywords", keywords, term_weights(self.tokenizer.tokenize(keywords)), vector))
        top_bm25 = lists["original/bm25"][: c.feedback_docs]
        bm25_scores = dict(top_bm25)  # index.chunks leaves out an id it cannot find, so pair by id, not by position
        feedback_chunks = self.index.chunks(list(bm25_scores))
        expanded = rm3_expansion(original.bm25_weights, [(ch.tokens, bm25_scores[ch.id]) for ch in feedback_chunks],
                                 terms=c.feedback_terms, original_weight=c.feedback_original_weight)
        vector = None
        if dense_weight > 0 and original.vector is not None:
            top_dense = [i for i, _ in lists.get("original/dense", [])[:5]]
            vector = rocchio(original.vector, memo.vectors(np.array(top_dense, np.int64))) if top_dense else None
        top_terms = sorted(expanded, key=expanded.get, reverse=True)[:8]  # type: ignore[arg-type]
        variants.append(QueryVariant("feedback", " ".join(top_terms), expanded, vector))
        return variants + self._rewrites(query, dense_weight)

    def _rewrites(self, query: str, dense_weight: float) -> list[QueryVariant]:
        """The LLM's rewrites of the query as variants (none without a rewriter)."""
        if self.rewriter is None:
            return []
        variants = []
        for n, text in enumerate(self.rewriter(query, self.config.rewrites)[: self.config.rewrites], start=1):
            vector = self.embedder.encode([text], Role.QUERY)[0] if dense_weight > 0 else None
            variants.append(QueryVariant(f"rewrite-{n}", text, term_weights(self.tokenizer.tokenize(text)), vector))
        return variants

    def _completed(self, lists: dict[str, Ranking], variants: list[QueryVariant], memo: SearchMemo | None = None) -> dict[str, Ranking]:
        """Every list scored over the union of all lists' candidates, best first (BM25 scores and vectors
        looked up in the search's ``memo`` where given)."""
        memo = memo or SearchMemo(self.index)
        union = np.array(sorted({i for ranked in lists.values() for i, _ in ranked}), dtype=np.int64)
        by_name = {v.name: v for v in variants}
        completed = {}
        vectors: np.ndarray | None = None
        for key in lists:
            name, retriever = key.split("/")
            variant = by_name[name]
            if retriever == "dense" and variant.vector is not None:
                if vectors is None:
                    vectors = memo.vectors(union)
                scores = vectors @ variant.vector
                if self.embedder.language_offsets and self._mixed_languages():
                    scores = scores + self._language_offsets(language_of(variant.text), union)
            else:
                scores = self.index.sparse.scores_for(variant.bm25_weights, union, memo.tables.get(name))
            order = np.argsort(-scores, kind="stable")
            completed[key] = list(zip(union[order].tolist(), scores[order].tolist(), strict=True))  # Python numbers, made at once
        return completed

    def _ranking(self, lists: dict[str, Ranking], variants: list[QueryVariant], dense_weight: float,
                 bm25_weight: float, memo: SearchMemo) -> Ranking:
        """The lists as one ranking: score fusion first completes each list with the real scores of the
        others' chunks. ``lists`` itself is left as found, so provenance (found_by) stays with what each
        list found in its own top ``depth``."""
        if len(lists) == 1:
            return next(iter(lists.values()))
        if self.config.complete_scores and self.config.fusion is not FusionMethod.RRF:
            lists = self._completed(lists, variants, memo)
        return self._fuse(lists, dense_weight, bm25_weight)

    def _fuse(self, lists: dict[str, Ranking], dense_weight: float, bm25_weight: float) -> Ranking:
        weights = []
        for key in lists:
            variant, retriever = key.split("/")
            retriever_weight = bm25_weight if retriever == "bm25" else dense_weight
            weights.append(policy.variant_weight(self.config, variant, dense_weight) * retriever_weight)
        return fuse(list(lists.values()), weights, self.config.fusion, self.config.rrf_k)

    # the whole search -----------------------------------------------------------------------------
    def search(self, query: str, mode: Mode | str = Mode.HYBRID, k: int = 10, filters: Filters | None = None,
               rerank: bool = True, window: int = 0) -> RetrievalResult:
        """Ranked chunks for ``query``; ``rerank`` applies the configured cross-encoder (if any);
        ``window`` adds that many neighbouring chunks either side as each hit's ``context``."""
        mode = Mode(mode)
        clock = _Clock()
        allowed = self._allowed(filters) if filters else None
        clock.lap("filter")
        original = QueryVariant("original", query, term_weights(self.tokenizer.tokenize(query)))
        use_dense = mode is not Mode.BM25
        dense_weight = 0.0
        if use_dense:
            original = QueryVariant("original", query, original.bm25_weights, self.embedder.encode([query], Role.QUERY)[0])
            dense_weight = self.dense_weight_for(query) if mode is not Mode.DENSE else self.config.dense_weight
            clock.lap("embed")
        searches_dense = mode is Mode.DENSE or dense_weight > 0
        # one after the other: BM25 beside the embedding or the dense search (which uses both cores across
        # segments) slowed each more than it saved (measured at a million chunks)
        memo = SearchMemo(self.index)
        lists = self._lists(original, searches_dense, allowed, memo, bm25=mode is not Mode.DENSE)
        clock.lap("search")
        bm25_weight = self.bm25_weight_for(query) if mode is not Mode.BM25 else self.config.bm25_weight
        result = RetrievalResult(query, mode, [], {}, dense_weight=dense_weight, query_vector=original.vector,
                                 bm25_weight=bm25_weight)
        if policy.wants_dense_feedback(self.config, language_of(query), lists, dense_weight, len(self.index.sparse)):
            original = self._dense_feedback(original, lists, dense_weight, allowed, bm25_weight, memo)
            clock.lap("dense feedback")
        if mode is Mode.FUSION:
            result.fusion_ran, result.gate_reason = policy.fusion_gate(self.config, language_of(query), self.rewriter is not None,
                                                                lists, dense_weight)
            if result.fusion_ran:
                result.variants = self._variants(query, original, lists, dense_weight, memo)
                for variant in result.variants:
                    lists.update(self._lists(variant, dense_weight > 0, allowed, memo))
                clock.lap("variants")
        ranking = self._ranking(lists, [original, *result.variants], dense_weight, bm25_weight, memo)
        clock.lap("fuse")
        reranking = rerank and self.reranker is not None
        depth = max(k, self.config.rerank_depth) if reranking else k
        result.hits, result.duplicates_dropped = self._hits(ranking, lists, depth)
        clock.lap("fetch")
        if reranking and result.hits:
            result.hits = self._rerank(query, result.hits)[:k]
            for rank, hit in enumerate(result.hits, start=1):
                hit.rank = rank
            clock.lap("rerank")
        if window > 0:
            for hit in result.hits:
                hit.context = merge_chunks(self.index.store.neighbours(hit.chunk, window))
            clock.lap("context")
        result.timings = clock.total()
        return result

    def _hits(self, ranking: Ranking, lists: dict[str, Ranking], k: int) -> tuple[list[Hit], int]:
        list_scores = {key: dict(ranked) for key, ranked in lists.items()}
        wanted = ranking[: max(k * 3, k + 10)] if self.config.dedup else ranking[:k]
        chunks = {c.id: c for c in self.index.chunks([i for i, _ in wanted])}
        hits: list[Hit] = []
        kept_tokens: list[set[str]] = []
        seen_text: set[str] = set()
        dropped = 0
        for chunk_id, score in wanted:
            chunk = chunks.get(chunk_id)
            if chunk is None:
                continue
            if self.config.dedup:
                tokens = set(chunk.tokens)
                if chunk.text_sha in seen_text or any(_jaccard(tokens, other) >= self.config.dedup_jaccard for other in kept_tokens):
                    dropped += 1
                    continue
                seen_text.add(chunk.text_sha)
                kept_tokens.append(tokens)
            found = {key: scores[chunk_id] for key, scores in list_scores.items() if chunk_id in scores}
            hits.append(Hit(len(hits) + 1, chunk, score, list(found), found))
            if len(hits) == k:
                break
        return hits, dropped

    def _rerank(self, query: str, candidates: list[Hit]) -> list[Hit]:
        """The candidates re-scored by the cross-encoder, best first (the fused score kept in ``scores``)."""
        assert self.reranker is not None
        for hit, score in zip(candidates, self.reranker.scores(query, [h.text for h in candidates]), strict=True):
            hit.scores["fused"] = hit.score
            hit.scores["rerank"] = score
            hit.score = score
        return sorted(candidates, key=lambda h: -h.score)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def merge_chunks(chunks: list[ChunkRow]) -> str:
    """Neighbouring chunks of one file as one text, overlaps removed, page breaks as blank lines."""
    parts: list[str] = []
    previous: ChunkRow | None = None
    for chunk in chunks:
        if previous is not None and chunk.page == previous.page and chunk.start < previous.end:
            parts.append(chunk.text[previous.end - chunk.start :])
        elif previous is not None:
            parts.append(" " if chunk.page == previous.page else "\n\n")
            parts.append(chunk.text)
        else:
            parts.append(chunk.text)
        previous = chunk
    return "".join(parts)
