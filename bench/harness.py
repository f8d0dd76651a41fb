"""What the benchmarks share: fixed dev / held-out splits, so defaults are tuned on one and reported on the
other, and an embedder that embeds each distinct text once.

- SciFact: dev = its train queries (queries_all.jsonl, qrels/train.tsv, 809 queries); held-out = the 300
  test queries.
- RGB-zh and CMRC2018 have one judged split, cut in two by query id: a query is dev when the first byte
  of sha256("rag-split-2026:" + query id) is below 128, held-out otherwise. The seed string never changes.

Example:
    >>> dev, held_out = splits(load_beir(SHARED / "rgb_zh"), SHARED / "rgb_zh")
    >>> len(dev.queries) + len(held_out.queries)
    300
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from eval.beir import Dataset, Query, load_qrels
from rag.embed import Embedder, Role

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
SEED = "rag-split-2026:"


def is_dev(query_id: str) -> bool:
    return hashlib.sha256((SEED + query_id).encode()).digest()[0] < 128


def splits(dataset: Dataset, folder: Path) -> tuple[Dataset, Dataset]:
    """``(dev, held-out)`` versions of a test-split dataset (same corpus, so the same cached index)."""
    if (folder / "qrels" / "train.tsv").exists() and (folder / "queries_all.jsonl").exists():
        qrels = load_qrels(folder / "qrels" / "train.tsv")
        with (folder / "queries_all.jsonl").open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        queries = [Query(str(r["_id"]), r["text"], r.get("metadata") or {}) for r in rows if str(r["_id"]) in qrels]
        return replace(dataset, queries=queries, qrels=qrels), dataset
    dev = [q for q in dataset.queries if is_dev(q.id)]
    held_out = [q for q in dataset.queries if not is_dev(q.id)]
    return replace(dataset, queries=dev), replace(dataset, queries=held_out)


class CachedEmbedder(Embedder):
    """Wraps an embedder so every distinct text is embedded once across a whole grid of settings."""

    def __init__(self, inner: Embedder) -> None:
        self.inner, self.name, self.batch_size = inner, inner.name, inner.batch_size
        self._vectors: dict[tuple[str, Role], np.ndarray] = {}
        self._counts: dict[str, tuple[int, int]] = {}

    def encode(self, texts: Sequence[str], role: Role) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if (t, role) not in self._vectors]
        if missing:
            self._vectors.update({(t, role): v for t, v in zip(missing, self.inner.encode(missing, role), strict=True)})
        return np.vstack([self._vectors[(t, role)] for t in texts])

    def unknown_token_counts(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        missing = [t for t in texts if t not in self._counts]
        self._counts.update(zip(missing, self.inner.unknown_token_counts(missing), strict=True))
        return [self._counts[t] for t in texts]

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()
