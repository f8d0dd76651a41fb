"""Running retrieval modes over a dataset and scoring them per query.

Example:
    >>> from pathlib import Path
    >>> from eval.beir import load_beir
    >>> from eval.corpus_index import build_index
    >>> from rag.config import Settings
    >>> dataset = load_beir(Path("beir"))
    >>> index_dir, id_of = build_index(dataset, Settings.resolve({}, env={}), progress=False)
    >>> runs = run_modes(Retriever.open(index_dir, Settings.resolve({}, env={}), dedup=False), dataset, id_of, [Mode.BM25, Mode.HYBRID])
    >>> summarise(runs[Mode.HYBRID], dataset, k=10)["hit_rate@10"]
    1.0
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eval.beir import Dataset
from eval.metrics import percentile, ranking_metrics
from rag.retrieve import Mode, Retriever

DOCUMENT_DEPTH = 100
"""Documents ranked per query (recall@100 needs them)."""


@dataclass
class QueryRun:
    """One query's document ranking and latency under one mode."""

    query_id: str
    ranked: list[str]
    ms: float
    fusion_ran: bool | None = None


def document_ranking(paths: Sequence[str], id_of: dict[str, str]) -> list[str]:
    """Chunk hits (their file paths, best first) to documents, each at the rank of its best chunk."""
    return list(dict.fromkeys(id_of[p] for p in paths if p in id_of))


def run_modes(retriever: Retriever, dataset: Dataset, id_of: dict[str, str], modes: Sequence[Mode],
              chunk_depth: int = 300, rerank: bool = False) -> dict[Mode, list[QueryRun]]:
    """Every query through every mode (the retriever should have near-duplicate removal off, as each
    corpus entry is judged on its own); ``rerank`` applies the retriever's cross-encoder."""
    runs: dict[Mode, list[QueryRun]] = {mode: [] for mode in modes}
    for query in dataset.queries:
        for mode in modes:
            result = retriever.search(query.text, mode=mode, k=chunk_depth, rerank=rerank)
            ranked = document_ranking([h.source for h in result.hits], id_of)[:DOCUMENT_DEPTH]
            runs[mode].append(QueryRun(query.id, ranked, result.ms, result.fusion_ran))
    return runs


def per_query_metrics(run: QueryRun, dataset: Dataset, k: int) -> dict[str, float]:
    return ranking_metrics(run.ranked, dataset.qrels[run.query_id], k)


def summarise(runs: Sequence[QueryRun], dataset: Dataset, k: int) -> dict[str, float]:
    """Mean of each metric over queries, latency percentiles, and how often the fusion gate fired."""
    rows = [per_query_metrics(run, dataset, k) for run in runs]
    summary = {name: round(sum(r[name] for r in rows) / len(rows), 4) for name in rows[0]} if rows else {}
    latencies = [run.ms for run in runs]
    summary["p50_ms"] = round(percentile(latencies, 50), 2)
    summary["p95_ms"] = round(percentile(latencies, 95), 2)
    gated = [run.fusion_ran for run in runs if run.fusion_ran is not None]
    if gated:
        summary["fusion_rate"] = round(sum(gated) / len(gated), 4)
    return summary
