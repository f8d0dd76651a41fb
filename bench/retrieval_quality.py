"""Retrieval quality of every mode on BEIR datasets, through the real ingest and retrieval code.

    PYTHONPATH=. .venv/bin/python bench/retrieval_quality.py ../shared/eval/scifact ../shared/eval/rgb_zh
    PYTHONPATH=. .venv/bin/python bench/retrieval_quality.py --fusion rrf --no-gate ../shared/eval/scifact

The first run indexes each corpus (cached under ~/.cache/rag/eval); later runs only query. Prints one
JSON line per dataset with nDCG@10, recall@10, MRR@10, recall@100, latency and the fusion gate's rate.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from eval.beir import load_beir
from eval.corpus_index import build_index, evaluation_settings
from eval.runner import run_modes, summarise
from rag.config import Settings
from rag.retrieve import FusionMethod, Mode, Retriever, RetrieverConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", type=Path)
    parser.add_argument("--fusion", choices=[m.value for m in FusionMethod], default=RetrieverConfig.fusion.value)
    parser.add_argument("--no-gate", action="store_true", help="run the fusion variants for every query")
    args = parser.parse_args()
    settings = evaluation_settings(Settings.resolve())
    overrides = {"fusion": FusionMethod(args.fusion), "gate": not args.no_gate}
    for folder in args.datasets:
        dataset = load_beir(folder)
        index_dir, id_of = build_index(dataset, settings)
        retriever = Retriever.open(index_dir, settings, dedup=False)
        retriever.config = replace(retriever.config, **overrides)
        retriever.search("load the models and dictionaries before timing", mode=Mode.FUSION)
        runs = run_modes(retriever, dataset, id_of, list(Mode))
        table = {mode.value: summarise(runs[mode], dataset, 10) for mode in Mode}
        print(json.dumps({"dataset": dataset.name, "fusion": args.fusion, "gate": not args.no_gate,
                          "n_queries": len(dataset.queries), "modes": table}), flush=True)


if __name__ == "__main__":
    main()
