"""The dense index: inner product over unit vectors, addressed by int64 chunk ids; exact up to
:data:`ANN_THRESHOLD` vectors, with an HNSW graph beside the exact index above it."""
from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from rag.index.lookup import find_sorted


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


def read_in_place(path: Path) -> tuple[faiss.Index, np.ndarray]:
    """The FAISS index saved at ``path`` and the one buffer holding the file, whose vectors and graph links
    the index views in place instead of copying them (it cannot be added to, and must not outlive the buffer).

    numpy asks the kernel for transparent huge pages for a buffer this large. A graph search jumps between
    random vectors and links, and with 4 KiB pages each jump also missed the TLB: one segment of 150,000
    searched at efSearch 128 took 1.9 ms with cold caches (as after embedding a query), 0.75 ms from huge
    pages, and 0.6 against 0.45 ms warm (measured on a million-chunk index of the bench, 2 cores).
    """
    buffer = np.empty(path.stat().st_size, np.uint8)
    with path.open("rb") as file:
        read = file.readinto(buffer.data)
    if read != buffer.nbytes:
        raise OSError(f"{path}: read {read} of {buffer.nbytes} bytes")
    # faiss's stubs (1.15) leave out ZeroCopyIOReader, which the SWIG module has
    reader = faiss.ZeroCopyIOReader(faiss.swig_ptr(buffer), buffer.nbytes)  # type: ignore[attr-defined]
    index = faiss.read_index(reader, faiss.IO_FLAG_MMAP_IFC)
    return index, buffer


