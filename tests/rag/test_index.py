import json
import math
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from rag.index import IndexLockedError
from rag.index.dense import DenseIndex, DenseSegments
from rag.index.generations import CURRENT, WriterLock, collect_garbage, live_generation, publish
from rag.index.sparse import K1, B, Postings, SparseIndex
from rag.text import BM25Tokenizer
from tests.conftest import SHARED


class LuceneBM25(BM25Okapi):
    """rank-bm25's Okapi scoring with Lucene's idf, log(1 + (N - df + 0.5) / (df + 0.5))."""

    def _calc_idf(self, nd):
        self.idf = {w: math.log(1 + (self.corpus_size - f + 0.5) / (f + 0.5)) for w, f in nd.items()}


def _beir_sample(name: str, n_docs: int, n_queries: int) -> tuple[list[str], list[str]]:
    folder = SHARED / "eval" / name
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        docs = [f"{d.get('title', '')} {d['text']}" for d in map(json.loads, (next(fh) for _ in range(n_docs)))]
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        queries = [json.loads(line)["text"] for line, _ in zip(fh, range(n_queries), strict=False)]
    return docs, queries


@pytest.mark.parametrize("dataset", ["scifact", "rgb_zh"])
def test_bm25_ranks_exactly_like_rank_bm25(dataset: str):
    tokenizer = BM25Tokenizer()
    docs, queries = _beir_sample(dataset, 1500, 25)
    doc_tokens = tokenizer.tokenize_many(docs)
    ours = SparseIndex.build(list(range(1000, 1000 + len(docs))), doc_tokens)
    reference = LuceneBM25(doc_tokens, k1=K1, b=B)
    compared = 0
    for query in queries:
        tokens = list(dict.fromkeys(tokenizer.tokenize(query)))
        expected = reference.get_scores(tokens) / (K1 + 1)  # rank-bm25 keeps the constant (k1 + 1) factor
        top = np.argsort(-expected, kind="stable")[:10]
        scores, ids = ours.search(tokens, 10)
        np.testing.assert_allclose(scores, expected[top][: len(scores)], rtol=1e-4)
        assert set(ids - 1000) == set(top[expected[top] > 0][: len(ids)]) or len(set(np.round(expected[top], 5))) < 10
        compared += len(ids)
    assert compared > 100


def test_sparse_index_round_trips_through_disk(tmp_path: Path):
    Postings.build([5, 6, 7], [["solar", "lantern"], ["weather", "station"], ["solar", "panel"]]).save(tmp_path / "bm25")
    loaded = SparseIndex([Postings.load(tmp_path / "bm25")])
    scores, ids = loaded.search(["solar", "unknown-word"], 5)
    assert sorted(ids.tolist()) == [5, 7] and len(scores) == 2
    assert loaded.search(["nothing-known"], 5)[1].size == 0


def _all_scores(index: SparseIndex, vocabulary: list[str]) -> dict[str, dict[int, float]]:
    """Every chunk's BM25 score for every term: the whole content of the index."""
    found = {}
    for term in vocabulary:
        scores, ids = index.search([term], len(index))
        found[term] = dict(zip(ids.tolist(), np.round(scores, 5).tolist(), strict=True))
    return found


