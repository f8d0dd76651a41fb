"""Segments shared between generations: updates write only the change, dead chunks stay out of every
search and look-up, merges give what one fresh index would, and a crash in a merge loses nothing."""
from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import pytest

from rag.index import ChunkRow, FileRecord, Index, IndexWriter
from rag.index import merge as merge_module
from rag.index.merge import MAX_SEGMENTS, merge_plan
from rag.index.sparse import SparseIndex

DIMENSION = 8
WORDS = [f"w{n}" for n in range(40)] + ["晴川", "保修"]


def _file(path: str, first_id: int, seed: int, chunks: int = 5) -> tuple[FileRecord, list, list[ChunkRow], np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = [ChunkRow(first_id + n, path, 1 + n // 2, 0, 1, f"{path} text {seed} {n}", f"{seed:032x}{n:032x}",
                     tuple(str(w) for w in rng.choice(WORDS, size=6)), 6, 0) for n in range(chunks)]
    vectors = rng.normal(size=(chunks, DIMENSION)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pages = [(page, f"page {page} of {path}", ()) for page in sorted({r.page for r in rows})]
    return FileRecord(path, f"{seed:064x}", 1, seed, len(pages), chunks), pages, rows, vectors


class Library:
    """An index written through IndexWriter, and what it should hold: path -> (seed, rows, vectors)."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.files: dict[str, tuple[list[ChunkRow], np.ndarray]] = {}

    def write(self, put: dict[str, int] | None = None, remove: tuple[str, ...] = ()) -> IndexWriter:
        with IndexWriter(self.index_dir, "test") as writer:
            next_id = writer.next_chunk_id()
            for path, seed in (put or {}).items():
                record, pages, rows, vectors = _file(path, next_id, seed)
                next_id += len(rows)
                writer.replace_file(record, pages, rows, vectors)
                self.files[path] = (rows, vectors)
            for path in remove:
                writer.remove_file(path)
                del self.files[path]
            writer.commit({"next_chunk_id": next_id}, describe_embedder=lambda: {"name": "test", "dimension": DIMENSION})
        return writer

    def fresh(self, folder: Path) -> Index:
        """One index written from scratch with the same content (same chunk ids and vectors)."""
        with IndexWriter(folder, "test") as writer:
            for path, (rows, vectors) in self.files.items():
                pages = [(page, f"page {page} of {path}", ()) for page in sorted({r.page for r in rows})]
                writer.replace_file(FileRecord(path, "0" * 64, 1, 0, len(pages), len(rows)), pages, rows, vectors)
            writer.commit({}, describe_embedder=lambda: {"name": "test", "dimension": DIMENSION})
        return Index.open(folder)


def _same_answers(index: Index, fresh: Index, library: Library) -> None:
    live = sorted(r.id for rows, _ in library.files.values() for r in rows)
    assert index.manifest["counts"] == fresh.manifest["counts"]
    assert sorted(i for i, *_ in index.store.chunk_locations()) == live == index.sparse.ids.tolist()
    assert len(index.dense) == len(index.sparse) == len(live)
    rng = np.random.default_rng(1)
    for query in rng.normal(size=(5, DIMENSION)).astype(np.float32):
        assert [i for i, _ in index.search_dense(query, 10)] == [i for i, _ in fresh.search_dense(query, 10)]
    for words in (["w1"], ["w2", "保修"], ["晴川", "w3", "w3"]):
        ours, theirs = index.search_bm25(words, 1000), fresh.search_bm25(words, 1000)  # every match: no ties cut
        assert {i: round(s, 4) for i, s in ours} == {i: round(s, 4) for i, s in theirs}
    for path, (rows, _) in library.files.items():
        assert [c.id for c in index.store.chunks_of(path)] == [r.id for r in rows]
        assert index.store.pages(path) == fresh.store.pages(path)
    assert index.manifest["unknown_token_share_by_language"] == fresh.manifest["unknown_token_share_by_language"]


def test_an_update_shares_unchanged_segments_and_writes_only_the_change(tmp_path: Path):
    library = Library(tmp_path / "index")
    library.write({f"/d/{n}.txt": n for n in range(40)})
    first = Index.open(library.index_dir)
    library.write({"/d/3.txt": 100})  # one file of forty changes
    second = Index.open(library.index_dir)
    shared, new = second.manifest["segments"]
    assert first.manifest["segments"] == [shared]
    for name in ("chunks.sqlite", "dense.faiss", "bm25/docs.npy"):
        assert os.path.samefile(first.generation / shared / name, second.generation / shared / name)  # linked, not copied
    assert len(second.store.chunks_of("/d/3.txt")) == 5 and second.store.location("/d/3.txt") == new
    assert sorted(second.store.dead) == [r.id for r in first.store.chunks_of("/d/3.txt")]
    _same_answers(second, library.fresh(tmp_path / "fresh"), library)


def test_removed_and_replaced_chunks_stay_out_of_every_search_and_look_up(tmp_path: Path):
    library = Library(tmp_path / "index")
    library.write({f"/d/{n}.txt": n for n in range(20)})
    gone = {r.id for r in library.files["/d/4.txt"][0]} | {r.id for r in library.files["/d/5.txt"][0]}
    library.write({"/d/5.txt": 55}, remove=("/d/4.txt",))
    index = Index.open(library.index_dir)
    assert gone <= index.store.dead and index.store.file("/d/4.txt") is None
    assert index.chunks(sorted(gone)) == [] and index.store.chunks_of("/d/4.txt") == []
    vectors = np.vstack([library.files["/d/5.txt"][1]])
    for query in vectors:
        assert not {i for i, _ in index.search_dense(query, 200)} & gone
    assert not {i for i, _ in index.search_bm25(WORDS, 500)} & gone
    _same_answers(index, library.fresh(tmp_path / "fresh"), library)


def test_segments_merge_when_there_are_too_many_and_answer_as_one_fresh_index(tmp_path: Path):
    library = Library(tmp_path / "index")
    library.write({f"/d/{n}.txt": n for n in range(60)})
    counts = []
    for step in range(MAX_SEGMENTS + 2):
        library.write({f"/new/{step}.txt": 1000 + step})
        counts.append(len(Index.open(library.index_dir).manifest["segments"]))
    assert max(counts) <= MAX_SEGMENTS and counts[-1] < counts[MAX_SEGMENTS - 2]  # the newest ones merged
    index = Index.open(library.index_dir)
    assert len(index.store.chunks_of("/d/0.txt")) == 5
    _same_answers(index, library.fresh(tmp_path / "fresh"), library)


def test_a_mostly_dead_segment_is_rewritten_without_its_dead_chunks(tmp_path: Path):
    library = Library(tmp_path / "index")
    library.write({f"/d/{n}.txt": n for n in range(10)})
    first_segment = Index.open(library.index_dir).manifest["segments"][0]
    writer = library.write({f"/d/{n}.txt": 100 + n for n in range(3)})  # 30% of the first segment dead
    index = Index.open(library.index_dir)
    assert writer.commit_seconds["merge"] > 0 and first_segment not in index.manifest["segments"]
    assert index.store.dead == set() and len(index.manifest["segments"]) == len(index.manifest["segment_sizes"]) == 2
    _same_answers(index, library.fresh(tmp_path / "fresh"), library)


def test_merge_plan():
    assert merge_plan({}) == [] and merge_plan({"a": (10, 2)}) == []
    assert merge_plan({"a": (10, 3), "b": (5, 0)}) == ["a"]
    small = {f"s{n}": (10, 0) for n in range(MAX_SEGMENTS)}
    assert merge_plan({"big": (1000, 0), **small}) == list(small)  # the newest, small beside the first
    assert merge_plan({"big": (50, 0), **small}) == ["big", *small]  # the rest has outgrown the first


def _crash_in_merge(index_dir: str) -> None:
    def crash(*args: object) -> None:
        os._exit(9)  # as a kill -9 in the middle of writing the merged segment

    merge_module.write_merged_segment = crash  # type: ignore[assignment]
    import rag.index.writer as writer_module

    writer_module.write_merged_segment = crash  # type: ignore[assignment]
    library = Library(Path(index_dir))
    library.write({f"/d/{n}.txt": 100 + n for n in range(4)})


def test_a_crash_during_a_merge_leaves_the_update_live_and_the_next_writer_cleans_up(tmp_path: Path):
    library = Library(tmp_path / "index")
    library.write({f"/d/{n}.txt": n for n in range(10)})
    child = multiprocessing.get_context("fork").Process(target=_crash_in_merge, args=(str(library.index_dir),))
    child.start()
    child.join(60)
    assert child.exitcode == 9
    index = Index.open(library.index_dir)  # the update, published before the merge began
    assert len(index.manifest["segments"]) == 2 and len(index.store.dead) == 20
    assert any(p.name.startswith("staging-") for p in library.index_dir.iterdir())
    for n in range(4):
        library.files[f"/d/{n}.txt"] = (index.store.chunks_of(f"/d/{n}.txt"), index.vectors([r.id for r in index.store.chunks_of(f"/d/{n}.txt")]))
    library.write({"/d/9.txt": 999})  # the next writer removes the half-written merge, then merges
    assert not any(p.name.startswith("staging-") for p in library.index_dir.iterdir())
    merged = Index.open(library.index_dir)
    assert merged.store.dead == set()
    _same_answers(merged, library.fresh(tmp_path / "fresh"), library)


@pytest.mark.parametrize("dead", [0, 3])
def test_bm25_of_a_generation_equals_one_index_of_its_live_chunks(tmp_path: Path, dead: int):
    library = Library(tmp_path / "index")
    library.write({f"/d/{n}.txt": n for n in range(12)})
    library.write({f"/d/{n}.txt": 50 + n for n in range(dead)})
    index = Index.open(library.index_dir)
    rows = sorted((r.id, r.tokens) for rows, _ in library.files.values() for r in rows)
    rebuilt = SparseIndex.build([i for i, _ in rows], [list(t) for _, t in rows])
    assert index.sparse.idf(WORDS) == rebuilt.idf(WORDS)


def test_a_large_write_closes_a_segment_every_so_many_chunks(tmp_path: Path, monkeypatch):
    import rag.index.writer as writer_module

    monkeypatch.setattr(writer_module, "SEGMENT_CHUNKS", 12)
    library = Library(tmp_path / "index")
    with IndexWriter(library.index_dir, "test") as writer:
        next_id = 0
        for n, path in enumerate([f"/d/{n}.txt" for n in range(7)] + ["/d/0.txt", "/d/6.txt"]):  # two replaced again
            record, pages, rows, vectors = _file(path, next_id, 10 * n)
            next_id += len(rows)
            writer.replace_file(record, pages, rows, vectors)
            library.files[path] = (rows, vectors)
        reused = writer.known_vectors([library.files["/d/1.txt"][0][2].text_sha, library.files["/d/6.txt"][0][0].text_sha])
        writer.remove_file("/d/3.txt")
        del library.files["/d/3.txt"]
        writer.commit({}, describe_embedder=lambda: {"name": "test", "dimension": DIMENSION})
    np.testing.assert_allclose(list(reused.values()), [library.files["/d/1.txt"][1][2], library.files["/d/6.txt"][1][0]])
    index = Index.open(library.index_dir)
    assert len(index.manifest["segments"]) >= 2
    _same_answers(index, library.fresh(tmp_path / "fresh"), library)


def test_segments_are_searched_side_by_side_and_merged_as_one_search(monkeypatch):
    from rag.index.dense import DenseIndex, DenseSegments

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(60, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    segments = [DenseIndex.create(8) for _ in range(2)]
    segments[0].add(np.arange(0, 30), vectors[:30])
    segments[1].add(np.arange(30, 60), vectors[30:])
    whole = DenseIndex.create(8)
    whole.add(np.arange(60), vectors)
    together = DenseSegments(segments)
    query = vectors[:3] + 0.1

    meeting = __import__("threading").Barrier(2, timeout=10)  # passes only when both searches run at once
    search = DenseIndex.search

    def meets(self, *args, **kwargs):
        meeting.wait()
        return search(self, *args, **kwargs)

    monkeypatch.setattr(DenseIndex, "search", meets)
    scores, ids = together.search(query, 5)
    monkeypatch.setattr(DenseIndex, "search", search)
    expected_scores, expected_ids = whole.search(query, 5)
    assert ids.tolist() == expected_ids.tolist()
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)
    picked = [41, 3, 30, 29]
    np.testing.assert_array_equal(together.vectors(picked), vectors[picked])
    together.close()
