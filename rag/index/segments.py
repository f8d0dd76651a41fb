"""A generation's chunk store: a small catalog of files plus the segments holding their content.

    gen-000042/files.sqlite          the catalog: every file's record, and the segment holding its content
    gen-000042/dead.npy              chunk ids replaced or removed since their segment was written
    gen-000042/seg-000007/           a segment: chunks.sqlite (pages and chunks), dense.faiss, bm25/
    gen-000042/seg-000012/           ...

A segment is written once and then shared: the next generation hard-links its files instead of copying
them, so a commit writes only the changed files' segment, the catalog and the dead ids. A file lives in
exactly one segment; replacing it marks its old chunks dead and puts the new ones in the new segment.
"""
from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from rag.documents import LineBox
from rag.index.layout import CATALOG, CHUNKS, DEAD
from rag.index.store import ChunkRow, ChunkStore, FileRecord, PageContent

_LOCATIONS = "CREATE TABLE IF NOT EXISTS locations(path TEXT PRIMARY KEY, segment TEXT NOT NULL)"
TokenCounts = dict[str, tuple[int, int]]
"""Per language: (tokens, of which [UNK]) of the live chunks, for the manifest's unknown-token shares."""


def link_tree(source: Path, target: Path) -> None:
    """``target`` as a copy of the folder ``source`` made of hard links (no data is copied)."""
    target.mkdir()
    for entry in source.iterdir():
        if entry.is_dir():
            link_tree(entry, target / entry.name)
        else:
            os.link(entry, target / entry.name)


def read_dead(generation: Path) -> np.ndarray:
    path = generation / DEAD
    return np.load(path) if path.exists() else np.zeros(0, np.int64)


