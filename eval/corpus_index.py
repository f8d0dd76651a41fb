"""Indexing an evaluation corpus through the same ingest pipeline as users' documents, cached.

Each corpus entry becomes a text file (title, blank line, text) named after its position; the index
lives in ``CACHE/eval/NAME-FINGERPRINT-SETTINGS`` and is reused while the dataset and settings match
(the ingest finds every file unchanged and embeds nothing).

Example:
    >>> from eval.beir import load_beir
    >>> index_dir, id_of = build_index(load_beir(Path("beir")), Settings.resolve({}, env={}), progress=False)
    >>> sorted(id_of.values())[:2]
    ['handbook.md', 'lumen-l2-guide.pdf']
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path

from eval.beir import Dataset
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import choose_embedder

EVAL_CHUNK_SIZE = 512
EVAL_CHUNK_OVERLAP = 64
"""Benchmark passages are already passage-sized: about one chunk each, as published baselines embed them."""


def evaluation_settings(settings: Settings, chunk_size: int | None = None) -> Settings:
    """The user's settings with the evaluation chunking (unless a chunk size is given)."""
    size = chunk_size or EVAL_CHUNK_SIZE
    return replace(settings, chunk_size=size, chunk_overlap=min(EVAL_CHUNK_OVERLAP, size // 4))


def default_cache() -> Path:
    return Path(os.environ.get("RAG_CACHE", Path.home() / ".cache" / "rag")).expanduser()


def build_index(dataset: Dataset, settings: Settings, cache: Path | None = None,
                progress: bool | None = None) -> tuple[Path, dict[str, str]]:
    """The index of the dataset's corpus, and the map from each indexed file path to its corpus id."""
    key = json.dumps([choose_embedder(settings.embed_model, None), settings.chunk_size, settings.chunk_overlap], sort_keys=True)
    folder = (cache or default_cache()) / "eval" / f"{dataset.name}-{dataset.fingerprint}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    id_of: dict[str, str] = {}
    for number, (doc_id, (title, text)) in enumerate(dataset.corpus.items()):
        path = docs / f"{number:07d}.txt"
        id_of[str(path.resolve())] = doc_id
        if not path.exists():
            body = f"{title}\n\n{text}" if title else text
            path.write_text(body or " ", encoding="utf-8")
    index_dir = folder / "index"
    Ingestor(replace(settings, index_dir=index_dir), progress=progress).run([docs])  # incremental: cheap once built
    return index_dir, id_of
