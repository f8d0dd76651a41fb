"""Ingest engines: the parse pool and Ray give exactly what parsing and embedding in the ingest process give."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import Chunker
from ingest.engines import LocalEngine, ParseJob, parse_file
from rag.index import Index
from tests.conftest import CORPUS, ROOT, demo_docs

needs_cores = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="a parse pool needs two cores")


def _jobs(folder: Path) -> list[tuple[str, ParseJob]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [(p.name, ParseJob(str(p), p.read_bytes())) for p in files]


def _mixed_folder(base: Path) -> Path:
    """The demo documents, Chinese and English, with unreadable files between them."""
    folder = demo_docs(base / "docs")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj <<")
    (folder / "gbk.txt").write_bytes("第三章 保修条款。".encode("gb18030"))
    (folder / "blank.md").write_text("\n\n   \n", encoding="utf-8")
    return folder


@needs_cores
def test_the_pool_parses_like_the_ingest_process_in_the_same_order(tmp_path: Path):
    jobs = _jobs(_mixed_folder(tmp_path))
    chunker = Chunker(80, 10)
    inline = [(name, parse_file(job, chunker)) for name, job in jobs]
    with LocalEngine(processes=2) as engine:
        pooled = list(engine.parse(iter(jobs), chunker))
        assert engine._pool is not None  # the files really went to worker processes
    assert [name for name, _ in pooled] == [name for name, _ in jobs]
    for (_, ours), (_, theirs) in zip(pooled, inline, strict=True):
        assert (ours.pages, ours.chunks, ours.error) == (theirs.pages, theirs.chunks, theirs.error)
    errors = {name: parsed.error for name, parsed in pooled if parsed.error}
    assert set(errors) == {"broken.pdf", "blank.md"} and "PDF" in errors["broken.pdf"]
    assert all(parsed.seconds["parse"] > 0 for _, parsed in pooled if not parsed.error)


def test_a_few_files_are_parsed_without_starting_workers(tmp_path: Path):
    jobs = _jobs(demo_docs(tmp_path / "docs"))[:3]
    with LocalEngine(processes=4) as engine:
        assert len(list(engine.parse(iter(jobs), Chunker()))) == 3
        assert engine._pool is None


@pytest.mark.parametrize("processes", [1, 2])
def test_files_are_read_as_they_are_parsed_not_all_first(tmp_path: Path, processes: int):
    folder = tmp_path / "notes"
    folder.mkdir()
    for n in range(20):
        (folder / f"note-{n:02d}.md").write_text(f"Note {n}: the valve closes at {n} bar.", encoding="utf-8")
    pulled = []

    def jobs():
        for name, job in _jobs(folder):
            pulled.append(name)
            yield name, job

    with LocalEngine(processes=processes) as engine:
        results = engine.parse(jobs(), Chunker())
        next(results)
        assert len(pulled) <= max(4, 2 * engine.processes)  # a bounded window of files in memory, not the corpus
        assert len(list(results)) == 19


@needs_cores
def test_files_in_killed_workers_are_parsed_here_and_none_is_lost(tmp_path: Path):
    folder = _mixed_folder(tmp_path)
    for n in range(6):
        (folder / f"note-{n}.md").write_text(f"Note {n}: the valve closes at {n} bar.\n\nSecond paragraph.", encoding="utf-8")
    jobs = _jobs(folder)
    chunker = Chunker()
    with LocalEngine(processes=2) as engine:
        results = engine.parse(iter(jobs), chunker)
        first = [next(results)]
        for process in list(engine._pool._processes.values()):  # type: ignore[union-attr]
            os.kill(process.pid, signal.SIGKILL)
        rest = list(results)
    parsed = first + rest
    assert [name for name, _ in parsed] == [name for name, _ in jobs]
    assert [p.chunks for _, p in parsed] == [parse_file(job, chunker).chunks for _, job in jobs]


def _index_content(index_dir: Path) -> tuple[list, list, np.ndarray]:
    index = Index.open(index_dir)
    files = sorted((f.path, f.sha256, f.pages, f.chunks, f.status, f.error) for f in index.files())
    ids = [chunk_id for chunk_id, *_ in index.store.chunk_locations()]
    return files, index.chunks(ids), index.vectors(ids)


def _ingest(folder: Path, index_dir: Path, *engine: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(folder), "--index", str(index_dir),
                           "--json", *engine], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    assert done.returncode == 3, done.stderr  # 3: the broken files are reported, the rest committed
    return json.loads(done.stdout)


@pytest.mark.slow
def test_ray_engine_in_local_mode_builds_the_same_index_as_the_default_engine(tmp_path: Path):
    pytest.importorskip("ray.data")
    folder = _mixed_folder(tmp_path)
    if CORPUS.is_dir():
        shutil.copy(CORPUS / "zh" / "elegantpaper-cn.pdf", folder)
    local = _ingest(folder, tmp_path / "local")
    ray = _ingest(folder, tmp_path / "ray", "--engine", "ray")
    for key in ("added", "failed", "pages", "chunks", "embedded", "index"):
        assert ray[key] == local[key], key
    assert {Path(f["path"]).name for f in ray["failed"]} == {"broken.pdf", "blank.md"}
    files, chunks, vectors = _index_content(tmp_path / "local")
    ray_files, ray_chunks, ray_vectors = _index_content(tmp_path / "ray")
    assert ray_files == files and ray_chunks == chunks and len(chunks) >= 6
    np.testing.assert_allclose(ray_vectors, vectors, atol=1e-5)  # other batches, same vectors


def test_address_without_the_ray_engine_is_a_usage_error(tmp_path: Path):
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(tmp_path), "--index", str(tmp_path / "i"),
                           "--address", "auto"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2 and "--engine ray" in done.stderr


@pytest.mark.parametrize("address, reason", [("127.0.0.1:1", "nothing answers at 127.0.0.1:1"), ("nonsense", "is not HOST:PORT")])
def test_an_unreachable_ray_cluster_is_one_line_at_once(tmp_path: Path, address: str, reason: str):
    pytest.importorskip("ray")
    (tmp_path / "a.md").write_text("A note.", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(tmp_path), "--index", str(tmp_path / "i"),
                           "--engine", "ray", "--address", address], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 1 and reason in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "i").exists() or not any((tmp_path / "i").glob("gen-*"))
