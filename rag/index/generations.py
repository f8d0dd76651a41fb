"""The index folder: immutable generations, a ``CURRENT`` pointer replaced atomically, a writer lock.

    INDEX_DIR/CURRENT        name of the live generation
    INDEX_DIR/gen-000042/    a published generation (never modified again)
    INDEX_DIR/staging-PID/   a generation being written; never read
    INDEX_DIR/.lock          held (flock) by the one writer
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import time
from pathlib import Path

CURRENT = "CURRENT"
LOCK = ".lock"
_GENERATION = re.compile(r"^gen-(\d{6,})$")


class IndexLockedError(RuntimeError):
    """Another writer holds the index."""


def live_generation(index_dir: Path) -> Path | None:
    """The published generation ``CURRENT`` names, or ``None`` for an empty index."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return index_dir / name


def _number(path: Path) -> int:
    match = _GENERATION.match(path.name)
    return int(match.group(1)) if match else -1


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(index_dir: Path, staging: Path) -> Path:
    """Make a fully written staging folder the live generation; a crash at any instant leaves one live."""
    for file in staging.rglob("*"):
        if file.is_file():
            _fsync(file)
    _fsync(staging)
    numbers = [_number(p) for p in index_dir.iterdir()]
    final = index_dir / f"gen-{max(numbers + [0]) + 1:06d}"
    os.rename(staging, final)
    _fsync(index_dir)
    pointer = index_dir / f"{CURRENT}.tmp"
    with pointer.open("w", encoding="utf-8") as fh:
        fh.write(final.name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(pointer, index_dir / CURRENT)
    _fsync(index_dir)
    return final


def collect_garbage(index_dir: Path, keep: int = 2) -> None:
    """Delete crashed staging folders, unpublished generations and all but ``keep`` published ones.

    The generation before the live one is kept so that readers that opened it just before a publish
    can finish. Call only while holding the writer lock.
    """
    live = live_generation(index_dir)
    live_number = _number(live) if live else 0
    published = sorted((p for p in index_dir.iterdir() if 0 <= _number(p) <= live_number), key=_number)
    too_old = set(published[: max(0, len(published) - keep)])
    for path in index_dir.iterdir():
        stale_staging = path.name.startswith("staging-") or path.name == f"{CURRENT}.tmp"
        unpublished = _number(path) > live_number
        if stale_staging or unpublished or path in too_old:
            shutil.rmtree(path) if path.is_dir() else path.unlink()


class WriterLock:
    """An exclusive ``flock`` on ``INDEX_DIR/.lock``; waits up to ``wait`` seconds, then fails clearly.

    Example:
        >>> with WriterLock(Path("some-index"), wait=0):
        ...     pass
    """

    def __init__(self, index_dir: Path, wait: float = 0.0) -> None:
        self._path = index_dir / LOCK
        self._wait = wait
        self._fd: int | None = None

    def __enter__(self) -> WriterLock:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self._wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise IndexLockedError(
                        f"{self._path.parent}: another rag ingest (pid {holder}) is writing this index; "
                        "try again when it finishes"
                    ) from exc
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
