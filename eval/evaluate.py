"""One evaluation run over a BEIR dataset: every mode side by side, significance, answers, report data.

Example:
    >>> report = evaluate(Path("beir"), Settings.resolve({}, env={}), [Mode.BM25, Mode.HYBRID], k=10, progress=False)
    >>> report["modes"]["hybrid"]["recall@10"], sorted(report["modes"])
    (1.0, ['bm25', 'hybrid'])
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from eval.beir import Dataset, load_beir
from eval.corpus_index import build_index, evaluation_settings
from eval.metrics import contains_answer, recall_at_k, token_f1
from eval.report import package_versions, published_baselines
from eval.runner import QueryRun, per_query_metrics, run_modes, summarise
from eval.significance import paired_randomization, wins_losses
from rag.config import Settings
from rag.generate.extractive import ExtractiveGenerator
from rag.pipeline import AnswerPipeline
from rag.retrieve import Mode, Retriever

CURVE_KS = (1, 3, 5, 10, 20, 50, 100)


def evaluate(folder: Path, settings: Settings, modes: Sequence[Mode], k: int = 10, answer_sample: int = 200,
             progress: bool | None = None) -> dict[str, Any]:
    dataset = load_beir(folder)
    eval_settings = evaluation_settings(settings)
    index_dir, id_of = build_index(dataset, eval_settings, progress=progress)
    retriever = Retriever.open(index_dir, eval_settings, dedup=False)
    retriever.search("load the models and dictionaries before timing", mode=Mode.FUSION)
    runs: dict[str, list[QueryRun]] = {m.value: r for m, r in run_modes(retriever, dataset, id_of, modes).items()}
    if retriever.reranker is not None:
        runs.update({f"{m.value}+rerank": r for m, r in run_modes(retriever, dataset, id_of, modes, rerank=True).items()})
    report: dict[str, Any] = {
        "dataset": dataset.name, "n_queries": len(dataset.queries), "k": k, "dataset_hash": dataset.fingerprint,
        "modes": {name: summarise(r, dataset, k) for name, r in runs.items()},
        "recall_curves": {name: {str(c): round(sum(recall_at_k(q.ranked, dataset.qrels[q.query_id], c) for q in r) / len(r), 4)
                                 for c in CURVE_KS} for name, r in runs.items()},
        "latencies": {name: [round(q.ms, 2) for q in r] for name, r in runs.items()},
        "settings": {"index": str(index_dir), "embedder": retriever.index.embedder,
                     "chunk_size": eval_settings.chunk_size, "chunk_overlap": eval_settings.chunk_overlap,
                     "retriever": {key: (v.value if hasattr(v, "value") else v) for key, v in asdict(retriever.config).items()},
                     "reranker": eval_settings.reranker, "index_counts": retriever.index.manifest.get("counts")},
        "packages": package_versions(),
        "published": published_baselines(dataset.name, folder.parent / "published_baselines.tsv"),
    }
    report["significance_baseline"], report["significance"] = _significance(runs, dataset, k)
    report["per_query"] = {name: {q.query_id: round(per_query_metrics(q, dataset, k)[f"ndcg@{k}"], 4) for q in r}
                           for name, r in runs.items()}
    if answer_sample and any(q.metadata.get("answers") for q in dataset.queries):
        report["answers"] = _answers(retriever, dataset, answer_sample)
    return report


def _significance(runs: dict[str, list[QueryRun]], dataset: Dataset, k: int) -> tuple[str, dict[str, Any]]:
    """Each mode against the first (bm25 when run): paired randomization on per-query nDCG@k."""
    baseline = next(iter(runs))
    scores = {name: [per_query_metrics(q, dataset, k)[f"ndcg@{k}"] for q in r] for name, r in runs.items()}
    table = {}
    for name, values in scores.items():
        if name == baseline:
            continue
        diff = sum(values) / len(values) - sum(scores[baseline]) / len(values)
        table[name] = {"mean_difference": round(diff, 4), "p_value": round(paired_randomization(values, scores[baseline]), 4),
                       **wins_losses(values, scores[baseline])}
    return baseline, table


def gold_answers(metadata: dict[str, Any]) -> list[str]:
    """Gold answers as strings; nested lists (alternatives for one answer) are flattened."""
    pending, golds = list(metadata.get("answers") or []), []
    while pending:
        item = pending.pop(0)
        if isinstance(item, list):
            pending[:0] = item
        elif str(item).strip():
            golds.append(str(item))
    return golds


def _answers(retriever: Retriever, dataset: Dataset, sample: int) -> dict[str, Any]:
    """The extractive backend on a fixed sample of questions that carry gold answers."""
    questions = [q for q in dataset.queries if gold_answers(q.metadata)]
    chosen = random.Random(0).sample(questions, min(sample, len(questions)))
    pipeline = AnswerPipeline(retriever, ExtractiveGenerator(retriever.embedder, retriever.tokenizer,
                                                             dense_weight=retriever.dense_weight_for))
    totals = {"answer_contains_gold": 0.0, "token_f1": 0.0, "citation_precision": 0.0, "refused": 0.0}
    for query in chosen:
        golds = gold_answers(query.metadata)
        answer = pipeline.answer(query.text)
        cited = [p for p in answer.passages if p.chunk_id in {c.chunk_id for c in answer.citations}]
        totals["answer_contains_gold"] += contains_answer(answer.text, golds)
        totals["token_f1"] += token_f1(answer.text, golds)
        totals["citation_precision"] += sum(contains_answer(p.text, golds) for p in cited) / len(cited) if cited else 0.0
        totals["refused"] += answer.refused
    return {"backend": "extractive", "questions": len(chosen),
            "metrics": {key: round(value / len(chosen), 4) for key, value in totals.items()}}
