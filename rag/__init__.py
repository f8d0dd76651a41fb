"""The library: settings, documents, text handling, embeddings, the on-disk index and retrieval.

Nothing in here imports ``ingest``, ``eval``, ``finetune`` or ``app``; they build on it, in that order
(tests/test_layers.py checks every import).
"""
