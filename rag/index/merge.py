"""Merging segments: when a generation has more than :data:`MAX_SEGMENTS`, or a segment is more than
:data:`MAX_DEAD_SHARE` dead, a run of neighbouring segments is rewritten as one, without its dead chunks.

Each commit adds one small segment. The newest segments are merged together while they are small
beside the oldest, so the large first segment is rewritten only when the rest has grown to its size or
when too much of it has been replaced: an update costs in proportion to its size, and merging costs
about as much as the data merged, spread over many updates.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from rag.index.dense import DenseIndex
from rag.index.layout import CATALOG, CHUNKS, DENSE, SPARSE
from rag.index.segments import SegmentedStore
from rag.index.sparse import Postings
from rag.index.store import ChunkStore

MAX_SEGMENTS = 8
MAX_DEAD_SHARE = 0.2


def merge_plan(sizes: dict[str, tuple[int, int]]) -> list[str]:
    """The neighbouring segments to merge (oldest first), or none.

    ``sizes``: segment name -> (chunks stored, of which dead), oldest first.

    Example:
        >>> merge_plan({"seg-1": (1000, 0), "seg-2": (10, 0)})
        []
        >>> merge_plan({"seg-1": (1000, 300), "seg-2": (10, 0)})
        ['seg-1']
        >>> merge_plan({f"seg-{n}": (1000 if n == 1 else 10, 0) for n in range(1, 10)})[:2]
        ['seg-2', 'seg-3']
    """
    names = list(sizes)
    for name, (stored, dead) in sizes.items():
        if stored and dead / stored > MAX_DEAD_SHARE:
            return [name]
    if len(names) <= MAX_SEGMENTS:
        return []
    live = [stored - dead for stored, dead in sizes.values()]
    first = 1 if sum(live[1:]) < live[0] else 0
    return names[first:]


def write_merged_segment(generation: Path, store: SegmentedStore, chosen: list[str],
                         folder: Path) -> tuple[np.ndarray, dict[str, object] | None]:
    """Write the live content of the ``chosen`` segments of ``generation`` as one segment in ``folder``;
    returns the dead chunk ids it leaves behind and the merged dense index's description (None without vectors)."""
    folder.mkdir()
    dead = store.dead_array()
    merged = ChunkStore.create(folder / CHUNKS)
    merged.execute("CREATE TEMP TABLE dead(id INTEGER PRIMARY KEY)")
    merged.execute("INSERT INTO dead SELECT value FROM json_each(?)", (json.dumps(dead.tolist()),))
    merged.execute("ATTACH DATABASE ? AS catalog", (str(generation / CATALOG),))
    dense: DenseIndex | None = None
    postings = []
    left_behind = []
    for name in chosen:
        source = generation / name
        merged.execute("ATTACH DATABASE ? AS source", (str(source / CHUNKS),))
        merged.execute("INSERT INTO chunks SELECT * FROM source.chunks WHERE id NOT IN (SELECT id FROM dead)")
        for table in ("pages", "page_lines", "files"):
            merged.execute(f"INSERT INTO {table} SELECT * FROM source.{table} "
                           "WHERE path IN (SELECT path FROM catalog.locations WHERE segment = ?)", (name,))
        merged.execute("DETACH DATABASE source")
        segment_dead = dead[np.isin(dead, store.segments[name].chunk_id_array())]
        left_behind.append(segment_dead)
        if (source / DENSE).exists():
            part = DenseIndex.load(source / DENSE, graph=False)
            ids = part.ids
            dense = dense or DenseIndex.create(part.dimension)
            for start in range(0, len(ids), 100_000):
                keep = ~np.isin(ids[start : start + 100_000], segment_dead)
                dense.add(ids[start : start + 100_000][keep], part.flat_vectors(start, min(100_000, len(ids) - start))[keep])
        postings.append((Postings.load(source / SPARSE), segment_dead))
    merged.execute("DETACH DATABASE catalog")
    merged.close()
    if dense is not None:
        dense.maintain()
        dense.save(folder / DENSE)
    Postings.concatenated(postings).save(folder / SPARSE)
    dead_merged = np.concatenate(left_behind) if left_behind else np.zeros(0, np.int64)
    return dead_merged, dense.describe() if dense is not None else None
