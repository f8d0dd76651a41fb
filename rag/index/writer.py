"""Writing the index: stage a copy of the live generation, change it, publish it atomically."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from rag.index.dense import DenseIndex
from rag.index.generations import WriterLock, collect_garbage, live_generation, publish
from rag.index.layout import CHUNKS, DENSE, MANIFEST, SPARSE, read_manifest
from rag.index.pending import PendingVectors
from rag.index.sparse import SparseIndex
from rag.index.store import ChunkRow, ChunkStore, FileRecord

PENDING = "pending-vectors.sqlite"


class EmbedderMismatchError(RuntimeError):
    """The index was built with another embedding model than the one configured."""


class IndexWriter:
    """The one writer of an index folder; nothing it does is visible until :meth:`commit`.

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
        self._committed = False
        self.live_manifest: dict[str, Any] = {}
        self.live_name: str | None = None
        self._dense: DenseIndex | None = None

    def __enter__(self) -> "IndexWriter":
        self._lock.__enter__()
        try:
            collect_garbage(self.index_dir)
            live = live_generation(self.index_dir)
            self._staging.mkdir()
            if live is not None:
                self.live_name = live.name
                self.live_manifest = read_manifest(live)
                built_with = self.live_manifest.get("embedder", {}).get("name")
                if built_with and built_with != self.embedder_name:
                    raise EmbedderMismatchError(
                        f"{self.index_dir}: index was built with embedder {built_with!r} but {self.embedder_name!r} "
                        "is configured; use another --index or set RAG_EMBED_MODEL back"
                    )
                shutil.copyfile(live / CHUNKS, self._staging / CHUNKS)
                if (live / DENSE).exists():
                    self._dense = DenseIndex.load(live / DENSE)
            self.store = ChunkStore.create(self._staging / CHUNKS)
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

    # vectors ---------------------------------------------------------------------------------
    def known_vectors(self, text_shas: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed for these chunk texts: in the staged index, or pending from an earlier run."""
        found = self.pending.get(text_shas)
        for sha in text_shas:
            if sha not in found and self._dense is not None:
                chunk_id = self.store.chunk_id_with_text(sha)
                if chunk_id is not None:
                    found[sha] = self._dense.vectors([chunk_id])[0]
        return found

    def dense(self, dimension: int) -> DenseIndex:
        if self._dense is None:
            self._dense = DenseIndex.create(dimension)
        if self._dense.dimension != dimension:
            raise EmbedderMismatchError(f"{self.index_dir}: index vectors have {self._dense.dimension} dimensions, embedder gives {dimension}")
        return self._dense

    # files -------------------------------------------------------------------------------------
    def replace_file(self, record: FileRecord, pages: Sequence[tuple[int, str]], chunks: Sequence[ChunkRow], vectors: np.ndarray) -> None:
        """Put a file's new content in place of its old one (if any)."""
        old_ids = self.store.chunk_ids(record.path)
        if len(chunks):
            self.dense(vectors.shape[1]).add(np.array([c.id for c in chunks]), vectors)
        self.store.replace_content(record, pages, chunks)
        if self._dense is not None:
            self._dense.remove(old_ids)

    def remove_file(self, path: str) -> None:
        removed = self.store.delete_file(path)
        if self._dense is not None:
            self._dense.remove(removed)

    # publish -------------------------------------------------------------------------------------
    def commit(self, manifest: dict[str, Any], describe_embedder: Callable[[], dict[str, Any]]) -> Path:
        """Build BM25, write FAISS and the manifest, and publish; returns the new generation folder."""
        ids, tokens = [], []
        for chunk_id, chunk_tokens in self.store.all_tokens():
            ids.append(chunk_id)
            tokens.append(chunk_tokens)
        SparseIndex.build(ids, tokens).save(self._staging / SPARSE)
        if self._dense is not None:
            self._dense.save(self._staging / DENSE)
        files = self.store.files()
        full_manifest = {
            "format": 1,
            **manifest,
            "embedder": self.live_manifest.get("embedder") or describe_embedder(),
            "counts": self.store.totals(),
            "unknown_token_share": round(self.store.unknown_token_share(), 4),
            "files": {f.path: {"sha256": f.sha256, "status": f.status} for f in files},
        }
        (self._staging / MANIFEST).write_text(json.dumps(full_manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        self.store.close()
        del self.store
        generation = publish(self.index_dir, self._staging)
        self._committed = True
        self.live_name, self.live_manifest = generation.name, full_manifest
        self.pending.clear()
        collect_garbage(self.index_dir)
        return generation
