"""One SQLite chunk store: a segment's pages and chunks, or a generation's catalog of files."""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.documents import LineBox
from rag.text import language_of

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS files(
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    pages INTEGER NOT NULL DEFAULT 0,
    chunks INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error TEXT,
    ingested_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files(sha256);
CREATE TABLE IF NOT EXISTS pages(
    path TEXT NOT NULL,
    number INTEGER NOT NULL,
    text TEXT NOT NULL,
    PRIMARY KEY (path, number)
);
CREATE TABLE IF NOT EXISTS chunks(
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    page INTEGER NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text TEXT NOT NULL,
    text_sha TEXT NOT NULL,
    tokens TEXT NOT NULL,
    n_tokens INTEGER NOT NULL,
    n_unknown INTEGER NOT NULL,
    lang TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE INDEX IF NOT EXISTS chunks_text_sha ON chunks(text_sha);
CREATE TABLE IF NOT EXISTS page_lines(
    path TEXT NOT NULL,
    number INTEGER NOT NULL,
    lines TEXT NOT NULL,
    PRIMARY KEY (path, number)
);
"""
_PAGE_LINES = "page_lines"
"""The lines of pages read by OCR with their boxes, as JSON ``[[text, left, top, right, bottom], ...]``; a
store written before OCR lacks the table and reads as having none."""

PageContent = tuple[int, str, tuple[LineBox, ...]]
"""A page as stored: its number, its text, and its OCR lines (none for a text layer)."""


def _migrate(db: sqlite3.Connection) -> None:
    """Bring an older store (copied from the live generation) up to ``SCHEMA_VERSION``."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if version == 1 and "chunks" in tables:  # 1 -> 2: each chunk's language
        db.create_function("language_of", 1, language_of, deterministic=True)
        db.execute("ALTER TABLE chunks ADD COLUMN lang TEXT NOT NULL DEFAULT ''")
        db.execute("UPDATE chunks SET lang = language_of(text)")


@dataclass(frozen=True)
class FileRecord:
    """One source file as the index knows it; ``status`` is ``ok`` or ``failed`` (see ``error``)."""

    path: str
    sha256: str
    size: int
    mtime_ns: int
    pages: int = 0
    chunks: int = 0
    status: str = "ok"
    error: str | None = None
    ingested_at: str | None = None


@dataclass(frozen=True)
class ChunkRow:
    """A stored chunk; ``tokens`` are its BM25 tokens, ``n_unknown`` its [UNK] count under the embedder."""

    id: int
    path: str
    page: int
    start: int
    end: int
    text: str
    text_sha: str
    tokens: tuple[str, ...]
    n_tokens: int
    n_unknown: int


class ChunkStore:
    """Files, pages and chunks of one index generation.

    Example:
        >>> store = ChunkStore.create(Path("example.sqlite"))
        >>> store.files(), store.chunk_id_array().tolist()
        ([], [])
    """

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    @classmethod
    def create(cls, path: Path) -> ChunkStore:
        """Open (creating if needed) a writable staging store."""
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=DELETE")
        db.execute("PRAGMA synchronous=OFF")  # a staging copy: publish() fsyncs it before it goes live
        _migrate(db)
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return cls(db)

    @staticmethod
    def version(path: Path) -> int:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()

    @classmethod
    def open_readonly(cls, path: Path) -> ChunkStore:
        """Open a published generation's store; it never changes, so SQLite skips locking."""
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"{path}: chunk store format {version}, this version reads {SCHEMA_VERSION}; run `rag ingest` on the index once to upgrade it"
            )
        return cls(db)

    def close(self) -> None:
        self._db.close()

    # files -------------------------------------------------------------------------------------
    def file(self, path: str) -> FileRecord | None:
        row = self._db.execute("SELECT * FROM files WHERE path = ?", (path,)).fetchone()
        return FileRecord(*row) if row else None

    def files(self) -> list[FileRecord]:
        return [FileRecord(*row) for row in self._db.execute("SELECT * FROM files ORDER BY path")]

    def indexed_file_with_sha(self, sha256: str) -> FileRecord | None:
        """A file already indexed with this content, whose chunks can be copied instead of re-made."""
        row = self._db.execute(
            "SELECT * FROM files WHERE sha256 = ? AND status = 'ok' AND chunks > 0 LIMIT 1", (sha256,)
        ).fetchone()
        return FileRecord(*row) if row else None

    def put_file(self, record: FileRecord) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO files(path, sha256, size, mtime_ns, pages, chunks, status, error)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (record.path, record.sha256, record.size, record.mtime_ns, record.pages, record.chunks,
             record.status, record.error),
        )

    def delete_file(self, path: str) -> list[int]:
        """Remove a file with its pages and chunks; returns the removed chunk ids."""
        ids = self.chunk_ids(path)
        with self._db:
            self._db.execute("BEGIN")
            for table in ("chunks", "pages", _PAGE_LINES, "files"):
                self._db.execute(f"DELETE FROM {table} WHERE path = ?", (path,))
        return ids

    # pages and chunks ----------------------------------------------------------------------------
    def chunk_ids(self, path: str) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE path = ? ORDER BY id", (path,))]

    def next_chunk_id(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(id), -1) + 1 FROM chunks").fetchone()[0])

    def chunk_ids_with_text(self, text_sha: str) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE text_sha = ?", (text_sha,))]

    def token_counts(self, path: str | None = None) -> list[tuple[str, int, int]]:
        """``(language, tokens, of which [UNK])`` of a file's chunks, or of every chunk."""
        where, params = ("WHERE path = ?", (path,)) if path is not None else ("", ())
        return list(self._db.execute(f"SELECT lang, SUM(n_tokens), SUM(n_unknown) FROM chunks {where} GROUP BY lang", params))

    def execute(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run one statement on this store's database (for tables kept beside the schema)."""
        return self._db.execute(sql, params)

    def replace_content(self, record: FileRecord, pages: Sequence[PageContent], chunks: Sequence[ChunkRow]) -> None:
        """Store a file's pages and chunks in one transaction, replacing what it had."""
        with self._db:
            self._db.execute("BEGIN")
            for table in ("chunks", "pages", _PAGE_LINES):
                self._db.execute(f"DELETE FROM {table} WHERE path = ?", (record.path,))
            self._db.executemany("INSERT INTO pages VALUES (?, ?, ?)", ((record.path, n, t) for n, t, _ in pages))
            self._db.executemany(f"INSERT INTO {_PAGE_LINES} VALUES (?, ?, ?)", (
                (record.path, n, json.dumps([[line.text, *line.box] for line in lines], ensure_ascii=False))
                for n, _, lines in pages if lines))
            self._db.executemany(
                "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((c.id, c.path, c.page, c.start, c.end, c.text, c.text_sha, " ".join(c.tokens), c.n_tokens,
                  c.n_unknown, language_of(c.text)) for c in chunks),
            )
            self.put_file(record)

    def pages(self, path: str) -> list[PageContent]:
        return [(number, text, self.page_lines(path, number))
                for number, text in self._db.execute("SELECT number, text FROM pages WHERE path = ? ORDER BY number", (path,))]

    def page_lines(self, path: str, number: int) -> tuple[LineBox, ...]:
        """The OCR lines of a page with their boxes; none for a page read from its text layer."""
        try:
            row = self._db.execute(f"SELECT lines FROM {_PAGE_LINES} WHERE path = ? AND number = ?", (path, number)).fetchone()
        except sqlite3.OperationalError:  # a store from before OCR
            return ()
        return tuple(LineBox(text, (left, top, right, bottom)) for text, left, top, right, bottom in json.loads(row[0])) if row else ()

    def first_page(self, path: str) -> str:
        """The text of a file's first page ("" when it has none)."""
        row = self._db.execute("SELECT text FROM pages WHERE path = ? ORDER BY number LIMIT 1", (path,)).fetchone()
        return row[0] if row else ""

    def chunks_of(self, path: str) -> list[ChunkRow]:
        return self._rows("WHERE path = ? ORDER BY id", (path,))

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        wanted = [int(i) for i in ids]
        rows: dict[int, ChunkRow] = {}
        for start in range(0, len(wanted), 500):
            part = wanted[start : start + 500]
            for row in self._rows(f"WHERE id IN ({','.join('?' * len(part))})", part):
                rows[row.id] = row
        return rows

    def all_tokens(self) -> Iterator[tuple[int, list[str]]]:
        """``(chunk id, BM25 tokens)`` for every chunk, in id order."""
        for chunk_id, tokens in self._db.execute("SELECT id, tokens FROM chunks ORDER BY id"):
            yield chunk_id, tokens.split(" ") if tokens else []

    def chunk_id_array(self) -> np.ndarray:
        """Every chunk id, ascending."""
        return np.fromiter((row[0] for row in self._db.execute("SELECT id FROM chunks ORDER BY id")), dtype=np.int64)

    def chunk_locations(self) -> Iterator[tuple[int, str, int, str]]:
        """``(id, path, page, language)`` of every chunk."""
        yield from self._db.execute("SELECT id, path, page, lang FROM chunks ORDER BY id")

    def neighbours(self, chunk: ChunkRow, window: int) -> list[ChunkRow]:
        """The chunk and up to ``window`` chunks either side of it in the same file, in order."""
        return self._rows("WHERE path = ? AND id BETWEEN ? AND ? ORDER BY id", (chunk.path, chunk.id - window, chunk.id + window))

    def _rows(self, where: str, params: Sequence[object]) -> list[ChunkRow]:
        query = f'SELECT id, path, page, start, "end", text, text_sha, tokens, n_tokens, n_unknown FROM chunks {where}'
        return [
            ChunkRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], tuple(r[7].split(" ")) if r[7] else (), r[8], r[9])
            for r in self._db.execute(query, params)
        ]
