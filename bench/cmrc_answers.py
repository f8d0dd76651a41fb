"""Extractive answers on CMRC2018: how often the answer, its first sentence, and a cited passage contain
the gold answer, and how long answers are.

    PYTHONPATH=. .venv/bin/python bench/cmrc_answers.py [--split held-out] [-n 500]
    PYTHONPATH=. .venv/bin/python bench/cmrc_answers.py --split dev -n 400 --grid   # tune the sentence picker

Indexes the CMRC2018 corpus through the evaluation cache and answers questions with the default
pipeline (fusion retrieval, extractive backend, abstention on). ``--split`` takes the fixed halves of
bench/harness.py (or ``all``), of which ``-n`` questions are drawn at random with a fixed seed (the
questions are ordered by passage, so the first ones would stand for a few passages only). ``--grid``
answers the same questions with several sentence-picker settings (semantic weight, cut-off, sentence
count, rank discount, local idf) against one retrieval pass, the previous behaviour included, and prints one line each.
"""
from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import SHARED, CachedEmbedder, splits  # noqa: E402

from eval.beir import load_beir  # noqa: E402
from eval.corpus_index import build_index, evaluation_settings  # noqa: E402
from rag.config import Settings  # noqa: E402
from rag.generate.base import GenerationRequest  # noqa: E402
from rag.generate.extractive import ExtractiveGenerator  # noqa: E402
from rag.generate.prompt import Passage, split_header  # noqa: E402
from rag.pipeline import AnswerPipeline  # noqa: E402
from rag.retrieve import Retriever  # noqa: E402

_MARKER = re.compile(r"\[\d+\]")
SAMPLE_SEED = 2026


def normal(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def rates(generator: ExtractiveGenerator, cases: list[tuple[list[str], str, list[Passage], bool]]) -> dict[str, float]:
    """Whole answer / first sentence / cited passages containing gold, refusals and mean length."""
    whole = first = cited = refused = 0
    lengths = []
    for golds, question, passages, answerable in cases:
        if not answerable:
            refused += 1
            continue
        text = "".join(generator.stream(GenerationRequest(question, passages)))
        body = split_header(text)[1]
        sentences = [s for s in _MARKER.split(body) if s.strip()]
        lengths.append(len(_MARKER.sub("", body).strip()))
        cited_n = {int(n) for n in re.findall(r"\[(\d+)\]", body)}
        whole += any(g in normal(body) for g in golds)
        first += bool(sentences) and any(g in normal(sentences[0]) for g in golds)
        cited += any(g in normal(" ".join(p.text for p in passages if p.n in cited_n)) for g in golds)
    n = len(cases)
    return {"answer_contains_gold": round(whole / n, 3), "first_sentence_contains_gold": round(first / n, 3),
            "cited_passage_contains_gold": round(cited / n, 3), "refused": round(refused / n, 3),
            "mean_answer_chars": round(statistics.mean(lengths), 1) if lengths else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "held-out", "all"], default="held-out")
    parser.add_argument("-n", type=int, default=500, help="questions drawn from the split (seeded)")
    parser.add_argument("--grid", action="store_true", help="compare sentence-picker settings")
    args = parser.parse_args()
    settings = evaluation_settings(Settings.resolve())
    dataset = load_beir(SHARED / "cmrc2018")
    index_dir, _ = build_index(dataset, settings)
    dev, held_out = splits(dataset, SHARED / "cmrc2018")
    pool = {"dev": dev, "held-out": held_out, "all": dataset}[args.split].queries
    questions = random.Random(SAMPLE_SEED).sample(pool, min(args.n, len(pool)))
    retriever = Retriever.open(index_dir, settings)
    retriever.embedder = CachedEmbedder(retriever.embedder)
    default = ExtractiveGenerator(retriever.embedder, retriever.tokenizer, dense_weight=retriever.dense_weight_for)
    pipeline = AnswerPipeline(retriever, default)
    cases, latencies = [], []
    for query in questions:
        started = time.perf_counter()
        retrieval = retriever.search(query.text, mode=pipeline.mode, k=pipeline.k)
        answerable = pipeline.evidence(query.text, retrieval) >= pipeline.abstention.min_evidence
        passages = [Passage(h.rank, h.source, h.page, h.text, h.chunk.id) for h in retrieval.hits]
        if answerable:
            "".join(default.stream(GenerationRequest(query.text, passages)))
        latencies.append((time.perf_counter() - started) * 1000)
        golds = [normal(a) for a in query.metadata.get("answers", []) if a.strip()]
        cases.append((golds, query.text, passages, answerable))
    head = {"dataset": "cmrc2018", "split": args.split, "questions": len(cases), "embedder": retriever.embedder.name}
    print(json.dumps({**head, "settings": "default", **rates(default, cases),
                      "p50_ms": round(statistics.median(latencies), 1)}), flush=True)
    if args.grid:
        grid = itertools.product([0.0, 0.5, 1.0, 2.0], [0.4, 0.6], [4, 5], [0.0, 0.1], [False, True])
        for weight, cutoff, sentences, discount, local_idf in grid:
            generator = ExtractiveGenerator(retriever.embedder, retriever.tokenizer, max_sentences=sentences,
                                            dense_weight=retriever.dense_weight_for, semantic_weight=weight,
                                            cutoff=cutoff, rank_discount=discount, local_idf=local_idf)
            print(json.dumps({**head, "semantic_weight": weight, "cutoff": cutoff, "max_sentences": sentences,
                              "rank_discount": discount, "local_idf": local_idf, **rates(generator, cases)}), flush=True)


if __name__ == "__main__":
    main()
