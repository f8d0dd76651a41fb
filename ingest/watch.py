"""Keep the index in sync with folders as files are added, changed, renamed or deleted.

watchdog reports each change; changes are gathered until the folders have been quiet for ``debounce_s``
(a copy of a hundred files is one sync, not a hundred), then one ingest runs over the folders with
deletions applied. Only one ingest runs at a time: changes during a sync start another one after it.
Each sync is an ordinary incremental ingest, so unchanged files are skipped and a crash leaves the
previous generation live.

Usage, keeping an index in step with ``~/papers`` (``ingestor`` an :class:`ingest.pipeline.Ingestor`)::

    watcher = FolderWatcher([Path("~/papers").expanduser()], sync=lambda folders: ingestor.run(folders, prune=True),
                            on_change=print)
    with watcher:
        watcher.wait_synced(timeout=60)
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ingest.loaders import is_supported
from ingest.pipeline import IngestReport

Sync = Callable[[list[Path]], IngestReport]
"""Ingest these folders with deletions applied (``Ingestor.run(folders, prune=True)``)."""

_VERBS = {"created": "added", "modified": "changed", "deleted": "deleted", "moved": "renamed"}


@dataclass
class SyncResult:
    """One sync: the changes that started it (lines such as ``"added /docs/a.pdf"``), its report or the
    error that stopped it."""

    changes: list[str] = field(default_factory=list)
    report: IngestReport | None = None
    error: str | None = None
    finished_at: float = 0.0


class FolderWatcher:
    """Watch ``folders`` and run ``sync`` after each burst of changes (see the module's docstring).

    ``ignore`` holds folders whose changes are not the user's (the index itself, when it lies inside a
    watched folder). ``on_change`` hears a line per change and per sync; ``on_sync`` gets each
    :class:`SyncResult`. The first sync runs at start, so the index matches the folders from then on.
    """

    def __init__(self, folders: Sequence[Path], sync: Sync, debounce_s: float = 2.0,
                 on_change: Callable[[str], object] | None = None, on_sync: Callable[[SyncResult], object] | None = None,
                 ignore: Sequence[Path] = ()) -> None:
        self.folders = [Path(os.path.abspath(folder)) for folder in folders]
        self.debounce_s = debounce_s
        self.last: SyncResult | None = None
        self.syncs = 0
        self._sync = sync
        self._on_change = on_change or (lambda line: None)
        self._on_sync = on_sync or (lambda result: None)
        self._ignore = [Path(os.path.abspath(path)) for path in ignore]
        self._pending: list[str] = []
        self._due: float | None = time.monotonic()  # the first sync
        self._changed = threading.Condition()
        self._synced = threading.Condition()
        self._stopping = False
        self._observer = Observer()
        self._worker = threading.Thread(target=self._run, name="rag: folder sync", daemon=True)

    def start(self) -> FolderWatcher:
        handler = _Handler(self._noticed)
        for folder in self.folders:
            if not folder.is_dir():
                raise NotADirectoryError(f"{folder}: not a folder")
            self._observer.schedule(handler, str(folder), recursive=True)
        self._observer.start()
        self._worker.start()
        return self

    def stop(self) -> None:
        """Stop watching; a sync in progress finishes first."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._observer.stop()
        self._observer.join()
        self._worker.join()

    def __enter__(self) -> FolderWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._worker.is_alive()

    def wait_synced(self, after: int = 0, timeout: float | None = None) -> SyncResult | None:
        """Block until more than ``after`` syncs have finished; the latest, or None on timeout."""
        with self._synced:
            self._synced.wait_for(lambda: self.syncs > after, timeout)
            return self.last if self.syncs > after else None

    def _noticed(self, kind: str, path: str, destination: str = "", folder: bool = False) -> None:
        if not any((folder or is_supported(Path(p))) and not self._ignored(Path(p)) for p in (path, destination) if p):
            return
        line = f"{_VERBS[kind]} {path}" + (f" -> {destination}" if destination else "")
        with self._changed:
            self._pending.append(line)
            self._due = time.monotonic() + self.debounce_s
            self._changed.notify_all()
        self._on_change(line)

    def _ignored(self, path: Path) -> bool:
        """Hidden below a watched folder (as the scan skips it), or inside an ignored folder."""
        if any(path.is_relative_to(ignored) for ignored in self._ignore):
            return True
        below = [path.relative_to(f) for f in self.folders if path.is_relative_to(f)]
        return any(part.startswith(".") for part in (below[0].parts if below else path.parts))

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (self._due is None or time.monotonic() < self._due):
                    self._changed.wait(None if self._due is None else max(self._due - time.monotonic(), 0.01))
                if self._stopping:
                    return
                result = SyncResult(changes=self._pending)
                self._pending, self._due = [], None
            try:
                result.report = self._sync(self.folders)
            except Exception as exc:  # the index stays as it was; the next change tries again
                result.error = " ".join(str(exc).split()) or type(exc).__name__
            result.finished_at = time.time()
            self._on_change(describe(result))
            with self._synced:
                self.last, self.syncs = result, self.syncs + 1
                self._synced.notify_all()
            self._on_sync(result)


def describe(result: SyncResult) -> str:
    """One line for a sync: ``synced: 1 added, 0 updated, 2 removed, 0 failed`` or why it failed. Failed
    files are named at the first sync and when they changed (not every sync again)."""
    if result.report is None:
        return f"sync failed: {result.error}; the index is unchanged"
    s = result.report.summary()
    named = [f for f in s["failed"] if not result.changes or any(f["path"] in change for change in result.changes)]
    failed = "".join(f"; failed: {f['path']}: {f['reason']}" for f in named)
    return f"synced: {s['added']} added, {s['updated']} updated, {s['removed']} removed, {len(s['failed'])} failed{failed}"


class _Handler(FileSystemEventHandler):
    def __init__(self, noticed: Callable[..., None]) -> None:
        self._noticed = noticed

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Files' changes; a folder's only when it comes, goes or moves (its files go with it)."""
        if event.event_type not in _VERBS or (event.is_directory and event.event_type == "modified"):
            return
        self._noticed(event.event_type, os.fsdecode(event.src_path), os.fsdecode(event.dest_path or ""), event.is_directory)
