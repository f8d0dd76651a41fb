from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from ingest.pipeline import Ingestor

ROOT = Path(__file__).resolve().parents[2]
UI = str(ROOT / "app" / "ui.py")


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


@pytest.fixture(scope="module")
def chat_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    from rag.config import Settings
    from tests.conftest import demo_docs

    base = tmp_path_factory.mktemp("ui-chat")
    docs = demo_docs(base / "docs")
    (docs / "tricks.md").write_text("The quokka manual: quokkas sleep by day. <script>alert('x')</script> "
                                    "[click here](javascript:alert(1)) ![img](http://example.invalid/x.png)", encoding="utf-8")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedder=embedder, progress=False).run([docs])
    return base / "index"


def _ask(app: AppTest, question: str) -> AppTest:
    app.chat_input[0].set_value(question)
    return app.run()


def _markdown(app: AppTest) -> str:
    return "\n".join(m.value for m in app.markdown)


def test_chat_answers_with_citation_buttons_that_open_the_source(chat_index: Path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX", str(chat_index))
    app = AppTest.from_file(UI, default_timeout=120).run()
    app = _ask(app, "How long does a full charge from the sun take?")
    assert not app.exception
    assert "10 hours" in _markdown(app)
    buttons = [b for b in app.button if b.key and b.key.startswith("cite-0-")]
    assert buttons and "lumen-l2-guide.pdf p.2" in buttons[0].label
    app = buttons[0].click().run()
    text = _markdown(app)
    assert "lumen\\-l2\\-guide\\.pdf, page 2" in text and ":orange-background[" in text


def test_chat_in_chinese_and_follow_up_history(chat_index: Path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX", str(chat_index))
    app = _ask(AppTest.from_file(UI, default_timeout=120).run(), "室外传感器的电池能用多久？")
    assert "十二个月" in _markdown(app)
    app = _ask(app, "火星有几颗卫星？")
    assert "您的文档中没有找到答案" in _markdown(app)
    assert len(app.session_state["turns"]) == 2
    app = app.button(key="new-chat").click().run()
    assert app.session_state["turns"] == []


def test_document_text_is_shown_as_text_never_as_html_or_links(chat_index: Path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX", str(chat_index))
    app = _ask(AppTest.from_file(UI, default_timeout=120).run(), "When do quokkas sleep according to the quokka manual?")
    text = _markdown(app)
    assert "quokkas sleep by day" in text.replace("\\", "")
    assert "<script>" not in text and "](javascript" not in text and "![img](" not in text
    assert "\\<script\\>" in text or "script" not in text
