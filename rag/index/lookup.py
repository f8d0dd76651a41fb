"""Finding values in a sorted array: chunk ids in a segment, postings of a term, chunks' languages."""
from __future__ import annotations

import numpy as np


def find_sorted(sorted_values: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(slot, found)``: where each wanted value sits in ``sorted_values`` (binary search; a valid index
    even for a value that is absent, whenever ``sorted_values`` is not empty) and whether it is there.

    Example:
        >>> slot, found = find_sorted(np.array([3, 7, 9]), np.array([7, 8, 10]))
        >>> slot.tolist(), found.tolist()
        ([1, 2, 2], [True, False, False])
    """
    if not len(sorted_values):
        return np.zeros(len(wanted), np.int64), np.zeros(len(wanted), bool)
    slot = np.minimum(np.searchsorted(sorted_values, wanted), len(sorted_values) - 1)
    return slot, sorted_values[slot] == wanted
