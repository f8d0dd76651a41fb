"""Readers while `rag ingest` rewrites their index: queries stay correct, the API server and the UI keep
answering and pick up the new generation."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from rag.embed import load_embedder
from rag.index import Index
from rag.retrieve import Mode, Retriever
from tests.reliability.conftest import ENV, RAG, TwoCorpora, start_rag

UI = str(Path(__file__).resolve().parents[2] / "app" / "ui.py")
PARTS = {"part QX007Z": "note-007.md", "part QX025Z procedure": "note-025.md", "part QX041Z": "note-041.md"}
"""Queries whose right answer is the same note in the old and the new corpus (unchanged or changed)."""


def _ingest(corpora: TwoCorpora, index_dir: Path, embedder: Path) -> subprocess.Popen:
    return start_rag("ingest", str(corpora.docs), "--index", str(index_dir), "--prune", "--embedder", str(embedder))


def test_queries_during_an_ingest_are_answered_correctly(two_corpora: TwoCorpora, tiny_sentence_transformer: Path,
                                                         tmp_path: Path):
    index_dir = two_corpora.fresh_copy_of_old(tmp_path / "index")
    embedder = load_embedder(str(tiny_sentence_transformer))
    ingest = _ingest(two_corpora, index_dir, tiny_sentence_transformer)
    answered, generations = 0, set()
    while ingest.poll() is None:
        index = Index.open(index_dir)  # as a reader that follows CURRENT does
        generations.add(index.generation.name)
        retriever = Retriever(index, embedder)
        for query, note in PARTS.items():
            assert Path(retriever.search(query, mode=Mode.HYBRID, k=3).hits[0].source).name == note, query
            answered += 1
        index.close()
    assert ingest.returncode == 0, ingest.stderr.read() if ingest.stderr else ""
    assert answered >= 9
    final = Retriever(Index.open(index_dir), embedder)
    assert Path(final.search("part QX075Z", mode=Mode.HYBRID, k=3).hits[0].source).name == "note-075.md"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_api_server_keeps_answering_through_a_re_ingest(two_corpora: TwoCorpora, tiny_sentence_transformer: Path,
                                                            tmp_path: Path):
    index_dir = two_corpora.fresh_copy_of_old(tmp_path / "index")
    port = _free_port()
    server = subprocess.Popen([*RAG, "serve", "--index", str(index_dir), "--port", str(port)], env=ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "rag serve did not start"
            time.sleep(0.2)

        def top(query: str) -> str:
            response = httpx.post(f"{base}/api/search", json={"query": query, "k": 3}, timeout=30)
            assert response.status_code == 200, response.text
            return Path(response.json()["hits"][0]["source"]).name

        ingest = _ingest(two_corpora, index_dir, tiny_sentence_transformer)
        answered = 0
        while ingest.poll() is None:
            for query, note in PARTS.items():
                assert top(query) == note
                answered += 1
        assert ingest.returncode == 0 and answered >= 3
        assert top("part QX075Z") == "note-075.md"  # the server reloaded the new generation
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def ui_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, two_corpora: TwoCorpora) -> Path:
    index_dir = two_corpora.fresh_copy_of_old(tmp_path / "index")
    monkeypatch.setenv("RAG_INDEX", str(index_dir))
    return index_dir


def test_the_ui_keeps_answering_through_a_re_ingest(ui_env: Path, two_corpora: TwoCorpora, tiny_sentence_transformer: Path):
    app = AppTest.from_file(UI, default_timeout=120).run()
    assert not app.exception
    ingest = _ingest(two_corpora, ui_env, tiny_sentence_transformer)
    asked = 0
    while ingest.poll() is None or not asked:
        app.chat_input[0].set_value("Which part is QX007Z?")
        app = app.run()
        assert not app.exception
        asked += 1
    assert ingest.wait() == 0
    answers = [b.label for b in app.button if b.key and b.key.startswith("cite-")]
    assert len(answers) == asked and all("note-007.md" in label for label in answers)
    app = app.button(key="new-chat").click().run()  # no history to carry into the next question
    app.chat_input[0].set_value("Which part is QX075Z?")  # a note only the new corpus has
    app = app.run()
    assert not app.exception
    shown = "\n".join(m.value for m in app.markdown) + "\n".join(b.label for b in app.button)
    assert "note-075.md" in shown.replace("\\", ""), "the UI still answers from the old generation"
