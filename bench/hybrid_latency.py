"""Hybrid search latency at N chunks: ours against LangChain's EnsembleRetriever, same data, same script.

    .venv/bin/pip install -e '.[bench]'
    PYTHONPATH=. .venv/bin/python bench/hybrid_latency.py [N=100000] [QUERIES=100] [EMBEDDER=e5-small]

Passages are real text: overlapping two-sentence windows of the SciFact, RGB-zh and CMRC2018 corpora
(English and Chinese), cycled until there are N. Both systems get the same vectors per passage: random
unit vectors, since an exact (flat) search costs the same whatever the values, and embedding 100k
passages would take hours on this machine. Queries are real SciFact and RGB-zh questions, embedded
by the default multilingual-e5-small (or EMBEDDER) in both systems. The baseline is EnsembleRetriever(BM25Retriever, FAISS
retriever), weights 0.5/0.5, k=10, with our tokenizer as BM25Retriever's preprocess function so both
see the same tokens. Prints p50/p95 per system and the ratio.
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed import Embedder, Role, load_embedder
from rag.index import ChunkRow, FileRecord, Index, IndexWriter
from rag.retrieve import Mode, Retriever
from rag.text import BM25Tokenizer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "eval"
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s*")


def windows() -> list[str]:
    """Overlapping two-sentence windows of the SciFact, RGB-zh and CMRC2018 corpora, each text once."""
    found: list[str] = []
    for name in ("scifact", "rgb_zh", "cmrc2018"):
        with (SHARED / name / "corpus.jsonl").open(encoding="utf-8") as fh:
            for line in fh:
                sentences = [s for s in _SENTENCE.split(json.loads(line)["text"]) if s.strip()]
                found.extend(" ".join(sentences[i : i + 2]) for i in range(0, max(1, len(sentences) - 1)))
    return list(dict.fromkeys(found))


def passage(texts: Sequence[str], i: int) -> str:
    """The ``i``-th bench passage: the windows cycled, each copy marked."""
    return texts[i % len(texts)] + ("" if i < len(texts) else f" (copy {i // len(texts)})")


def passages(n: int) -> list[str]:
    texts = windows()
    return [passage(texts, i) for i in range(n)]


PER_FILE = 1000
"""Chunks per bench file."""


def in_files(texts: Sequence[str], vectors: np.ndarray) -> Iterator[tuple[Sequence[str], np.ndarray]]:
    """Passages and their vectors, :data:`PER_FILE` at a time (one file each in :func:`build_ours`)."""
    for start in range(0, len(texts), PER_FILE):
        yield texts[start : start + PER_FILE], vectors[start : start + PER_FILE]


def queries(n: int) -> list[str]:
    texts = []
    for name in ("scifact", "rgb_zh"):
        with (SHARED / name / "queries.jsonl").open(encoding="utf-8") as fh:
            texts.extend(json.loads(line)["text"] for _, line in zip(range(n // 2), fh, strict=False))
    return texts


def build_ours(folder: Path, files: Iterable[tuple[Sequence[str], np.ndarray]], tokenizer: BM25Tokenizer, embedder: str) -> Path:
    """Our index of these files' passages and vectors, chunk ids in order, one commit (as a first ingest)."""
    first = 0
    with IndexWriter(folder, embedder) as writer:
        for number, (part, vectors) in enumerate(files):
            path = f"/bench/file-{number:05d}.txt"
            rows = [ChunkRow(first + i, path, 1, 0, len(t), t, f"{first + i:064x}", tuple(tokenizer.tokenize(t)), 1, 0)
                    for i, t in enumerate(part)]
            writer.replace_file(FileRecord(path, f"{first:064x}", 0, 0, 1, len(rows)), [(1, "", ())], rows, vectors)
            first += len(rows)
        writer.commit({"chunker": {}, "next_chunk_id": first},
                      describe_embedder=lambda: {"name": embedder, "dimension": 384, "normalize": True})
    return folder


def same_embedder(embedder: Embedder) -> Any:
    """Our embedder as a LangChain ``Embeddings``, so a baseline embeds exactly as we do."""
    from langchain_core.embeddings import Embeddings

    class SameEmbedder(Embeddings):
        def embed_documents(self, docs: list[str]) -> list[list[float]]:
            return embedder.encode(docs, Role.PASSAGE).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.encode([text], Role.QUERY)[0].tolist()

    return SameEmbedder()


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main(n: int, n_queries: int, embedder_name: str) -> None:
    from langchain_classic.retrievers import EnsembleRetriever
    from langchain_community.retrievers import BM25Retriever
    from langchain_community.vectorstores import FAISS

    texts, questions = passages(n), queries(n_queries)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tokenizer, embedder = BM25Tokenizer(), load_embedder(embedder_name)
    embedder.encode(["warm up"], Role.QUERY)

    work = Path(tempfile.mkdtemp(prefix="rag-latency-"))
    try:
        started = time.perf_counter()
        ours = Retriever(Index.open(build_ours(work / "index", in_files(texts, vectors), tokenizer, embedder.name)), embedder, tokenizer)
        build_ours_s = time.perf_counter() - started
        started = time.perf_counter()
        bm25 = BM25Retriever.from_texts(texts, preprocess_func=tokenizer.tokenize, k=10)
        store = FAISS.from_embeddings(list(zip(texts, vectors.tolist(), strict=True)), same_embedder(embedder))
        ensemble = EnsembleRetriever(retrievers=[bm25, store.as_retriever(search_kwargs={"k": 10})], weights=[0.5, 0.5])
        build_theirs_s = time.perf_counter() - started
        for question in questions[:3]:  # warm both
            ours.search(question, mode=Mode.HYBRID, k=10)
            ensemble.invoke(question)
        ours_ms, theirs_ms = [], []
        for question in questions:
            started = time.perf_counter()
            ours.search(question, mode=Mode.HYBRID, k=10)
            ours_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            ensemble.invoke(question)
            theirs_ms.append((time.perf_counter() - started) * 1000)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (o50, o95), (t50, t95) = percentiles(ours_ms), percentiles(theirs_ms)
    print(json.dumps({
        "chunks": n, "queries": len(questions), "embedder": embedder.name,
        "ours_hybrid_p50_ms": round(o50, 2), "ours_hybrid_p95_ms": round(o95, 2),
        "langchain_ensemble_p50_ms": round(t50, 2), "langchain_ensemble_p95_ms": round(t95, 2),
        "p50_ratio_langchain_over_ours": round(t50 / o50, 1),
        "build_seconds": {"ours": round(build_ours_s, 1), "langchain": round(build_theirs_s, 1)},
    }, indent=1))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, int(sys.argv[2]) if len(sys.argv) > 2 else 100,
         sys.argv[3] if len(sys.argv) > 3 else "e5-small")
