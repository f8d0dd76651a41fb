"""API keys are never logged or written to the index.

A real ``rag serve`` (its own log level, info, logs every request) gets planted, unique keys in
RAG_API_KEYS and is called rightly and wrongly: the right key, wrong keys, a near miss that contains a real
key, the key in a query string, the key in malformed headers and in a malformed request. Documents are
uploaded through it and ``rag ingest`` writes to the same index folder with the keys in its environment.
Then each key is looked for, byte for byte, in all that the server and the ingests printed and in every
file under the index folder.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from testkit.demo import demo_docs
from tests.conftest import ROOT

RAG = [sys.executable, "-m", "app.cli"]
KEYS = [f"planted-{n}-{secrets.token_hex(16)}" for n in ("first", "second")]
KEY = KEYS[1]
"""The key the authorised requests use; the first one is configured and never sent."""
IN_URL = "probe=key-in-url"
"""Marks the requests that put the key in the query string, and so their access-log lines."""


@dataclass
class Trail:
    server_output: bytes
    ingest_output: bytes
    index_dir: Path
    statuses: dict[str, int]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _raw(port: int, request: bytes) -> int:
    """Send bytes as they are (a malformed request httpx would refuse to build); the status answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(request)
        reply = connection.recv(4096)
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else 0


def _requests(url: str, port: int) -> dict[str, int]:
    """Every request of the scenario, by name: its status."""
    auth = {"Authorization": f"Bearer {KEY}"}
    note = ("keys.md", b"# Pump notes\nThe Quill 9 pump primes in forty seconds.", "text/markdown")
    chat = {"messages": [{"role": "user", "content": "How long does a full charge from the sun take?"}]}
    with httpx.Client(base_url=url, timeout=300) as client:
        sent = {
            "health": client.get("/api/health", headers=auth),
            "models": client.get("/v1/models", headers={"authorization": f"bearer {KEY}"}),
            "search": client.post("/api/search", json={"query": "warranty", "k": 2}, headers=auth),
            "chat": client.post("/v1/chat/completions", json=chat, headers=auth),
            "chat stream": client.post("/v1/chat/completions", json={**chat, "stream": True}, headers=auth),
            "upload": client.post("/api/documents", files=[("files", note)], headers=auth),
            "documents": client.get("/api/documents", headers=auth),
            "no key": client.get("/api/health"),
            "wrong key": client.get("/api/health", headers={"Authorization": "Bearer wrong-key"}),
            "near miss": client.get("/v1/models", headers={"Authorization": f"Bearer {KEY}x"}),
            "no scheme": client.get("/api/health", headers={"Authorization": KEY}),
            "basic scheme": client.get("/api/health", headers={"Authorization": f"Basic {KEY}"}),
            "key twice": client.get("/api/health", headers={"Authorization": f"Bearer {KEY} {KEY}"}),
            "other header": client.get("/api/health", headers={"X-API-Key": KEY}),
            "key in body": client.post("/api/search", json={"query": "warranty", "api_key": KEY}),
            "key in url": client.get(f"/api/health?{IN_URL}&api_key={KEY}"),
            "key in url and header": client.get(f"/v1/models?{IN_URL}&key={KEY}", headers=auth),
        }
    statuses = {name: response.status_code for name, response in sent.items()}
    statuses["header without colon"] = _raw(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                   b"Authorization Bearer " + KEY.encode() + b"\r\n\r\n")
    statuses["control character"] = _raw(port, b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                b"Authorization: Bearer " + KEY.encode() + b"\x01\r\n\r\n")
    return statuses


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> Trail:
    base = tmp_path_factory.mktemp("secrets")
    index_dir = base / "rag-index"
    env = {**os.environ, "RAG_API_KEYS": ",".join(KEYS), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    first = subprocess.run([*RAG, "ingest", str(demo_docs(base / "docs")), "--index", str(index_dir)],
                           capture_output=True, env=env, cwd=base, timeout=600)
    assert first.returncode == 0, first.stderr
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = base / "server.log"
    with log.open("wb") as sink:
        server = subprocess.Popen([*RAG, "serve", "--index", str(index_dir), "--port", str(port)],
                                  env=env, cwd=base, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    httpx.get(f"{url}/api/health", timeout=5)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline and server.poll() is None, log.read_text(errors="replace")
                    time.sleep(0.3)
            statuses = _requests(url, port)
            more = base / "more"
            more.mkdir()
            (more / "valve.md").write_text("# Valve\nThe Zephyr valve seals at 9 bar.", encoding="utf-8")
            second = subprocess.run([*RAG, "ingest", str(more), "--index", str(index_dir), "--wait", "120", "--json"],
                                    capture_output=True, env=env, cwd=base, timeout=600)
            assert second.returncode == 0, second.stderr
            hits = httpx.post(f"{url}/api/search", json={"query": "Zephyr valve", "k": 1},
                              headers={"Authorization": f"Bearer {KEY}"}, timeout=300).json()["hits"]
            assert hits[0]["source"].endswith("valve.md")  # the server reads what the ingest wrote
        finally:
            server.terminate()
            server.wait(30)
    return Trail(log.read_bytes(), first.stdout + first.stderr + second.stdout + second.stderr, index_dir, statuses)


def _where(key: str, text: bytes) -> list[str]:
    return [line.decode(errors="replace") for line in text.splitlines() if key.encode() in line]


def test_the_requests_were_made_and_logged(trail: Trail):
    statuses = trail.statuses
    authorised = ["health", "models", "search", "chat", "chat stream", "upload", "documents", "key in url and header"]
    assert {name: statuses[name] for name in authorised} == dict.fromkeys(authorised, 200)
    refused = ["no key", "wrong key", "near miss", "no scheme", "basic scheme", "key twice", "other header",
               "key in body", "key in url"]
    assert {name: statuses[name] for name in refused} == dict.fromkeys(refused, 401)
    assert statuses["header without colon"] == 400 and statuses["control character"] in (400, 401)
    log = trail.server_output.decode(errors="replace")
    assert log.count('"GET /api/health') >= 8 and '"POST /api/documents' in log, "the server no longer logs requests"


def test_keys_are_never_in_the_server_log_or_the_ingest_output(trail: Trail):
    outside_urls = b"\n".join(line for line in trail.server_output.splitlines() if IN_URL.encode() not in line)
    for key in KEYS:
        assert not _where(key, outside_urls), f"the server logged an API key: {_where(key, outside_urls)}"
        assert not _where(key, trail.ingest_output), "rag ingest printed an API key"


def test_a_key_sent_in_the_url_is_not_logged(trail: Trail):
    assert not _where(KEY, trail.server_output), f"a key sent in the URL was logged: {_where(KEY, trail.server_output)}"


def test_keys_are_never_written_to_the_index(trail: Trail):
    files = [path for path in trail.index_dir.rglob("*") if path.is_file()]
    names = {path.name for path in files}
    assert len(files) >= 8 and "CURRENT" in names and "keys.md" in names and "valve.md" not in names
    for path in files:
        data = path.read_bytes()
        for key in KEYS:
            for form in (key.encode("utf-8"), key.encode("utf-16-le")):
                assert form not in data, f"{path.relative_to(trail.index_dir)} holds an API key"
