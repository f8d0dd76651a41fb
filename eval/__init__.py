"""Offline retrieval evaluation (datasets, metrics, reports): built on ``rag`` and ``ingest``."""
