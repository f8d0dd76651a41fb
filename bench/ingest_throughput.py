"""Ingest throughput on a folder (default: the shared PDF corpus) for each embedder, embedding time apart.

    PYTHONPATH=. .venv/bin/python bench/ingest_throughput.py [FOLDER] [--embedders minilm,e5-small]

For each embedder, in one process and on a fresh copy: a first ingest, an unchanged re-run, and a
re-run after one file changed; prints pages/s and chunks/s overall and without embedding, and each
re-run as a ratio of the first run. Last, each embedder's chunks/s as a ratio of the first one's
(MiniLM, the baseline run in the same process).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import Role, load_embedder


def measure(folder: Path, embedder_name: str) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        docs = work / "docs"
        shutil.copytree(folder, docs)
        embedder = load_embedder(embedder_name)
        embedder.encode(["load the model before timing"], Role.PASSAGE)
        ingestor = Ingestor(Settings.resolve({"index_dir": work / "index", "embed_model": embedder_name}, env={}),
                            embedders=lambda name, batch_size: embedder, progress=False)
        first = ingestor.run([docs])
        unchanged = ingestor.run([docs])
        changed_file = next(p for p in sorted(docs.rglob("*")) if p.suffix in {".md", ".txt"})
        changed_file.write_text(changed_file.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
        one_changed = ingestor.run([docs])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    without_embedding = first.seconds - first.embed_seconds
    figures = {
        "embedder": embedder.name, "files": first.added, "pages": first.pages, "chunks": first.chunks,
        "seconds": round(first.seconds, 2), "embed_seconds": round(first.embed_seconds, 2),
        "pages_per_s": round(first.pages / first.seconds, 2),
        "chunks_per_s": round(first.chunks / first.seconds, 2),
        "pages_per_s_without_embedding": round(first.pages / without_embedding, 2),
        "chunks_per_s_embedding_only": round(first.embedded / first.embed_seconds, 2),
        "unchanged_rerun_ratio": round(unchanged.seconds / first.seconds, 4),
        "one_changed_rerun_ratio": round(one_changed.seconds / first.seconds, 4),
        "one_changed_embedded": one_changed.embedded,
    }
    print(json.dumps(figures), flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "corpus")
    parser.add_argument("--embedders", default="minilm,e5-small", help="comma-separated; the first is the baseline")
    args = parser.parse_args()
    runs = [measure(args.folder, name) for name in args.embedders.split(",")]
    baseline = runs[0]
    print(json.dumps({"chunks_per_s_vs_" + str(baseline["embedder"]): {
        str(r["embedder"]): round(r["chunks_per_s"] / baseline["chunks_per_s"], 3) for r in runs}}))


if __name__ == "__main__":
    main()
