"""The e5 embedder's kernels side by side: passages per second and held-out nDCG@10, float32 against int8.

    PYTHONPATH=. .venv/bin/python bench/embedder_kernels.py [--passages 512] [--out FILE]

Speed: the same real passages (cycled from ../shared/eval, both languages) embedded by each kernel in
this process, alternating, best of three. Quality: dense and hybrid nDCG@10 on the held-out queries of
RGB-zh, SciFact and CMRC2018 (bench.harness.splits), each kernel with its own index of the corpus built
by the real ingest (cached under ~/.cache/rag/eval; the first run embeds the three corpora once per
kernel, about half an hour here). The default kernel is the float one unless int8 is at least 2.0x as
fast and loses at most 0.005 of nDCG@10 on each set (issue 26); ``"default"`` names the one that is.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.harness import splits
from bench.hybrid_latency import windows
from eval.beir import load_beir
from eval.corpus_index import build_index, evaluation_settings
from eval.runner import run_modes, summarise
from rag.config import Settings
from rag.embed import DEFAULT_EMBEDDER, E5_SMALL, E5_SMALL_INT8, Role, load_embedder
from rag.retrieve import Mode, Retriever

SHARED_EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = {"rgb_zh": "rgb_zh", "scifact": "scifact", "cmrc2018": "cmrc2018"}
MAX_NDCG_LOSS = 0.005
MIN_SPEEDUP = 2.0


def speed(passages: int = 512, repeats: int = 3) -> dict[str, float]:
    """Passages per second of each kernel on the same texts (best of ``repeats``, kernels alternating)."""
    every = windows()
    texts = every[:: max(len(every) // passages, 1)][:passages]  # both languages, short and long
    embedders = {E5_SMALL: load_embedder(E5_SMALL), E5_SMALL_INT8: load_embedder(E5_SMALL_INT8)}
    for embedder in embedders.values():
        embedder.encode(texts[:8], Role.PASSAGE)  # load the weights (and quantise) outside the clock
    best = dict.fromkeys(embedders, float("inf"))
    for _ in range(repeats):
        for name, embedder in embedders.items():
            started = time.perf_counter()
            embedder.encode(texts, Role.PASSAGE)
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: round(len(texts) / seconds, 2) for name, seconds in best.items()}


def quality() -> dict[str, dict[str, dict[str, float]]]:
    """Held-out nDCG@10 per set, per kernel, for the dense and the hybrid search."""
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name, folder in SETS.items():
        _, held_out = splits(load_beir(SHARED_EVAL / folder), SHARED_EVAL / folder)
        for embedder in (E5_SMALL, E5_SMALL_INT8):
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
    ndcg = quality()
    speedup = rates[E5_SMALL_INT8] / rates[E5_SMALL]
    worst_loss = max(ndcg[s][E5_SMALL][m] - ndcg[s][E5_SMALL_INT8][m] for s in ndcg for m in ("dense", "hybrid"))
    return {
        "default": DEFAULT_EMBEDDER, "candidate": E5_SMALL_INT8,
        "chunks_per_s": rates[DEFAULT_EMBEDDER], "float_chunks_per_s": rates[E5_SMALL], "int8_chunks_per_s": rates[E5_SMALL_INT8],
        "speedup": round(rates[DEFAULT_EMBEDDER] / rates[E5_SMALL], 2), "int8_speedup": round(speedup, 2),
        "int8_qualifies": speedup >= MIN_SPEEDUP and worst_loss <= MAX_NDCG_LOSS, "int8_worst_ndcg_loss": round(worst_loss, 4),
        "ndcg_at_10": {name: {"float": by[E5_SMALL]["hybrid"], "int8": by[E5_SMALL_INT8]["hybrid"],
                              "default": by[DEFAULT_EMBEDDER]["hybrid"], "dense": {"float": by[E5_SMALL]["dense"],
                                                                                    "int8": by[E5_SMALL_INT8]["dense"]}}
                       for name, by in ndcg.items()},
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