def test_bm25_over_segments_with_dead_chunks_scores_exactly_like_a_rebuild(tmp_path: Path):
    rng = np.random.default_rng(7)
    words = [f"w{n}" for n in range(60)] + ["晴川", "保修"]
    live = {i: [str(w) for w in rng.choice(words, size=rng.integers(0, 12))] for i in range(200)}
    segments = [Postings.build(sorted(live), [live[i] for i in sorted(live)])]
    stored, dead, next_id = dict(live), set(), 200
    for step in range(6):
        removed = [int(i) for i in rng.choice(sorted(live), size=15, replace=False)]
        added = {next_id + n: [str(w) for w in rng.choice(words, size=rng.integers(0, 12))] for n in range(20)}
        next_id += 20
        segments.append(Postings.build(sorted(added), [added[i] for i in sorted(added)]))
        segments[-1].save(tmp_path / f"bm25-{step}")
        segments[-1] = Postings.load(tmp_path / f"bm25-{step}")  # as readers open a generation
        for chunk_id in removed:
            del live[chunk_id]
        dead.update(removed)
        live.update(added)
        stored.update(added)
        index = SparseIndex(segments, np.array(sorted(dead)))
        rebuilt = SparseIndex.build(sorted(live), [live[i] for i in sorted(live)])
        assert index.ids.tolist() == sorted(live) and len(index) == len(live)
        assert _all_scores(index, words) == _all_scores(rebuilt, words)
        assert index.idf(["w1", "保修", "nowhere"]) == rebuilt.idf(["w1", "保修", "nowhere"])
        some = np.array(sorted(live)[::7])
        np.testing.assert_allclose(index.scores_for({"w1": 1.0, "w2": 0.5}, some), rebuilt.scores_for({"w1": 1.0, "w2": 0.5}, some), rtol=1e-5)
        query = {"w3": 1.0, "保修": 0.7}
        scores, ids = index.search_weighted(query, len(index))
        asked = np.array([*ids[::3].tolist(), *removed[:3], next_id + 999])  # dead and unknown ids score 0
        expected = [*scores[::3].tolist(), 0.0, 0.0, 0.0, 0.0]
        np.testing.assert_allclose(index.scores_for(query, asked), expected, rtol=1e-6)
        np.testing.assert_allclose(index.scores_for(query, asked, index.score_tables(query)), expected, rtol=1e-6)
        for k in (1, 3, 10):  # the best k across segments are the best k of one index over the live chunks
            np.testing.assert_allclose(index.search_weighted(query, k)[0], rebuilt.search_weighted(query, k)[0], rtol=1e-5)
    merged = Postings.concatenated([(segment, np.array(sorted(dead))) for segment in segments])
    assert merged.ids.tolist() == sorted(live)
    assert _all_scores(SparseIndex([merged]), words) == _all_scores(rebuilt, words)
    with pytest.raises(ValueError, match="in chunk id order"):
        Postings.concatenated([(segments[1], np.zeros(0, np.int64)), (segments[0], np.zeros(0, np.int64))])


def test_empty_sparse_index(tmp_path: Path):
    Postings.build([], []).save(tmp_path / "bm25")
    assert SparseIndex([Postings.load(tmp_path / "bm25")]).search(["x"], 3)[1].size == 0
    assert SparseIndex([]).search(["x"], 3)[1].size == 0 and len(SparseIndex([])) == 0


def test_dense_index_adds_excludes_and_reconstructs_by_chunk_id(tmp_path: Path):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = DenseIndex.create(8)
    index.add(np.array([10, 11, 12, 13]), vectors)
    index.save(tmp_path / "d.faiss")
    loaded = DenseIndex.load(tmp_path / "d.faiss").excluding(np.array([11, 99]))
    assert len(loaded) == 3
    scores, ids = loaded.search(vectors[2:3], 3)
    assert ids[0, 0] == 12 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert 11 not in ids[0] and 11 not in loaded.search(vectors[1:2], 4, allowed=np.array([11, 13]))[1][0]
    np.testing.assert_allclose(loaded.vectors([13])[0], vectors[3], rtol=1e-6)
    other = DenseIndex.create(8)
    other.add(np.array([20]), vectors[1:2] * 0.5 + vectors[2:3] * 0.5)
    both = DenseSegments([loaded, other])
    assert len(both) == 4 and both.search(vectors[1:2], 2)[1][0].tolist()[0] == 20
    np.testing.assert_allclose(both.vectors([20, 13]), np.vstack([other.vectors([20]), vectors[3:4]]), rtol=1e-6)


