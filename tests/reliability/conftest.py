"""Shared pieces of the reliability tests: the CLI in a subprocess, an index's content, a two-state corpus."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from rag.index import Index
from tests.conftest import ROOT

RAG = [sys.executable, "-m", "app.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}


def rag(*args: str, timeout: float = 300, config: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a subprocess; ``config`` is a rag.toml for it (RAG_CONFIG)."""
    env = {**ENV, "RAG_CONFIG": str(config)} if config else ENV
    return subprocess.run([*RAG, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def start_rag(*args: str) -> subprocess.Popen:
    return subprocess.Popen([*RAG, *args], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def index_content(index_dir: Path) -> tuple:
    """What an index holds, comparable between indexes of the same files: each file's path, hash and
    status, and each chunk's place and text. Opening it also checks that FAISS, BM25 and the chunk store
    hold the same chunk ids."""
    index = Index.open(index_dir)
    try:
        ids = sorted(int(i) for i in index.store.chunk_id_array())
        assert sorted(int(i) for i in index.sparse.ids) == ids, "BM25 and the chunk store disagree"
        assert index.dense is not None and len(index.dense) == len(ids), "FAISS and the chunk store disagree"
        files = sorted((f.path, f.sha256, f.status, f.chunks) for f in index.files())
        chunks = sorted((c.path, c.page, c.start, c.text) for c in index.chunks(ids))
        return files, chunks
    finally:
        index.close()


def notes(n: int, version: str) -> dict[str, str]:
    """``n`` short notes; each names its own unique part number so a query can find exactly that note."""
    return {f"note-{i:03d}.md": f"# Note {i} ({version})\n\nPart QX{i:03d}Z is replaced every {i % 9 + 2} months. "
            + f"The {version} procedure for part QX{i:03d}Z takes {i % 5 + 1} steps.\n\n" * 6 for i in range(n)}


@dataclass
class TwoCorpora:
    """One folder that moves from an old corpus to a new one (files changed, added and deleted), and
    an index of each state built by an uninterrupted ingest."""

    docs: Path
    old_index: Path
    new_index: Path
    old: tuple
    new: tuple
    seconds: float
    """Wall time of an uninterrupted incremental ingest from the old corpus to the new one."""

    def fresh_copy_of_old(self, where: Path) -> Path:
        if where.exists():
            shutil.rmtree(where)
        shutil.copytree(self.old_index, where, symlinks=True)
        return where


@pytest.fixture(scope="session")
def two_corpora(tmp_path_factory: pytest.TempPathFactory, tiny_sentence_transformer: Path) -> TwoCorpora:
    import time

    base = tmp_path_factory.mktemp("two-corpora")
    docs = base / "docs"
    docs.mkdir()
    for name, text in notes(60, "old").items():
        (docs / name).write_text(text, encoding="utf-8")
    embedder = ["--embedder", str(tiny_sentence_transformer)]
    old_index = base / "old-index"
    assert rag("ingest", str(docs), "--index", str(old_index), *embedder).returncode == 0
    new = notes(90, "new")
    for name in list(new)[:20]:  # 20 unchanged, 30 changed, 10 deleted, 30 added
        new[name] = notes(60, "old")[name]
    for name, text in new.items():
        (docs / name).write_text(text, encoding="utf-8")
    for i in range(50, 60):
        (docs / f"note-{i:03d}.md").unlink()
    new_index = base / "new-index"
    shutil.copytree(old_index, new_index)
    started = time.monotonic()
    result = rag("ingest", str(docs), "--index", str(new_index), "--prune", *embedder)
    assert result.returncode == 0, result.stderr
    return TwoCorpora(docs, old_index, new_index, index_content(old_index), index_content(new_index),
                      time.monotonic() - started)


def can_mount() -> bool:
    """Whether this test run may mount a tmpfs (root with CAP_SYS_ADMIN, as on the CI machine)."""
    probe = Path(tempfile.mkdtemp(prefix="rag-mount-probe-"))
    try:
        if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)],
                                               capture_output=True).returncode != 0:
            return False
        subprocess.run(["umount", str(probe)], check=True)
        return True
    except OSError:
        return False
    finally:
        probe.rmdir()


@contextmanager
def tmpfs(size_kb: int) -> Iterator[Path]:
    """A fresh tmpfs of ``size_kb`` KiB, unmounted afterwards."""
    where = Path(tempfile.mkdtemp(prefix="rag-tmpfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that takes all but about ``leave_bytes`` of the free space of ``folder``'s file system."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with filler.open("wb") as out:
        out.write(b"\0" * max(0, free - leave_bytes))
    return filler
