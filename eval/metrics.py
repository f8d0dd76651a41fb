"""Ranking metrics with their standard definitions (graded relevance, log2 discount).

``ranked`` is a list of document ids, best first; ``relevant`` maps document id to grade (> 0 relevant).

Example:
    >>> ndcg_at_k(["a", "b"], {"b": 1}, 10)
    0.6309297535714575
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def dcg(grades: Sequence[float]) -> float:
    return sum((2 ** g - 1) / math.log2(i + 2) for i, g in enumerate(grades))


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    ideal = dcg(sorted((g for g in relevant.values() if g > 0), reverse=True)[:k])
    return dcg([relevant.get(d, 0) for d in ranked[:k]]) / ideal if ideal else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted.intersection(ranked[:k])) / len(wanted) if wanted else 0.0


def precision_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return sum(1 for d in ranked[:k] if relevant.get(d, 0) > 0) / k


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def hit_rate_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return 1.0 if any(relevant.get(d, 0) > 0 for d in ranked[:k]) else 0.0


def average_precision(ranked: Sequence[str], relevant: Mapping[str, int]) -> float:
    wanted = sum(1 for g in relevant.values() if g > 0)
    found, total = 0, 0.0
    for rank, doc in enumerate(ranked, start=1):
        if relevant.get(doc, 0) > 0:
            found += 1
            total += found / rank
    return total / wanted if wanted else 0.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _normal(text: str) -> str:
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def contains_answer(text: str, golds: Sequence[str]) -> float:
    """1.0 when the text contains any gold answer (case, width and spacing ignored)."""
    normal = _normal(text)
    return 1.0 if any(_normal(g) and _normal(g) in normal for g in golds) else 0.0


def _units(text: str) -> list[str]:
    """Characters for Chinese, words for other text (the usual token-F1 units)."""
    from rag.text import language_of

    normal = _normal(text) if language_of(text) == "zh" else ""
    return list(normal) if normal else text.lower().split()


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best F1 over the gold answers of the prediction's tokens (characters for Chinese)."""
    from collections import Counter

    best = 0.0
    predicted = Counter(_units(prediction))
    for gold in golds:
        wanted = Counter(_units(gold))
        common = sum((predicted & wanted).values())
        if common:
            precision, recall = common / sum(predicted.values()), common / sum(wanted.values())
            best = max(best, 2 * precision * recall / (precision + recall))
    return best
