"""`rag serve` against a real uvicorn server on a free loopback port, over the demo knowledge base."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from app.api import create_app
from app.api_keys import ApiKeys, KeysError, key_hash
from app.knowledge_base import KnowledgeBase, default_generator
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.generate.base import GenerationRequest, Generator
from rag.index.generations import live_generation
from rag.retrieve import Retriever
from testkit.demo import demo_docs
from tests.conftest import ROOT

openai = pytest.importorskip("openai")

ENGLISH = "How long does a full charge from the sun take?"
CHINESE = "室外传感器的电池能用多久？"


@contextmanager
def serving(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app under uvicorn in a thread, on a free port of 127.0.0.1; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, embedders) -> KnowledgeBase:
    base = tmp_path_factory.mktemp("api")
    settings = Settings.resolve({"index_dir": base / "rag-index", "max_upload_mb": 1}, env={})
    Ingestor(settings, embedders=embedders, progress=False).run([demo_docs(base / "docs")])
    return KnowledgeBase(settings, embedders=embedders)


@pytest.fixture(scope="module")
def url(kb: KnowledgeBase) -> Iterator[str]:
    with serving(create_app(kb, ApiKeys())) as base_url:
        yield base_url


def _client(url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)


@pytest.mark.parametrize("question, expected, source, page", [
    (ENGLISH, "10 hours", "lumen-l2-guide.pdf", 2),
    (CHINESE, "十二个月", "晴川-w3-说明书.pdf", 3),
])
def test_openai_client_gets_cited_answers_streamed_and_not(url: str, question: str, expected: str, source: str, page: int):
    client = _client(url)
    [model] = client.models.list().data
    assert model.id == "rag-index"
    completion = client.chat.completions.create(model=model.id, messages=[{"role": "user", "content": question}])
    content = completion.choices[0].message.content
    assert expected in content and "Sources:" in content
    citations = completion.model_extra["citations"]
    assert any(Path(c["source"]).name == source and c["page"] == page for c in citations)
    assert content.rstrip().endswith(f'"{" ".join(citations[-1]["quote"].split())}"')  # the text ends with the sources
    assert f"[{citations[0]['n']}]" in content.split("Sources:")[0]

    chunks = list(client.chat.completions.create(model=model.id, messages=[{"role": "user", "content": question}], stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and streamed == content  # the same answer, piece by piece
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].model_extra["citations"] == citations


def test_refusal_is_a_normal_answer_that_says_so(url: str):
    completion = _client(url).chat.completions.create(model="rag-index", messages=[{"role": "user", "content": "火星有几颗卫星？"}])
    assert "没有找到答案" in completion.choices[0].message.content
    assert completion.model_extra["refused"] is True and completion.model_extra["citations"] == []


def test_conversation_history_carries_a_follow_up(url: str):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "How long is the warranty of the Lumen L2 lantern?"}]
    first = _client(url).chat.completions.create(model="rag-index", messages=messages).choices[0].message.content
    messages += [{"role": "assistant", "content": first}, {"role": "user", "content": "And what does it not cover?"}]
    response = httpx.post(f"{url}/v1/chat/completions", json={"model": "rag-index", "messages": messages}, timeout=120)
    assert response.status_code == 200
    assert response.json()["citations"] and "lumen" in response.json()["citations"][0]["source"]


def test_a_chinese_follow_up_is_searched_with_the_topic_before(url: str):
    history = [["室外传感器的电池能用多久？", "室外传感器的电池一般可使用十二个月。[1]"]]
    answer = httpx.post(f"{url}/api/ask", json={"question": "那显示屏呢？", "history": history}, timeout=120).json()
    assert answer["standalone_question"].startswith("那显示屏呢？") and "传感器" in answer["standalone_question"]
    alone = httpx.post(f"{url}/api/ask", json={"question": "梯度裁剪是什么？", "history": history}, timeout=120).json()
    assert alone["standalone_question"] == "梯度裁剪是什么？"


def test_an_unrelated_question_after_another_is_answered_as_alone(url: str):
    def ask(messages: list[dict[str, str]]) -> dict:
        response = httpx.post(f"{url}/v1/chat/completions", json={"model": "rag-index", "messages": messages}, timeout=120)
        assert response.status_code == 200
        return response.json()

    question = {"role": "user", "content": "梯度裁剪是什么？"}
    alone = ask([question])
    earlier = [{"role": "user", "content": "室外传感器的电池能用多久？"}]
    after = ask([*earlier, {"role": "assistant", "content": ask(earlier)["choices"][0]["message"]["content"]}, question])
    assert after["choices"][0]["message"]["content"] == alone["choices"][0]["message"]["content"]
    assert after["citations"] == alone["citations"] and "clip_grad_norm_" in alone["choices"][0]["message"]["content"]


def test_the_backend_is_loaded_before_the_first_question(kb: KnowledgeBase, tmp_path: Path, embedders):
    made: list[Retriever] = []

    def generators(settings: Settings, retriever: Retriever) -> Generator:
        made.append(retriever)
        return default_generator(settings, retriever)

    assert KnowledgeBase(replace(kb.settings, index_dir=tmp_path / "empty"), embedders=embedders).warm_in_background() is None
    warmed = KnowledgeBase(kb.settings, generators, embedders=embedders)
    thread = warmed.warm_in_background()
    assert thread is not None
    thread.join(120)
    assert len(made) == 1 and made[0].index.generation == live_generation(kb.settings.index_dir)
    warmed.answer(warmed.pipeline(), "How long is the warranty of the Lumen L2 lantern?", [])
    assert len(made) == 1, "the question found the backend loaded"


def test_the_backend_follows_the_live_generation_after_an_ingest(tmp_path: Path, embedders):
    settings = Settings.resolve({"index_dir": tmp_path / "rag-index"}, env={})
    docs = demo_docs(tmp_path / "docs")
    Ingestor(settings, embedders=embedders, progress=False).run([docs])
    made: list[Retriever] = []

    def generators(settings: Settings, retriever: Retriever) -> Generator:
        made.append(retriever)
        return default_generator(settings, retriever)

    kb = KnowledgeBase(settings, generators, embedders=embedders)
    first = kb.pipeline()
    (docs / "extra.md").write_text("# Extra\nThe extra lantern case is made of bamboo.", encoding="utf-8")
    Ingestor(settings, embedders=embedders, progress=False).run([docs])
    second = kb.pipeline()
    assert second.retriever.index.generation == live_generation(settings.index_dir) != first.retriever.index.generation
    assert [r.index.generation for r in made] == [first.retriever.index.generation, second.retriever.index.generation]
    assert second.generator is not first.generator


def test_search_endpoint_equals_the_cli_json(url: str, kb: KnowledgeBase):
    ours = httpx.post(f"{url}/api/search", json={"query": CHINESE, "mode": "hybrid", "k": 4}, timeout=60).json()
    done = subprocess.run([sys.executable, "-m", "app.cli", "search", CHINESE, "--index", str(kb.settings.index_dir),
                           "--mode", "hybrid", "-k", "4", "--json"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    cli = json.loads(done.stdout)
    for result in (ours, cli):
        for volatile in ("ms", "timings"):
            result.pop(volatile)
    assert ours == cli and len(ours["hits"]) == 4


def test_ask_endpoint_answers_like_rag_ask(url: str):
    answer = httpx.post(f"{url}/api/ask", json={"question": ENGLISH}, timeout=120).json()
    assert "10 hours" in answer["answer"] and answer["grounded"] and not answer["refused"]
    assert set(answer) >= {"question", "answer", "citations", "grounded", "refused", "evidence", "standalone_question"}


def test_upload_list_and_delete_end_to_end(url: str, kb: KnowledgeBase):
    note = "The Quill 9 pump primes in forty seconds. 奎尔九号水泵四十秒完成引水。".encode()
    response = httpx.post(f"{url}/api/documents", files=[("files", ("quill-9 notes.md", note, "text/markdown")),
                                                           ("files", ("tool.exe", b"MZ", "application/octet-stream"))], timeout=300)
    body = response.json()
    assert response.status_code == 200 and body["saved"] == ["quill-9 notes.md"] and body["ingest"]["added"] == 1
    assert body["rejected"][0]["name"] == "tool.exe" and "unsupported file type" in body["rejected"][0]["reason"]
    listed = {d["name"]: d for d in httpx.get(f"{url}/api/documents").json()["documents"]}
    assert listed["quill-9 notes.md"]["uploaded"] and listed["quill-9 notes.md"]["chunks"] >= 1
    assert not listed["lumen-l2-guide.pdf"]["uploaded"]
    hits = httpx.post(f"{url}/api/search", json={"query": "How fast does the Quill 9 pump prime?", "k": 1}).json()["hits"]
    assert hits[0]["source"].endswith("quill-9 notes.md")  # the server reopened the new generation

    deleted = httpx.delete(f"{url}/api/documents/{listed['quill-9 notes.md']['id']}")
    assert deleted.status_code == 200 and deleted.json()["removed"] == 1
    assert "quill-9 notes.md" not in {d["name"] for d in httpx.get(f"{url}/api/documents").json()["documents"]}
    assert not (kb.settings.index_dir / "uploads" / "quill-9 notes.md").exists()
    missing = httpx.delete(f"{url}/api/documents/{listed['quill-9 notes.md']['id']}")
    assert missing.status_code == 404 and set(missing.json()) == {"error"}


def test_errors_are_one_line_json_without_tracebacks(url: str):
    bad = httpx.post(f"{url}/api/search", json={"query": "", "k": 0})
    assert bad.status_code == 400 and "\n" not in bad.json()["error"]["message"]
    assert "Traceback" not in bad.text
    too_big = httpx.post(f"{url}/api/documents", files=[("files", ("big.txt", b"x" * (2 * 1024 * 1024), "text/plain"))])
    assert too_big.status_code == 413 and "MB limit" in too_big.json()["error"]["message"]
    no_user = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "system", "content": "hi"}]})
    assert no_user.status_code == 400 and "user message" in no_user.json()["error"]["message"]
    assert httpx.get(f"{url}/openapi.json").json()["paths"].keys() >= {"/api/search", "/api/ask", "/api/documents", "/v1/chat/completions"}


def test_a_keyless_server_refuses_other_hosts_and_cross_site_pages(url: str):
    """DNS rebinding (a page's own name pointing at 127.0.0.1) and a cross-site form post (no preflight)."""
    rebound = httpx.post(f"{url}/api/search", json={"query": "warranty"}, headers={"Host": "attacker.example"})
    assert rebound.status_code == 421 and "attacker.example" in rebound.json()["error"]["message"]
    assert "warranty" not in rebound.text.lower().replace("query", "")
    form = httpx.post(f"{url}/api/documents", files=[("files", ("evil.md", b"# planted", "text/markdown"))],
                      headers={"Origin": "https://attacker.example"})
    assert form.status_code == 403 and "attacker.example" in form.json()["error"]["message"]
    assert "evil.md" not in {d["name"] for d in httpx.get(f"{url}/api/documents").json()["documents"]}
    blind = httpx.post(f"{url}/api/ask", json={"question": "warranty?"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert blind.status_code == 403
    for host in ("localhost", "[::1]:9", "127.0.0.1:1"):  # loopback names, any port: served
        assert httpx.get(f"{url}/api/health", headers={"Host": host}).status_code == 200
    assert httpx.get(f"{url}/api/health", headers={"Origin": "http://localhost:8501"}).status_code == 200


def test_requests_are_bounded_with_a_one_line_error(url: str):
    many = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}] * 201})
    assert many.status_code == 400 and "200" in many.json()["error"]["message"]
    long_message = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "x " * 16_001}]})
    assert long_message.status_code == 400 and "32,000" in long_message.json()["error"]["message"]
    long_query = httpx.post(f"{url}/api/search", json={"query": "warranty " * 500})
    assert long_query.status_code == 400 and "4000" in long_query.json()["error"]["message"].replace(",", "")
    long_question = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "why " * 1_001}]})
    assert long_question.status_code == 400 and "4,000" in long_question.json()["error"]["message"]
    huge = httpx.post(f"{url}/api/ask", content=b'{"question": "' + b"x" * (9 * 1024 * 1024) + b'"}',
                      headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and "\n" not in huge.json()["error"]["message"]


def test_document_text_is_returned_as_data(url: str, kb: KnowledgeBase):
    hostile = '<script>alert(1)</script> {"role": "system"} ]]> The Zephyr valve seals at 9 bar.'
    httpx.post(f"{url}/api/documents", files=[("files", ("zephyr.md", hostile.encode(), "text/markdown"))], timeout=300)
    hits = httpx.post(f"{url}/api/search", json={"query": "Zephyr valve seal pressure", "k": 1}).json()["hits"]
    assert "<script>alert(1)</script>" in hits[0]["text"]  # exactly as stored, inside a JSON string


def test_fifty_concurrent_requests_are_all_answered(url: str):
    cases = [(n, *pair) for n, pair in enumerate([(ENGLISH, "10 hours"), (CHINESE, "十二个月")] * 25)]

    def ask(case: tuple[int, str, str]) -> bool:
        n, question, expected = case
        if n % 4 < 2:  # half through the OpenAI endpoint, half through the native one
            reply = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": question}]}, timeout=300)
            return reply.status_code == 200 and expected in reply.json()["choices"][0]["message"]["content"]
        reply = httpx.post(f"{url}/api/ask", json={"question": question}, timeout=300)
        return reply.status_code == 200 and expected in reply.json()["answer"]

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(ask, cases))
    assert results == [True] * 50


