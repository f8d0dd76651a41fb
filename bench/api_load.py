"""Load on `rag serve`: requests/s and p50/p95 latency of /api/search and of extractive
/v1/chat/completions at 1, 8 and 32 concurrent clients, against a real server process.

    PYTHONPATH=. .venv/bin/python bench/api_load.py [--index DIR] [--requests 64]

Without --index it ingests the project's demo documents into a temporary index first. The server runs
as `rag serve` in its own process (extractive answers, no keys, loopback), the clients are httpx
asyncio clients in this one.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "How long does a full charge from the sun take?",
    "室外传感器的电池能用多久？",
    "How long is the warranty of the Lumen L2 lantern?",
    "晴川气象站多久发送一次数据？",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(index_dir: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--index", str(index_dir), "--port", str(port)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                return server
        except httpx.ConnectError:
            time.sleep(0.3)
    server.kill()
    raise SystemExit("the server did not start")


async def load(url: str, path: str, body_for: callable, clients: int, requests: int) -> dict[str, float]:  # type: ignore[valid-type]
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(requests):
        queue.put_nowait(n)

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            started = time.perf_counter()
            reply = await http.post(f"{url}{path}", json=body_for(QUESTIONS[n % len(QUESTIONS)]))
            reply.raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)

    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=clients)) as http:
        await http.post(f"{url}{path}", json=body_for(QUESTIONS[0]))  # warm up
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"clients": clients, "requests": requests, "requests_per_s": round(requests / elapsed, 1),
            "p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path)
    parser.add_argument("--requests", type=int, default=64)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="rag-api-load-"))
    index_dir = args.index
    if index_dir is None:
        sys.path.insert(0, str(ROOT))
        from examples.make_demo_docs import main as make_demo_docs

        docs = work / "docs"
        subprocess.run(["cp", "-r", str(ROOT / "examples" / "docs"), str(docs)], check=True)
        make_demo_docs(str(docs))
        index_dir = work / "rag-index"
        subprocess.run([sys.executable, "-m", "app.cli", "ingest", str(docs), "--index", str(index_dir), "--json"],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    port = free_port()
    server = start_server(index_dir, port)
    url = f"http://127.0.0.1:{port}"
    endpoints = {
        "/api/search": lambda q: {"query": q, "k": 10},
        "/v1/chat/completions": lambda q: {"model": "rag", "messages": [{"role": "user", "content": q}]},
    }
    results: dict[str, list[dict[str, float]]] = {}
    try:
        for path, body_for in endpoints.items():
            results[path] = [asyncio.run(load(url, path, body_for, clients, args.requests)) for clients in (1, 8, 32)]
            for row in results[path]:
                print(json.dumps({"endpoint": path, **row}), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    print(f"\n{os.cpu_count()} cores; `PYTHONPATH=. .venv/bin/python bench/api_load.py --requests {args.requests}`\n")
    print("| endpoint | clients | requests/s | p50 ms | p95 ms |\n|---|---|---|---|---|")
    for path, rows in results.items():
        for row in rows:
            print(f"| {path} | {row['clients']} | {row['requests_per_s']} | {row['p50_ms']} | {row['p95_ms']} |")


if __name__ == "__main__":
    main()
