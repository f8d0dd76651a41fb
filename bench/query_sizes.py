"""Query benchmarks at one index size: build it from real passages and structured vectors, then time
bm25, dense and hybrid searches, a one-file update, disk bytes and serving memory (see bench/__main__.py).
:func:`query_in_fresh_process` runs it in a new process, so that its peak RSS is this size's alone."""
from __future__ import annotations

import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from bench.hybrid_latency import PER_FILE, build_ours, passage, passages, percentiles, same_embedder, windows
from rag.embed import Embedder, Role, default_embedder, load_embedder
from rag.index import ChunkRow, FileRecord, Index, IndexWriter
from rag.index.dense import DenseIndex, DenseSegments
from rag.index.generations import live_generation
from rag.index.layout import CATALOG, CHUNKS, DENSE, SPARSE
from rag.retrieve import Mode, Retriever
from rag.text import BM25Tokenizer

BLOCK = 100_000
"""Structured vectors made at a time."""


def structured_blocks(real: np.ndarray, size: int, noise: float = 0.48) -> Iterator[np.ndarray]:
    """``size`` unit vectors, 100,000 at a time: the real passage vectors cycled, each copy moved by
    Gaussian noise of norm about ``noise`` (cosine about 0.9 to its source), so the set has the
    neighbourhoods of real embeddings. Uniformly random vectors have none: every ANN index loses recall
    on them (HNSW at efSearch 512 finds 0.65 of the exact top 10 at 100k), which says nothing about real
    text. The copies of one passage are near-duplicates of each other (250 of each at 1M), which makes
    the exact top 10 a pick among near-ties: recall by id is pessimistic on these sets."""
    rng = np.random.default_rng(0)
    for start in range(0, size, BLOCK):
        rows = np.arange(start, min(size, start + BLOCK))
        block = real[rows % len(real)] + rng.normal(scale=noise / np.sqrt(real.shape[1]), size=(len(rows), real.shape[1]))
        yield (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)


def structured_vectors(real: np.ndarray, size: int, noise: float = 0.48) -> np.ndarray:
    """:func:`structured_blocks` as one array."""
    return np.concatenate(list(structured_blocks(real, size, noise)))


def streamed_files(real: np.ndarray, size: int) -> Iterator[tuple[list[str], np.ndarray]]:
    """The bench passages and their structured vectors, file by file, made as the build takes them: the
    inputs of a million chunks held whole would add 1.5 GB of vectors and the texts to the build's
    memory, which a real ingest (that embeds file by file) never holds."""
    texts = windows()
    for block_start, block in zip(range(0, size, BLOCK), structured_blocks(real, size), strict=True):
        for start in range(0, len(block), PER_FILE):
            first = block_start + start
            vectors = block[start : start + PER_FILE]
            yield [passage(texts, i) for i in range(first, first + len(vectors))], vectors


def recall_at_10(dense: DenseIndex | DenseSegments, queries: np.ndarray) -> float:
    """The share of the exact top 10 that the index's own (approximate above the threshold) search finds."""
    _, exact = dense.search(queries, 10, exact=True)
    _, found = dense.search(queries, 10)
    return round(float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), exact.tolist(), strict=True)])), 4)


def real_set_recall(real: np.ndarray, queries: np.ndarray) -> float:
    """Recall@10 of the graph built over the real passage vectors alone (threshold lowered to force it)."""
    dense = DenseIndex.create(real.shape[1], threshold=0)
    dense.add(np.arange(len(real)), real)
    dense.maintain()
    return recall_at_10(dense, queries)


def reset_peak_rss() -> None:
    """Start this process's peak resident memory (VmHWM) again from what it holds now."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")


def peak_rss_mib() -> int:
    """This process's peak resident memory (VmHWM: ru_maxrss of a spawned process starts from its parent's peak)."""
    with open("/proc/self/status", encoding="ascii") as status:
        return round(int(next(line.split()[1] for line in status if line.startswith("VmHWM"))) / 1024)


def query_in_fresh_process(size: int, embedder_name: str, questions: list[str], query_vectors: np.ndarray,
                           real: np.ndarray, baseline: bool) -> dict[str, Any]:
    """:func:`query` in a new process, so that its ``peak_rss_mib`` is this size's build alone (VmHWM
    reset once the embedder is loaded: an ingest holds its embedder too)."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as process:
        return process.submit(query, size, embedder_name, questions, query_vectors, real, baseline).result()


