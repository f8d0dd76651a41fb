from pathlib import Path

from streamlit.testing.v1 import AppTest

from ingest.pipeline import Ingestor

UI = str(Path(__file__).resolve().parents[2] / "app" / "ui.py")


def test_ui_lists_the_knowledge_base_with_failures(tmp_path: Path, ingestor: Ingestor, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("The lantern charges in ten hours.", encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"")
    ingestor.run([docs])
    monkeypatch.setenv("RAG_INDEX", str(ingestor.settings.index_dir))
    app = AppTest.from_file(UI, default_timeout=60).run()
    assert not app.exception
    assert [m.value for m in app.metric] == ["1", "1", "1"]
    table = app.dataframe[0].value
    rows = {Path(p).name: (s, e) for p, s, e in zip(table["file"], table["status"], table["problem"])}
    assert rows == {"guide.md": ("ok", ""), "broken.pdf": ("failed", "empty file (0 bytes)")}


def test_ui_explains_a_missing_index(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX", str(tmp_path / "nothing"))
    app = AppTest.from_file(UI, default_timeout=60).run()
    assert "run `rag ingest FOLDER" in app.info[0].value
