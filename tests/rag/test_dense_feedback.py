"""The dense feedback pass: hybrid search moves the query vector toward the first pass's top chunks."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from eval.beir import load_qrels
from eval.metrics import ndcg_at_k
from eval.runner import document_ranking
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import Role
from rag.index import Index
from rag.retrieve import Mode, Retriever, RetrieverConfig
from rag.retrieve.variants import rocchio
from testkit.demo import demo_docs
from tests.conftest import SHARED

FEEDBACK = RetrieverConfig.for_embedder("multilingual-e5-small")
RGB_PASSAGES = 600
"""RGB-zh passages indexed for the quality test (its first ones, with every question they fully answer)."""


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("dense-feedback")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedders=embedders, progress=False).run([demo_docs(base / "docs")])
    return base / "index"


def _retrievers(index_dir: Path, embedder, config: RetrieverConfig) -> tuple[Retriever, Retriever]:
    """(with the feedback pass, without it), near-duplicates kept so the rankings compare one to one."""
    config = replace(config, dedup=False)
    return (Retriever(Index.open(index_dir), embedder, config=config),
            Retriever(Index.open(index_dir), embedder, config=replace(config, dense_feedback_docs=0)))


def test_the_second_dense_search_uses_the_query_moved_toward_the_first_pass_top_chunks(demo_index: Path, embedder):
    config = replace(FEEDBACK, dense_feedback_languages=("en", "zh"), dense_feedback_min_chunks=0)
    with_feedback, without = _retrievers(demo_index, embedder, config)
    for question in ("室外传感器的电池能用多久？", "How long does a full charge from the sun take?"):
        question_vector = embedder.encode([question], Role.QUERY)[0]
        first_pass = [h.chunk.id for h in without.search(question, mode=Mode.HYBRID, k=config.dense_feedback_docs).hits]
        moved = rocchio(question_vector, with_feedback.index.vectors(first_pass), config.dense_feedback_original_weight)
        expected = dict(with_feedback._debiased(question, with_feedback.index.search_dense(moved, config.depth)))
        result = with_feedback.search(question, mode=Mode.HYBRID, k=10)
        assert "dense feedback" in result.timings
        np.testing.assert_allclose(result.query_vector, question_vector, atol=1e-6)  # evidence still uses the question
        dense_scores = {h.chunk.id: h.scores["original/dense"] for h in result.hits if "original/dense" in h.scores}
        assert dense_scores and all(score == pytest.approx(expected[i], abs=1e-5) for i, score in dense_scores.items())
        assert float(moved @ question_vector) < 0.999  # the vector really moved


def test_only_the_configured_languages_and_large_enough_knowledge_bases_get_the_feedback_pass(demo_index: Path, embedder):
    assert FEEDBACK.dense_feedback_docs > 0 and FEEDBACK.dense_feedback_languages == ("zh",)
    assert len(Index.open(demo_index).sparse) < FEEDBACK.dense_feedback_min_chunks
    small, _ = _retrievers(demo_index, embedder, FEEDBACK)
    assert "dense feedback" not in small.search("室外传感器的电池能用多久？", mode=Mode.HYBRID, k=10).timings
    with_feedback, without = _retrievers(demo_index, embedder, replace(FEEDBACK, dense_feedback_min_chunks=0))
    english = "How long does a full charge from the sun take?"
    result = with_feedback.search(english, mode=Mode.HYBRID, k=10)
    assert "dense feedback" not in result.timings
    assert [h.chunk.id for h in result.hits] == [h.chunk.id for h in without.search(english, mode=Mode.HYBRID, k=10).hits]
    assert "dense feedback" in with_feedback.search("室外传感器的电池能用多久？", mode=Mode.FUSION, k=10).timings
    for mode in (Mode.DENSE, Mode.BM25):  # single-retriever modes stay what they say
        assert "dense feedback" not in with_feedback.search("室外传感器的电池能用多久？", mode=mode, k=10).timings


def test_the_feedback_pass_ranks_rgb_zh_better(tmp_path: Path, embedders, embedder):
    """Real Chinese news passages and questions (RGB-zh): hybrid nDCG@10 is higher with the pass than without."""
    folder = SHARED / "eval" / "rgb_zh"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    with (folder / "corpus.jsonl").open(encoding="utf-8") as fh:
        passages = [json.loads(line) for line, _ in zip(fh, range(RGB_PASSAGES), strict=False)]
    docs = tmp_path / "docs"
    docs.mkdir()
    id_of = {}
    for number, passage in enumerate(passages):
        path = docs / f"{number:05d}.txt"
        path.write_text(passage["text"], encoding="utf-8")
        id_of[str(path)] = passage["_id"]
    settings = Settings.resolve({"index_dir": tmp_path / "index", "chunk_size": 512, "chunk_overlap": 64}, env={})
    Ingestor(settings, embedders=embedders, progress=False).run([docs])
    qrels = {q: rel for q, rel in load_qrels(folder / "qrels" / "test.tsv").items() if set(rel) <= set(id_of.values())}
    with (folder / "queries.jsonl").open(encoding="utf-8") as fh:
        questions = {row["_id"]: row["text"] for row in map(json.loads, fh) if row["_id"] in qrels}
    with_feedback, without = _retrievers(tmp_path / "index", embedder, FEEDBACK)
    ndcg = {}
    for name, retriever in (("on", with_feedback), ("off", without)):
        ndcg[name] = [ndcg_at_k(document_ranking([h.source for h in retriever.search(text, mode=Mode.HYBRID, k=50).hits], id_of),
                                qrels[q], 10) for q, text in questions.items()]
    wins = sum(a > b for a, b in zip(ndcg["on"], ndcg["off"], strict=True))
    losses = sum(a < b for a, b in zip(ndcg["on"], ndcg["off"], strict=True))
    assert len(questions) >= 20
    assert np.mean(ndcg["on"]) > np.mean(ndcg["off"]) and wins > losses, (np.mean(ndcg["on"]), np.mean(ndcg["off"]), wins, losses)