def query(size: int, embedder_name: str, questions: list[str], query_vectors: np.ndarray, real: np.ndarray,
          baseline: bool) -> dict[str, Any]:
    """Per mode p50/p95 in ms of the whole search and of the search after the query embedding."""
    embedder = load_embedder(embedder_name)
    embedder.encode(["warm up"], Role.QUERY)
    tokenizer = BM25Tokenizer()
    work = Path(tempfile.mkdtemp(prefix="rag-bench-query-"))
    try:
        reset_peak_rss()
        started = time.perf_counter()
        index_dir = build_ours(work / "index", streamed_files(real, size), tokenizer, embedder.name)
        figures: dict[str, Any] = {"chunks": size, "build_seconds": round(time.perf_counter() - started, 1), "peak_rss_mib": peak_rss_mib()}
        retriever = Retriever(Index.open(index_dir), embedder, tokenizer)
        dense = retriever.index.dense
        figures["dense_index"] = retriever.index.manifest["dense_index"]["type"]
        figures["recall_at_10"] = recall_at_10(dense, query_vectors)
        for mode in (Mode.BM25, Mode.DENSE, Mode.HYBRID):
            for question in questions[:3]:
                retriever.search(question, mode=mode, k=10)
            whole, after = [], []
            for question in questions:
                timings = retriever.search(question, mode=mode, k=10).timings
                whole.append(timings["total"])
                after.append(timings["total"] - timings.get("embed", 0.0))
            (p50, p95), (s50, s95) = percentiles(whole), percentiles(after)
            figures[mode.value] = {"p50_ms": round(p50, 2), "p95_ms": round(p95, 2), "search_p50_ms": round(s50, 2),
                                   "search_p95_ms": round(s95, 2)}
        figures["hybrid_p50_ms"], figures["search_p50_ms"] = figures["hybrid"]["p50_ms"], figures["hybrid"]["search_p50_ms"]
        retriever.index.close()
        figures["bytes_per_chunk"] = bytes_per_chunk(work / "index", size)
        figures["serving_rss_mib"] = serving_rss_mib(work / "index", questions[:20])
        figures["one_file_update"] = one_file_update(work / "index", embedder.name, tokenizer, next(structured_blocks(real, 10)))
        if baseline:
            figures["baseline_p50_ms"] = langchain_p50(passages(size), structured_vectors(real, size), tokenizer, embedder, questions)
            figures["ratio"] = round(figures["baseline_p50_ms"] / figures["hybrid_p50_ms"], 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures


def bytes_per_chunk(index_dir: Path, size: int) -> dict[str, float]:
    """Disk bytes per chunk of each part of the live generation (FAISS counts the exact index and the graph)."""
    generation = live_generation(index_dir)
    assert generation is not None
    parts = {"faiss": sum(p.stat().st_size for p in generation.glob(f"*/{DENSE.split('.')[0]}*")),
             "bm25": sum(p.stat().st_size for p in generation.glob(f"*/{SPARSE}/*")),
             "sqlite": sum(p.stat().st_size for p in (*generation.glob(f"*/{CHUNKS}"), generation / CATALOG))}
    return {name: round(total / size, 1) for name, total in parts.items()}


def serving_rss_mib(index_dir: Path, questions: list[str]) -> int:
    """Peak RSS of a fresh process that opens the index with the default embedder and answers hybrid searches."""
    script = ("import sys; from pathlib import Path; from rag.embed import load_embedder; "
              "from rag.index import Index; from rag.retrieve import Retriever; from rag.text import BM25Tokenizer; "
              f"r = Retriever(Index.open(Path(sys.argv[1])), load_embedder({default_embedder()!r}), BM25Tokenizer()); "
              "[r.search(q, k=10) for q in sys.argv[2:]]; "
              "print(next(line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')))")
    # VmHWM, not ru_maxrss: a child's ru_maxrss starts from the parent's peak, inherited across fork and exec
    done = subprocess.run([sys.executable, "-c", script, str(index_dir), *questions], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[1])
    return round(int(done.stdout.split()[-1]) / 1024)


def one_file_update(index_dir: Path, embedder_name: str, tokenizer: BM25Tokenizer, vectors: np.ndarray) -> dict[str, float]:
    """Seconds to add one file of ten chunks to the index (what a small ingest costs besides embedding), by
    part: ``stage`` (opening the live generation and staging the change), then the commit's ``segment``,
    ``publish`` and ``merge`` (see :attr:`IndexWriter.commit_seconds`)."""
    texts = [f"A new note, paragraph {n}: the relief valve opens at {n + 3} bar." for n in range(len(vectors))]
    started = time.perf_counter()
    with IndexWriter(index_dir, embedder_name) as writer:
        first = writer.next_chunk_id()
        rows = [ChunkRow(first + n, "/bench/new-note.txt", 1, 0, len(t), t, f"{first + n:064x}", tuple(tokenizer.tokenize(t)), 1, 0)
                for n, t in enumerate(texts)]
        writer.replace_file(FileRecord("/bench/new-note.txt", "f" * 64, 1, 1, 1, len(rows)), [(1, "", ())], rows, vectors)
        staged = time.perf_counter() - started
        writer.commit({"chunker": {}, "next_chunk_id": first + len(rows)}, describe_embedder=lambda: {})
    return {"seconds": round(time.perf_counter() - started, 2), "stage": round(staged, 2),
            **{part: round(t, 2) for part, t in writer.commit_seconds.items()}}


def langchain_p50(texts: list[str], vectors: np.ndarray, tokenizer: BM25Tokenizer, embedder: Embedder,
                  questions: list[str]) -> float:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS

    bm25 = BM25Retriever.from_texts(texts, preprocess_func=tokenizer.tokenize, k=10)
    store = FAISS.from_embeddings(list(zip(texts, vectors.tolist(), strict=True)), same_embedder(embedder))
    ensemble = EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": 10})], weights=[0.5, 0.5])
    for question in questions[:3]:
        ensemble.invoke(question)
    return round(percentiles([_ms(partial(ensemble.invoke, q)) for q in questions])[0], 2)


def _ms(call: Callable[[], Any]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000
