"""File names inside one generation folder, and reading its manifest."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHUNKS = "chunks.sqlite"
DENSE = "dense.faiss"
SPARSE = "bm25"
MANIFEST = "manifest.json"


class IndexNotFoundError(RuntimeError):
    """The index folder is missing or unreadable; the message says which and why."""


def read_manifest(generation: Path) -> dict[str, Any]:
    try:
        return json.loads((generation / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise IndexNotFoundError(f"{generation}: cannot read {MANIFEST} ({exc})") from exc
