"""Retrieval policy in small named parts: the settings (:class:`RetrieverConfig`, tuned per embedder),
how much each retriever and query variant counts for a query, when the dense feedback pass runs and when
RAG-Fusion's variants run. :class:`~rag.retrieve.retriever.Retriever` asks these; each is a pure
function of the settings and what the first pass found.

Example:
    >>> config = RetrieverConfig.for_embedder("multilingual-e5-small")
    >>> dense_weight(config, unknown_share=0.0), dense_weight(config, unknown_share=0.5)
    (2.0, 0.0)
    >>> fusion_gate(config, "en", has_rewriter=False, lists={}, dense=2.0)[0]
    False
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag.config import ConfigError
from rag.embed import base_model
from rag.embed.base import LANGUAGE_OFFSET_SCALE
from rag.retrieve.fusion import FusionMethod, Ranking


@dataclass(frozen=True)
class RetrieverConfig:
    """Retrieval settings. The defaults were chosen for MiniLM; :meth:`for_embedder` gives each embedder
    the settings tuned for it on dev splits (bench/tune_retrieval.py, README)."""

    depth: int = 100
    """Candidates taken from each ranked list."""
    fusion: FusionMethod = FusionMethod.DBSF
    rrf_k: float = 60
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    unknown_share_full: float = 0.1
    """The dense weight is full while at most this share of the query's tokens are [UNK] to the embedder..."""
    unknown_share_zero: float = 0.5
    """...and falls linearly to zero at this share (Chinese under an English embedder)."""
    gate: bool = True
    """Run the fusion variants only when the first pass looks unsure."""
    gate_agreement: float = 0.3
    """Unsure when dense and BM25 share less than this fraction of their top 10."""
    keywords_weight: float = 0.3
    feedback_docs: int = 10
    feedback_terms: int = 30
    feedback_original_weight: float = 0.3
    feedback_weight: float = 0.3
    """Weight of the feedback variant when the dense retriever can vote..."""
    feedback_weight_without_dense: float = 2.0
    """...and when it cannot: then feedback is BM25's only second opinion."""
    dense_feedback_docs: int = 0
    """Vector pseudo-relevance feedback in hybrid search (and RAG-Fusion's first pass): the query vector
    is moved toward the mean vector of the fused first pass's top this-many chunks and the dense search
    runs again with it; 0 turns it off."""
    dense_feedback_original_weight: float = 0.4
    """The original query vector's share of the moved one."""
    dense_feedback_languages: tuple[str, ...] = ("en", "zh")
    """Query languages (:func:`rag.text.language_of`) that get the feedback pass."""
    dense_feedback_min_chunks: int = 100
    """...in a knowledge base of at least this many chunks: in a smaller one the first pass's top chunks
    are a large part of everything (the demo documents' 8 chunks: half), not a sample of the answer's
    neighbourhood, and the moved vector drifts toward the whole collection."""
    variant_languages: tuple[str, ...] = ("en", "zh")
    """Query languages whose questions get the offline variants (keywords, feedback); LLM rewrites, when a
    rewriter is set, run for every language."""
    rewrites: int = 3
    rewrite_weight: float = 1.0
    complete_scores: bool = True
    """Score fusion gives a chunk missing from one list its real score there (its cosine, its BM25 score),
    not 0: a chunk just outside one list's top ``depth`` is not punished as if it had no match."""
    rerank_depth: int = 30
    dedup: bool = True
    dedup_jaccard: float = 0.9
    """Chunks whose BM25 token sets overlap this much (Jaccard) with a better one are dropped."""
    language_offset_scale: float = LANGUAGE_OFFSET_SCALE
    """The share of the embedder's language offset added to a chunk in another language than the query's
    (in a knowledge base of both): below 1, a passage in the question's language wins over one in the
    other language that is about as close, and the other language still wins when it is clearly closer."""
    bm25_full_match: float = 0.0
    """BM25 keeps its full weight when the question's words that occur in the knowledge base carry at least
    this share of their idf mass, and loses it in proportion below: an English question over Chinese
    documents finds few of its words there, and BM25 then ranks by stray Latin words. 0 keeps the weight."""

    def __post_init__(self) -> None:
        """Refuse settings that would fail or silently misbehave on every query, naming the setting."""
        at_least = {"depth": 1, "rrf_k": 0, "bm25_weight": 0, "dense_weight": 0, "keywords_weight": 0, "feedback_docs": 0,
                    "feedback_terms": 0, "feedback_weight": 0, "feedback_weight_without_dense": 0, "dense_feedback_docs": 0,
                    "dense_feedback_min_chunks": 0, "rewrites": 0, "rewrite_weight": 0, "rerank_depth": 1, "language_offset_scale": 0, "gate_agreement": 0}
        shares = ("unknown_share_full", "unknown_share_zero", "feedback_original_weight",
                  "dense_feedback_original_weight", "dedup_jaccard", "bm25_full_match")
        problems = [f"{name} = {getattr(self, name)!r} must be at least {low}" for name, low in at_least.items() if not getattr(self, name) >= low]
        problems += [f"{name} = {getattr(self, name)!r} must be between 0 and 1" for name in shares if not 0 <= getattr(self, name) <= 1]
        if not self.unknown_share_full < self.unknown_share_zero:
            problems.append(f"unknown_share_full = {self.unknown_share_full!r} must be below unknown_share_zero = {self.unknown_share_zero!r}")
        if problems:
            raise ConfigError(f"invalid retriever setting: {'; '.join(problems)}")

    @classmethod
    def for_embedder(cls, name: str) -> RetrieverConfig:
        """The settings tuned for this embedder, or the defaults."""
        return TUNED.get(base_model(name), cls())


