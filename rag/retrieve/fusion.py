"""Fusing ranked lists: weighted reciprocal rank fusion and normalised score fusion.

A ranking is a list of ``(id, score)`` pairs, best first.

Example:
    >>> reciprocal_rank_fusion([[(1, 9.0), (2, 8.0)], [(2, 0.9), (3, 0.1)]], k=60)[0][0]
    2
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from enum import StrEnum

import numpy as np

Ranking = list[tuple[int, float]]


class FusionMethod(StrEnum):
    """How several rankings become one."""

    RRF = "rrf"
    """Weighted reciprocal rank fusion: sum of ``w / (k + rank)``; ignores score scales."""
    MINMAX = "minmax"
    """Scores scaled to [0, 1] per list (min to max), then a weighted sum."""
    DBSF = "dbsf"
    """Distribution-based score fusion: scores scaled by mean ± 3 standard deviations, then a weighted sum."""


def _weights(rankings: Sequence[Ranking], weights: Sequence[float] | None) -> Sequence[float]:
    if weights is None:
        return [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError(f"{len(weights)} weights for {len(rankings)} rankings")
    return weights


def _sorted(totals: dict[int, float]) -> Ranking:
    return sorted(totals.items(), key=lambda item: (-item[1], item[0]))


def reciprocal_rank_fusion(rankings: Sequence[Ranking], weights: Sequence[float] | None = None, k: float = 60) -> Ranking:
    """``score(d) = sum_i w_i / (k + rank_i(d))`` with 1-based ranks; ties broken by smaller id."""
    totals: dict[int, float] = defaultdict(float)
    for ranking, weight in zip(rankings, _weights(rankings, weights), strict=True):
        for rank, (item, _) in enumerate(ranking, start=1):
            totals[item] += weight / (k + rank)
    return _sorted(totals)


def normalise_scores(ranking: Ranking, method: FusionMethod) -> Ranking:
    """Scores mapped onto a common scale; a list whose scores are all equal maps to 1.0."""
    if not ranking:
        return []
    scores = np.array([score for _, score in ranking], dtype=np.float64)
    if method is FusionMethod.MINMAX:
        low, high = scores.min(), scores.max()
    elif method is FusionMethod.DBSF:
        mean, std = scores.mean(), scores.std()
        low, high = mean - 3 * std, mean + 3 * std
    else:
        raise ValueError(f"{method} is not a score normalisation")
    if high - low <= 1e-12:
        return [(item, 1.0) for item, _ in ranking]
    scaled = (scores - low) / (high - low)
    return [(item, float(s)) for (item, _), s in zip(ranking, scaled, strict=True)]


def score_fusion(rankings: Sequence[Ranking], weights: Sequence[float] | None = None,
                 method: FusionMethod = FusionMethod.MINMAX) -> Ranking:
    """Weighted sum of normalised scores; an item missing from a list gets 0 from it."""
    totals: dict[int, float] = defaultdict(float)
    for ranking, weight in zip(rankings, _weights(rankings, weights), strict=True):
        for item, score in normalise_scores(ranking, method):
            totals[item] += weight * score
    return _sorted(totals)


def fuse(rankings: Sequence[Ranking], weights: Sequence[float] | None = None,
         method: FusionMethod = FusionMethod.RRF, rrf_k: float = 60) -> Ranking:
    """Dispatch to :func:`reciprocal_rank_fusion` or :func:`score_fusion`; lists with weight 0 are ignored."""
    pairs = [(r, w) for r, w in zip(rankings, _weights(rankings, weights), strict=True) if w > 0 and r]
    if not pairs:
        return []
    kept, kept_weights = [r for r, _ in pairs], [w for _, w in pairs]
    if method is FusionMethod.RRF:
        return reciprocal_rank_fusion(kept, kept_weights, k=rrf_k)
    return score_fusion(kept, kept_weights, method)
