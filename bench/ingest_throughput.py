"""Ingest throughput on a folder (default: the shared PDF corpus), with embedding time apart.

    .venv/bin/python bench/ingest_throughput.py [FOLDER]

Runs, in one process and on a fresh copy: a first ingest, an unchanged re-run, and a re-run after one
file changed; prints pages/s and chunks/s overall and without embedding, and each re-run as a ratio of
the first run.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import Embedder


def main(folder: Path) -> dict[str, float]:
    work = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    try:
        docs = work / "docs"
        shutil.copytree(folder, docs)
        embedder = Embedder()
        embedder.encode(["load the model before timing"])
        ingestor = Ingestor(Settings.resolve({"index_dir": work / "index"}, env={}), embedder=embedder, progress=False)
        first = ingestor.run([docs])
        unchanged = ingestor.run([docs])
        changed_file = next(p for p in sorted(docs.rglob("*")) if p.suffix in {".md", ".txt"})
        changed_file.write_text(changed_file.read_text(encoding="utf-8") + "\nOne more line.\n", encoding="utf-8")
        one_changed = ingestor.run([docs])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    without_embedding = first.seconds - first.embed_seconds
    figures = {
        "files": first.added, "pages": first.pages, "chunks": first.chunks,
        "seconds": round(first.seconds, 2), "embed_seconds": round(first.embed_seconds, 2),
        "pages_per_s": round(first.pages / first.seconds, 2),
        "chunks_per_s": round(first.chunks / first.seconds, 2),
        "pages_per_s_without_embedding": round(first.pages / without_embedding, 2),
        "chunks_per_s_embedding_only": round(first.embedded / first.embed_seconds, 2),
        "unchanged_rerun_ratio": round(unchanged.seconds / first.seconds, 4),
        "one_changed_rerun_ratio": round(one_changed.seconds / first.seconds, 4),
        "one_changed_embedded": one_changed.embedded,
    }
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "corpus")
