"""File names inside a generation folder and its segments, and reading its manifest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = 2
"""Generations of format 2 hold segments (see rag.index.segments); format 1 held one chunks.sqlite with
the files, one dense.faiss and one bm25 folder, and is laid out again by the next ingest."""
MANIFEST = "manifest.json"
CATALOG = "files.sqlite"
DEAD = "dead.npy"
CHUNKS = "chunks.sqlite"
DENSE = "dense.faiss"
SPARSE = "bm25"
"""The last three: inside each segment folder (and, in format 1, the generation folder)."""


class IndexNotFoundError(RuntimeError):
    """The index folder is missing or unreadable; the message says which and why."""


def read_manifest(generation: Path) -> dict[str, Any]:
    try:
        return json.loads((generation / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexNotFoundError(f"{generation}: cannot read {MANIFEST} ({exc})") from exc