class DenseIndex:
    """One segment's vectors: FAISS ``IndexIDMap2(IndexFlatIP)``, the exact index (cosine similarity for
    normalised vectors, addressed by chunk id), plus from :data:`ANN_THRESHOLD` vectors an
    ``IndexIDMap2(IndexHNSWFlat)`` that unfiltered searches use. Written once, never changed: chunks
    replaced since are left out of searches by the ``excluded`` ids the index is opened with.

    Example:
        >>> index = DenseIndex.create(2)
        >>> index.add(np.array([7, 8]), np.array([[1.0, 0.0], [0.8, 0.6]], dtype=np.float32))
        >>> index.search(np.array([[1.0, 0.0]], dtype=np.float32), 2)[1].tolist()
        [[7, 8]]
        >>> index.excluding(np.array([7])).search(np.array([[1.0, 0.0]], dtype=np.float32), 2)[1].tolist()
        [[8, -1]]
    """

    def __init__(self, index: faiss.Index, ann: faiss.Index | None = None, threshold: int | None = None,
                 buffers: tuple[np.ndarray, ...] = ()) -> None:
        self._index = index
        self._ann = ann
        self._buffers = buffers
        """The files a loaded index views in place (see :func:`read_in_place`): they live as long as it does."""
        self.threshold = ANN_THRESHOLD if threshold is None else threshold
        self._excluded = np.zeros(0, np.int64)
        self._ids: np.ndarray | None = None
        self._sorted_ids: np.ndarray | None = None
        self._order = np.zeros(0, np.int64)
        self._selectors: list[faiss.IDSelector] = []
        """``excluded`` as a FAISS selector (and what it references), made once: FAISS does not own them."""

    @classmethod
    def create(cls, dimension: int, threshold: int | None = None) -> DenseIndex:
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dimension)), threshold=threshold)

    @staticmethod
    def _graph_path(path: Path) -> Path:
        return path.with_name(path.stem + "-hnsw.faiss")

    @classmethod
    def load(cls, path: Path, graph: bool = True) -> DenseIndex:
        """The index saved at ``path``, read-only (a segment is written once), with its graph unless ``graph``
        is False (for reading its vectors). Both are read in place (:func:`read_in_place`)."""
        graph_path = cls._graph_path(path)
        exact, buffer = read_in_place(path)
        if not graph or not graph_path.exists():
            return cls(exact, buffers=(buffer,))
        ann, graph_buffer = read_in_place(graph_path)
        return cls(exact, ann, buffers=(buffer, graph_buffer))

    def save(self, path: Path) -> None:
        """Write the exact index and, when there is one, the graph beside it."""
        faiss.write_index(self._index, str(path))
        if self._ann is not None:
            faiss.write_index(self._ann, str(self._graph_path(path)))

    def excluding(self, ids: np.ndarray) -> DenseIndex:
        """This index with these chunk ids (those of its own among them) left out of searches and its length."""
        ids = np.asarray(ids, np.int64)
        view = DenseIndex(self._index, self._ann, self.threshold, self._buffers)
        view._excluded = ids[np.isin(ids, self.ids)] if len(ids) else ids
        view._ids, view._sorted_ids, view._order = self._ids, self._sorted_ids, self._order
        if len(view._excluded):
            view._selectors = [faiss.IDSelectorBatch(view._excluded)]
            view._selectors.append(faiss.IDSelectorNot(view._selectors[0]))
        return view

    @property
    def dimension(self) -> int:
        return int(self._index.d)

    @property
    def ids(self) -> np.ndarray:
        """Every chunk id stored here (excluded ones too), in the order they were added."""
        if self._ids is None or len(self._ids) != self._index.ntotal:  # read once; again after an add
            exact = self._index
            assert isinstance(exact, faiss.IndexIDMap2)  # create() makes one and read_index downcasts to it
            self._ids = faiss.vector_to_array(exact.id_map).astype(np.int64)
        return self._ids

    def _id_order(self) -> tuple[np.ndarray, np.ndarray]:
        """``(sorted ids, their positions)``, made once (again after an add)."""
        if self._sorted_ids is None or len(self._sorted_ids) != self._index.ntotal:
            self._order = np.argsort(self.ids, kind="stable")
            self._sorted_ids = self.ids[self._order]
        return self._sorted_ids, self._order

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """Which of these chunk ids are stored here (a boolean mask)."""
        return self.locate(ids)[1]

    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._excluded)

    def describe(self) -> dict[str, object]:
        """What the manifest records about the search structure."""
        if self._ann is None:
            return {"type": "flat", "exact": True, "ann_threshold": self.threshold, "vectors": len(self)}
        return {"type": "hnsw", "exact": False, "vectors": len(self), "M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION,
                "ef_search": ef_search(int(self._ann.ntotal)), "ann_threshold": self.threshold, "filtered_searches": "exact"}

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self._buffers:  # FAISS would abort the process on growing a viewed vector
            raise ValueError("a loaded dense index is read-only: add to a new one")
        if len(ids):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            ids = np.asarray(ids, dtype=np.int64)
            self._index.add_with_ids(vectors, ids)
            if self._ann is not None:
                self._ann.add_with_ids(vectors, ids)

    def maintain(self) -> None:
        """Build the graph once the index reaches the threshold (a segment is written once: no removals)."""
        if self._ann is None and len(self) >= self.threshold:
            self._ann = self._build_graph()

    def _build_graph(self) -> faiss.Index:
        graph = faiss.IndexHNSWFlat(self.dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        ann = faiss.IndexIDMap2(graph)
        ids = self.ids
        for start in range(0, len(ids), 100_000):
            part = ids[start : start + 100_000]
            ann.add_with_ids(self.flat_vectors(start, len(part)), part)
        return ann

    def flat_vectors(self, start: int, count: int) -> np.ndarray:
        """``count`` stored vectors from position ``start``, in the order they were added."""
        exact = self._index
        assert isinstance(exact, faiss.IndexIDMap2)
        return faiss.downcast_index(exact.index).reconstruct_n(start, count)

    def vectors(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """The stored vectors of these ids (each must be present)."""
        slot, _ = self.locate(np.asarray(ids, np.int64))
        return self.rows(slot)

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(position in storage, found)`` of each id."""
        sorted_ids, order = self._id_order()
        slot, found = find_sorted(sorted_ids, ids)
        return order[slot] if len(order) else slot, found

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """Stored vectors by position, read from the exact index's storage in place: one gather instead
        of a FAISS call per vector."""
        if not len(positions):
            return np.zeros((0, self.dimension), np.float32)
        exact = self._index
        assert isinstance(exact, faiss.IndexIDMap2)
        flat = faiss.downcast_index(exact.index)
        assert isinstance(flat, faiss.IndexFlat)
        return faiss.rev_swig_ptr(flat.get_xb(), exact.ntotal * self.dimension).reshape(-1, self.dimension)[positions]

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)``, each ``(len(queries), k)``; missing hits have id -1.

        ``allowed`` (chunk ids) restricts the search exactly, inside FAISS. Without it, and unless
        ``exact``, an index with a graph searches the graph (efSearch at least ``k``).
        """
        k = max(1, k)
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        index, params = self._index, faiss.SearchParameters()
        selectors = list(self._selectors)  # referenced until the search is done
        if allowed is not None:
            allowed = np.asarray(allowed, np.int64)
            if len(self._excluded):
                allowed = allowed[~np.isin(allowed, self._excluded)]
            selectors.append(faiss.IDSelectorBatch(np.ascontiguousarray(allowed)))
        elif self._ann is not None and not exact:
            index = self._ann
            # faiss's stubs (1.15) leave out SearchParametersHNSW, which the SWIG module has
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search(int(self._ann.ntotal)), k))  # type: ignore[attr-defined]
        if selectors:
            params.sel = selectors[-1]
        with _openmp_threads(1 if len(queries) == 1 else faiss.omp_get_max_threads()):
            return index.search(queries, k, params=params)


