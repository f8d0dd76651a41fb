"""Calibrating the abstention threshold: evidence scores of answerable against unanswerable questions.

    PYTHONPATH=. .venv/bin/python bench/calibrate_abstention.py

Answerable: each dataset's test queries against its own corpus (SciFact, RGB-zh). Unanswerable:
off-topic questions in the same language against that corpus (FiQA and ArguAna questions against
SciFact; CMRC2018 questions against RGB-zh news). Uses the cached evaluation indexes (run
bench/retrieval_quality.py first). Prints the threshold with the best balanced accuracy.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eval.beir import load_beir
from eval.corpus_index import build_index, evaluation_settings
from rag.config import Settings
from rag.generate.extractive import ExtractiveGenerator
from rag.pipeline import AnswerPipeline
from rag.retrieve import Retriever

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"


def questions(path: Path, limit: int = 300) -> list[str]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line, _ in zip(fh, range(limit))]


def main() -> None:
    settings = evaluation_settings(Settings.resolve())
    cases = {
        "scifact": [SHARED / "beir_queries_qrels_only" / "fiqa" / "queries.jsonl",
                    SHARED / "beir_queries_qrels_only" / "arguana" / "queries.jsonl"],
        "rgb_zh": [SHARED / "cmrc2018" / "queries.jsonl"],
    }
    scores: dict[str, list[float]] = {"answerable": [], "unanswerable": []}
    for name, negatives in cases.items():
        dataset = load_beir(SHARED / name)
        index_dir, _ = build_index(dataset, settings)
        retriever = Retriever.open(index_dir, settings)
        pipeline = AnswerPipeline(retriever, ExtractiveGenerator(retriever.embedder, retriever.tokenizer))
        for text in [q.text for q in dataset.queries]:
            scores["answerable"].append(pipeline.evidence(text, retriever.search(text, mode=pipeline.mode, k=5)))
        for path in negatives:
            for text in questions(path, 300 // len(negatives)):
                scores["unanswerable"].append(pipeline.evidence(text, retriever.search(text, mode=pipeline.mode, k=5)))
    positive, negative = np.array(scores["answerable"]), np.array(scores["unanswerable"])
    best = max(np.arange(0.05, 0.95, 0.01),
               key=lambda t: ((positive >= t).mean() + (negative < t).mean()) / 2)
    print(json.dumps({
        "answerable": len(positive), "unanswerable": len(negative), "threshold": round(float(best), 2),
        "answered_when_answerable": round(float((positive >= best).mean()), 3),
        "refused_when_unanswerable": round(float((negative < best).mean()), 3),
        "median_evidence": {"answerable": round(float(np.median(positive)), 3), "unanswerable": round(float(np.median(negative)), 3)},
    }, indent=1))


if __name__ == "__main__":
    main()
