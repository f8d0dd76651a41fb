"""Paired significance between two modes' per-query scores, and per-query wins and losses.

Example:
    >>> paired_randomization([0.5, 0.7, 0.9], [0.4, 0.6, 0.9], trials=1000, seed=0) > 0.05
    True
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def paired_randomization(a: Sequence[float], b: Sequence[float], trials: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value of the mean difference under random sign flips of each query's difference."""
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if not len(diffs) or not diffs.any():
        return 1.0
    observed = abs(diffs.mean())
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(trials, len(diffs)))
    return float(((np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12).sum() + 1) / (trials + 1))


def wins_losses(a: Sequence[float], b: Sequence[float], tolerance: float = 1e-9) -> dict[str, int]:
    diffs = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return {"wins": int((diffs > tolerance).sum()), "losses": int((diffs < -tolerance).sum()),
            "ties": int((np.abs(diffs) <= tolerance).sum())}
