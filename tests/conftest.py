"""Shared fixtures: the packaged embedder (loaded once), settings for a fresh index, the shared data."""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import Embedder, default_embedder, load_embedder

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not CORPUS.is_dir():
        skip = pytest.mark.skip(reason=f"shared corpus not found at {CORPUS}")
        for item in items:
            if "shared_corpus" in item.fixturenames:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def embedders() -> Callable[[str, int], Embedder]:
    """``(name, batch size) -> Embedder``, each model loaded once for the whole session."""
    loaded: dict[str, Embedder] = {}

    def get(name: str, batch_size: int = 32) -> Embedder:
        if name not in loaded:
            loaded[name] = load_embedder(name, batch_size)
        return loaded[name]

    return get


@pytest.fixture(scope="session")
def embedder(embedders: Callable[[str, int], Embedder]) -> Embedder:
    """The default embedder, the bundled multilingual-e5-small."""
    return embedders(default_embedder(), 32)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.resolve({"index_dir": tmp_path / "index"}, env={})


@pytest.fixture
def ingestor(settings: Settings, embedders: Callable[[str, int], Embedder]) -> Ingestor:
    return Ingestor(settings, embedders=embedders, progress=False)


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    return CORPUS


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, embedders: Callable[[str, int], Embedder], shared_corpus: Path) -> tuple[Path, Path, dict]:
    """A copy of the shared corpus and an index of it, built once per test session."""
    base = tmp_path_factory.mktemp("corpus")
    docs = base / "corpus"
    shutil.copytree(shared_corpus, docs)
    settings = Settings.resolve({"index_dir": base / "index"}, env={})
    report = Ingestor(settings, embedders=embedders, progress=False).run([docs])
    return docs, base / "index", report.summary()


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.tiny_models import make_cross_encoder

    return make_cross_encoder(tmp_path_factory.mktemp("cross-encoder"))


@pytest.fixture(scope="session")
def tiny_llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.tiny_models import make_causal_lm

    return make_causal_lm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_lora(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path) -> Path:
    from testkit.tiny_models import make_lora_adapter

    return make_lora_adapter(tiny_llm, tmp_path_factory.mktemp("tiny-lora"))


@pytest.fixture(scope="session")
def tiny_sentence_transformer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from testkit.tiny_models import make_sentence_transformer

    return make_sentence_transformer(tmp_path_factory.mktemp("tiny-st"))
