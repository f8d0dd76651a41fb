"""The ``rag`` command as a user runs it: real processes, real index folders."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import main
from examples.make_demo_docs import write_pdf
from rag.index import Index
from rag.index.generations import WriterLock

RAG = [sys.executable, "-m", "app.cli"]
ROOT = Path(__file__).resolve().parents[2]
SUMMARY_KEYS = {"added", "updated", "unchanged", "removed", "failed", "pages", "chunks", "seconds"}


def rag(*args: str) -> subprocess.CompletedProcess:
    """The `rag` command run in this process by click's runner: its exit status, stdout and stderr as a
    shell would see them, without a new interpreter and model loads per call. An exception that would
    end in a traceback is raised here, so no test passes over one. Tests of what only a real process
    shows (kill -9, the UI and API servers) start one."""
    result = CliRunner().invoke(main, list(args), prog_name="rag")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(["rag", *args], result.exit_code, result.stdout, result.stderr)


def _docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.md").write_text("# Alpha\nThe alpha document mentions aardvarks.", encoding="utf-8")
    (folder / "b.txt").write_text("北京是中国的首都。", encoding="utf-8")
    return folder


def test_help_shows_runnable_examples():
    assert "rag ingest" in rag("--help").stdout
    for command in ("ingest", "ui"):
        assert f"Example:  rag {command}" in rag(command, "--help").stdout


def test_ingest_json_prints_only_the_contract_object(tmp_path: Path):
    docs = _docs(tmp_path / "docs")
    result = rag("ingest", str(docs), "--index", str(tmp_path / "idx"), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert SUMMARY_KEYS <= summary.keys()
    assert (summary["added"], summary["failed"], summary["pages"]) == (2, [], 2)


def test_some_failed_files_exit_3_with_path_and_reason(tmp_path: Path):
    docs = _docs(tmp_path / "docs")
    (docs / "zero.pdf").write_bytes(b"")
    result = rag("ingest", str(docs), "--index", str(tmp_path / "idx"), "--json")
    assert result.returncode == 3
    summary = json.loads(result.stdout)
    assert summary["failed"] == [{"path": str(docs / "zero.pdf"), "reason": "empty file (0 bytes)"}]
    assert summary["added"] == 2
    assert f"failed: {docs / 'zero.pdf'}: empty file (0 bytes)" in result.stderr


def test_human_output_lists_failures(tmp_path: Path):
    docs = _docs(tmp_path / "docs")
    (docs / "notes.xyz").write_text("x")
    result = rag("ingest", str(docs), "--index", str(tmp_path / "idx"))
    assert result.returncode == 3
    assert "2 added" in result.stdout and "failed: " in result.stdout and "unsupported file type '.xyz'" in result.stdout


def test_usage_errors_exit_2():
    assert rag("ingest").returncode == 2
    assert rag("ingest", "x", "--chunk-size", "10", "--chunk-overlap", "20").returncode == 2


def test_a_second_writer_fails_clearly_and_changes_nothing(tmp_path: Path):
    docs, index_dir = _docs(tmp_path / "docs"), tmp_path / "idx"
    with WriterLock(index_dir):
        result = rag("ingest", str(docs), "--index", str(index_dir), "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert f"error: {index_dir}: another rag ingest (pid {os.getpid()}) is writing this index" in result.stderr
    assert not (index_dir / "CURRENT").exists()


def test_a_second_writer_can_wait_for_the_first(tmp_path: Path):
    docs, index_dir = _docs(tmp_path / "docs"), tmp_path / "idx"
    lock = WriterLock(index_dir).__enter__()
    threading.Timer(2.0, lock.__exit__).start()
    result = rag("ingest", str(docs), "--index", str(index_dir), "--wait", "60", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 2


def _pending_rows(index_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{index_dir / 'pending-vectors.sqlite'}?mode=ro", uri=True, timeout=0.1) as db:
            return db.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_9_during_ingest_leaves_the_previous_index_live_and_the_next_run_recovers(tmp_path: Path):
    docs, index_dir = _docs(tmp_path / "docs"), tmp_path / "idx"
    assert rag("ingest", str(docs), "--index", str(index_dir)).returncode == 0
    before = Index.open(index_dir).manifest["counts"]
    big = tmp_path / "docs" / "big"
    for n in range(8):  # enough text that embedding takes several seconds
        pages = [[" ".join(f"File {n} page {p} sentence {i} is about subject{n}x{p}x{i}." for i in range(60))]
                 for p in range(12)]
        write_pdf(big / f"guide-{n}.pdf", pages)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([*RAG, "ingest", str(docs), "--index", str(index_dir), "--json"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _pending_rows(index_dir) == 0 and writer.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.poll() is None, "ingest finished before it could be killed; give it more to embed"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    survived = Index.open(index_dir)
    assert survived.manifest["counts"] == before
    assert len(survived.dense) == before["chunks"] == len(survived.sparse)
    saved = _pending_rows(index_dir)
    assert saved > 0

    result = rag("ingest", str(docs), "--index", str(index_dir), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["added"] == 8 and summary["reused_vectors"] >= saved
    assert summary["embedded"] == summary["chunks"] - summary["reused_vectors"]
    assert not any(p.name.startswith("staging-") for p in index_dir.iterdir())
    assert Index.open(index_dir).manifest["counts"]["files"] == before["files"] + 8


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("search-cli")
    docs = _docs(base / "docs")
    write_pdf(docs / "guide.pdf", [["The lantern charges in ten hours."], ["The warranty lasts two years."]])
    assert rag("ingest", str(docs), "--index", str(base / "idx")).returncode == 0
    return base / "idx"


def test_search_json_follows_the_contract_in_every_mode(small_index: Path):
    for mode in ("bm25", "dense", "hybrid", "fusion"):
        result = rag("search", "How long is the warranty?", "--index", str(small_index), "--mode", mode, "-k", "2", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert {"query", "mode", "hits", "ms"} <= data.keys() and data["mode"] == mode
        hit = data["hits"][0]
        assert {"rank", "chunk_id", "source", "page", "score", "text"} <= hit.keys()
        assert (Path(hit["source"]).name, hit["page"], hit["rank"]) == ("guide.pdf", 2, 1)


def test_search_human_output_shows_source_page_and_provenance(small_index: Path):
    result = rag("search", "北京", "--index", str(small_index), "--mode", "fusion", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert "fusion skipped (no LLM for rewrites" in result.stdout  # e5's tuned settings: no offline variants
    assert "b.txt  p.1" in result.stdout and "via original/bm25" in result.stdout


def test_search_many_queries_prints_one_json_line_each(small_index: Path, tmp_path: Path):
    queries = tmp_path / "queries.txt"
    queries.write_text('warranty\n\n{"text": "北京是哪里"}\n', encoding="utf-8")
    result = rag("search", "--queries", str(queries), "--index", str(small_index), "-k", "1", "--path", "*.txt")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["warranty", "北京是哪里"]
    assert all(h["source"].endswith(".txt") for line in lines for h in line["hits"])


def test_search_usage_and_missing_index_errors(tmp_path: Path, small_index: Path):
    assert rag("search", "--index", str(small_index)).returncode == 2
    bad_pages = rag("search", "x", "--index", str(small_index), "--pages", "9-1")
    assert bad_pages.returncode == 2 and "page range '9-1' is empty" in bad_pages.stderr
    missing = rag("search", "x", "--index", str(tmp_path / "none"))
    assert missing.returncode == 1 and "no index here yet" in missing.stderr


def test_ask_streams_an_answer_with_sources(small_index: Path):
    result = rag("ask", "How long does the warranty last?", "--index", str(small_index))
    assert result.returncode == 0, result.stderr
    answer, _, sources = result.stdout.partition("Sources:")
    assert "two years" in answer and "[1]" in answer
    assert "guide.pdf  p.2" in sources


def test_ask_refuses_and_shows_the_nearest_passages(small_index: Path):
    result = rag("ask", "What is the boiling point of liquid nitrogen?", "--index", str(small_index), "--json")
    data = json.loads(result.stdout)
    assert data["refused"] and data["answer"] == "Not found in your documents." and data["grounded"] is False


def test_ask_many_questions_prints_one_json_line_each(small_index: Path, tmp_path: Path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "How long does the warranty last?"}\n北京是哪个国家的首都？\n', encoding="utf-8")
    result = rag("ask", "--questions", str(questions), "--index", str(small_index))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["question"] for line in lines] == ["How long does the warranty last?", "北京是哪个国家的首都？"]
    assert {"question", "answer", "citations", "grounded", "ms"} <= lines[0].keys()
    assert lines[1]["citations"][0]["source"].endswith("b.txt")


def test_ask_through_an_openai_compatible_server(small_index: Path):
    from testkit.fake_llm_server import FakeLLMServer

    with FakeLLMServer(lambda messages: "The warranty lasts two years [1].") as server:
        result = rag("ask", "How long does the warranty last?", "--index", str(small_index), "--llm",
                     f"openai:{server.base_url}#fake", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answer"] == "The warranty lasts two years [1]." and data["grounded"]


def test_ask_reports_backend_problems_in_one_line(small_index: Path):
    bad_spec = rag("ask", "warranty?", "--index", str(small_index), "--llm", "gpt4")
    assert bad_spec.returncode == 1 and "unknown LLM spec 'gpt4'" in bad_spec.stderr
    down = rag("ask", "How long does the warranty last?", "--index", str(small_index), "--llm", "openai:http://127.0.0.1:9/v1#m")
    assert down.returncode == 1 and "cannot reach the LLM server at http://127.0.0.1:9/v1" in down.stderr
    assert "Traceback" not in down.stderr