def test_publish_switches_current_and_garbage_collection_removes_crash_leftovers(tmp_path: Path):
    for n in range(3):
        staging = tmp_path / f"staging-{n}"
        staging.mkdir()
        (staging / "data").write_text(str(n))
        publish(tmp_path, staging)
    assert live_generation(tmp_path) == tmp_path / "gen-000003"
    # leftovers of crashes: a staging folder, a renamed but unpublished generation, a pointer temp file
    (tmp_path / "staging-999").mkdir()
    (tmp_path / "gen-000004").mkdir()
    (tmp_path / f"{CURRENT}.tmp").write_text("gen-000004")
    collect_garbage(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CURRENT, "gen-000002", "gen-000003"]
    assert (tmp_path / "gen-000003" / "data").read_text() == "2"


def test_writer_lock_is_exclusive_and_names_the_holder(tmp_path: Path):
    with WriterLock(tmp_path):
        with pytest.raises(IndexLockedError, match=r"another rag ingest \(pid \d+\)"):
            with WriterLock(tmp_path, wait=0.3):
                pass
    with WriterLock(tmp_path, wait=0):
        pass


def test_a_version_1_store_is_migrated_when_staged(tmp_path: Path):
    import sqlite3

    from rag.index.store import ChunkRow, ChunkStore, FileRecord

    store = ChunkStore.create(tmp_path / "chunks.sqlite")
    rows = [ChunkRow(0, "/a.md", 1, 0, 4, "中文段落", "s0", ("中文",), 4, 3), ChunkRow(1, "/a.md", 1, 5, 9, "text", "s1", ("text",), 1, 0)]
    store.replace_content(FileRecord("/a.md", "x", 1, 1, 1, 2), [(1, "中文段落 text", ())], rows)
    store.close()
    db = sqlite3.connect(tmp_path / "chunks.sqlite")
    db.execute("ALTER TABLE chunks DROP COLUMN lang")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    with pytest.raises(sqlite3.DatabaseError, match="run `rag ingest` on the index once to upgrade it"):
        ChunkStore.open_readonly(tmp_path / "chunks.sqlite")
    migrated = ChunkStore.create(tmp_path / "chunks.sqlite")
    assert [lang for _, _, _, lang in migrated.chunk_locations()] == ["zh", "en"]
    assert sorted(migrated.token_counts()) == [("en", 1, 0), ("zh", 4, 3)]


def _overlap(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found.tolist(), exact.tolist(), strict=True)]))