TUNED = {
    "multilingual-e5-small": RetrieverConfig(dense_weight=2.0, feedback_weight=1.0, dense_feedback_docs=4,
                                             dense_feedback_original_weight=0.4, dense_feedback_languages=("zh",),
                                             variant_languages=(), bm25_full_match=0.5),
}
"""Tuned by bench/tune_retrieval.py on the dev splits (mean nDCG@10 of SciFact, RGB-zh and CMRC2018): e5
carries twice BM25's weight. Chinese questions get the dense feedback pass (dev nDCG@10 of RGB-zh and
CMRC2018 0.938 -> 0.944, p = 0.002); English ones do not (SciFact 0.744 -> 0.741, p = 0.61). On top of
that hybrid, the offline RAG-Fusion variants raised no language's dev sets significantly (SciFact
+0.004, p = 0.21; Chinese -0.001), so without an LLM to write rewrites, fusion is the hybrid. BM25's weight
falls when under 80% of a question's idf mass occurs in the knowledge base (bench/tune_cross_language.py:
English questions over RGB-zh and CMRC2018, mean dev nDCG@10 0.415 -> 0.421; the same-language dev sets
do not move)."""


def dense_weight(config: RetrieverConfig, unknown_share: float) -> float:
    """The dense retriever's weight for a query of which ``unknown_share`` is [UNK] to the embedder: full up
    to :attr:`~RetrieverConfig.unknown_share_full`, falling linearly to 0 at ``unknown_share_zero``."""
    scale = (config.unknown_share_zero - unknown_share) / (config.unknown_share_zero - config.unknown_share_full)
    return config.dense_weight * float(np.clip(scale, 0.0, 1.0))


def bm25_weight(config: RetrieverConfig, matched_share: float) -> float:
    """BM25's weight for a query whose words found in the knowledge base carry ``matched_share`` of its idf
    mass (see :attr:`RetrieverConfig.bm25_full_match`)."""
    if config.bm25_full_match <= 0:
        return config.bm25_weight
    return config.bm25_weight * min(1.0, matched_share / config.bm25_full_match)


def variant_weight(config: RetrieverConfig, name: str, dense: float) -> float:
    """A query variant's weight in the fusion; the feedback variant counts more as the dense weight falls."""
    if name == "keywords":
        return config.keywords_weight
    if name == "feedback":
        missing = 1 - dense / config.dense_weight if config.dense_weight else 1.0
        return config.feedback_weight + (config.feedback_weight_without_dense - config.feedback_weight) * missing
    if name.startswith("rewrite-"):
        return config.rewrite_weight
    return 1.0


def wants_dense_feedback(config: RetrieverConfig, language: str, lists: dict[str, Ranking], dense: float, chunks: int) -> bool:
    """Whether the dense feedback pass runs: turned on, for this query language, with both first-pass lists,
    in a knowledge base of at least :attr:`~RetrieverConfig.dense_feedback_min_chunks` chunks."""
    return (config.dense_feedback_docs > 0 and dense > 0 and "original/bm25" in lists and bool(lists.get("original/dense"))
            and language in config.dense_feedback_languages and chunks >= config.dense_feedback_min_chunks)


def fusion_gate(config: RetrieverConfig, language: str, has_rewriter: bool, lists: dict[str, Ranking],
                dense: float) -> tuple[bool, str]:
    """Whether RAG-Fusion's variants run for this query, and why: when the first pass looks unsure (dense
    and BM25 disagree, BM25 found nothing, the embedder cannot represent the query)."""
    if not has_rewriter and language not in config.variant_languages:
        return False, f"no LLM for rewrites, and the offline variants did not help {language} questions (dev splits)"
    if not config.gate:
        return True, "gating off"
    if dense < config.dense_weight:
        return True, "the embedder cannot fully represent the query"
    bm25 = {i for i, _ in lists["original/bm25"][:10]}
    found_dense = {i for i, _ in lists.get("original/dense", [])[:10]}
    agreement = len(bm25 & found_dense) / 10
    if not bm25:
        return True, "BM25 found nothing"
    if agreement < config.gate_agreement:
        return True, f"dense and BM25 agree on {agreement:.0%} of their top 10"
    return False, f"dense and BM25 agree on {agreement:.0%} of their top 10"
