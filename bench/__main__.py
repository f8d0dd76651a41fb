"""`make bench` (`PYTHONPATH=. .venv/bin/python -m bench`): ingest and query benchmarks against LangChain
baselines run in the same process on the same data, written to bench/results.json and bench/RESULTS.md.

    PYTHONPATH=. .venv/bin/python -m bench                       # everything (about 30 minutes on 2 cores)
    PYTHONPATH=. .venv/bin/python -m bench --sizes 10000,100000  # without the million-chunk run

- Ingest: ../shared/corpus with the default embedder, ours (time split into read, parse, clean,
  chunk, embed, tokenize and write) against PyPDFLoader + RecursiveCharacterTextSplitter +
  FAISS.from_documents with the float32 e5 model and an equal chunk size (our 200 estimated tokens,
  about 800 characters, and 30 of overlap, about 120 characters); pages/s and their ratio. The
  embedder's achieved GFLOP/s (from its size and the tokens it read) against numpy's float32
  matrix-multiply GFLOP/s on the same cores.
- Queries at each size: p50/p95 of hybrid search including the query embedding, and of the search
  after it, per mode, and the peak RSS of building the index (in a fresh process per size, counted
  from when its embedder is loaded, the inputs made file by file as an ingest reads them); at 100k also LangChain's EnsembleRetriever(BM25,
  FAISS). Texts are real passages cycled from ../shared/eval. Vectors are 4,000 real e5 passage
  vectors cycled with noise (embedding a million passages would take days here; uniformly random
  vectors have no neighbourhoods, so no ANN index finds their neighbours). Recall@10 of the dense
  index (HNSW from 50,000 chunks) against exact search, on each set and on the real vectors alone.
- Embedder kernels: bench/embedder_kernels.py, the e5 encoder's float32, bfloat16 and int8 kernels on
  the same passages, and held-out nDCG@10 on RGB-zh, SciFact and CMRC2018, under ``"embedder"``.
- OCR: bench/ocr.py on scans of the first three pages of each shared PDF: character accuracy per
  language and pages per second, under ``"ocr"``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.embedder_kernels import measure as embedder_measure
from bench.hybrid_latency import (
    queries,
    same_embedder,
    windows,
)
from bench.ocr import measure as ocr_measure
from bench.query_sizes import query_in_fresh_process, real_set_recall
from ingest.chunking import Chunker
from ingest.engines import LocalEngine, ParseJob
from ingest.loaders import is_supported
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import E5_SMALL, Embedder, Role, default_embedder, load_embedder
from rag.index import Index
from rag.index.dense import (
    ANN_THRESHOLD,
    HNSW_EF_CONSTRUCTION,
    HNSW_EF_SEARCH,
    HNSW_M,
)

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "shared" / "corpus"
REAL_PASSAGES = 4000
"""Passages of ../shared/eval embedded for real: the seeds of the query benchmark's vectors and a recall set."""
CHARS_PER_TOKEN = 4
"""Our chunk size is in estimated tokens (one per four non-CJK characters): the baseline's in characters."""


