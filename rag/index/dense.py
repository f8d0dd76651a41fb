"""The dense index: inner product over unit vectors, addressed by int64 chunk ids; exact up to
:data:`ANN_THRESHOLD` vectors, with an HNSW graph beside the exact index above it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np


@contextmanager
def _openmp_threads(n: int) -> Iterator[None]:
    """One query scans faster on one thread, and FAISS's idle OpenMP threads then do not spin against
    torch's while the next query is embedded (measured: 11 ms against 18 ms at 100k vectors)."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


ANN_THRESHOLD = 50_000
"""From this many vectors on, searches without a filter go through an HNSW graph (exact search costs
about 12 ms at 100k and 100 ms at 1M on 2 cores; HNSW a few ms)."""
HNSW_M, HNSW_EF_CONSTRUCTION = 32, 64
"""Graph degree and build breadth."""
HNSW_EF_SEARCH = {0: 128, 200_000: 512}
"""Search breadth by graph size (vectors: efSearch): a larger graph needs a wider search for the same
recall. On real e5 vectors of ../shared/eval, efSearch 64 gives recall@10 0.97 against exact search and
128 gives 0.99; on the bench's noisy copies of them 128 gives 0.964 at 100,000, and at a million
128 / 256 / 384 / 512 / 768 gave 0.869 / 0.937 / 0.959 / 0.971 / 0.982 for 0.5 / 0.8 / 1.2 / 1.7 /
2.4 ms a query (bench/ann_sweep.py sweeps it; bench/__main__.py measures recall on each run)."""


def ef_search(vectors: int) -> int:
    """The search breadth for a graph of this many vectors (see :data:`HNSW_EF_SEARCH`)."""
    return max(ef for size, ef in HNSW_EF_SEARCH.items() if vectors >= size)
REBUILD_SHARE = 0.2
"""The graph cannot drop vectors: removed ids are skipped at search time until they are this share of
it, and then it is rebuilt from the exact index."""


class DenseIndex:
    """FAISS ``IndexIDMap2(IndexFlatIP)``, the exact index and the source of truth (cosine similarity for
    normalised vectors, removable by id), plus above :data:`ANN_THRESHOLD` vectors an
    ``IndexIDMap2(IndexHNSWFlat)`` that unfiltered searches use. New vectors are added to both;
    removed ones leave the graph only when it is rebuilt (see :data:`REBUILD_SHARE`).

    Example:
        >>> index = DenseIndex.create(2)
        >>> index.add(np.array([7]), np.array([[1.0, 0.0]], dtype=np.float32))
        >>> index.search(np.array([[1.0, 0.0]], dtype=np.float32), 1)[1].tolist()
        [[7]]
    """

    def __init__(self, index: faiss.Index, ann: faiss.Index | None = None, removed: np.ndarray | None = None,
                 threshold: int | None = None) -> None:
        self._index = index
        self._ann = ann
        self._removed = np.zeros(0, dtype=np.int64) if removed is None else removed
        self.threshold = ANN_THRESHOLD if threshold is None else threshold

    @classmethod
    def create(cls, dimension: int, threshold: int | None = None) -> DenseIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), threshold=threshold)

    @staticmethod
    def _companions(path: Path) -> tuple[Path, Path]:
        return path.with_name(path.stem + "-hnsw.faiss"), path.with_name(path.stem + "-hnsw-removed.npy")

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        graph, removed = cls._companions(path)
        ann = faiss.read_index(str(graph)) if graph.exists() else None
        return cls(faiss.read_index(str(path)), ann, np.load(removed) if ann is not None and removed.exists() else None)

    def save(self, path: Path) -> None:
        """Write the exact index and, when there is one, the graph and its removed ids beside it."""
        faiss.write_index(self._index, str(path))
        graph, removed = self._companions(path)
        if self._ann is not None:
            faiss.write_index(self._ann, str(graph))
            np.save(removed, self._removed)
        else:
            graph.unlink(missing_ok=True)
            removed.unlink(missing_ok=True)

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def describe(self) -> dict[str, object]:
        """What the manifest records about the search structure."""
        if self._ann is None:
            return {"type": "flat", "exact": True, "ann_threshold": self.threshold}
        return {"type": "hnsw", "exact": False, "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                "ef_search": ef_search(len(self)), "ann_threshold": self.threshold, "removed_pending": int(len(self._removed)),
                "rebuild_share": REBUILD_SHARE, "filtered_searches": "exact"}

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            ids = np.asarray(ids, dtype=np.int64)
            self._index.add_with_ids(vectors, ids)
            if self._ann is not None:
                self._ann.add_with_ids(vectors, ids)

    def remove(self, ids: list[int]) -> None:
        if ids:
            self._index.remove_ids(faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64)))
            if self._ann is not None:
                self._removed = np.union1d(self._removed, np.asarray(ids, dtype=np.int64))

    def maintain(self) -> None:
        """Build the graph once the index reaches the threshold, rebuild it when too much of it is removed,
        and drop it when the index falls well below the threshold."""
        if len(self) < self.threshold // 2:
            self._ann, self._removed = None, np.zeros(0, dtype=np.int64)
        elif (self._ann is None and len(self) >= self.threshold) or (
                self._ann is not None and len(self._removed) > REBUILD_SHARE * self._ann.ntotal):
            self._ann, self._removed = self._build_graph(), np.zeros(0, dtype=np.int64)

    def _build_graph(self) -> faiss.Index:
        graph = faiss.IndexHNSWFlat(self.dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        ann = faiss.IndexIDMap2(graph)
        exact = self._index
        assert isinstance(exact, faiss.IndexIDMap2)  # create() makes one and read_index downcasts to it
        ids = faiss.vector_to_array(exact.id_map).astype(np.int64)
        flat = faiss.downcast_index(exact.index)
        for start in range(0, len(ids), 100_000):
            part = ids[start : start + 100_000]
            ann.add_with_ids(flat.reconstruct_n(start, len(part)), part)
        return ann

    def vectors(self, ids: list[int]) -> np.ndarray:
        """The stored vectors of these ids (each must be present)."""
        return np.vstack([self._index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, self.dimension), np.float32)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(len(queries), k)``; missing hits have id -1.

        ``allowed`` (chunk ids) restricts the search exactly, inside FAISS. Without it, and unless
        ``exact``, an index with a graph searches the graph (efSearch at least ``k``).
        """
        k = max(1, min(k, len(self))) if len(self) else 1
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        index, params = self._index, None
        selectors: list[faiss.IDSelector] = []  # referenced until the search is done: FAISS does not own them
        if allowed is not None:
            selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64)))
            params = faiss.SearchParameters()
            params.sel = selectors[-1]
        elif self._ann is not None and not exact:
            index = self._ann
            # faiss's stubs (1.15) leave out SearchParametersHNSW, which the SWIG module has
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search(int(self._ann.ntotal)), k))  # type: ignore[attr-defined]
            if len(self._removed):
                selectors += [faiss.IDSelectorBatch(self._removed)]
                selectors.append(faiss.IDSelectorNot(selectors[0]))
                params.sel = selectors[-1]
        with _openmp_threads(1 if len(queries) == 1 else faiss.omp_get_max_threads()):
            return index.search(queries, k, params=params)
