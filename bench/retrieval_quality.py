"""Retrieval quality of every mode on BEIR datasets, through the real ingest and retrieval code.

    PYTHONPATH=. .venv/bin/python bench/retrieval_quality.py ../shared/eval/scifact ../shared/eval/rgb_zh

The first run indexes each corpus (cached under ~/.cache/rag/eval); later runs only query. Prints one
JSON line per dataset with nDCG@10, recall@10, MRR@10, recall@100, latency and the fusion gate's rate.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from eval.beir import load_beir
from eval.corpus_index import build_index, evaluation_settings
from eval.runner import run_modes, summarise
from rag.config import Settings
from rag.retrieve import Mode, Retriever, RetrieverConfig


def main(folders: list[str]) -> None:
    settings = evaluation_settings(Settings.resolve())
    for folder in folders:
        dataset = load_beir(Path(folder))
        index_dir, id_of = build_index(dataset, settings)
        retriever = Retriever.open(index_dir, settings, config=replace(RetrieverConfig(), dedup=False))
        runs = run_modes(retriever, dataset, id_of, list(Mode))
        table = {mode.value: summarise(runs[mode], dataset, 10) for mode in Mode}
        print(json.dumps({"dataset": dataset.name, "n_queries": len(dataset.queries), "modes": table}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
