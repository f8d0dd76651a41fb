"""Retrieval on a real index of the demo documents plus a few test files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.runnables import RunnableLambda

from ingest.pipeline import Ingestor
from rag.config import ConfigError, Settings
from rag.embed import Role, default_embedder
from rag.index import EmbedderMismatchError, Index
from rag.retrieve import Filters, FusionMethod, Mode, Retriever, RetrieverConfig
from rag.retrieve.langchain import LangChainRetriever
from rag.retrieve.rerank import Reranker
from rag.retrieve.retriever import SearchMemo
from rag.retrieve.variants import QueryVariant, term_weights
from rag.text import language_of
from testkit.demo import demo_docs

ROOT = Path(__file__).resolve().parents[2]
DUPLICATED = "The quokka is a small marsupial that lives on Rottnest Island near Perth."


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("retrieval")
    docs = demo_docs(base / "docs")
    (docs / "animals").mkdir()
    (docs / "animals" / "quokka.md").write_text(DUPLICATED, encoding="utf-8")
    (docs / "animals" / "quokka-copy.txt").write_text(DUPLICATED + " ", encoding="utf-8")
    (docs / "long.md").write_text("\n\n".join(f"Paragraph {n} describes item{n} in detail." for n in range(80)), encoding="utf-8")
    Ingestor(Settings.resolve({"index_dir": base / "index", "chunk_size": 60, "chunk_overlap": 0}, env={}),
             embedders=embedders, progress=False).run([docs])
    return base / "index"


@pytest.fixture(scope="module")
def retriever(index_dir: Path, embedder) -> Retriever:
    return Retriever(Index.open(index_dir), embedder)


@pytest.fixture(scope="module")
def minilm_retriever(tmp_path_factory: pytest.TempPathFactory, embedders) -> Retriever:
    """The demo documents under the English-only MiniLM, which cannot read Chinese."""
    base = tmp_path_factory.mktemp("retrieval-minilm")
    settings = Settings.resolve({"index_dir": base / "index", "embed_model": "minilm"}, env={})
    Ingestor(settings, embedders=embedders, progress=False).run([demo_docs(base / "docs")])
    return Retriever.open(base / "index", Settings.resolve({"embed_model": None}, env={}))


def _top(result) -> tuple[str, int]:
    return Path(result.hits[0].source).name, result.hits[0].page


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_finds_the_english_answer(retriever: Retriever, mode: Mode):
    result = retriever.search("How long does a full charge from the sun take?", mode=mode, k=3)
    assert _top(result) == ("lumen-l2-guide.pdf", 2)
    assert result.mode is mode and result.ms > 0


@pytest.mark.parametrize("mode", list(Mode))
def test_every_mode_finds_the_chinese_answer(retriever: Retriever, mode: Mode):
    result = retriever.search("室外传感器应该安装在什么位置？", mode=mode, k=3)
    assert _top(result) == ("晴川-w3-说明书.pdf", 2)


def test_dense_weight_follows_how_much_of_the_query_the_embedder_knows(minilm_retriever: Retriever):
    assert minilm_retriever.dense_weight_for("How long is the warranty?") == 1.0
    assert minilm_retriever.dense_weight_for("室外传感器应该安装在什么位置") == 0.0
    mixed = minilm_retriever.dense_weight_for("Lumen 太阳能灯 warranty")
    assert 0.0 <= mixed < 1.0


def test_the_multilingual_embedder_keeps_full_dense_weight_for_chinese(retriever: Retriever):
    for query in ("室外传感器应该安装在什么位置", "Lumen 太阳能灯 warranty", "How long is the warranty?"):
        assert retriever.dense_weight_for(query) == retriever.config.dense_weight == 2.0  # e5's tuned weight


def test_hybrid_for_a_query_the_embedder_cannot_read_is_bm25(minilm_retriever: Retriever):
    query = "保修期多长"
    hybrid = minilm_retriever.search(query, mode=Mode.HYBRID, k=5)
    bm25 = minilm_retriever.search(query, mode=Mode.BM25, k=5)
    assert hybrid.dense_weight == 0.0
    assert [h.chunk.id for h in hybrid.hits] == [h.chunk.id for h in bm25.hits]
    assert all(h.found_by == ["original/bm25"] for h in hybrid.hits)


def test_fusion_gate_skips_variants_when_dense_and_bm25_agree(index_dir: Path, embedder):
    always_agree = Retriever(Index.open(index_dir), embedder, config=RetrieverConfig(gate_agreement=0.0))
    result = always_agree.search("warranty of the lantern", mode=Mode.FUSION, k=3)
    assert result.fusion_ran is False and result.variants == []
    hybrid = always_agree.search("warranty of the lantern", mode=Mode.HYBRID, k=3)
    assert [h.chunk.id for h in result.hits] == [h.chunk.id for h in hybrid.hits]


def test_fusion_gate_runs_variants_when_unsure_and_reports_provenance(index_dir: Path, embedder):
    never_agree = Retriever(Index.open(index_dir), embedder, config=RetrieverConfig(gate_agreement=1.01))
    result = never_agree.search("warranty of the lantern", mode=Mode.FUSION, k=3)
    assert result.fusion_ran is True and "agree on" in result.gate_reason
    assert [v.name for v in result.variants] == ["keywords", "feedback"]
    assert result.variants[0].text == "warranty lantern"
    sources = {key for hit in result.hits for key in hit.found_by}
    assert {"original/bm25", "original/dense", "feedback/bm25"} <= sources


def test_fusion_runs_for_queries_the_embedder_cannot_represent(minilm_retriever: Retriever):
    result = minilm_retriever.search("保修期多长", mode=Mode.FUSION, k=3)
    assert result.fusion_ran is True and result.gate_reason == "the embedder cannot fully represent the query"
    assert _top(result) == ("晴川-w3-说明书.pdf", 3)


def test_llm_rewrites_join_the_fusion(index_dir: Path, embedder):
    def rewriter(query: str, n: int) -> list[str]:
        return ["quokka marsupial island"]

    retriever = Retriever(Index.open(index_dir), embedder, config=RetrieverConfig(gate=False), rewriter=rewriter)
    result = retriever.search("what animal lives near Perth", mode=Mode.FUSION, k=2)
    assert "rewrite-1" in [v.name for v in result.variants]
    assert any("rewrite-1/bm25" in hit.found_by for hit in result.hits)


def test_offline_variants_run_only_for_the_configured_languages(index_dir: Path, embedder):
    def rewriter(query: str, n: int) -> list[str]:
        return ["quokka marsupial island"]

    config = RetrieverConfig(gate=False, variant_languages=("zh",), dedup=False)
    offline = Retriever(Index.open(index_dir), embedder, config=config)
    english = offline.search("warranty of the lantern", mode=Mode.FUSION, k=5)
    assert english.fusion_ran is False and "did not help en questions" in english.gate_reason
    hybrid = offline.search("warranty of the lantern", mode=Mode.HYBRID, k=5)
    assert [h.chunk.id for h in english.hits] == [h.chunk.id for h in hybrid.hits]
    assert [v.name for v in offline.search("保修期多长", mode=Mode.FUSION, k=5).variants] == ["keywords", "feedback"]
    with_llm = Retriever(Index.open(index_dir), embedder, config=config, rewriter=rewriter)
    result = with_llm.search("what animal lives near Perth", mode=Mode.FUSION, k=2)
    assert result.fusion_ran is True and [v.name for v in result.variants] == ["rewrite-1"]  # rewrites, for every language


def test_filters_restrict_paths_languages_and_pages(retriever: Retriever):
    only_pdf = retriever.search("warranty", mode=Mode.HYBRID, k=10, filters=Filters.parse(paths=["*.pdf"]))
    assert only_pdf.hits and all(h.source.endswith(".pdf") for h in only_pdf.hits)
    folder = str(next(Path(f.path).parent for f in retriever.index.files() if f.path.endswith("long.md")) / "animals")
    in_folder = retriever.search("warranty", mode=Mode.HYBRID, k=10, filters=Filters.parse(paths=[folder]))
    assert in_folder.hits and all("/animals/" in h.source for h in in_folder.hits)
    chinese = retriever.search("battery 电池", mode=Mode.HYBRID, k=10, filters=Filters.parse(languages=["zh"]))
    assert chinese.hits and all(language_of(h.text) == "zh" for h in chinese.hits)
    page_two = retriever.search("warranty battery", mode=Mode.FUSION, k=10, filters=Filters.parse(pages="2-2"))
    assert page_two.hits and all(h.page == 2 for h in page_two.hits)
    nothing = retriever.search("warranty", mode=Mode.HYBRID, k=10, filters=Filters.parse(paths=["*.docx"]))
    assert nothing.hits == []


@pytest.mark.parametrize("kwargs, message", [({"languages": ["fr"]}, "unknown language 'fr'"),
                                             ({"pages": "x"}, "is not N or N-M"), ({"pages": "4-2"}, "is empty")])
def test_bad_filters_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Filters.parse(**kwargs)


def test_near_identical_chunks_are_reported_once(index_dir: Path, embedder):
    deduplicating = Retriever(Index.open(index_dir), embedder)
    result = deduplicating.search("quokka marsupial Rottnest", mode=Mode.BM25, k=5)
    quokkas = [h for h in result.hits if "quokka" in h.text]
    assert len(quokkas) == 1 and result.duplicates_dropped >= 1
    keeping = Retriever(Index.open(index_dir), embedder, config=RetrieverConfig(dedup=False))
    assert len([h for h in keeping.search("quokka marsupial Rottnest", mode=Mode.BM25, k=5).hits if "quokka" in h.text]) == 2


def test_context_window_adds_neighbouring_chunks(retriever: Retriever):
    hit = retriever.search("item40", mode=Mode.BM25, k=1, window=1).hits[0]
    assert "item40" in hit.text
    assert "item39" in hit.context or "item41" in hit.context
    assert len(hit.context) > len(hit.text)


def test_score_fusion_methods_are_selectable(index_dir: Path, embedder):
    for method in FusionMethod:
        retriever = Retriever(Index.open(index_dir), embedder, config=RetrieverConfig(fusion=method))
        assert _top(retriever.search("How long does a full charge from the sun take?", mode=Mode.HYBRID, k=1)) == ("lumen-l2-guide.pdf", 2)


def test_cross_encoder_reranks_the_candidates(index_dir: Path, embedder, tiny_cross_encoder: Path):
    reranker = Reranker(str(tiny_cross_encoder))
    retriever = Retriever(Index.open(index_dir), embedder, reranker=reranker)
    query = "How long is the warranty?"
    result = retriever.search(query, mode=Mode.HYBRID, k=4)
    expected = reranker.scores(query, [h.text for h in result.hits])
    assert [h.score for h in result.hits] == pytest.approx(expected)
    assert [h.score for h in result.hits] == sorted((h.score for h in result.hits), reverse=True)
    assert all({"fused", "rerank"} <= h.scores.keys() for h in result.hits)
    plain = retriever.search(query, mode=Mode.HYBRID, k=4, rerank=False)
    assert all("rerank" not in h.scores for h in plain.hits)


def test_queries_must_use_the_index_embedder(index_dir: Path):
    with pytest.raises(EmbedderMismatchError, match=f"built with embedder '{default_embedder()}' but 'minilm'"):
        Retriever.open(index_dir, Settings.resolve({"embed_model": "minilm"}, env={}))
    with pytest.raises(EmbedderMismatchError, match="but '/models/other' is configured"):
        Retriever.open(index_dir, Settings.resolve({"embed_model": "/models/other"}, env={}))
    assert Retriever.open(index_dir, Settings.resolve({"embed_model": "e5-small"}, env={})).embedder.name == default_embedder()


def test_langchain_adapter_works_in_a_runnable_chain(retriever: Retriever):
    adapter = LangChainRetriever(retriever=retriever, mode=Mode.HYBRID, k=2)
    chain = adapter | RunnableLambda(lambda docs: [(Path(d.metadata["source"]).name, d.metadata["page"]) for d in docs])
    assert chain.invoke("How long does a full charge from the sun take?")[0] == ("lumen-l2-guide.pdf", 2)
    documents = adapter.invoke("保修期多长")
    assert {"original/bm25", "original/dense"} <= set(documents[0].metadata["found_by"]) and "保修" in documents[0].page_content


def test_score_fusion_scores_a_chunk_missing_from_one_list_by_its_real_score_there(index_dir: Path, embedder):
    query = "How long does a full charge from the sun take?"
    shallow = Retriever(Index.open(index_dir), embedder, config=RetrieverConfig(depth=3, fusion=FusionMethod.MINMAX))
    vector = embedder.encode([query], Role.QUERY)[0]
    weights = term_weights(shallow.tokenizer.tokenize(query))
    lists = {"original/bm25": shallow.index.search_bm25(shallow.tokenizer.tokenize(query), 3), "original/dense": shallow.index.search_dense(vector, 3)}
    completed = shallow._completed(lists, [QueryVariant("original", query, weights, vector)])
    union = {i for ranked in lists.values() for i, _ in ranked}
    assert all({i for i, _ in ranked} == union for ranked in completed.values())
    dense = dict(completed["original/dense"])
    assert all(abs(dense[i] - float(shallow.index.vectors([i])[0] @ vector)) < 1e-5 for i in union)
    bm25 = dict(completed["original/bm25"])
    assert all(bm25[i] == pytest.approx(s, rel=1e-5) for i, s in lists["original/bm25"])
    result = shallow.search(query, mode=Mode.HYBRID, k=5)
    for hit in result.hits:  # provenance is what each list found in its own top 3, not the completion
        assert set(hit.found_by) == {key for key, ranked in lists.items() if hit.chunk.id in dict(ranked)}


def test_a_search_memo_fetches_each_vector_once_and_returns_them_in_the_order_asked(index_dir: Path):
    index = Index.open(index_dir)
    fetched: list[list[int]] = []
    real_vectors = index.vectors
    index.vectors = lambda ids: (fetched.append(sorted(int(i) for i in ids)), real_vectors(ids))[1]  # type: ignore[method-assign]
    memo = SearchMemo(index)
    ids = sorted(chunk_id for chunk_id, *_ in index.store.chunk_locations())[:6]
    first = memo.vectors(np.array([ids[4], ids[1], ids[4]]))
    np.testing.assert_array_equal(first, real_vectors([ids[4], ids[1], ids[4]]))
    again = memo.vectors(np.array([ids[1], ids[5], ids[0], ids[4]]))
    np.testing.assert_array_equal(again, real_vectors([ids[1], ids[5], ids[0], ids[4]]))
    assert fetched == [[ids[1], ids[4]], [ids[0], ids[5]]]
    assert memo.vectors(np.array([ids[0]])).shape == (1, real_vectors([ids[0]]).shape[1]) and len(fetched) == 2


@pytest.mark.parametrize("settings, named", [
    ({"unknown_share_full": 0.5, "unknown_share_zero": 0.5}, "unknown_share_full = 0.5 must be below unknown_share_zero = 0.5"),
    ({"unknown_share_full": 0.6}, "unknown_share_full = 0.6 must be below unknown_share_zero = 0.5"),
    ({"rrf_k": -1}, "rrf_k = -1 must be at least 0"),
    ({"depth": 0}, "depth = 0 must be at least 1"),
    ({"dense_weight": -2.0}, "dense_weight = -2.0 must be at least 0"),
    ({"dedup_jaccard": 1.5}, "dedup_jaccard = 1.5 must be between 0 and 1"),
])
def test_settings_that_would_break_every_query_are_refused_in_one_line_naming_the_setting(settings: dict, named: str):
    with pytest.raises(ConfigError) as refused:
        RetrieverConfig(**settings)
    assert named in str(refused.value) and "\n" not in str(refused.value)
    assert RetrieverConfig.for_embedder("multilingual-e5-small").dense_weight == 2.0  # the tuned settings pass
