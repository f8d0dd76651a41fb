"""Vectors computed but not yet published, kept so a crashed or interrupted ingest never embeds twice."""
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class PendingVectors:
    """A small SQLite table of ``(model, text sha256) -> vector``, written one batch per transaction.

    Emptied after each successful publish, when every vector it held lives in the dense index.

    Example:
        >>> pending = PendingVectors(Path("pending.sqlite"), "all-MiniLM-L6-v2")
        >>> pending.put(["ab"], np.ones((1, 2), np.float32)); pending.get(["ab"])["ab"].tolist()
        [1.0, 1.0]
    """

    def __init__(self, path: Path, model: str) -> None:
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors(model TEXT, sha TEXT, vector BLOB, PRIMARY KEY(model, sha))")
        self._model = model

    def get(self, shas: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(shas), 500):
            part = list(shas[start : start + 500])
            rows = self._db.execute(
                f"SELECT sha, vector FROM vectors WHERE model = ? AND sha IN ({','.join('?' * len(part))})",
                [self._model, *part],
            )
            found.update((sha, np.frombuffer(blob, dtype=np.float32)) for sha, blob in rows)
        return found

    def put(self, shas: Sequence[str], vectors: np.ndarray) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                ((self._model, sha, np.asarray(v, dtype=np.float32).tobytes()) for sha, v in zip(shas, vectors, strict=True)),
            )

    def clear(self) -> None:
        self._db.execute("DELETE FROM vectors")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.execute("VACUUM")

    def close(self) -> None:
        self._db.close()
