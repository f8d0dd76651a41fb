"""Writing the index: stage a generation that shares the live one's segments, add one segment with the
changes, publish it atomically, then merge segments when there are too many or too much of one is dead."""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed.base import EmbedderMismatchError
from rag.index.dense import DenseIndex, DenseSegments
from rag.index.generations import WriterLock, collect_garbage, live_generation, publish
from rag.index.layout import CATALOG, DEAD, DENSE, FORMAT, MANIFEST, SPARSE, read_manifest
from rag.index.merge import merge_plan, write_merged_segment
from rag.index.pending import PendingVectors
from rag.index.segments import SegmentedStore, TokenCounts, link_tree, migrate_single_file, read_dead
from rag.index.sparse import Postings, PostingsBuilder
from rag.index.store import ChunkRow, ChunkStore, FileRecord, PageContent

PENDING = "pending-vectors.sqlite"
SEGMENT_CHUNKS = 150_000
"""A writer closes its segment at this many chunks and opens another: building a million chunks then
holds a seventh of their vectors, graph and postings in memory at a time, and each segment's graph stays
below the size that needs a wider search (see rag.index.dense.HNSW_EF_SEARCH)."""


def _segment_name(number: int) -> str:
    return f"seg-{number:06d}"


class IndexWriter:
    """The one writer of an index folder; nothing it does is visible until :meth:`commit`.

    Reads go to the live generation until the first change, which stages a new generation sharing the
    live one's segments (hard links) with one new segment for the changes; a run that changes nothing
    writes nothing.

    Example:
        >>> with IndexWriter(Path("scratch-index"), embedder_name="all-MiniLM-L6-v2") as writer:
        ...     writer.remove_file("/docs/old.pdf")
        ...     writer.commit({"chunker": {}}, describe_embedder=lambda: {"name": "all-MiniLM-L6-v2"})
        PosixPath('scratch-index/gen-000001')
        >>> from rag.index import Index
        >>> Index.open(Path("scratch-index")).manifest["counts"]
        {'files': 0, 'pages': 0, 'chunks': 0}
    """

    def __init__(self, index_dir: Path, embedder_name: str, lock_wait: float = 0.0) -> None:
        self.index_dir = index_dir
        self.embedder_name = embedder_name
        self._lock = WriterLock(index_dir, wait=lock_wait)
        self._staging = index_dir / f"staging-{os.getpid()}"
        self._live: Path | None = None
        self._staged = False
        self._committed = False
        self._live_dense: DenseSegments | None = None
        self._new_dense: DenseIndex | None = None
        self._postings = PostingsBuilder()
        self._dropped: set[int] = set()
        """Chunks of the open segment replaced or removed again before it closes (left out when it is written)."""
        self._written: list[str] = []
        """Segments this writer closed before the last (see :data:`SEGMENT_CHUNKS`)."""
        self._written_dense: list[DenseIndex] = []
        self._added_counts: Counter[str] = Counter()
        self._added_unknown: Counter[str] = Counter()
        self.live_manifest: dict[str, Any] = {}
        self.live_name: str | None = None
        self._sizes: dict[str, list[int]] = {}
        """Each segment's chunks: ``[stored, of which dead]``, as the manifest records them."""
        self._segment_dense: dict[str, dict[str, Any]] = {}
        """Each segment's dense search structure (:meth:`DenseIndex.describe`), as the manifest records it."""
        self.commit_seconds: dict[str, float] = {}
        """Where :meth:`commit` spent its time: ``segment`` (the new segment's vectors and BM25),
        ``publish`` (catalog, dead ids, manifest, fsync, rename, clean-up) and ``merge`` (after publishing;
        0 when no merge was due)."""

    def __enter__(self) -> IndexWriter:
        self._lock.__enter__()
        try:
            collect_garbage(self.index_dir)
            self._live = live_generation(self.index_dir)
            if self._live is not None:
                self.live_name = self._live.name
                self.live_manifest = read_manifest(self._live)
                self._sizes = {name: list(size) for name, size in self.live_manifest.get("segment_sizes", {}).items()}
                self._segment_dense = dict(self.live_manifest.get("segment_dense", {}))
                built_with = self.live_manifest.get("embedder", {}).get("name")
                if built_with and built_with != self.embedder_name:
                    raise EmbedderMismatchError(
                        f"{self.index_dir}: index was built with embedder {built_with!r} but {self.embedder_name!r} "
                        "is configured; use another --index, or drop --embedder / RAG_EMBED_MODEL to use the index's own"
                    )
            if self._live is not None and self.live_manifest.get("format") == FORMAT:
                self.store = SegmentedStore.open_readonly(self._live, self.live_manifest["segments"])
            else:
                self._stage()  # a new index, or one of an older format: laid out again and published
            self.pending = PendingVectors(self.index_dir / PENDING, self.embedder_name)
        except BaseException:
            self._abandon()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._abandon()

    def _abandon(self) -> None:
        for closable in ("store", "pending"):
            if hasattr(self, closable):
                getattr(self, closable).close()
        if not self._committed and self._staging.exists():
            shutil.rmtree(self._staging)
        self._lock.__exit__()

    def _segments(self) -> list[str]:
        """The live generation's segments (those the staging generation shares, once staged)."""
        if self._staged:
            return [name for name in self.store.segments if name != self._new_name and name not in self._written]
        return list(self.live_manifest.get("segments", [])) if self.live_manifest.get("format") == FORMAT else []

    def _next_segment(self) -> int:
        return int(self.live_manifest.get("next_segment", 1))

    def _stage(self) -> SegmentedStore:
        """The writable store of the staging generation, made from the live one on first use."""
        if self._staged:
            return self.store
        if hasattr(self, "store"):
            self.store.close()
        self._staging.mkdir()
        shared = self._segments()
        number = self._next_segment()
        if self._live is not None and self.live_manifest.get("format") == FORMAT:
            shutil.copyfile(self._live / CATALOG, self._staging / CATALOG)
            for name in shared:
                link_tree(self._live / name, self._staging / name)
            dead = read_dead(self._live)
        elif self._live is not None:  # format 1: its one store becomes the first segment
            shared, dead = [_segment_name(number)], np.zeros(0, np.int64)
            migrate_single_file(self._live, self._staging, shared[0])
            self._migrate_vectors(self._live, self._staging / shared[0])
            self._sizes[shared[0]] = [Postings.load(self._staging / shared[0] / SPARSE).ids.size, 0]
            number += 1
        else:
            dead = np.zeros(0, np.int64)
        self._new_name = _segment_name(number)
        self.store = SegmentedStore.create(self._staging, self._new_name, shared, dead)
        self._staged = True
        return self.store

    def _migrate_vectors(self, old: Path, segment: Path) -> None:
        """The vectors and BM25 of a format-1 generation, as the first segment's."""
        if (old / DENSE).exists():
            dense = DenseIndex.load(old / DENSE, graph=False)  # its graph may hold removed vectors
            dense.maintain()
            dense.save(segment / DENSE)
        store = ChunkStore.open_readonly(segment / "chunks.sqlite")
        rows = list(store.all_tokens())
        store.close()
        Postings.build([i for i, _ in rows], [t for _, t in rows]).save(segment / SPARSE)

    @property
    def changed(self) -> bool:
        return self._staged

    def next_chunk_id(self) -> int:
        """The first chunk id this index has never used (ids of removed chunks are not reused)."""
        return max(int(self.live_manifest.get("next_chunk_id", 0)), self.store.next_chunk_id())

    # vectors ---------------------------------------------------------------------------------
    def _dense_segments(self) -> DenseSegments | None:
        """The live generation's vectors (loaded on first use: only reused texts need them)."""
        if self._live_dense is None:
            base = self._staging if self._staged else self._live
            paths = [base / name / DENSE for name in self._segments()] if base is not None else []
            loaded = [DenseIndex.load(path, graph=False) for path in paths if path.exists()]
            self._live_dense = DenseSegments(loaded) if loaded else None
        return self._live_dense

    def known_vectors(self, text_shas: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these chunk texts: in the index, or pending from an earlier run."""
        found = self.pending.get(text_shas)
        looked_up = {sha: self.store.chunk_id_with_text(sha) for sha in text_shas if sha not in found}
        ids = {sha: chunk_id for sha, chunk_id in looked_up.items() if chunk_id is not None}
        if not ids:
            return found
        shas, wanted = list(ids), np.fromiter(ids.values(), np.int64, count=len(ids))
        this_run = [*([self._new_dense] if self._new_dense is not None else []), *self._written_dense]
        mine = np.zeros(len(wanted), bool)
        for segment in this_run:
            mine |= segment.holds(wanted)
        if mine.any():
            found.update(zip([sha for sha, m in zip(shas, mine, strict=True) if m], DenseSegments(this_run).vectors(wanted[mine].tolist()),
                             strict=True))
        dense = self._dense_segments() if not mine.all() else None
        if dense is not None:
            found.update(zip([sha for sha, m in zip(shas, mine, strict=True) if not m], dense.vectors(wanted[~mine].tolist()),
                             strict=True))
        return found

    def _dense_for(self, dimension: int) -> DenseIndex:
        live = self.live_manifest.get("embedder", {}).get("dimension")
        if live is not None and live != dimension:
            raise EmbedderMismatchError(f"{self.index_dir}: index vectors have {live} dimensions, embedder gives {dimension}")
        if self._new_dense is None:
            self._new_dense = DenseIndex.create(dimension)
        if self._new_dense.dimension != dimension:
            raise EmbedderMismatchError(f"{self.index_dir}: index vectors have {self._new_dense.dimension} dimensions, embedder gives {dimension}")
        return self._new_dense

    # files -------------------------------------------------------------------------------------
    def put_file(self, record: FileRecord) -> None:
        """Update a file's record (status, size, mtime) without touching its content."""
        self._stage().put_file(record)

    def replace_file(self, record: FileRecord, pages: Sequence[PageContent], chunks: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Put a file's new content in place of its old one (if any)."""
        store = self._stage()
        self._drop_if_open(record.path)
        if len(chunks):
            self._dense_for(vectors.shape[1]).add(np.array([c.id for c in chunks]), vectors)
            self._postings.add([c.id for c in chunks], [c.tokens for c in chunks])
        store.replace_content(record, pages, chunks)
        if len(self._postings) - len(self._dropped) >= SEGMENT_CHUNKS:
            self._close_segment(store)

    def remove_file(self, path: str) -> None:
        store = self._stage()
        self._drop_if_open(path)
        store.delete_file(path)

    def _drop_if_open(self, path: str) -> None:
        """Leave a file's chunks out of the open segment's vectors and BM25 when it holds them."""
        if self.store.location(path) == self._new_name:
            self._dropped.update(self.store.chunk_ids(path))

    def _close_segment(self, store: SegmentedStore) -> None:
        """Write the open segment and open the next one, so a large ingest holds one segment in memory."""
        if self._write_new_segment(store):
            self._written.append(self._new_name)
            self._written_dense.append(DenseIndex.load(self._staging / self._new_name / DENSE, graph=False))
        self._new_name = _segment_name(int(self._new_name.removeprefix("seg-")) + 1)
        store.open_segment(self._staging, self._new_name)
        self._new_dense, self._postings, self._dropped = None, PostingsBuilder(), set()

    # publish -------------------------------------------------------------------------------------
    def _write_new_segment(self, store: SegmentedStore) -> bool:
        """The new segment's vectors and BM25; False (and the folder gone) when it holds no chunks."""
        folder = self._staging / self._new_name
        postings = self._postings.finish(self._dropped)
        for language, tokens, unknown in store.segments[self._new_name].token_counts():
            self._added_counts[language] += tokens
            self._added_unknown[language] += unknown
        if not len(postings):
            store.segments.pop(self._new_name).close()
            shutil.rmtree(folder)
            return False
        kept = self._new_dense
        assert kept is not None
        if self._dropped:  # without the chunks replaced again in this run
            kept = DenseIndex.create(kept.dimension)
            kept.add(postings.ids, self._new_dense.vectors(postings.ids.tolist()))  # type: ignore[union-attr]
        kept.maintain()
        kept.save(folder / DENSE)
        self._segment_dense[self._new_name] = kept.describe()
        postings.save(folder / SPARSE)
        self._sizes[self._new_name] = [len(postings), 0]
        return True

    def commit(self, manifest: dict[str, Any], describe_embedder: Callable[[], dict[str, Any]]) -> Path:
        """Write the new segment, the catalog, the dead ids and the manifest, and publish; then merge
        segments if due. Returns the published generation folder."""
        store = self._stage()
        started = time.perf_counter()
        new = [self._new_name] if self._write_new_segment(store) else []
        for name, dead in store.dead_added.items():
            self._sizes[name][1] += dead
        segments = [*self._segments_kept(store), *new]
        self.commit_seconds["segment"] = time.perf_counter() - started
        added = {language: (self._added_counts[language], self._added_unknown[language]) for language in self._added_counts}
        counts = _token_counts(self.live_manifest.get("token_counts"), store, added)
        full_manifest = {
            "format": FORMAT,
            **manifest,
            "embedder": self.live_manifest.get("embedder") or describe_embedder(),
            "segments": segments,
            "next_segment": int(self._new_name.removeprefix("seg-")) + 1,
            "next_chunk_id": self.next_chunk_id(),
            "counts": {**store.file_totals(), "chunks": sum(self._sizes[s][0] - self._sizes[s][1] for s in segments)},
            "segment_sizes": {name: self._sizes[name] for name in segments},
            **_dense_records({name: self._segment_dense[name] for name in segments if name in self._segment_dense}),
            "token_counts": counts,
            **_unknown_shares(counts),
            "files": {f.path: {"sha256": f.sha256, "status": f.status} for f in store.files()},
        }
        np.save(self._staging / DEAD, store.dead_array())
        (self._staging / MANIFEST).write_text(json.dumps(full_manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        store.close()
        del self.store
        generation = publish(self.index_dir, self._staging)
        self._committed = True
        self.live_name, self.live_manifest = generation.name, full_manifest
        self.pending.clear()
        collect_garbage(self.index_dir)
        self.commit_seconds["publish"] = time.perf_counter() - started - self.commit_seconds["segment"]
        merged = time.perf_counter()
        try:
            generation = self._merge(generation)
        finally:
            shutil.rmtree(self._staging, ignore_errors=True)  # a failed merge leaves the update live, and no leftovers
        self.commit_seconds["merge"] = time.perf_counter() - merged
        return generation

    def _segments_kept(self, store: SegmentedStore) -> list[str]:
        """The shared segments, and those this writer closed, that still hold a live chunk; wholly dead ones
        leave with their dead ids."""
        kept = []
        for name in [*self._segments(), *self._written]:
            stored, dead = self._sizes[name]
            if stored == dead:
                store.dead -= set(store.segments.pop(name).chunk_id_array().tolist())
                shutil.rmtree(self._staging / name)
            else:
                kept.append(name)
        return kept

    def _merge(self, generation: Path) -> Path:
        """Publish a generation with the segments :func:`merge_plan` picks merged into one (crash-safe: the
        generation just published stays live until the merged one is)."""
        chosen = merge_plan({name: (stored, dead) for name, (stored, dead) in self.live_manifest["segment_sizes"].items()})
        if not chosen:
            return generation
        store = SegmentedStore.open_readonly(generation, self.live_manifest["segments"])
        try:
            self._staging.mkdir()
            name = _segment_name(int(self.live_manifest["next_segment"]))
            merged_dead, merged_dense = write_merged_segment(generation, store, chosen, self._staging / name)
        finally:
            store.close()
        segments = []
        for segment in self.live_manifest["segments"]:
            if segment == chosen[0]:
                segments.append(name)
            elif segment not in chosen:
                segments.append(segment)
                link_tree(generation / segment, self._staging / segment)
        shutil.copyfile(generation / CATALOG, self._staging / CATALOG)
        catalog = ChunkStore.create(self._staging / CATALOG)
        catalog.execute(f"UPDATE locations SET segment = ? WHERE segment IN ({','.join('?' * len(chosen))})", (name, *chosen))
        catalog.close()
        dead = read_dead(generation)
        np.save(self._staging / DEAD, dead[~np.isin(dead, merged_dead)])
        if merged_dense is not None:
            self._segment_dense[name] = merged_dense
        self._sizes[name] = [sum(self._sizes[s][0] - self._sizes[s][1] for s in chosen), 0]
        manifest = {**self.live_manifest, "segments": segments, "next_segment": int(name.removeprefix("seg-")) + 1,
                    "segment_sizes": {s: self._sizes[s] for s in segments},
                    **_dense_records({s: self._segment_dense[s] for s in segments if s in self._segment_dense})}
        (self._staging / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        merged = publish(self.index_dir, self._staging)
        self.live_name, self.live_manifest = merged.name, manifest
        collect_garbage(self.index_dir)
        return merged


def _dense_records(by_segment: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The manifest's ``segment_dense`` (each segment's search structure) and ``dense_index`` (the
    largest segment's, with the number of segments), None without vectors."""
    largest = max(by_segment.values(), key=lambda d: int(d.get("vectors", 0)), default=None)
    return {"segment_dense": by_segment, "dense_index": {**largest, "segments": len(by_segment)} if largest else None}


def _token_counts(live: dict[str, list[int]] | None, store: SegmentedStore, added: dict[str, tuple[int, int]]) -> TokenCounts:
    """The live chunks' tokens and [UNK]s per language: the live generation's, less the chunks this writer
    marked dead, plus the new segment's (counted in full for an index without counts yet)."""
    if live is None:
        totals: Counter[str] = Counter()
        unknowns: Counter[str] = Counter()
        for segment in store.segments.values():
            for language, tokens, unknown_tokens in segment.token_counts():
                totals[language] += tokens
                unknowns[language] += unknown_tokens
        return {language: (totals[language], unknowns[language]) for language in totals if totals[language]}
    counts = {language: [tokens, unknown] for language, (tokens, unknown) in live.items()}
    for language, (tokens, unknown) in added.items():
        counts.setdefault(language, [0, 0])
        counts[language][0] += tokens
        counts[language][1] += unknown
    for language, tokens in store.removed_counts.items():
        counts[language][0] -= tokens
        counts[language][1] -= store.removed_unknown[language]
    return {language: (tokens, unknown) for language, (tokens, unknown) in counts.items() if tokens > 0}


def _unknown_shares(counts: TokenCounts) -> dict[str, Any]:
    """How much of the text (and of each language's) the embedder maps to [UNK]."""
    tokens = sum(t for t, _ in counts.values())
    unknown = sum(u for _, u in counts.values())
    return {"unknown_token_share": round(unknown / tokens, 4) if tokens else 0.0,
            "unknown_token_share_by_language": {language: round(u / t, 4) for language, (t, u) in counts.items()}}
