"""Extractive answers on CMRC2018: how often the answer, and a cited passage, contain the gold answer.

    PYTHONPATH=. .venv/bin/python bench/cmrc_answers.py [N=500]

Indexes the CMRC2018 corpus through the evaluation cache, answers the first N questions with the
default pipeline (fusion retrieval, extractive backend, abstention on) and prints the rates.
"""
from __future__ import annotations

import json
import statistics
import sys
import unicodedata
from pathlib import Path

from eval.beir import load_beir
from eval.corpus_index import build_index, evaluation_settings
from rag.config import Settings
from rag.generate.extractive import ExtractiveGenerator
from rag.pipeline import AnswerPipeline
from rag.retrieve import Retriever

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"


def normal(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def main(limit: int) -> None:
    settings = evaluation_settings(Settings.resolve())
    dataset = load_beir(SHARED / "cmrc2018")
    index_dir, _ = build_index(dataset, settings)
    retriever = Retriever.open(index_dir, settings)
    pipeline = AnswerPipeline(retriever, ExtractiveGenerator(retriever.embedder, retriever.tokenizer,
                                                             dense_weight=retriever.dense_weight_for))
    in_answer = in_cited = refused = 0
    latencies = []
    questions = dataset.queries[:limit]
    for query in questions:
        golds = [normal(a) for a in query.metadata.get("answers", []) if a.strip()]
        answer = pipeline.answer(query.text)
        latencies.append(answer.ms)
        refused += answer.refused
        cited = {c.n for c in answer.citations}
        cited_text = normal(" ".join(p.text for p in answer.passages if p.n in cited))
        in_answer += any(g in normal(answer.text) for g in golds)
        in_cited += any(g in cited_text for g in golds)
    n = len(questions)
    print(json.dumps({"dataset": "cmrc2018", "questions": n, "answer_contains_gold": round(in_answer / n, 3),
                      "cited_passage_contains_gold": round(in_cited / n, 3), "refused": round(refused / n, 3),
                      "p50_ms": round(statistics.median(latencies), 1)}, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