def test_a_loaded_dense_index_views_its_files_in_place_and_refuses_additions(tmp_path: Path):
    """The exact vectors and the graph are read into one buffer per file and searched there, not copied
    into FAISS's own memory; adding to such an index is an error, not a FAISS abort."""
    import faiss

    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(300, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    built = DenseIndex.create(16, threshold=100)
    built.add(np.arange(1000, 1300), vectors)
    built.maintain()
    built.save(tmp_path / "d.faiss")
    loaded = DenseIndex.load(tmp_path / "d.faiss")
    exact_buffer, graph_buffer = loaded._buffers
    stored = faiss.downcast_index(loaded._index.index).get_xb()
    assert exact_buffer.ctypes.data <= int(stored) < exact_buffer.ctypes.data + exact_buffer.nbytes
    assert not faiss.downcast_index(loaded._ann.index).hnsw.neighbors.is_owned
    assert graph_buffer.nbytes == (tmp_path / "d-hnsw.faiss").stat().st_size
    for exact in (False, True):
        np.testing.assert_array_equal(loaded.search(vectors[:20], 5, exact=exact)[1], built.search(vectors[:20], 5, exact=exact)[1])
    np.testing.assert_array_equal(loaded.excluding(np.array([1003])).vectors([1004, 1299]), vectors[[4, 299]])
    with pytest.raises(ValueError, match="read-only"):
        loaded.add(np.array([5000]), vectors[:1])
    assert len(loaded) == 300


def test_bm25_document_frequencies_stay_exact_after_a_search_with_zero_weights():
    index = SparseIndex.build([1, 2, 3], [["pear", "apple"], ["pear"], ["fig"]])
    assert index.score_tables({"pear": 0.0, "fig": 1.0}) is not None
    assert index.idf(["pear", "fig"]) == SparseIndex.build([1, 2, 3], [["pear", "apple"], ["pear"], ["fig"]]).idf(["pear", "fig"])
    assert index.score_tables({"pear": 0.0}) is None and index.score_tables({}) is None
    assert SparseIndex([]).score_tables({"pear": 1.0}) is None


def test_the_dense_index_goes_from_exact_to_hnsw_by_size_and_keeps_recall(corpus_index, embedder, tmp_path: Path):
    """Real e5 vectors of the shared corpus with a threshold of 200: exact below it, HNSW above, recall@10
    against exact search at least 0.95; removals are skipped and then rebuilt away; filters stay exact."""
    from rag.embed import Role
    from rag.index import Index

    index = Index.open(corpus_index[1])
    ids = [chunk_id for chunk_id, *_ in index.store.chunk_locations()]
    vectors = index.vectors(ids)
    questions = [chunk.text.split("\n")[0][:120] for chunk in index.chunks(ids[::25])]
    queries = embedder.encode(questions, Role.QUERY)
    dense = DenseIndex.create(vectors.shape[1], threshold=200)
    dense.add(np.array(ids[:150]), vectors[:150])
    dense.maintain()
    assert dense.describe()["type"] == "flat"
    dense.add(np.array(ids[150:]), vectors[150:])
    dense.maintain()
    assert dense.describe()["type"] == "hnsw"
    _, exact = dense.search(queries, 10, exact=True)
    _, approximate = dense.search(queries, 10)
    assert _overlap(approximate, exact) >= 0.95

    excluded = dense.excluding(np.array(ids[:40]))
    _, after = excluded.search(queries, 10)
    assert not set(after.ravel().tolist()) & set(ids[:40]) and len(excluded) == len(ids) - 40
    dense.save(tmp_path / "dense.faiss")
    loaded = DenseIndex.load(tmp_path / "dense.faiss").excluding(np.array(ids[:40]))
    assert np.array_equal(loaded.search(queries, 10)[1], after)
    allowed = np.array(ids[:60])
    _, filtered = loaded.search(queries, 5, allowed)
    assert set(filtered.ravel().tolist()) - {-1} <= set(ids[40:60])


def test_the_manifest_records_the_dense_index_type(tmp_path: Path, monkeypatch):
    from rag.index import ChunkRow, FileRecord, Index, IndexWriter
    from rag.index import dense as dense_module

    monkeypatch.setattr(dense_module, "ANN_THRESHOLD", 100)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(120, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with IndexWriter(tmp_path / "index", "test") as writer:
        rows = [ChunkRow(i, "/d/a.txt", 1, 0, 1, f"text {i}", f"{i:064x}", ("text",), 1, 0) for i in range(120)]
        writer.replace_file(FileRecord("/d/a.txt", "0" * 64, 0, 0, 1, 120), [(1, "", ())], rows, vectors)
        writer.commit({"chunker": {}}, describe_embedder=lambda: {"name": "test", "dimension": 8})
    index = Index.open(tmp_path / "index")
    assert index.manifest["dense_index"]["type"] == "hnsw" and index.manifest["dense_index"]["M"] == 32
    assert index.search_dense(vectors[7], 1)[0][0] == 7
    assert index.manifest["dense_index"]["ef_search"] == 128


def test_larger_graphs_search_wider():
    from rag.index.dense import ef_search

    assert [ef_search(n) for n in (50_000, 199_999, 200_000, 1_000_000)] == [128, 128, 512, 512]
