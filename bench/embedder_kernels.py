"""The e5 embedder's kernels side by side: passages per second and held-out nDCG@10 against float32.

    PYTHONPATH=. .venv/bin/python bench/embedder_kernels.py [--passages 512] [--out FILE]

Speed: the same real passages (cycled from ../shared/eval, both languages) embedded by each kernel
(float32, bfloat16, int8) in this process, alternating, best of three; and the median time each takes
to embed one question (100 questions, one at a time). Quality: dense and hybrid nDCG@10
on the held-out queries of RGB-zh, SciFact and CMRC2018 (bench.harness.splits) for float32 and for each
kernel at least :data:`MIN_SPEEDUP` times as fast, each with its own index of the corpus built by the
real ingest (cached under ~/.cache/rag/eval; a first run embeds the three corpora once per kernel). A
kernel qualifies as the default when it is that fast and loses at most :data:`MAX_NDCG_LOSS` of
nDCG@10 on each set (issue 26); ``"default"`` names what :func:`rag.embed.default_embedder` picks here.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.harness import splits
from bench.hybrid_latency import queries, windows
from eval.beir import load_beir
from eval.corpus_index import build_index, evaluation_settings
from eval.runner import run_modes, summarise
from rag.config import Settings
from rag.embed import E5_SMALL, KERNELS, Role, default_embedder, load_embedder
from rag.retrieve import Mode, Retriever

SHARED_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = ("rgb_zh", "scifact", "cmrc2018")
MAX_NDCG_LOSS = 0.005
MIN_SPEEDUP = 2.0


def speed(passages: int = 512, repeats: int = 3) -> dict[str, float]:
    """Passages per second of each kernel on the same texts (best of ``repeats``, kernels alternating)."""
    every = windows()
    texts = every[:: max(len(every) // passages, 1)][:passages]  # both languages, short and long
    embedders = {name: load_embedder(name) for name in KERNELS}
    for embedder in embedders.values():
        embedder.encode(texts[:8], Role.PASSAGE)  # load the weights (and quantise) outside the clock
    best = dict.fromkeys(embedders, float("inf"))
    for _ in range(repeats):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode(texts, Role.PASSAGE)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: round(len(texts) / seconds, 2) for name, seconds in best.items()}


def question_ms(questions: int = 100) -> dict[str, float]:
    """Median milliseconds of each kernel embedding one real question (SciFact and RGB-zh), kernels
    alternating question by question: what every search spends before it searches."""
    texts = queries(questions)
    embedders = {name: load_embedder(name) for name in KERNELS}
    samples: dict[str, list[float]] = {name: [] for name in embedders}
    for text in [*texts[:5], *texts]:
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode([text], Role.QUERY)
            samples[name].append((time.perf_counter() - started) * 1000)
    return {name: round(statistics.median(ms[5:]), 2) for name, ms in samples.items()}


def quality(embedders: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Held-out nDCG@10 per set, per embedder, for the dense and the hybrid search."""
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name in SETS:
        _, held_out = splits(load_beir(SHARED_EVAL / name), SHARED_EVAL / name)
        for embedder in embedders:
            settings = evaluation_settings(replace(Settings.resolve(), embed_model=embedder))
            index_dir, id_of = build_index(held_out, settings, progress=False)
            runs = run_modes(Retriever.open(index_dir, settings, dedup=False), held_out, id_of, [Mode.DENSE, Mode.HYBRID])
            figures.setdefault(name, {})[embedder] = {
                mode.value: round(summarise(runs[mode], held_out, 10)["ndcg@10"], 4) for mode in (Mode.DENSE, Mode.HYBRID)}
            print(name, embedder, figures[name][embedder], flush=True)
    return figures


def measure(passages: int = 512) -> dict[str, Any]:
    """The ``"embedder"`` section of bench/results.json (see the module's docstring)."""
    rates = speed(passages)
    question = question_ms()
    speedups = {name: round(rate / rates[E5_SMALL], 2) for name, rate in rates.items()}
    fast = [name for name in KERNELS if speedups[name] >= MIN_SPEEDUP]
    ndcg = quality([E5_SMALL, *fast])
    losses = {name: round(max(ndcg[s][E5_SMALL][m] - ndcg[s][name][m] for s in SETS for m in ("dense", "hybrid")), 4)
              for name in fast}
    default = default_embedder()
    shown = default if default in ndcg[SETS[0]] else E5_SMALL
    return {
        "default": default, "kernel": KERNELS[default],
        "chunks_per_s": rates[default], "float_chunks_per_s": rates[E5_SMALL], "speedup": speedups[default],
        "question_p50_ms": question[default], "float_question_p50_ms": question[E5_SMALL],
        "kernels": {name: {"kernel": KERNELS[name], "chunks_per_s": rates[name], "speedup": speedups[name],
                           "question_p50_ms": question[name],
                           "worst_ndcg_loss": losses.get(name),
                           "qualifies": name in losses and losses[name] <= MAX_NDCG_LOSS} for name in KERNELS},
        "ndcg_at_10": {s: {"float": ndcg[s][E5_SMALL]["hybrid"], "default": ndcg[s][shown]["hybrid"],
                           "by_embedder": ndcg[s]} for s in SETS},
        "command": "PYTHONPATH=. .venv/bin/python bench/embedder_kernels.py",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=512)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = measure(args.passages)
    print(json.dumps(figures))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
