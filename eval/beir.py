"""Datasets in the BEIR layout: corpus.jsonl, queries.jsonl and qrels/{split}.tsv (graded relevance).

Example:
    >>> dataset = load_beir(Path("beir"))  # beir/corpus.jsonl, beir/queries.jsonl, beir/qrels/test.tsv
    >>> len(dataset.queries), dataset.qrels["q1"]
    (4, {'lumen-l2-guide.pdf': 1})
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag.jsonl import read_jsonl


class DatasetError(ValueError):
    """A dataset folder that cannot be read; the message names the file and the reason."""


@dataclass
class Query:
    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Dataset:
    """A corpus (id -> (title, text)), queries with at least one judgement, and graded qrels."""

    name: str
    corpus: dict[str, tuple[str, str]]
    queries: list[Query]
    qrels: dict[str, dict[str, int]]
    fingerprint: str


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path, DatasetError)]


def load_qrels(path: Path) -> dict[str, dict[str, int]]:
    """``query id -> {doc id: grade}``; a header line (query-id ...) is skipped, grade 0 is kept."""
    qrels: dict[str, dict[str, int]] = {}
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.reader(fh, delimiter="\t"):
                if not row or row[0] in ("query-id", "query_id", "qid"):
                    continue
                if len(row) < 3:
                    raise DatasetError(f"{path}: line {row!r} has fewer than 3 columns")
                qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
    return qrels


def load_beir(folder: Path, split: str = "test") -> Dataset:
    """Load a BEIR folder; only queries that have judgements in ``split`` are kept."""
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such dataset folder")
    corpus_path = folder / "corpus.jsonl"
    corpus = {str(d["_id"]): (d.get("title") or "", d.get("text") or "") for d in _read_jsonl(corpus_path)}
    qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
    queries = [Query(str(q["_id"]), q["text"], q.get("metadata") or {}) for q in _read_jsonl(folder / "queries.jsonl")
               if str(q["_id"]) in qrels]
    digest = hashlib.sha256()
    for name in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        digest.update((folder / name).read_bytes())
    return Dataset(folder.name, corpus, queries, qrels, digest.hexdigest()[:16])
