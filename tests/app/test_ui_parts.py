"""The UI's plain parts: upload names and limits, saved settings, languages, the Markdown export."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from app.conversation import Conversation
from app.i18n import Texts, pick_language
from app.preferences import PREFERENCES_FILE, Preferences
from app.safe_markdown import escape, marked
from app.uploads import UploadRejected, is_upload, safe_name, save_upload
from rag.config import Settings
from rag.generate.prompt import Passage
from rag.pipeline import Answer, Citation
from rag.retrieve import Mode


@pytest.mark.parametrize("given, expected", [
    ("../../etc/passwd.md", "passwd.md"),
    ("..\\..\\windows\\evil.pdf", "evil.pdf"),
    ("/abs/path/report.pdf", "report.pdf"),
    ("年报 2024?.pdf", "年报 2024_.pdf"),
    (".hidden.md", "hidden.md"),
    ("a\x00b<>c.txt", "a_b_c.txt"),
    ("..", "upload"),
])
def test_safe_name_keeps_only_a_harmless_base_name(given: str, expected: str):
    assert safe_name(given) == expected


def test_save_upload_never_overwrites_and_reuses_identical_content(tmp_path: Path):
    folder = tmp_path / "uploads"
    first = save_upload("notes.md", b"one", folder, limit_mb=1)
    assert save_upload("notes.md", b"one", folder, limit_mb=1) == first
    second = save_upload("../notes.md", b"two", folder, limit_mb=1)
    assert (first.name, second.name) == ("notes.md", "notes (2).md")
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert sorted(p.name for p in folder.iterdir()) == ["notes (2).md", "notes.md"]  # no temporary files left
    assert is_upload(second, tmp_path) and not is_upload(tmp_path / "notes.md", tmp_path)


@pytest.mark.parametrize("name, data, reason", [
    ("big.pdf", b"x" * (1024 * 1024 + 1), "over the 1 MB limit"),
    ("empty.md", b"", "empty file"),
    ("tool.exe", b"MZ", "unsupported file type '.exe'"),
    ("README", b"text", "unsupported file type '(no extension)'"),
])
def test_save_upload_rejects_with_a_reason(tmp_path: Path, name: str, data: bytes, reason: str):
    with pytest.raises(UploadRejected, match=reason.replace("(", r"\(").replace(")", r"\)")):
        save_upload(name, data, tmp_path / "uploads", limit_mb=1)
    assert not (tmp_path / "uploads").exists() or not any((tmp_path / "uploads").iterdir())


def test_preferences_default_from_settings_and_survive_a_round_trip(tmp_path: Path):
    settings = Settings.resolve({"llm": "openai:http://127.0.0.1:8000/v1#qwen", "reranker": "/models/rr"}, env={})
    prefs = Preferences.load(tmp_path, settings)
    assert (prefs.backend, prefs.server_url, prefs.server_model, prefs.reranker) == ("openai", "http://127.0.0.1:8000/v1", "qwen", "/models/rr")
    assert prefs.llm_spec == "openai:http://127.0.0.1:8000/v1#qwen"
    Preferences(mode="bm25", top_k=3, backend="hf", hf_model="/models/qwen", adapter="/runs/lora").save(tmp_path)
    loaded = Preferences.load(tmp_path, settings)
    assert (loaded.retrieval_mode, loaded.top_k, loaded.llm_spec, loaded.adapter_spec) == (Mode.BM25, 3, "hf:/models/qwen", "/runs/lora")


def test_a_server_typed_in_the_sidebar_stays_in_the_session_and_gets_no_key(tmp_path: Path):
    settings = Settings.resolve({"llm": "openai:http://127.0.0.1:8000/v1#qwen"}, env={"RAG_OPENAI_API_KEY": "sk-operator"})
    assert "sk-operator" not in repr(settings)
    configured = Preferences.load(tmp_path, settings)
    assert configured.operator_key(settings) == "sk-operator"
    typed = replace(configured, server_url="http://attacker.example/v1", server_model="x")
    assert typed.operator_key(settings) is None
    typed.save(tmp_path)
    saved = json.loads((tmp_path / PREFERENCES_FILE).read_text(encoding="utf-8"))
    assert "server_url" not in saved and "attacker.example" not in json.dumps(saved)
    assert Preferences.load(tmp_path, settings).server_url == "http://127.0.0.1:8000/v1"  # a new session: the operator's
    (tmp_path / PREFERENCES_FILE).write_text(json.dumps({"server_url": "http://attacker.example/v1"}), encoding="utf-8")
    assert Preferences.load(tmp_path, settings).server_url == "http://127.0.0.1:8000/v1"  # an older file's value: ignored


def test_preferences_ignore_a_broken_or_hand_edited_file(tmp_path: Path):
    settings = Settings.resolve({}, env={})
    (tmp_path / PREFERENCES_FILE).write_text("{not json", encoding="utf-8")
    assert Preferences.load(tmp_path, settings) == Preferences()
    (tmp_path / PREFERENCES_FILE).write_text(json.dumps({"mode": "telepathy", "top_k": 999, "backend": "hf", "x": 1}))
    prefs = Preferences.load(tmp_path, settings)
    assert (prefs.mode, prefs.top_k, prefs.backend) == ("hybrid", 5, "hf")
    assert prefs.missing_backend_field == "hf_model" and prefs.llm_spec == "extractive"  # no model folder yet
    assert Preferences(mode="hybrid", fusion=True).retrieval_mode is Mode.FUSION
    assert Preferences(mode="hybrid", fusion=False).retrieval_mode is Mode.HYBRID


def test_language_follows_the_setting_then_the_browser():
    assert pick_language("auto", "zh-CN") == "zh" and pick_language("auto", "en-GB") == "en"
    assert pick_language("auto", None) == "en" and pick_language("en", "zh-TW") == "en" and pick_language("zh", "en-US") == "zh"
    assert Texts("zh")("source", n=2, file="a.pdf", page=3) == "来源 [2]：a.pdf，第 3 页"


def test_marked_escapes_everything_and_marks_only_the_given_spans():
    text = "Good [1]. Bad <b>claim</b> [2]. Good again."
    out = marked(text, ["Bad <b>claim</b> [2].", "not there"], "red")
    assert out == escape("Good [1]. ") + ":red-background[" + escape("Bad <b>claim</b> [2].") + "]" + escape(" Good again.")
    assert escape("[x](javascript:1) <script>") == "\\[x\\]\\(javascript\\:1\\) \\<script\\>"


def test_conversation_exports_questions_answers_and_sources_as_markdown():
    passage = Passage(1, "/docs/guide.pdf", 2, "A full charge takes 10 hours.", 7)
    answered = Answer("How long?", "About 10 hours [1].", [Citation(1, 7, "/docs/guide.pdf", 2, "A full charge takes 10 hours.")],
                      True, False, [passage], 5.0, "How long?", 0.9)
    refused = Answer("火星？", "您的文档中没有找到答案。", [], False, True, [passage], 5.0, "火星？", 0.1)
    chat = Conversation()
    assert chat.add("How long?", answered) == 0 and chat.add("火星？", refused) == 1
    assert chat.history == [("How long?", "About 10 hours [1]."), ("火星？", "您的文档中没有找到答案。")]
    text = chat.to_markdown()
    assert "## How long?\n\n" + escape("About 10 hours [1].") in text
    assert "- \\[1\\] guide" + escape(".pdf") + ", page 2 (" + escape("/docs/guide.pdf") + "):\n\n  > " + escape("A full charge takes 10 hours.") in text
    assert "## 火星？" in text and "- guide" + escape(".pdf") + ", page 2" in text.split("## 火星？")[1]


def test_document_text_never_becomes_a_link_in_the_page_or_the_export():
    quote = "Write to help@lumen.example or see [the terms](http://evil.example/x) at www.lumen.example."
    shown = escape(quote)
    assert "`help@lumen.example`" in shown and "`http://evil.example/x`" in shown and "`www.lumen.example`" in shown
    assert "](" not in shown.replace("\\](", "")  # no live Markdown link is left
    passage = Passage(1, "/docs/terms.md", 1, quote, 3)
    answer = Answer("Terms?", quote + " [1]", [Citation(1, 3, "/docs/terms.md", 1, quote)], True, False, [passage], 5.0, "Terms?", 0.9)
    chat = Conversation()
    chat.add("Terms?", answer)
    exported = chat.to_markdown()
    assert "[the terms](http" not in exported and "`http://evil.example/x`" in exported and "> " in exported


def test_time_left_reads_as_seconds_or_minutes():
    from app.kb_view import _duration

    assert (_duration(42.4), _duration(185), _duration(0)) == ("42 s", "3 min 05 s", "0 s")
    assert "passages/s" in Texts("en")("progress_rate", rate=7.5, left="42 s") and "约剩" in Texts("zh")("progress_rate", rate=7.5, left="42 s")
