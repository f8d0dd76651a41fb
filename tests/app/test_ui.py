"""The Streamlit app through streamlit.testing.v1.AppTest: chat, citations, settings, upload, delete, feedback."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app import resources
from app.preferences import PREFERENCES_FILE
from app.uploads import UPLOADS
from examples.make_demo_docs import write_pdf
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.feedback import FeedbackStore
from rag.index import Index
from rag.retrieve import Mode
from testkit.demo import demo_docs
from testkit.fake_llm_server import FakeLLMServer

ROOT = Path(__file__).resolve().parents[2]
UI = str(ROOT / "app" / "ui.py")


def _open(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("RAG_INDEX", str(index_dir))
    return AppTest.from_file(UI, default_timeout=120).run()


def _ask(app: AppTest, question: str) -> AppTest:
    app.chat_input[0].set_value(question)
    return app.run()


def _markdown(app: AppTest) -> str:
    return "\n".join(m.value for m in app.markdown)


def _plain(elements) -> str:
    """The text of these elements with Markdown escapes removed."""
    return "\n".join(e.value for e in elements).replace("\\", "")


@pytest.fixture(scope="module")
def chat_index(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("ui-chat")
    docs = demo_docs(base / "docs")
    (docs / "tricks.md").write_text("The quokka manual: quokkas sleep by day. <script>alert('x')</script> "
                                    "[click here](javascript:alert(1)) ![img](http://example.invalid/x.png)\n\n"
                                    "Quokka keepers answer at keeper@quokka.example and https://quokka.example/help every day.",
                                    encoding="utf-8")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedders=embedders, progress=False).run([docs])
    return base / "index"


@pytest.fixture
def own_index(tmp_path: Path, chat_index: Path) -> Path:
    """A copy of the chat index that a test may change (settings, feedback, deletions)."""
    shutil.copytree(chat_index, tmp_path / "index", ignore=shutil.ignore_patterns(PREFERENCES_FILE, "feedback.sqlite"))
    return tmp_path / "index"


# the knowledge base ------------------------------------------------------------------------------
def test_documents_tab_lists_files_with_failures(tmp_path: Path, ingestor: Ingestor, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("The lantern charges in ten hours.", encoding="utf-8")
    (docs / "broken.pdf").write_bytes(b"")
    ingestor.run([docs])
    app = _open(ingestor.settings.index_dir, monkeypatch)
    assert not app.exception
    assert [m.value for m in app.metric] == ["1", "1", "1"]
    table = app.dataframe[0].value
    rows = {name: (s, e) for name, s, e in zip(table["file"], table["status"], table["problem"], strict=True)}
    assert rows == {"guide.md": ("ok", ""), "broken.pdf": ("failed", "empty file (0 bytes)")}


def test_without_an_index_the_chat_points_to_the_documents_tab(tmp_path: Path, monkeypatch):
    app = _open(tmp_path / "nothing", monkeypatch)
    assert not app.exception
    assert "add documents in the Documents tab" in app.info[0].value
    assert app.file_uploader and not app.metric


def test_upload_saves_safe_names_rejects_bad_files_and_ingests(tmp_path: Path, monkeypatch):
    config = tmp_path / "rag.toml"
    config.write_text("max_upload_mb = 1\n", encoding="utf-8")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    write_pdf(tmp_path / "guide.pdf", [["Intro page."], ["The lantern charges in ten hours from the sun."]])
    index_dir = tmp_path / "index"
    app = _open(index_dir, monkeypatch)
    app.file_uploader[0].set_value([
        ("../../escape.md", b"Quokkas sleep by day in the shade.", "text/markdown"),
        ("年报 2024.pdf", (tmp_path / "guide.pdf").read_bytes(), "application/pdf"),
        ("setup.exe", b"MZ...", "application/octet-stream"),
        ("huge.txt", b"x" * (1024 * 1024 + 1), "text/plain"),
    ])
    app = app.run().button(key="ingest-uploads").click().run()
    assert not app.exception
    assert sorted(p.name for p in (index_dir / UPLOADS).iterdir()) == ["escape.md", "年报 2024.pdf"]
    assert not (tmp_path / "escape.md").exists()
    warnings = _plain(app.warning).splitlines()
    assert any("setup.exe" in w and "unsupported file type" in w for w in warnings)
    assert any("huge.txt" in w and "over the 1 MB limit" in w for w in warnings)
    assert "2 added" in app.success[0].value
    assert [m.value for m in app.metric] == ["2", "3", "3"]  # files, pages, chunks
    assert not app.file_uploader[0].value  # emptied after the ingest


def test_ingest_a_server_folder_and_report_its_failures(tmp_path: Path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("The lantern charges in ten hours.", encoding="utf-8")
    (docs / "locked.pdf").write_bytes(b"%PDF-1.4 garbage")
    app = _open(tmp_path / "index", monkeypatch)
    app.text_input(key="folder").set_value(str(docs))
    app = app.run().button(key="ingest-folder").click().run()
    assert "1 added" in app.warning[0].value and "1 failed" in app.warning[0].value
    assert "locked.pdf: corrupt or truncated PDF" in _plain(app.error)
    app.text_input(key="folder").set_value(str(tmp_path / "missing"))
    app = app.run().button(key="ingest-folder").click().run()
    assert "missing: not a folder" in _plain(app.error)


def _run_beside_threads(app: AppTest) -> AppTest:
    """``app.run()``, once more when compiling the script failed with the spurious SystemError of CPython
    3.11's ast module while another thread (here the folder watcher's) parses at the same time
    (python/cpython#106905); a second failure stays a failure."""
    app = app.run()
    if any("AST constructor recursion depth mismatch" in element.value for element in app.exception):
        app = app.run()
    return app


def test_a_watched_folder_stays_in_sync_until_unwatched(tmp_path: Path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text("The lantern charges in ten hours.", encoding="utf-8")
    index_dir = tmp_path / "index"
    app = _open(index_dir, monkeypatch)
    app.text_input(key="folder").set_value(str(docs))
    app = app.run().button(key="watch-folder").click().run()
    assert f"Watching {docs}" in _plain(app.success)
    [(folder, watcher)] = resources.watched_folders().of(index_dir)
    assert folder == docs and watcher.wait_synced(timeout=120) is not None
    (docs / "kettle.md").write_text("The kettle boils water in ninety seconds.", encoding="utf-8")
    (docs / "notes.md").unlink()
    synced = watcher.wait_synced(after=1, timeout=120)
    assert synced is not None and synced.report is not None
    assert {Path(f.path).name for f in Index.open(index_dir).files()} == {"kettle.md"}
    app = _run_beside_threads(app)
    assert "Kept in sync" in _plain(app.caption) and "synced:" in _plain(app.caption)
    app = _run_beside_threads(app.button(key="unwatch-0").click())
    assert resources.watched_folders().of(index_dir) == [] and not watcher.running


def test_delete_and_reingest_documents(own_index: Path, monkeypatch):
    app = _open(own_index, monkeypatch)
    guide = next(f.path for f in Index.open(own_index).files() if f.path.endswith("lumen-l2-guide.pdf"))
    app = app.multiselect(key="chosen").set_value([guide]).run().button(key="reingest").click().run()
    assert not app.exception and "1 updated" in app.success[0].value
    app = app.multiselect(key="chosen").set_value([guide]).run().button(key="delete").click().run()
    assert "lumen-l2-guide.pdf" in app.multiselect(key="chosen").options  # nothing is gone before confirming
    app = app.button(key="confirm-delete-yes").click().run()
    assert not app.exception and "Deleted 1" in app.success[0].value
    index = Index.open(own_index)
    assert guide not in {f.path for f in index.files()} and Path(guide).exists()  # a user's own file stays on disk
    assert len(index.dense) == index.manifest["counts"]["chunks"]
    app = _ask(app, "How long does a full charge from the sun take?")
    assert "lumen-l2-guide.pdf" not in " ".join(b.label for b in app.button)


def test_deleting_an_uploaded_document_deletes_the_upload(tmp_path: Path, monkeypatch):
    app = _open(tmp_path / "index", monkeypatch)
    app.file_uploader[0].set_value(("notes.md", b"The lantern charges in ten hours.", "text/markdown"))
    app = app.run().button(key="ingest-uploads").click().run()
    uploaded = tmp_path / "index" / UPLOADS / "notes.md"
    assert uploaded.exists()
    app = app.multiselect(key="chosen").set_value([str(uploaded)]).run().button(key="delete").click().run()
    app = app.button(key="confirm-delete-yes").click().run()
    assert not uploaded.exists() and [m.value for m in app.metric] == ["0", "0", "0"]


# chat --------------------------------------------------------------------------------------------
def test_chat_answers_with_citation_buttons_that_open_the_source_with_its_page(chat_index: Path, monkeypatch):
    app = _ask(_open(chat_index, monkeypatch), "How long does a full charge from the sun take?")
    assert not app.exception
    assert "10 hours" in _markdown(app)
    buttons = [b for b in app.button if b.key and b.key.startswith("cite-0-")]
    assert buttons and buttons[0].label == "[1] p.2 · lumen-l2-guide.pdf"
    assert not app.image
    app = buttons[0].click().run()
    text = _markdown(app)
    assert "lumen\\-l2\\-guide\\.pdf, page 2" in text and ":orange-background[" in text
    assert len(app.image) == 2  # the band of the page around the passage, and the whole page
    assert not any("could not be located" in c.value for c in app.caption)
    app = app.button(key=buttons[0].key).click().run()  # a second click closes it
    assert not app.image


def test_chat_in_chinese_follow_up_and_new_chat(chat_index: Path, monkeypatch):
    app = _ask(_open(chat_index, monkeypatch), "室外传感器的电池能用多久？")
    assert "十二个月" in _markdown(app)
    app = _ask(app, "火星有几颗卫星？")
    assert "您的文档中没有找到答案" in _markdown(app)
    assert "Nearest passages in your documents" in _plain(app.caption)  # the refusal still shows what is closest
    assert len(app.session_state["conversation"].answers) == 2
    assert not app.download_button(key="export").disabled
    app = app.button(key="new-chat").click().run()
    assert app.session_state["conversation"].answers == []


def test_follow_up_question_uses_the_history(chat_index: Path, monkeypatch):
    app = _ask(_open(chat_index, monkeypatch), "How long is the warranty of the Lumen L2 lantern?")
    app = _ask(app, "And what does it not cover?")
    conversation = app.session_state["conversation"]
    assert "Lumen" in conversation.answers[1].standalone_question or "warranty" in conversation.answers[1].standalone_question


def test_document_text_is_shown_as_text_never_as_html_or_links(chat_index: Path, monkeypatch):
    app = _ask(_open(chat_index, monkeypatch), "When do quokkas sleep according to the quokka manual?")
    text = _markdown(app)
    assert "quokkas sleep by day" in text.replace("\\", "")
    assert "<script>" not in text and "](javascript" not in text and "![img](" not in text
    assert "\\<script\\>" in text or "script" not in text


def test_urls_and_addresses_in_documents_are_not_links_in_tooltips_sources_or_the_export(chat_index: Path, monkeypatch):
    app = _ask(_open(chat_index, monkeypatch), "How do I contact the quokka keepers?")
    button = next(b for b in app.button if b.key and b.key.startswith("cite-0-") and "tricks.md" in b.label)
    assert "`keeper@quokka.example`" in button.help and "`https://quokka.example/help`" in button.help
    app = button.click().run()
    text = _markdown(app)
    assert "`keeper@quokka.example`" in text and "`https://quokka.example/help`" in text
    exported = app.session_state["conversation"].to_markdown()
    assert "`https://quokka.example/help`" in exported and "](javascript" not in exported


def test_a_password_under_eight_characters_guards_nothing(chat_index: Path, monkeypatch):
    monkeypatch.setenv("RAG_UI_PASSWORD", " ")
    app = _open(chat_index, monkeypatch)
    assert not app.tabs and not app.chat_input and not app.text_input
    assert "at least 8" in app.error[0].value


def test_unsupported_sentences_are_marked_and_backend_errors_are_one_readable_line(own_index: Path, monkeypatch):
    reply = ("A full charge from the sun takes about 10 hours on a clear summer day [1]. "
             "The lantern also doubles as a satellite phone with a built-in modem [1].")
    with FakeLLMServer(lambda messages: reply) as server:
        app = _open(own_index, monkeypatch)
        app.selectbox(key="pref-en-backend").set_value("openai")
        app = app.run()
        assert any("Server URL" in w.value for w in app.warning)  # names what is missing
        app.text_input(key="pref-en-server_url").set_value(server.base_url)
        app.text_input(key="pref-en-server_model").set_value("tiny")
        app = _ask(app.run(), "How long does a full charge from the sun take?")
        assert not app.exception
        answer = _markdown(app)
        assert ":red-background[The lantern also doubles as a satellite phone" in answer
        assert ":red-background[A full charge" not in answer
        assert server.requests
    app = _ask(app, "How long does a full charge from the sun take?")  # the server is gone now
    assert not app.exception
    assert len(app.error) == 1 and app.error[0].value.startswith("Could not answer:") and "\n" not in app.error[0].value


def test_settings_apply_to_retrieval_and_persist_per_index(own_index: Path, monkeypatch):
    app = _open(own_index, monkeypatch)
    app.radio(key="pref-en-mode").set_value("bm25")
    app.slider(key="pref-en-top_k").set_value(2)
    app = _ask(app.run(), "How long does a full charge from the sun take?")
    retrieval = app.session_state["conversation"].answers[0].retrieval
    assert retrieval.mode is Mode.BM25 and len(retrieval.hits) == 2
    assert app.toggle(key="pref-en-fusion").disabled  # fusion applies to hybrid retrieval only
    saved = json.loads((own_index / PREFERENCES_FILE).read_text(encoding="utf-8"))
    assert (saved["mode"], saved["top_k"]) == ("bm25", 2)
    again = _open(own_index, monkeypatch)  # a new session of the same index
    assert (again.radio(key="pref-en-mode").value, again.slider(key="pref-en-top_k").value) == ("bm25", 2)
    again.radio(key="pref-en-mode").set_value("hybrid")
    again = _ask(again.run(), "How long does a full charge from the sun take?")
    assert again.session_state["conversation"].answers[0].retrieval.mode is Mode.FUSION


def test_language_setting_switches_the_interface_to_chinese(own_index: Path, monkeypatch):
    app = _open(own_index, monkeypatch)
    assert app.title[0].value == "Your documents"
    app.radio(key="pref-en-mode").set_value("dense")
    app.slider(key="pref-en-top_k").set_value(7)
    app = app.run()
    app.selectbox(key="pref-en-language").set_value("zh")
    app = app.run()
    assert app.title[0].value == "我的文档"
    assert [tab.label for tab in app.tabs] == ["对话", "文档库"]
    # the settings are kept across the switch, shown as chosen, and saved
    assert (app.radio(key="pref-zh-mode").value, app.slider(key="pref-zh-top_k").value) == ("dense", 7)
    saved = json.loads((own_index / PREFERENCES_FILE).read_text(encoding="utf-8"))
    assert (saved["language"], saved["mode"], saved["top_k"]) == ("zh", "dense", 7)
    app.selectbox(key="pref-zh-language").set_value("en")
    app = app.run()
    assert app.radio(key="pref-en-mode").value == "dense" and app.title[0].value == "Your documents"


def test_export_holds_every_exchange_as_soon_as_it_is_answered(chat_index: Path, monkeypatch):
    app = _open(chat_index, monkeypatch)
    assert app.get("download_button")[0].proto.disabled
    questions = ["How long does a full charge from the sun take?", "室外传感器的电池能用多久？"]
    for n, question in enumerate(questions, start=1):
        app = _ask(app, question)
        export = app.get("download_button")[0]
        assert not export.proto.disabled, "enabled in the run that shows the answer"
        assert len(app.session_state["conversation"].answers) == n
        exported = app.session_state["conversation"].to_markdown()
        assert all(f"## {q}" in exported.replace("\\", "") for q in questions[:n])


def test_an_unrelated_question_is_searched_as_written_after_another(chat_index: Path, monkeypatch):
    app = _ask(_ask(_open(chat_index, monkeypatch), "室外传感器的电池能用多久？"), "梯度裁剪是什么？")
    answers = app.session_state["conversation"].answers
    assert answers[1].standalone_question == "梯度裁剪是什么？" and "clip" in answers[1].text
    app = _ask(app, "那学习率预热呢？")  # a follow-up: the topic before it is carried
    assert app.session_state["conversation"].answers[2].standalone_question != "那学习率预热呢？"


def test_reloading_the_tab_finds_the_conversation(chat_index: Path, monkeypatch):
    app = _ask(_open(chat_index, monkeypatch), "How long does a full charge from the sun take?")
    chat_id = app.session_state["conversation"].id
    assert app.query_params["chat"] == chat_id
    reloaded = AppTest.from_file(UI, default_timeout=120)
    reloaded.query_params["chat"] = chat_id
    reloaded = reloaded.run()
    assert reloaded.session_state["conversation"].questions == ["How long does a full charge from the sun take?"]
    assert "10 hours" in _markdown(reloaded)


def test_feedback_is_stored_beside_the_index_and_exported_as_eval_cases(own_index: Path, monkeypatch):
    app = _ask(_open(own_index, monkeypatch), "How long does a full charge from the sun take?")
    app = app.feedback[0].set_value(1).run()
    app.text_input(key=f"feedback-{app.session_state['conversation'].id}-0-comment").set_value("exactly right")
    app = app.run()
    [case] = FeedbackStore(own_index).cases()
    assert case["question"] == "How long does a full charge from the sun take?"
    assert (Path(case["source"]).name, case["page"], case["comment"]) == ("lumen-l2-guide.pdf", 2, "exactly right")
    app = app.feedback[0].set_value(0).run()  # changing one's mind replaces the vote
    assert FeedbackStore(own_index).cases() == [] and len(FeedbackStore(own_index).all()) == 1


def test_a_password_guards_the_app_when_one_is_set(chat_index: Path, monkeypatch):
    monkeypatch.setenv("RAG_UI_PASSWORD", "correct horse")
    app = _open(chat_index, monkeypatch)
    assert not app.exception and not app.tabs and not app.chat_input  # nothing of the documents before signing in
    app.text_input[0].set_value("wrong")
    app = app.button[0].click().run()
    assert [e.value for e in app.error] == ["Wrong password."] and not app.tabs
    app.text_input[0].set_value("correct horse")
    app = app.button[0].click().run()
    assert len(app.tabs) == 2 and app.chat_input
    app = _ask(app, "How long does a full charge from the sun take?")
    assert "10 hours" in _markdown(app)