class DenseSegments:
    """The dense search over every segment of a generation: each segment's best, merged.

    Example:
        >>> first, second = DenseIndex.create(2), DenseIndex.create(2)
        >>> first.add(np.array([1]), np.array([[1.0, 0.0]], dtype=np.float32))
        >>> second.add(np.array([2]), np.array([[0.6, 0.8]], dtype=np.float32))
        >>> DenseSegments([first, second]).search(np.array([[0.0, 1.0]], dtype=np.float32), 2)[1].tolist()
        [[2, 1]]
    """

    def __init__(self, segments: list[DenseIndex]) -> None:
        self.segments = segments
        self._threads = ThreadPoolExecutor(min(len(segments), os.cpu_count() or 1), thread_name_prefix="dense") if len(segments) > 1 else None
        """Searches the segments side by side: FAISS releases the GIL, and a graph search waits on memory
        more than it computes (7 segments of 150,000: 4.5 ms one after another, 3.1 ms on 2 threads)."""

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False)

    @property
    def dimension(self) -> int:
        return self.segments[0].dimension

    def __len__(self) -> int:
        return sum(len(s) for s in self.segments)

    def vectors(self, ids: list[int] | np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, from whichever segment holds each (one look-up per segment)."""
        rows = np.zeros((len(ids), self.dimension), np.float32)
        wanted = np.asarray(ids, np.int64)
        for segment in self.segments:
            positions, inside = segment.locate(wanted)
            if inside.any():
                rows[inside] = segment.rows(positions[inside])
        return rows

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`DenseIndex.search`, over every segment."""
        searched = [segment for segment in self.segments if len(segment)]
        if self._threads is not None and len(searched) > 1:
            results = list(self._threads.map(lambda segment: segment.search(queries, k, allowed, exact), searched))
        else:
            results = [segment.search(queries, k, allowed, exact) for segment in searched]
        if not results:
            return np.zeros((len(queries), 1), np.float32), np.full((len(queries), 1), -1, np.int64)
        if len(results) == 1:
            return results[0]
        scores = np.hstack([s for s, _ in results])
        ids = np.hstack([i for _, i in results])
        scores = np.where(ids >= 0, scores, -np.inf)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(ids, order, axis=1)
        best_scores = np.take_along_axis(scores, order, axis=1)
        return np.where(best_ids >= 0, best_scores, 0).astype(np.float32), best_ids
