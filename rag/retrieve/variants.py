"""Query variants for RAG-Fusion, made from the query and the corpus itself (or by an LLM when one is set).

- ``keywords``: jieba TF-IDF keywords for Chinese, the query's content words for English.
- ``feedback``: pseudo-relevance feedback from the first pass's top passages: RM3 term expansion for
  BM25 and Rocchio (query vector moved toward the feedback vectors) for dense retrieval.
- ``rewrite-N``: rewrites written by an LLM, when a rewriter is given.

Example:
    >>> expanded = rm3_expansion({"solar": 1.0}, [(["solar", "panel", "panel"], 2.0)], terms=2, original_weight=0.5)
    >>> {term: round(float(weight), 4) for term, weight in expanded.items()}
    {'solar': 0.6667, 'panel': 0.3333}
"""
from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rag.text import BM25Tokenizer, language_of

Rewriter = Callable[[str, int], list[str]]
"""``rewriter(query, n)`` returns up to ``n`` alternative phrasings (e.g. written by an LLM)."""


@dataclass(frozen=True)
class QueryVariant:
    """One query to run: a name for provenance, BM25 term weights, and text or a vector for dense search."""

    name: str
    text: str
    bm25_weights: dict[str, float] = field(default_factory=dict)
    vector: np.ndarray | None = None


def term_weights(tokens: Sequence[str]) -> dict[str, float]:
    """Token counts as weights (a repeated token counts more)."""
    return dict(Counter(tokens))


def rm3_expansion(query_weights: dict[str, float], feedback: Sequence[tuple[Sequence[str], float]],
                  terms: int = 30, original_weight: float = 0.3) -> dict[str, float]:
    """RM3: mix the (normalised) query with the top ``terms`` of a relevance model of the feedback passages.

    Each feedback passage ``(tokens, score)`` votes with its term frequencies, weighted by the softmax of
    the scores; the result is ``original_weight * query + (1 - original_weight) * expansion``.
    """
    if not feedback or not query_weights:
        return dict(query_weights)
    scores = np.array([score for _, score in feedback], dtype=np.float64)
    doc_weights = np.exp(scores - scores.max())
    doc_weights /= doc_weights.sum()
    relevance: Counter[str] = Counter()
    for weight, (tokens, _) in zip(doc_weights, feedback, strict=True):
        if tokens:
            for token, count in Counter(tokens).items():
                relevance[token] += weight * count / len(tokens)
    expansion = dict(relevance.most_common(terms))
    total_expansion = sum(expansion.values()) or 1.0
    total_query = sum(query_weights.values())
    mixed: defaultdict[str, float] = defaultdict(float, {t: original_weight * w / total_query for t, w in query_weights.items()})
    for token, weight in expansion.items():
        mixed[token] += (1 - original_weight) * weight / total_expansion
    return dict(mixed)


def rocchio(query_vector: np.ndarray, feedback_vectors: np.ndarray, original_weight: float = 0.6) -> np.ndarray:
    """The query vector moved toward the mean of the feedback vectors, re-normalised."""
    if not len(feedback_vectors):
        return query_vector
    moved = original_weight * query_vector + (1 - original_weight) * feedback_vectors.mean(axis=0)
    return (moved / np.linalg.norm(moved)).astype(np.float32)


class KeywordExtractor:
    """Keywords of a query: jieba TF-IDF for Chinese, content words (stopwords removed) for English.

    Example:
        >>> KeywordExtractor(BM25Tokenizer()).keywords("What is the warranty of the Lumen lantern?")
        'warranty lumen lantern'
    """

    def __init__(self, tokenizer: BM25Tokenizer, top_k: int = 8) -> None:
        import jieba.analyse

        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._tfidf = jieba.analyse.TFIDF()
        self.tokenizer = tokenizer
        self._top_k = top_k

    def keywords(self, query: str) -> str:
        if language_of(query) == "zh":
            return " ".join(self._tfidf.extract_tags(query, topK=self._top_k))
        return " ".join(dict.fromkeys(self.tokenizer.content_words(query)))
