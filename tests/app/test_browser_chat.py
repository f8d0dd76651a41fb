"""The chat in a real browser, as a new user meets it: `rag ui` started on the demo knowledge base and used
at once. Nothing the page loads may leave loopback; the first answer is not much slower than later ones;
the input stays on screen and the view follows the answers; inline [n] markers open their source; export
holds every exchange; the conversation survives a reload; settings survive a language switch.
"""
from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from app.preferences import PREFERENCES_FILE
from ingest.pipeline import Ingestor
from rag.config import Settings
from testkit.demo import demo_docs
from testkit.fake_llm_server import FakeLLMServer
from tests.app.test_browser import SHOTS, TIMEOUT_MS, _serving, browser  # noqa: F401 - the shared browser fixture

QUESTIONS = [
    ("How long does a full charge from the sun take?", "10 hours"),
    ("室外传感器的电池能用多久？", "十二个月"),
    ("梯度裁剪是什么？", "clip_grad_norm_"),
    ("When is the field office open?", "Monday"),
]
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("browser-chat")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedders=embedders, progress=False).run(
        [demo_docs(base / "docs")])
    return base / "index"


@pytest.fixture(scope="module")
def started(demo_index: Path, browser) -> Iterator[tuple[str, list[str], dict[str, float]]]:  # noqa: F811
    """A fresh `rag ui`, its page opened as soon as the server answers, every request the page makes
    recorded, and four questions asked one after another with the seconds each took to its citations."""
    with _serving(demo_index, "ui-chat-server.log") as url:
        page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": 800})
        page.set_default_timeout(TIMEOUT_MS)
        requests: list[str] = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url)
        page.get_by_text("Your documents").wait_for()
        seconds = {}
        for turn, (question, expected) in enumerate(QUESTIONS):
            seconds[question] = _ask(page, question, turn)
            assert expected in page.get_by_test_id("stChatMessage").nth(2 * turn + 1).inner_text()
        yield url, requests, seconds
        page.close()


def _ask(page, question: str, turn: int) -> float:
    """Ask in the pinned input; seconds until the answer's citations are drawn."""
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    started = time.perf_counter()
    box.press("Enter")
    page.locator(f".st-key-cite-{turn}-1 button").first.wait_for()
    return time.perf_counter() - started


def _open(browser, url: str, height: int = 800):  # noqa: F811
    """A new tab on the app, once the page is drawn (its pinned input comes last)."""
    page = browser.new_page(locale="en-US", viewport={"width": 1280, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    _idle(page)
    return page


def _idle(page) -> None:
    """Wait until the app's script run has finished (a message sent while the page is still being drawn
    interrupts that run, and Streamlit then shows no stop button for the answer's)."""
    page.get_by_test_id("stChatInputTextArea").wait_for()
    page.locator(".st-key-delete").wait_for(state="attached")  # the Documents tab, drawn last
    page.get_by_test_id("stStatusWidgetRunningIcon").wait_for(state="detached")


def _on_screen(page, locator) -> bool:
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height + 1


def test_no_request_leaves_loopback(started):
    _, requests, _ = started
    assert requests, "the page was recorded"
    outside = [url for url in requests if urlsplit(url).scheme not in ("data", "blob") and urlsplit(url).hostname not in LOOPBACK]
    assert outside == []


def test_the_first_answer_after_a_start_is_not_much_slower_than_later_ones(started):
    _, _, seconds = started
    first, *later = seconds.values()
    print("seconds to the citations:", {q: round(s, 2) for q, s in seconds.items()})
    assert first <= 2 * statistics.median(later) + 3, seconds


def test_the_input_stays_pinned_and_the_view_follows_the_answers(started, browser):  # noqa: F811
    url, _, _ = started
    page = _open(browser, url, 800)
    for turn, (question, _) in enumerate(QUESTIONS[:3]):
        _ask(page, question, turn)
        last_answer = page.get_by_test_id("stChatMessage").nth(2 * turn + 1)
        time.sleep(1.0)  # let the page settle its scrolling
        assert _on_screen(page, page.get_by_test_id("stChatInput")), f"the input is off screen after {turn + 1} exchanges"
        assert _on_screen(page, last_answer.locator(f".st-key-cite-{turn}-1")), "the view did not follow the answer"
    page.screenshot(path=str(SHOTS / "ui-chat-three-exchanges.png"))

    # export, enabled at the first answer, holds every question
    with page.expect_download() as download:
        page.get_by_role("button", name="Export (Markdown)").click()
    exported = Path(download.value.path()).read_text(encoding="utf-8").replace("\\", "")
    assert all(f"## {question}" in exported for question, _ in QUESTIONS[:3])

    # an inline [n] opens its source, and the conversation survives a reload of the tab
    page.locator('a[href="#cite-0-1"]').first.click()
    page.locator(".st-key-source-panel-0-1").wait_for()
    page.reload()
    page.get_by_text(QUESTIONS[2][0], exact=True).wait_for()
    assert page.get_by_test_id("stChatMessage").count() == 6
    page.close()


def test_settings_survive_a_language_switch(started, browser):  # noqa: F811
    url, _, _ = started
    page = _open(browser, url, 900)
    page.get_by_text("Dense (embeddings)").click()
    page.locator(".st-key-pref-en-language").click()
    page.get_by_role("option", name="中文").click()
    page.get_by_text("我的文档").wait_for()
    checked = page.locator(".st-key-pref-zh-mode input[type=radio]:checked")
    assert checked.count() == 1
    assert "向量检索" in checked.locator("xpath=ancestor::label").inner_text()
    page.locator(".st-key-pref-zh-language").click()
    page.get_by_role("option", name="English").click()
    page.get_by_text("Your documents").wait_for()
    page.get_by_text("Hybrid (BM25 + dense)").click()  # leave the index's settings as they were
    page.close()


def test_the_stop_button_stops_the_model_and_keeps_what_it_wrote(demo_index: Path, browser, tmp_path: Path):  # noqa: F811
    index = tmp_path / "index"
    shutil.copytree(demo_index, index, ignore=shutil.ignore_patterns(PREFERENCES_FILE))
    reply = "A full charge from the sun takes about 10 hours on a clear summer day [1]. " * 40
    with FakeLLMServer(lambda messages: reply, delay_s=0.1) as server, \
            _serving(index, "ui-stop-server.log", RAG_LLM=f"openai:{server.base_url}#slow") as url:
        page = _open(browser, url, 900)
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(QUESTIONS[0][0])
        box.press("Enter")
        page.get_by_text("Writing the answer…").wait_for()
        page.get_by_text("takes about 10 hours").first.wait_for()
        page.get_by_test_id("stChatInputStopButton").click()
        deadline = time.monotonic() + 30
        while not server.stopped and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.stopped == 1, "the model's stream was closed"
        page.get_by_test_id("stChatInputSubmitButton").wait_for()  # the input is back
        written = page.get_by_test_id("stChatMessage").last.inner_text()
        assert "takes about 10 hours" in written and len(written) < len(reply) / 2, "what was written stays"
        page.get_by_role("tab", name="Documents").click()  # any later run shows it kept, marked stopped
        page.get_by_role("tab", name="Chat").click()
        page.get_by_text("(stopped)").wait_for()
        page.screenshot(path=str(SHOTS / "ui-chat-stopped.png"))
        page.close()
