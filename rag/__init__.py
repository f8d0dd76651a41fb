"""The library: settings, documents, text handling, embeddings, the on-disk index and retrieval.

Nothing in here imports ``ingest``, ``eval`` or ``app``; they build on it.
"""
