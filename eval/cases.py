"""Evaluating retrieval on a user's own index with JSONL cases ``{question, answer?, source?, page?}``.

A hit is relevant when it comes from the case's ``source`` file (and ``page``, when given). Cases
come from ``rag eval --synthetic``, from thumbs-up feedback, or are written by hand.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.beir import Dataset, DatasetError, Query
from eval.runner import QueryRun, summarise
from rag.config import Settings
from rag.jsonl import read_jsonl
from rag.retrieve import Mode, Retriever


def load_cases(path: Path) -> Dataset:
    queries, qrels = [], {}
    expected = "needs a JSON object with question and source"
    for number, case in read_jsonl(path, DatasetError, expected):
        try:
            question, source = case["question"], str(Path(case["source"]).expanduser().resolve())
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}:{number}: {expected} ({exc})") from exc
        unit = f"{source}#{case['page']}" if case.get("page") else source
        answers = [case["answer"]] if case.get("answer") else []
        queries.append(Query(str(number), question, {"answers": answers, "by_page": bool(case.get("page"))}))
        qrels[str(number)] = {unit: 1}
    if not queries:
        raise DatasetError(f"{path}: no cases; write one JSON object per line with question and source (and page)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return Dataset(path.stem, {}, queries, qrels, digest)


def evaluate_cases(path: Path, settings: Settings, modes: Sequence[Mode], k: int = 10) -> dict[str, Any]:
    dataset = load_cases(path)
    retriever = Retriever.open(settings.index_dir, settings, dedup=False)
    runs: dict[str, list[QueryRun]] = {m.value: [] for m in modes}
    for query in dataset.queries:
        for mode in modes:
            result = retriever.search(query.text, mode=mode, k=300)
            units = [f"{h.source}#{h.page}" if query.metadata["by_page"] else h.source for h in result.hits]
            runs[mode.value].append(QueryRun(query.id, list(dict.fromkeys(units))[:100], result.ms, result.fusion_ran))
    return {"dataset": dataset.name, "n_queries": len(dataset.queries), "k": k, "dataset_hash": dataset.fingerprint,
            "modes": {name: summarise(r, dataset, k) for name, r in runs.items()},
            "settings": {"index": str(settings.index_dir), "embedder": retriever.index.embedder}}
