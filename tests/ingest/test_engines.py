"""Ingest engines: the parse pool and Ray give exactly what parsing and embedding in the ingest process give."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from ingest.chunking import Chunker
from ingest.engines import OUT_OF_MEMORY, LocalEngine, ParseJob, parse_file
from rag.index import Index
from testkit.demo import demo_docs
from tests.conftest import CORPUS, ROOT
from tests.hostile import big_text, many_pages_pdf, stream_bomb_pdf

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
        assert len(engine.workers) == 2  # the files really went to worker processes
    assert [name for name, _ in pooled] == [name for name, _ in jobs]
    for (_, ours), (_, theirs) in zip(pooled, inline, strict=True):
        assert (ours.pages, ours.chunks, ours.error) == (theirs.pages, theirs.chunks, theirs.error)
    errors = {name: parsed.error for name, parsed in pooled if parsed.error}
    assert set(errors) == {"broken.pdf", "blank.md"} and "PDF" in errors["broken.pdf"]
    assert all(parsed.seconds["parse"] > 0 for _, parsed in pooled if not parsed.error)


@needs_cores
def test_one_file_starts_one_worker_not_the_whole_pool(tmp_path: Path):
    jobs = _jobs(demo_docs(tmp_path / "docs"))[:1]
    with LocalEngine(processes=2) as engine:
        [(_, parsed)] = engine.parse(iter(jobs), Chunker())
        assert parsed.error is None and parsed.chunks
        assert len(engine.workers) == 1


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
def test_files_in_killed_workers_are_parsed_again_and_none_is_lost(tmp_path: Path):
    folder = _mixed_folder(tmp_path)
    for n in range(6):
        (folder / f"note-{n}.md").write_text(f"Note {n}: the valve closes at {n} bar.\n\nSecond paragraph.", encoding="utf-8")
    jobs = _jobs(folder)
    chunker = Chunker()
    with LocalEngine(processes=2) as engine:
        results = engine.parse(iter(jobs), chunker)
        first = [next(results)]
        for worker in engine.workers:
            os.kill(worker.process.pid, signal.SIGKILL)
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


def test_a_parse_over_its_time_is_stopped_and_the_next_file_still_parses(tmp_path: Path):
    slow = stream_bomb_pdf(tmp_path, inflated_mb=100, pages=60)  # each page inflates 75 MB before pypdf stops
    note = tmp_path / "note.md"
    note.write_text("The valve closes at 3 bar.", encoding="utf-8")
    jobs = [(p.name, ParseJob(str(p), p.read_bytes())) for p in (slow, note)]
    with LocalEngine(processes=1, timeout=2) as engine:
        (_, stopped), (_, parsed) = engine.parse(iter(jobs), Chunker())
    assert stopped.error == "parsing took longer than 2 s (parse_timeout_s); the worker was stopped"
    assert parsed.error is None and parsed.chunks[0].text == "The valve closes at 3 bar."


def test_a_parse_over_its_memory_fails_alone(tmp_path: Path):
    big = big_text(tmp_path, 120)
    note = tmp_path / "note.md"
    note.write_text("The valve closes at 3 bar.", encoding="utf-8")
    jobs = [(p.name, ParseJob(str(p), p.read_bytes())) for p in (big, note)]
    with LocalEngine(processes=1, memory_mb=320) as engine:
        (_, failed), (_, parsed) = engine.parse(iter(jobs), Chunker())
    assert failed.error == OUT_OF_MEMORY
    assert parsed.error is None and parsed.peak_rss_mb < 320


@pytest.mark.parametrize("deaths", [1, 2])
def test_a_file_whose_worker_dies_is_retried_once_then_reported(tmp_path: Path, deaths: int):
    slow = many_pages_pdf(tmp_path, 1000)
    with LocalEngine(processes=1) as engine:
        results = engine.parse(iter([("slow", ParseJob(str(slow), slow.read_bytes()))]), Chunker())
        killed: list[int] = []
        killer = threading.Thread(target=_kill_busy_workers, args=(engine, deaths, killed))
        killer.start()
        [(_, parsed)] = list(results)
        killer.join()
    assert len(killed) == deaths and len(set(killed)) == deaths  # a fresh worker each time
    if deaths == 1:
        assert parsed.error is None and len(parsed.pages) == 1000
    else:
        assert parsed.error == "the parser crashed twice on this file (killed by signal 9, out of memory?)"


def _kill_busy_workers(engine: LocalEngine, times: int, killed: list[int]) -> None:
    deadline = time.monotonic() + 30
    while len(killed) < times and time.monotonic() < deadline:
        for worker in list(engine.workers):
            if worker.task is not None and worker.process.pid not in killed and worker.process.is_alive():
                time.sleep(0.05)  # the job is in the worker's hands
                os.kill(worker.process.pid, signal.SIGKILL)
                killed.append(worker.process.pid)
        time.sleep(0.001)
