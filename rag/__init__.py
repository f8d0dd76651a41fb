"""The library: settings, documents, text handling, embeddings and the on-disk index.

Nothing in here imports ``ingest``, ``eval`` or ``app``; they build on it.
"""
