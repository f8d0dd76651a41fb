"""The on-disk index: immutable generations of shared segments (FAISS + BM25 + SQLite chunk store), a
catalog, dead chunk ids and a manifest (see rag.index.segments and DESIGN.md)."""
from rag.index.generations import IndexLockedError
from rag.index.layout import IndexNotFoundError
from rag.index.reader import Index, built_with
from rag.index.store import ChunkRow, FileRecord
from rag.index.writer import EmbedderMismatchError, IndexWriter

__all__ = ["ChunkRow", "EmbedderMismatchError", "FileRecord", "Index", "IndexLockedError", "IndexNotFoundError", "IndexWriter",
           "built_with"]