class _SlowGenerator(Generator):
    """Yields a word every 50 ms until stopped; records whether the stop signal came."""

    name = "slow-test"
    context_window = 4096
    stopped = threading.Event()

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, request: GenerationRequest):  # type: ignore[no-untyped-def]
        for n in range(400):
            if request.stop.is_set():
                _SlowGenerator.stopped.set()
                return
            time.sleep(0.05)
            yield f"word{n} "


def test_client_disconnect_mid_stream_stops_the_generation(kb: KnowledgeBase):
    slow = KnowledgeBase(kb.settings, generators=lambda settings, retriever: _SlowGenerator(), embedders=kb.embedder)
    with serving(create_app(slow, ApiKeys())) as base_url:
        async def read_a_little() -> None:
            async with httpx.AsyncClient(timeout=60) as client:
                async with client.stream("POST", f"{base_url}/v1/chat/completions",
                                         json={"messages": [{"role": "user", "content": ENGLISH}], "stream": True}) as response:
                    async for line in response.aiter_lines():
                        if "word2" in line:
                            return  # leaving the block closes the connection

        asyncio.run(read_a_little())
        assert _SlowGenerator.stopped.wait(10)
        assert httpx.get(f"{base_url}/api/health").json()["stopped_streams"] == 1


def test_keys_are_required_when_set_and_checked(kb: KnowledgeBase, tmp_path: Path):
    keys_file = tmp_path / "keys"
    keys_file.write_text(f"# team keys\n{key_hash('file-key').hex()}  -\n", encoding="utf-8")
    keys = ApiKeys.load({"RAG_API_KEYS": "env-key"}, keys_file)
    with serving(create_app(kb, keys)) as base_url:
        assert httpx.get(f"{base_url}/api/health").status_code == 401
        wrong = httpx.get(f"{base_url}/v1/models", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "unauthorized"
        for key in ("env-key", "file-key"):
            assert httpx.get(f"{base_url}/api/health", headers={"Authorization": f"Bearer {key}"}).json()["status"] == "ok"
        with pytest.raises(openai.AuthenticationError):
            _client(base_url, "guess").models.list()
        assert _client(base_url, "env-key").models.list().data[0].id == "rag-index"
        for docs in ("/docs", "/redoc", "/openapi.json"):  # the generated docs cannot send a key: off
            assert httpx.get(f"{base_url}{docs}").status_code in (401, 404)
            assert httpx.get(f"{base_url}{docs}", headers={"Authorization": "Bearer env-key"}).status_code == 404
    (tmp_path / "plain").write_text("not-a-hash\n", encoding="utf-8")
    with pytest.raises(KeysError, match="plain:1"):
        ApiKeys.load({}, tmp_path / "plain")


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["ui", "--port", "1"]])
def test_binding_beyond_loopback_without_keys_or_password_is_refused(tmp_path: Path, command: list[str]):
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEYS", "RAG_API_KEYS_FILE", "RAG_UI_PASSWORD")}
    done = subprocess.run([sys.executable, "-m", "app.cli", *command, "--host", "0.0.0.0", "--index", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "0.0.0.0" in done.stderr


@pytest.mark.parametrize("password", [" ", "short12"])
def test_a_ui_password_under_eight_characters_is_refused(tmp_path: Path, password: str):
    env = {k: v for k, v in os.environ.items() if k not in ("RAG_API_KEYS", "RAG_API_KEYS_FILE")}
    done = subprocess.run([sys.executable, "-m", "app.cli", "ui", "--port", "1", "--host", "0.0.0.0", "--index", str(tmp_path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={**env, "PYTHONPATH": str(ROOT), "RAG_UI_PASSWORD": password})
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and "at least 8" in done.stderr


def test_failed_sign_ins_are_slowed_for_every_session_until_one_succeeds():
    from app.access import FailedAttempts

    now, waited = [0.0], []
    attempts = FailedAttempts(clock=lambda: now[0], sleep=waited.append)
    for _ in range(8):
        assert not attempts.check("guess", "correct horse battery")
    assert waited == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]  # doubling, capped
    assert attempts.check("correct horse battery", "correct horse battery") and attempts.delay() == 0.0
    attempts.check("guess", "correct horse battery")
    now[0] += 601.0  # failures older than the window are forgotten
    assert attempts.delay() == 0.0


def test_serve_starts_with_keys_beyond_loopback_and_answers(kb: KnowledgeBase, tmp_path: Path):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RAG_API_KEYS": "k1", "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--host", "0.0.0.0", "--port", str(port),
                               "--index", str(kb.settings.index_dir)], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", headers={"Authorization": "Bearer k1"})
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read() if server.stderr else ""
                time.sleep(0.3)
        assert health.json()["status"] == "ok"
        hits = httpx.post(f"http://127.0.0.1:{port}/api/search", json={"query": ENGLISH, "k": 1},
                          headers={"Authorization": "Bearer k1"}, timeout=120).json()["hits"]
        assert hits[0]["page"] == 2
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "k1" not in stderr  # the key is never logged
