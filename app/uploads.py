"""Saving uploaded files into the index's upload folder: safe names, a size limit, supported types only."""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

from ingest.loaders import LOADERS

UPLOADS = "uploads"
"""Uploaded files live in ``INDEX_DIR/uploads``; deleting such a document deletes the file too."""

_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


class UploadRejected(ValueError):
    """An upload that was not saved; the message is one line for the person who sent it."""


def safe_name(name: str) -> str:
    """The file name without folders, control characters, characters that are unsafe on any system,
    or leading dots; letters of every script (中文 names) are kept.

    >>> safe_name("../../etc/passwd")
    'passwd'
    >>> safe_name("..\\\\年报 2024?.pdf")
    '年报 2024_.pdf'
    """
    base = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip().lstrip(".").strip()
    stem, dot, suffix = cleaned.rpartition(".")
    if dot and len(cleaned.encode("utf-8")) > 200:  # most file systems allow 255 bytes
        cleaned = stem.encode("utf-8")[:180].decode("utf-8", "ignore") + dot + suffix
    return cleaned or "upload"


def save_upload(name: str, data: bytes, folder: Path, limit_mb: int) -> Path:
    """Write the upload under ``folder`` and return its path; the same content uploaded again returns the
    existing file, and a different file with a taken name gets `` (2)``, `` (3)``... instead of overwriting."""
    if len(data) > limit_mb * 1024 * 1024:
        raise UploadRejected(f"{len(data) / 1024 / 1024:.1f} MB is over the {limit_mb} MB limit")
    if not data:
        raise UploadRejected("empty file (0 bytes)")
    clean = safe_name(name)
    suffix = Path(clean).suffix.lower()
    if suffix not in LOADERS:
        raise UploadRejected(f"unsupported file type {suffix or '(no extension)'!r}; supported: {', '.join(sorted(LOADERS))}")
    folder.mkdir(parents=True, exist_ok=True)
    stem = Path(clean).stem
    digest = hashlib.sha256(data).digest()
    for attempt in range(1, 1000):
        target = folder / (clean if attempt == 1 else f"{stem} ({attempt}){Path(clean).suffix}")
        if target.exists():
            if hashlib.sha256(target.read_bytes()).digest() == digest:
                return target
            continue
        temporary = folder / f".{target.name}.{os.getpid()}.part"
        temporary.write_bytes(data)
        os.replace(temporary, target)
        return target
    raise UploadRejected("too many files with this name")


def is_upload(path: Path, index_dir: Path) -> bool:
    """Whether ``path`` is a copy the UI saved (and so may delete)."""
    return path.resolve().parent == (index_dir / UPLOADS).resolve()
