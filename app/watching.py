"""Folders the UI keeps in sync with the knowledge base (the Documents tab's "Watch folder")."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from ingest.pipeline import Ingestor
from ingest.watch import FolderWatcher, SyncResult
from rag.config import Settings
from rag.embed import Embedder


class WatchedFolders:
    """The server's folder watchers, one per folder and index: each sync is an incremental ingest with
    deletions applied (see :class:`ingest.watch.FolderWatcher`), and ``on_sync`` hears each one.

    Example:
    Usage, keeping ``~/papers`` in step with the index of ``settings``::

        folders = WatchedFolders(load_embedder, on_sync=lambda settings, result: None)
        folders.watch(settings, Path("~/papers").expanduser())
        [str(folder) for folder, _ in folders.of(settings.index_dir)]  # ['/home/me/papers']
    """

    def __init__(self, embedders: Callable[[str, int], Embedder],
                 on_sync: Callable[[Settings, SyncResult], object] = lambda settings, result: None,
                 debounce_s: float = 2.0) -> None:
        self._embedders = embedders
        self._on_sync = on_sync
        self._debounce_s = debounce_s
        self._watchers: dict[tuple[Path, Path], FolderWatcher] = {}
        self._lock = threading.Lock()

    def watch(self, settings: Settings, folder: Path) -> FolderWatcher:
        """Start watching ``folder`` for this index (its first sync runs at once); the running watcher
        when there is one."""
        key = (settings.index_dir.resolve(), folder.resolve())
        with self._lock:
            if key not in self._watchers:
                ingestor = Ingestor(settings, embedders=self._embedders, progress=False, lock_wait=60.0)
                self._watchers[key] = FolderWatcher(
                    [folder], sync=lambda folders: ingestor.run(folders, prune=True), debounce_s=self._debounce_s,
                    on_sync=lambda result: self._on_sync(settings, result), ignore=[settings.index_dir]).start()
            return self._watchers[key]

    def unwatch(self, index_dir: Path, folder: Path) -> None:
        with self._lock:
            watcher = self._watchers.pop((index_dir.resolve(), folder.resolve()), None)
        if watcher is not None:
            watcher.stop()

    def of(self, index_dir: Path) -> list[tuple[Path, FolderWatcher]]:
        """The folders watched for this index, with their watchers."""
        with self._lock:
            return [(folder, watcher) for (index, folder), watcher in self._watchers.items() if index == index_dir.resolve()]
