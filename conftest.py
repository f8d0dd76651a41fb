"""The workspace the docstrings' examples run in (``pytest --doctest-modules rag ingest eval finetune app``).

Each example runs in a folder that holds what a user's would: ``docs/`` (the demo documents),
``rag-index/`` (their index, built once with the default embedder) and ``beir/`` (a four-query BEIR-format
set over the same documents), so an example can say ``Index.open(Path("rag-index"))`` and mean it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from testkit.demo import demo_docs

QUERIES = {
    "q1": ("How long is the warranty of the Lumen L2?", "lumen-l2-guide.pdf"),
    "q2": ("室外传感器的电池能用多久？", "晴川-w3-说明书.pdf"),
    "q3": ("Which function clips gradients?", "训练笔记.md"),
    "q4": ("When is the help desk open?", "handbook.md"),
}


def _beir(folder: Path, docs: Path) -> Path:
    """A BEIR-format set whose corpus is the demo documents, one entry per file."""
    from ingest.loaders import load_file

    folder.mkdir()
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as corpus:
        for path in sorted(docs.iterdir()):
            text = " ".join(page.text for page in load_file(path).pages)
            corpus.write(json.dumps({"_id": path.name, "title": "", "text": text}, ensure_ascii=False) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as queries:
        for query_id, (text, _) in QUERIES.items():
            queries.write(json.dumps({"_id": query_id, "text": text}, ensure_ascii=False) + "\n")
    (folder / "qrels").mkdir()
    rows = [f"{query_id}\t{name}\t1" for query_id, (_, name) in QUERIES.items()]
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def example_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ingest.pipeline import Ingestor
    from rag.config import Settings

    workspace = tmp_path_factory.mktemp("examples")
    docs = demo_docs(workspace / "docs")
    Ingestor(Settings.resolve({"index_dir": workspace / "rag-index"}, env={}), progress=False).run([docs])
    _beir(workspace / "beir", docs)
    return workspace


@pytest.fixture(autouse=True)
def _examples_run_in_the_workspace(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(request.getfixturevalue("example_workspace"))
        monkeypatch.setenv("RAG_CACHE", str(Path.cwd() / "cache"))
