"""The UI in a real browser: Playwright drives Debian's Chromium against `rag ui` on a free port.

Upload two PDFs, ingest them, ask in English and in Chinese, open a citation and check the source panel
names the right file and page. Screenshots land in test-output/ui-*.png.
"""
from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.make_demo_docs import main as make_demo_docs

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output"
TIMEOUT_MS = 180_000

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ui_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`rag ui` on an empty index, as a user would start it."""
    with _serving(tmp_path_factory.mktemp("browser") / "index", "ui-server.log") as url:
        yield url


@contextlib.contextmanager
def _serving(index: Path, log_name: str, **env: str) -> Iterator[str]:
    """`rag ui` on ``index`` (with ``env`` added to its environment), from the moment it answers its health check."""
    port = _free_port()
    SHOTS.mkdir(exist_ok=True)
    log = SHOTS / log_name
    with open(log, "w", encoding="utf-8") as out:
        server = subprocess.Popen([sys.executable, "-m", "app.cli", "ui", "--index", str(index), "--port", str(port)],
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1", **env})
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(120):
                try:
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                except OSError:
                    assert server.poll() is None, log.read_text(encoding="utf-8")[-2000:]
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def _ask(page, question: str, citation_key: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(question)
    box.press("Enter")
    page.locator(f".st-key-{citation_key} button").first.wait_for(timeout=TIMEOUT_MS)


def test_upload_ask_in_english_and_chinese_and_open_the_cited_pages(ui_url: str, browser, tmp_path: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_demo_docs(str(docs))
    page = browser.new_page(locale="en-US", viewport={"width": 1400, "height": 1100})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(ui_url)
    page.get_by_text("Your documents").wait_for()

    page.get_by_role("tab", name="Documents").click()
    page.locator("input[type=file]").set_input_files([docs / "lumen-l2-guide.pdf", docs / "晴川-w3-说明书.pdf"])
    page.get_by_text("晴川-w3-说明书.pdf").first.wait_for()
    page.get_by_role("button", name="Ingest uploaded files").click()
    page.get_by_text(re.compile(r"Done: 2 added")).wait_for()
    page.screenshot(path=str(SHOTS / "ui-documents.png"), full_page=True)

    page.get_by_role("tab", name="Chat").click()
    _ask(page, "How long does a full charge from the sun take?", "cite-0-1")
    page.locator(".st-key-cite-0-1 button").first.click()
    panel = page.locator(".st-key-source-panel-0-1")
    panel.locator("img").first.wait_for()
    assert "Source [1]: lumen-l2-guide.pdf, page 2" in panel.inner_text()
    assert "10 hours" in panel.inner_text()
    page.screenshot(path=str(SHOTS / "ui-chat-english.png"), full_page=True)

    _ask(page, "室外传感器的电池能用多久？", "cite-1-1")
    assert "十二个月" in page.get_by_test_id("stChatMessage").nth(3).inner_text()
    cited_page_3 = page.locator("[class*='st-key-cite-1-'] button", has_text="p.3 · 晴川-w3-说明书.pdf").first
    key = cited_page_3.evaluate("b => [...b.closest('[class*=st-key-cite]').classList].find(c => c.startsWith('st-key-'))")
    cited_page_3.click()
    panel = page.locator(f".st-key-source-panel-1-{key.rsplit('-', 1)[1]}")
    panel.locator("img").first.wait_for()
    assert "Source [" in panel.inner_text() and "]: 晴川-w3-说明书.pdf, page 3" in panel.inner_text()
    assert "十二个月" in panel.inner_text()
    page.locator(".st-key-source-panel-0-1").wait_for(state="detached", timeout=30_000)  # one panel open at a time
    page.screenshot(path=str(SHOTS / "ui-chat-chinese.png"), full_page=True)
    page.close()


def test_interface_follows_a_chinese_browser(ui_url: str, browser):
    page = browser.new_page(locale="zh-CN", viewport={"width": 1400, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(ui_url)
    page.get_by_text("我的文档").wait_for()
    page.get_by_role("tab", name="文档库").click()
    page.get_by_text("添加文档", exact=True).wait_for()
    page.get_by_test_id("stFileUploaderDropzone").wait_for()  # widgets drawn, not their placeholders
    page.get_by_text("上传文件（PDF、Word、HTML、Markdown、文本、扫描件和页面照片；每个不超过 200 MB）").wait_for()
    page.get_by_text("识别扫描页和图片中的文字（OCR）").wait_for()
    page.get_by_text("仅无文字层的页面").wait_for()  # the OCR choice, in Chinese too
    page.screenshot(path=str(SHOTS / "ui-zh-interface.png"), full_page=True)
    page.close()
