"""Writing the index: stage a copy of the live generation, change it, publish it atomically."""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed.base import EmbedderMismatchError
from rag.index.dense import DenseIndex
from rag.index.generations import WriterLock, collect_garbage, live_generation, publish
from rag.index.layout import CHUNKS, DENSE, MANIFEST, SPARSE, read_manifest
from rag.index.pending import PendingVectors
from rag.index.sparse import SparseIndex
from rag.index.store import SCHEMA_VERSION, ChunkRow, ChunkStore, FileRecord, PageContent

PENDING = "pending-vectors.sqlite"


class IndexWriter:
    """The one writer of an index folder; nothing it does is visible until :meth:`commit`.

    Reads go to the live generation until the first change, which copies it into a staging folder;
    a run that changes nothing copies nothing.

    Example:
        >>> with IndexWriter(Path("rag-index"), embedder_name="all-MiniLM-L6-v2") as writer:
        ...     writer.remove_file("/docs/old.pdf")
        ...     writer.commit({"chunker": {}}, describe_embedder=lambda: {"name": "all-MiniLM-L6-v2"})
    """

    def __init__(self, index_dir: Path, embedder_name: str, lock_wait: float = 0.0) -> None:
        self.index_dir = index_dir
        self.embedder_name = embedder_name
        self._lock = WriterLock(index_dir, wait=lock_wait)
        self._staging = index_dir / f"staging-{os.getpid()}"
        self._live: Path | None = None
        self._staged = False
        self._committed = False
        self._dense: DenseIndex | None = None
        self._dense_loaded = False
        self._removed_ids: list[int] = []
        self._added_tokens: dict[int, tuple[str, ...]] = {}
        """BM25 tokens of the chunks this writer added (and did not remove again), for the BM25 update."""
        self.live_manifest: dict[str, Any] = {}
        self.live_name: str | None = None
        self.commit_seconds: dict[str, float] = {}
        """Where :meth:`commit` spent its time: ``dense`` (removals, graph upkeep, saving), ``bm25``
        (reading every chunk's tokens and rebuilding), ``publish`` (manifest, rename, clean-up)."""

    def __enter__(self) -> IndexWriter:
        self._lock.__enter__()
        try:
            collect_garbage(self.index_dir)
            self._live = live_generation(self.index_dir)
            if self._live is not None:
                self.live_name = self._live.name
                self.live_manifest = read_manifest(self._live)
                built_with = self.live_manifest.get("embedder", {}).get("name")
                if built_with and built_with != self.embedder_name:
                    raise EmbedderMismatchError(
                        f"{self.index_dir}: index was built with embedder {built_with!r} but {self.embedder_name!r} "
                        "is configured; use another --index, or drop --embedder / RAG_EMBED_MODEL to use the index's own"
                    )
                if ChunkStore.version(self._live / CHUNKS) == SCHEMA_VERSION:
                    self.store = ChunkStore.open_readonly(self._live / CHUNKS)
                else:
                    self._stage()  # an older format: the staged copy is migrated and published
            else:
                self._stage()
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

    def _stage(self) -> ChunkStore:
        """The writable staging store, created from the live generation on first use."""
        if not self._staged:
            self._staging.mkdir()
            if self._live is not None:
                if hasattr(self, "store"):
                    self.store.close()
                shutil.copyfile(self._live / CHUNKS, self._staging / CHUNKS)
            self.store = ChunkStore.create(self._staging / CHUNKS)
            self._staged = True
        return self.store

    @property
    def changed(self) -> bool:
        return self._staged

    def next_chunk_id(self) -> int:
        """The first chunk id this index has never used (ids of removed chunks are not reused)."""
        return max(int(self.live_manifest.get("next_chunk_id", 0)), self.store.next_chunk_id())

    # vectors ---------------------------------------------------------------------------------
    def _dense_index(self) -> DenseIndex | None:
        if not self._dense_loaded:
            if self._live is not None and (self._live / DENSE).exists():
                self._dense = DenseIndex.load(self._live / DENSE)
            self._dense_loaded = True
        return self._dense

    def known_vectors(self, text_shas: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these chunk texts: in the index, or pending from an earlier run."""
        found = self.pending.get(text_shas)
        looked_up = {sha: self.store.chunk_id_with_text(sha) for sha in text_shas if sha not in found}
        ids = {sha: chunk_id for sha, chunk_id in looked_up.items() if chunk_id is not None}
        dense = self._dense_index()
        if ids and dense is not None:
            found.update(zip(ids, dense.vectors(list(ids.values())), strict=True))
        return found

    def _dense_for(self, dimension: int) -> DenseIndex:
        dense = self._dense_index()
        if dense is None:
            dense = self._dense = DenseIndex.create(dimension)
        if dense.dimension != dimension:
            raise EmbedderMismatchError(f"{self.index_dir}: index vectors have {dense.dimension} dimensions, embedder gives {dimension}")
        return dense

    # files -------------------------------------------------------------------------------------
    def put_file(self, record: FileRecord) -> None:
        """Update a file's record (status, size, mtime) without touching its content."""
        self._stage().put_file(record)

    def replace_file(self, record: FileRecord, pages: Sequence[PageContent], chunks: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Put a file's new content in place of its old one (if any)."""
        store = self._stage()
        self._forget(store.chunk_ids(record.path))
        self._added_tokens.update((c.id, c.tokens) for c in chunks)
        if len(chunks):
            self._dense_for(vectors.shape[1]).add(np.array([c.id for c in chunks]), vectors)
        store.replace_content(record, pages, chunks)

    def remove_file(self, path: str) -> None:
        self._forget(self._stage().delete_file(path))

    def _forget(self, chunk_ids: list[int]) -> None:
        self._removed_ids.extend(chunk_ids)
        for chunk_id in chunk_ids:
            self._added_tokens.pop(chunk_id, None)

    # publish -------------------------------------------------------------------------------------
    def _sparse_index(self, store: ChunkStore) -> SparseIndex:
        """The live BM25 index updated with this writer's changes; rebuilt from every chunk's tokens when
        there is none to update (a new index, or one from before term frequencies were kept)."""
        live = self._live / SPARSE if self._live is not None else None
        if live is not None and live.exists():
            previous = SparseIndex.load(live)
            if previous.updatable:
                updated = previous.updated(self._removed_ids, self._added_tokens.items())
                if np.array_equal(updated.ids, store.chunk_id_array()):
                    return updated
        ids, tokens = [], []
        for chunk_id, chunk_tokens in store.all_tokens():
            ids.append(chunk_id)
            tokens.append(chunk_tokens)
        return SparseIndex.build(ids, tokens)

    def commit(self, manifest: dict[str, Any], describe_embedder: Callable[[], dict[str, Any]]) -> Path:
        """Build BM25, write FAISS and the manifest, and publish; returns the new generation folder."""
        store = self._stage()
        started = time.perf_counter()
        dense = self._dense_index()
        if dense is not None:
            dense.remove(self._removed_ids)  # once: each removal rewrites the flat index
            dense.maintain()
            dense.save(self._staging / DENSE)
        self.commit_seconds["dense"] = time.perf_counter() - started
        self._sparse_index(store).save(self._staging / SPARSE)
        self.commit_seconds["bm25"] = time.perf_counter() - started - self.commit_seconds["dense"]
        files = store.files()
        full_manifest = {
            "format": 1,
            **manifest,
            "embedder": self.live_manifest.get("embedder") or describe_embedder(),
            "counts": store.totals(),
            "dense_index": dense.describe() if dense is not None else None,
            "unknown_token_share": round(store.unknown_token_share(), 4),
            "unknown_token_share_by_language": store.unknown_token_share_by_language(),
            "files": {f.path: {"sha256": f.sha256, "status": f.status} for f in files},
        }
        (self._staging / MANIFEST).write_text(json.dumps(full_manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        store.close()
        del self.store
        generation = publish(self.index_dir, self._staging)
        self._committed = True
        self.live_name, self.live_manifest = generation.name, full_manifest
        self.pending.clear()
        collect_garbage(self.index_dir)
        self.commit_seconds["publish"] = time.perf_counter() - started - self.commit_seconds["dense"] - self.commit_seconds["bm25"]
        return generation
