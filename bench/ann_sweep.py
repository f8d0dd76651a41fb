"""Recall@10 against exact search, and latency, of the HNSW graph at several efSearch values on the
bench's vector set (real e5 passage vectors of ../shared/eval cycled with noise; see bench/__main__.py).
This is how HNSW_EF_SEARCH in rag/index/dense.py was chosen.

    PYTHONPATH=. .venv/bin/python bench/ann_sweep.py 1000000     # about 10 minutes on 2 cores
"""
from __future__ import annotations

import sys
import time

import faiss
import numpy as np

from bench.__main__ import REAL_PASSAGES
from bench.hybrid_latency import queries, windows
from bench.query_sizes import structured_vectors
from rag.embed import Role, default_embedder, load_embedder
from rag.index.dense import DenseIndex


def main(size: int, breadths: tuple[int, ...] = (128, 256, 384, 512, 768)) -> None:
    embedder = load_embedder(default_embedder())
    texts = windows()
    real = embedder.encode(texts[:: len(texts) // REAL_PASSAGES][:REAL_PASSAGES], Role.PASSAGE)
    questions = embedder.encode(queries(100), Role.QUERY)
    dense = DenseIndex.create(real.shape[1], threshold=0)
    dense.add(np.arange(size), structured_vectors(real, size))
    started = time.perf_counter()
    dense.maintain()
    print(f"{size:,} vectors, graph built in {time.perf_counter() - started:.0f} s; one thread per query")
    _, exact = dense.search(questions, 10, exact=True)
    graph = dense._ann
    faiss.omp_set_num_threads(1)
    print("| efSearch | recall@10 | p50 ms |\n|---|---|---|")
    for breadth in breadths:
        params = faiss.SearchParametersHNSW(efSearch=breadth)
        found, seconds = [], []
        for question in questions:
            started = time.perf_counter()
            _, ids = graph.search(question.reshape(1, -1), 10, params=params)
            seconds.append(time.perf_counter() - started)
            found.append(ids[0])
        recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact.tolist(), strict=True)])
        print(f"| {breadth} | {recall:.3f} | {np.median(seconds) * 1000:.2f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
