"""Folder sync: files added, changed, renamed and deleted reach the index without another command."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from ingest.watch import FolderWatcher
from rag.generate.extractive import ExtractiveGenerator
from rag.index import Index
from rag.pipeline import AnswerPipeline
from rag.retrieve import Retriever
from tests.conftest import ROOT

LANTERN = "The Lumen lantern warranty lasts two years from the date of purchase."
KETTLE = "The Boreal kettle boils one litre of water in ninety seconds."


def _indexed(ingestor: Ingestor) -> set[str]:
    return {Path(f.path).name for f in Index.open(ingestor.settings.index_dir).files() if f.status == "ok"}


def test_adds_changes_renames_and_deletions_are_synced(tmp_path: Path, ingestor: Ingestor, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lantern.md").write_text(LANTERN, encoding="utf-8")
    lines: list[str] = []
    watcher = FolderWatcher([docs], sync=lambda folders: ingestor.run(folders, prune=True), debounce_s=0.3,
                            on_change=lines.append, ignore=[ingestor.settings.index_dir])
    with watcher:
        first = watcher.wait_synced(timeout=120)
        assert first is not None and first.report is not None and first.report.added == 1
        assert _indexed(ingestor) == {"lantern.md"}

        (docs / "kettle.md").write_text(KETTLE, encoding="utf-8")
        (docs / "notes.tmp").write_text("not a document", encoding="utf-8")  # no sync line for what is not ingested
        added = watcher.wait_synced(after=1, timeout=120)
        assert added is not None and added.changes and all("kettle.md" in c for c in added.changes)
        assert _indexed(ingestor) == {"lantern.md", "kettle.md"}

        (docs / "kettle.md").write_text(KETTLE.replace("ninety", "sixty"), encoding="utf-8")
        changed = watcher.wait_synced(after=2, timeout=120)
        assert changed is not None and changed.report is not None and changed.report.updated == 1

        (docs / "kettle.md").rename(docs / "boreal-kettle.md")
        renamed = watcher.wait_synced(after=3, timeout=120)
        assert renamed is not None and any(c.startswith("renamed ") for c in renamed.changes)
        assert _indexed(ingestor) == {"lantern.md", "boreal-kettle.md"}

        # a deleted file is no longer cited after the next sync
        retriever = Retriever(Index.open(ingestor.settings.index_dir), embedder)
        pipeline = AnswerPipeline(retriever, ExtractiveGenerator(embedder, retriever.tokenizer))
        assert "lantern.md" in {Path(c.source).name for c in pipeline.answer("How long is the Lumen lantern warranty?").citations}
        (docs / "lantern.md").unlink()
        deleted = watcher.wait_synced(after=4, timeout=120)
        assert deleted is not None and deleted.report is not None and deleted.report.removed == 1
    retriever = Retriever(Index.open(ingestor.settings.index_dir), embedder)
    answer = AnswerPipeline(retriever, ExtractiveGenerator(embedder, retriever.tokenizer)).answer(
        "How long is the Lumen lantern warranty?")
    assert "lantern.md" not in {Path(c.source).name for c in answer.citations}
    assert all(p.source.endswith("boreal-kettle.md") for p in answer.passages)
    assert any(line.startswith("synced: 0 added, 0 updated, 1 removed") for line in lines)
    assert not any("notes.tmp" in line for line in lines)


def test_a_burst_of_changes_is_one_sync_and_one_ingest_runs_at_a_time(tmp_path: Path, ingestor: Ingestor):
    docs = tmp_path / "docs"
    docs.mkdir()
    running, overlapped = threading.Lock(), []

    def sync(folders: list[Path]):
        if not running.acquire(blocking=False):
            overlapped.append(folders)
            return None
        try:
            return ingestor.run(folders, prune=True)
        finally:
            running.release()

    with FolderWatcher([docs], sync=sync, debounce_s=1.0) as watcher:
        assert watcher.wait_synced(timeout=120) is not None
        for n in range(12):
            (docs / f"note-{n}.md").write_text(f"Note number {n} is about topic {n * 7}.", encoding="utf-8")
        burst = watcher.wait_synced(after=1, timeout=120)
        assert burst is not None and burst.report is not None and burst.report.added == 12
        assert watcher.wait_synced(after=2, timeout=3) is None, "twelve files written at once are one sync"
    assert overlapped == []


def test_the_index_inside_a_watched_folder_does_not_trigger_syncs(tmp_path: Path, ingestor: Ingestor):
    syncs: list[int] = []
    docs = ingestor.settings.index_dir.parent  # the index lies inside the watched folder
    (docs / "a.md").write_text(LANTERN, encoding="utf-8")
    with FolderWatcher([docs], sync=lambda folders: ingestor.run(folders, prune=True), debounce_s=0.3,
                       on_sync=lambda result: syncs.append(1), ignore=[ingestor.settings.index_dir]) as watcher:
        assert watcher.wait_synced(timeout=120) is not None
        assert watcher.wait_synced(after=1, timeout=3) is None, "writing the index is no change to sync"
    assert len(syncs) == 1


def test_rag_ingest_watch_prints_a_line_per_change_and_stops_on_ctrl_c(tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "lantern.md").write_text(LANTERN, encoding="utf-8")
    command = [sys.executable, "-m", "app.cli", "ingest", str(docs), "--index", str(tmp_path / "index"), "--watch",
               "--debounce", "0.3", "--embedder", "minilm"]
    with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}) as watching:
        assert watching.stdout is not None
        lines = [watching.stdout.readline(), watching.stdout.readline()]
        assert lines[0].startswith("watching ") and lines[1].startswith("synced: 1 added"), lines
        (docs / "lantern.md").unlink()
        lines = [watching.stdout.readline(), watching.stdout.readline()]
        assert lines[0] == f"deleted {docs / 'lantern.md'}\n" and lines[1].startswith("synced: 0 added, 0 updated, 1 removed")
        watching.send_signal(signal.SIGINT)
        assert watching.wait(timeout=60) == 0
        assert "stopped watching" in watching.stdout.read()


@pytest.mark.parametrize("given", ["file", "missing"])
def test_watch_needs_folders(tmp_path: Path, given: str):
    target = tmp_path / "a.md"
    if given == "file":
        target.write_text(LANTERN, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(target), "--index", str(tmp_path / "index"),
                           "--watch"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "not a folder" in done.stderr and "Traceback" not in done.stderr
