"""The on-disk index: generations of FAISS + BM25 + SQLite chunk store + manifest (see DESIGN.md)."""
from rag.index.generations import IndexLockedError
from rag.index.layout import IndexNotFoundError
from rag.index.reader import Index, built_with
from rag.index.store import ChunkRow, FileRecord
from rag.index.writer import EmbedderMismatchError, IndexWriter

__all__ = ["ChunkRow", "EmbedderMismatchError", "FileRecord", "Index", "IndexLockedError", "IndexNotFoundError", "IndexWriter",
           "built_with"]