class SegmentedStore:
    """Files, pages and chunks of one generation, across its segments; the writer's also takes changes,
    which go to its one new segment.

    Example:
        >>> Path("staging").mkdir()
        >>> store = SegmentedStore.create(Path("staging"), new_segment="seg-000001")
        >>> store.file_totals()
        {'files': 0, 'pages': 0}
    """

    def __init__(self, catalog: ChunkStore, segments: dict[str, ChunkStore], dead: Iterable[int],
                 new_segment: str | None = None) -> None:
        self.catalog = catalog
        self.segments = segments
        """Segment name -> its store, oldest first; the new segment (when writable) last."""
        self.dead = set(int(i) for i in dead)
        self.new_segment = new_segment
        self.dead_added: Counter[str] = Counter()
        """Segment name -> how many of its chunks this writer marked dead."""
        self.removed_counts: Counter[str] = Counter()
        self.removed_unknown: Counter[str] = Counter()
        """Tokens and [UNK]s, per language, of the chunks this writer marked dead."""

    @classmethod
    def open_readonly(cls, generation: Path, names: Sequence[str]) -> SegmentedStore:
        return cls(ChunkStore.open_readonly(generation / CATALOG),
                   {name: ChunkStore.open_readonly(generation / name / CHUNKS) for name in names}, read_dead(generation))

    @classmethod
    def create(cls, staging: Path, new_segment: str, shared: Sequence[str] = (), dead: Iterable[int] = ()) -> SegmentedStore:
        """The writable store of a staging folder whose catalog and ``shared`` segments are in place."""
        catalog = ChunkStore.create(staging / CATALOG)
        catalog.execute(_LOCATIONS)
        (staging / new_segment).mkdir()
        segments = {name: ChunkStore.open_readonly(staging / name / CHUNKS) for name in shared}
        segments[new_segment] = ChunkStore.create(staging / new_segment / CHUNKS)
        return cls(catalog, segments, dead, new_segment)

    def open_segment(self, staging: Path, name: str) -> None:
        """Close the new segment (read-only from now on, like the shared ones) and open another for changes."""
        assert self.new_segment is not None, "a read-only store"
        if self.new_segment in self.segments:  # gone when it was left empty
            self.segments.pop(self.new_segment).close()
            self.segments[self.new_segment] = ChunkStore.open_readonly(staging / self.new_segment / CHUNKS)
        (staging / name).mkdir()
        self.segments[name] = ChunkStore.create(staging / name / CHUNKS)
        self.new_segment = name

    def close(self) -> None:
        for store in (self.catalog, *self.segments.values()):
            store.close()

    def dead_array(self) -> np.ndarray:
        return np.array(sorted(self.dead), dtype=np.int64)

    # files -------------------------------------------------------------------------------------
    def location(self, path: str) -> str | None:
        """The segment holding a file's content, or None for a file with none."""
        row = self.catalog.execute("SELECT segment FROM locations WHERE path = ?", (path,)).fetchone()
        return row[0] if row else None

    def _content(self, path: str) -> ChunkStore | None:
        segment = self.location(path)
        return self.segments[segment] if segment is not None else None

    def file(self, path: str) -> FileRecord | None:
        return self.catalog.file(path)

    def files(self) -> list[FileRecord]:
        return self.catalog.files()

    def indexed_file_with_sha(self, sha256: str) -> FileRecord | None:
        return self.catalog.indexed_file_with_sha(sha256)

    def put_file(self, record: FileRecord) -> None:
        self.catalog.put_file(record)

    def delete_file(self, path: str) -> list[int]:
        """Remove a file with its pages and chunks; returns the removed chunk ids."""
        ids = self._retire(path)
        self.catalog.delete_file(path)
        return ids

    def _retire(self, path: str) -> list[int]:
        """Take a file's content out of the generation: deleted from the new segment, marked dead elsewhere."""
        segment = self.location(path)
        if segment is None:
            return []
        store = self.segments[segment]
        if segment == self.new_segment:
            ids = store.delete_file(path)
        else:
            ids = store.chunk_ids(path)
            self.dead.update(ids)
            self.dead_added[segment] += len(ids)
            for language, tokens, unknown in store.token_counts(path):
                self.removed_counts[language] += tokens
                self.removed_unknown[language] += unknown
        self.catalog.execute("DELETE FROM locations WHERE path = ?", (path,))
        return ids

    # pages and chunks ----------------------------------------------------------------------------
    def replace_content(self, record: FileRecord, pages: Sequence[PageContent], chunks: Sequence[ChunkRow]) -> None:
        """Put a file's pages and chunks in the new segment in place of what it had."""
        assert self.new_segment is not None, "a read-only store"
        self._retire(record.path)
        self.segments[self.new_segment].replace_content(record, pages, chunks)
        self.catalog.put_file(record)
        self.catalog.execute("INSERT INTO locations VALUES (?, ?)", (record.path, self.new_segment))

    def chunk_ids(self, path: str) -> list[int]:
        store = self._content(path)
        return store.chunk_ids(path) if store else []

    def next_chunk_id(self) -> int:
        return max((s.next_chunk_id() for s in self.segments.values()), default=0)

    def chunk_id_with_text(self, text_sha: str) -> int | None:
        for store in self.segments.values():
            for chunk_id in store.chunk_ids_with_text(text_sha):
                if chunk_id not in self.dead:
                    return chunk_id
        return None

    def pages(self, path: str) -> list[PageContent]:
        store = self._content(path)
        return store.pages(path) if store else []

    def page_lines(self, path: str, number: int) -> tuple[LineBox, ...]:
        store = self._content(path)
        return store.page_lines(path, number) if store else ()

    def first_page(self, path: str) -> str:
        store = self._content(path)
        return store.first_page(path) if store else ""

    def chunks_of(self, path: str) -> list[ChunkRow]:
        store = self._content(path)
        return store.chunks_of(path) if store else []

    def neighbours(self, chunk: ChunkRow, window: int) -> list[ChunkRow]:
        """The chunk and up to ``window`` chunks either side of it in the same file, in order."""
        store = self._content(chunk.path)
        return store.neighbours(chunk, window) if store else [chunk]

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        wanted = [int(i) for i in ids if int(i) not in self.dead]
        rows: dict[int, ChunkRow] = {}
        for store in self.segments.values():
            if len(rows) == len(wanted):
                break
            rows.update(store.chunks_by_id(i for i in wanted if i not in rows))
        return rows

    def chunk_locations(self) -> Iterator[tuple[int, str, int, str]]:
        """``(id, path, page, language)`` of every live chunk, by segment."""
        for store in self.segments.values():
            yield from (row for row in store.chunk_locations() if row[0] not in self.dead)

    def all_tokens(self) -> Iterator[tuple[int, list[str]]]:
        """``(chunk id, BM25 tokens)`` of every live chunk, by segment."""
        for store in self.segments.values():
            yield from (row for row in store.all_tokens() if row[0] not in self.dead)

    def chunk_id_array(self) -> np.ndarray:
        """Every live chunk id, ascending."""
        every = np.concatenate([s.chunk_id_array() for s in self.segments.values()] or [np.zeros(0, np.int64)])
        return np.sort(every[~np.isin(every, self.dead_array())])

    def file_totals(self) -> dict[str, int]:
        """Files with content, and their pages."""
        files, pages = self.catalog.execute("SELECT COUNT(*), COALESCE(SUM(pages), 0) FROM files WHERE chunks > 0").fetchone()
        return {"files": files, "pages": pages}


def migrate_single_file(old: Path, staging: Path, segment: str) -> None:
    """Lay out a generation written before segments (one ``chunks.sqlite`` holding its files too) as a
    catalog and one segment, in ``staging``."""
    (staging / segment).mkdir()
    shutil.copyfile(old / CHUNKS, staging / segment / CHUNKS)
    ChunkStore.create(staging / segment / CHUNKS).close()  # brings an older schema up to date
    catalog = ChunkStore.create(staging / CATALOG)
    catalog.execute(_LOCATIONS)
    catalog.execute("ATTACH DATABASE ? AS old", (str(staging / segment / CHUNKS),))
    catalog.execute("INSERT INTO files SELECT * FROM old.files")
    catalog.execute("INSERT INTO locations SELECT DISTINCT path, ? FROM old.chunks", (segment,))
    catalog.execute("INSERT OR IGNORE INTO locations SELECT DISTINCT path, ? FROM old.pages", (segment,))
    catalog.execute("DETACH DATABASE old")
    catalog.close()