def machine() -> dict[str, Any]:
    import torch

    return {"cores": os.cpu_count(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """numpy float32 matrix multiply throughput: the machine's practical limit for dense layers."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(size, size)).astype(np.float32), rng.normal(size=(size, size)).astype(np.float32)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def encoder_flops_per_token(embedder: Embedder, tokens: float) -> float:
    """Forward FLOPs per token of the embedder's transformer: 2 x its linear layers' weights, plus
    attention over ``tokens`` (4 x layers x tokens x hidden)."""
    import torch

    from rag.embed.e5_encoder import E5Encoder, PackedLinear

    model = embedder.model  # type: ignore[attr-defined]
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear | PackedLinear))
    if isinstance(model, E5Encoder):
        layers, hidden = len(model.layers), model.hidden
    else:
        config = model[0].auto_model.config
        layers, hidden = config.num_hidden_layers, config.hidden_size
    return 2 * linear + 4 * layers * tokens * hidden


def ingest(embedder: Embedder, baseline_embedder: Embedder, corpus: Path) -> dict[str, Any]:
    """Our ingest with ``embedder`` against LangChain's pipeline with ``baseline_embedder`` (the float model)."""
    from langchain_community.document_loaders import PyPDFLoader, TextLoader
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    for loading in (embedder, baseline_embedder):
        loading.encode(["load the model before timing"], Role.PASSAGE)
    work = Path(tempfile.mkdtemp(prefix="rag-bench-ingest-"))
    try:
        docs = work / "docs"
        shutil.copytree(corpus, docs)
        settings = Settings.resolve({"index_dir": work / "index", "embed_model": embedder.name}, env={})
        ours = Ingestor(settings, embedders=lambda name, batch_size: embedder, progress=False).run([docs]).summary()
        index = Index.open(settings.index_dir)
        ours_texts = [c.text for c in index.chunks([i for i, *_ in index.store.chunk_locations()][:200])]
        index.close()
        started = time.perf_counter()
        pages = []
        for path in sorted(docs.rglob("*")):
            if path.suffix == ".pdf":
                pages.extend(PyPDFLoader(str(path)).load())
            elif path.suffix in (".md", ".txt"):
                pages.extend(TextLoader(str(path), encoding="utf-8").load())
        splitter = RecursiveCharacterTextSplitter(chunk_size=settings.chunk_size * CHARS_PER_TOKEN,
                                                  chunk_overlap=settings.chunk_overlap * CHARS_PER_TOKEN)
        chunks = splitter.split_documents(pages)
        parsed = time.perf_counter() - started
        FAISS.from_documents(chunks, same_embedder(baseline_embedder))
        baseline_seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stages = ours["stage_seconds"]
    tokens = float(np.mean([n for n, _ in embedder.unknown_token_counts(ours_texts)]))
    chunks_per_s = ours["embedded"] / stages["embed"]
    achieved = chunks_per_s * tokens * encoder_flops_per_token(embedder, tokens) / 1e9
    limit = matmul_gflops()
    return {
        "embedder": embedder.name, "pages": ours["pages"], "chunks": ours["chunks"], "seconds": ours["seconds"],
        "pages_per_s": round(ours["pages"] / ours["seconds"], 2),
        "stage_seconds": stages, "non_embedding_share": round(1 - stages["embed"] / ours["seconds"], 3),
        "baseline": {"embedder": baseline_embedder.name, "pages": len(pages), "chunks": len(chunks), "seconds": round(baseline_seconds, 2),
                     "parse_split_seconds": round(parsed, 2)},
        "baseline_pages_per_s": round(len(pages) / baseline_seconds, 2),
        "ratio": round((ours["pages"] / ours["seconds"]) / (len(pages) / baseline_seconds), 2),
        "embedder_gflops": round(achieved, 1), "matmul_gflops": round(limit, 1),
        "embedder_share_of_matmul": round(achieved / limit, 3), "tokens_per_chunk": round(tokens, 1),
        "parse_pool": parse_pool(corpus),
    }


def parse_pool(corpus: Path) -> dict[str, Any]:
    """Wall time to parse, clean and chunk the corpus in this process and in a pool of processes (its
    start-up included), the same files in the same order."""
    jobs = [(path, ParseJob(str(path), path.read_bytes())) for path in sorted(corpus.rglob("*")) if is_supported(path)]
    seconds = {}
    for processes in (1, os.cpu_count() or 1):
        started = time.perf_counter()
        with LocalEngine(processes) as engine:
            parsed = list(engine.parse(iter(jobs), Chunker()))
        seconds[processes] = time.perf_counter() - started
    one, pool = seconds[1], seconds[os.cpu_count() or 1]
    return {"files": len(parsed), "processes": os.cpu_count() or 1, "seconds_in_process": round(one, 2),
            "seconds_in_pool": round(pool, 2), "speedup": round(one / pool, 2)}


def markdown(results: dict[str, Any], command: str) -> str:
    m, ing = results["machine"], results["ingest"]
    lines = [
        "# Benchmark results", "",
        f"Written by `{command}` on {m['date']}: {m['cores']} cores ({m['cpu']}), Python {m['python']}, torch "
        f"{m['torch']} ({m['torch_threads']} threads). Every figure below comes from that run.", "",
        f"## Ingest: ../shared/corpus, {ing['embedder']}", "",
        "| | pages | chunks | seconds | pages/s |", "|---|---|---|---|---|",
        f"| ours | {ing['pages']} | {ing['chunks']} | {ing['seconds']} | {ing['pages_per_s']} |",
        f"| LangChain (PyPDFLoader + RecursiveCharacterTextSplitter + FAISS.from_documents) | {ing['baseline']['pages']} | "
        f"{ing['baseline']['chunks']} | {ing['baseline']['seconds']} | {ing['baseline_pages_per_s']} |", "",
        f"Ours at **{ing['ratio']}x** the baseline's pages/s. Time by stage (s): "
        + ", ".join(f"{k} {v}" for k, v in ing["stage_seconds"].items())
        + f"; everything but embedding is {ing['non_embedding_share']:.1%} of the total.", "",
        f"The embedder reaches {ing['embedder_gflops']} GFLOP/s ({ing['tokens_per_chunk']} tokens per chunk), "
        f"{ing['embedder_share_of_matmul']:.0%} of numpy's float32 matrix multiply on these cores "
        f"({ing['matmul_gflops']} GFLOP/s).", "",
        f"Parsing, cleaning and chunking the corpus's {ing['parse_pool']['files']} files: "
        f"{ing['parse_pool']['seconds_in_process']} s in the ingest process, {ing['parse_pool']['seconds_in_pool']} s in a "
        f"pool of {ing['parse_pool']['processes']} processes (start-up included): **{ing['parse_pool']['speedup']}x**.", "",
        "## Queries (ms; texts cycled from ../shared/eval; vectors: real e5 passage vectors cycled with noise)", "",
        "| chunks | mode | p50 | p95 | search p50 (after the query embedding) | search p95 | peak RSS building (MiB) | LangChain p50 | ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, q in results["query"].items():
        for mode in ("bm25", "dense", "hybrid"):
            extra = f"{q.get('baseline_p50_ms', '')} | {q.get('ratio', '')}" if mode == "hybrid" else " | "
            lines.append(f"| {int(size):,} | {mode} | {q[mode]['p50_ms']} | {q[mode]['p95_ms']} | {q[mode]['search_p50_ms']} | "
                         f"{q[mode]['search_p95_ms']} | {q['peak_rss_mib']} | {extra} |")
    lines += ["", "## Index size and small updates", "",
              "| chunks | FAISS B/chunk | BM25 B/chunk | SQLite B/chunk | serving RSS MiB | one-file update s | "
              "of which: stage | new segment | publish | merge |", "|---|---|---|---|---|---|---|---|---|---|"]
    for size, q in results["query"].items():
        b, u = q["bytes_per_chunk"], q["one_file_update"]
        lines.append(f"| {int(size):,} | {b['faiss']} | {b['bm25']} | {b['sqlite']} | {q['serving_rss_mib']} | {u['seconds']} | "
                     f"{u['stage']} | {u['segment']} | {u['publish']} | {u['merge']} |")
    lines += ["", "Serving RSS: a fresh process that opens the index with the embedder and answers 20 hybrid searches. "
              "One-file update: ten new chunks written and committed (embedding excluded), as a new segment beside the "
              "shared ones.", "",
              f"Dense search: {results['ann']['index']}. Recall@10 of the dense search against exact search, by set: "
              + "; ".join(f"{name} {value}" for name, value in results["ann"]["by_set"].items()) + ".", ""]
    kernels = results["embedder"]
    lines += ["## Embedder kernels (e5)", "",
              f"`{kernels['command']}`: passages/s "
              + ", ".join(f"{v['kernel']} {v['chunks_per_s']} ({v['speedup']}x)" for v in kernels["kernels"].values())
              + "; hybrid nDCG@10 on held-out queries, float32 / default: "
              + "; ".join(f"{name} {v['float']} / {v['default']}" for name, v in kernels["ndcg_at_10"].items())
              + f". Default here: {kernels['default']} (**{kernels['speedup']}x** float32's passages/s). One question, "
              "embedded alone (median ms): " + ", ".join(f"{v['kernel']} {v['question_p50_ms']}" for v in kernels["kernels"].values()) + ".", ""]
    ocr = results["ocr"]
    lines += ["## OCR (scans of the shared corpus)", "",
              f"`{ocr['command']}`: {ocr['pages']} pages at {ocr['dpi']} dpi, **{ocr['pages_per_s']} pages/s**; character "
              "accuracy " + ", ".join(f"{language} **{value}**" for language, value in ocr["char_accuracy"].items()) + ".", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="chunk counts for the query benchmark")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args(argv)
    command = " ".join(["PYTHONPATH=. .venv/bin/python -m bench", *(sys.argv[1:] if argv is None else argv)])
    embedder = load_embedder(default_embedder())
    questions = queries(args.queries)
    results: dict[str, Any] = {"machine": machine(), "command": command, "ingest": ingest(embedder, load_embedder(E5_SMALL), CORPUS), "query": {}}
    print(json.dumps(results["ingest"]), flush=True)
    texts = windows()
    real = embedder.encode(texts[:: len(texts) // REAL_PASSAGES][:REAL_PASSAGES], Role.PASSAGE)  # distinct, both languages
    query_vectors = embedder.encode(questions, Role.QUERY)
    for size in (int(s) for s in args.sizes.split(",")):
        results["query"][str(size)] = query_in_fresh_process(size, embedder.name, questions, query_vectors, real, baseline=size == 100_000)
        print(json.dumps(results["query"][str(size)]), flush=True)
    by_set = {f"{REAL_PASSAGES} real passages": real_set_recall(real, query_vectors)}
    by_set.update({f"{int(size):,} chunks": q["recall_at_10"] for size, q in results["query"].items() if q["dense_index"] != "flat"})
    breadth = ", ".join(f"{ef} from {size:,}" for size, ef in HNSW_EF_SEARCH.items())
    results["ann"] = {"index": f"HNSW (M {HNSW_M}, efConstruction {HNSW_EF_CONSTRUCTION}, efSearch {breadth} vectors) "
                               f"from {ANN_THRESHOLD:,} chunks, exact below", "recall_at_10": min(by_set.values()), "by_set": by_set}
    results["ocr"] = ocr_measure()
    print(json.dumps(results["ocr"]), flush=True)
    results["embedder"] = embedder_measure()
    print(json.dumps(results["embedder"]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    (args.out / "RESULTS.md").write_text(markdown(results, command), encoding="utf-8")
    print(f"wrote {args.out / 'results.json'} and {args.out / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
