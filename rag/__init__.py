"""The library: settings, documents, text handling, embeddings, the on-disk index and retrieval.

Nothing in here imports ``ingest``, ``eval`` or ``app``; they build on it.
"""
import os

# torch and FAISS each keep an OpenMP thread pool; with the default wait policy the idle threads of
# one spin while the other works, which on a small machine turned 30 ms searches into 1-2 s ones.
# Read when the pools start, so it is set before either library loads; a user's value wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
