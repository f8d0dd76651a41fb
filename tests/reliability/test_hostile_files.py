"""Hostile files through `rag ingest`: each gets a clear one-line report, the run stays within bounded
memory (measured: the summary's peak RSS of the ingest process and of the largest parse worker) and
bounded time, and nothing already indexed is lost.

`make test` runs them under small limits; `make soak` runs them at full size under the default limits.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.index import Index
from tests import hostile
from tests.reliability.conftest import rag


def _hostile_folder(base: Path, bomb_mb: int, text_mb: int) -> tuple[Path, dict[str, str]]:
    """Good notes and every kind of hostile file; returns the folder and each bad file's expected reason."""
    docs = base / "docs"
    docs.mkdir()
    for n in range(5):
        (docs / f"good-{n}.md").write_text(f"Good note {n}: the spare fuse F{n} sits behind panel {n}.", encoding="utf-8")
    expected = {
        str(hostile.encrypted_pdf(docs)): "encrypted PDF: a password is required",
        str(hostile.truncated_pdf(docs)): "corrupt or truncated PDF",
        str(hostile.zero_byte(docs)): "empty file (0 bytes)",
        str(hostile.stream_bomb_pdf(docs, inflated_mb=bomb_mb)): "a decompression bomb?",
        str(hostile.image_only_pdf(docs)): "no text layer in any of its 2 pages",
        str(docs / "loop" / "again"): "symlink loop",
        str(docs / "ping.md"): "symlink loop",
        str(docs / "pong.md"): "symlink loop",
    }
    hostile.many_pages_pdf(docs, 1000)
    hostile.invalid_bytes_text(docs)
    hostile.big_text(docs, text_mb)
    hostile.nested_folders(docs, 100)
    hostile.awkward_names(docs)
    hostile.symlink_loop(docs)
    return docs, expected


def _run_hostile(tmp_path: Path, config: str, bomb_mb: int, text_mb: int, embedder: Path) -> dict:
    docs, expected = _hostile_folder(tmp_path, bomb_mb, text_mb)
    index_dir = tmp_path / "index"
    good = [str(p) for p in sorted(docs.glob("good-*.md"))]
    assert rag("ingest", *good, "--index", str(index_dir), "--embedder", str(embedder)).returncode == 0  # indexed before
    (tmp_path / "rag.toml").write_text(config, encoding="utf-8")
    started = time.monotonic()
    result = rag("ingest", str(docs), "--index", str(index_dir), "--json", config=tmp_path / "rag.toml")
    seconds = time.monotonic() - started
    assert result.returncode == 3, result.stderr  # some files failed, the rest committed
    summary = json.loads(result.stdout)
    failed = {f["path"]: f["reason"] for f in summary["failed"]}
    assert set(failed) == set(expected), failed
    for path, reason in expected.items():
        assert reason in failed[path], (path, failed[path])
    assert all("\n" not in reason for reason in failed.values())

    index = Index.open(index_dir)
    indexed = {Path(f.path).name: f for f in index.files() if f.status == "ok"}
    assert {f"good-{n}.md" for n in range(5)} <= set(indexed)  # nothing indexed before is lost
    assert {"pages-1000.pdf", "mostly-fine.txt", f"big-{text_mb}mb.txt", "deep-note.md", "with spaces.md",
            "line\nbreak.md", "说明 书✓.md", "-rf.md", "--help.md", "note.md"} <= set(indexed)
    assert indexed["pages-1000.pdf"].pages == 1000
    warnings = "\n".join(summary["warnings"])
    assert "mostly-fine.txt: 3 undecodable byte(s) replaced with U+FFFD" in warnings
    return {"summary": summary, "seconds": seconds, "warnings": warnings}


def test_hostile_files_are_reported_bounded_and_lose_nothing(tmp_path: Path, tiny_sentence_transformer: Path):
    outcome = _run_hostile(tmp_path, "max_page_chars = 200000\nparse_timeout_s = 60\n", bomb_mb=100, text_mb=200,
                           embedder=tiny_sentence_transformer)
    assert "big-200mb.txt: page 1 cut to 200,000 characters (max_page_chars)" in outcome["warnings"]
    peak = outcome["summary"]["peak_rss_mb"]
    assert 0 < peak["parse_worker"] < 2048 and 0 < peak["ingest"] < 2500, peak
    assert outcome["seconds"] < 240
    print(f"\nhostile files (200 MB text cut to 200,000 characters, 100 MB stream bomb, 1,000 pages): "
          f"{outcome['seconds']:.1f} s, peak RSS ingest {peak['ingest']:.0f} MiB, largest parse worker {peak['parse_worker']:.0f} MiB")


@pytest.mark.soak
def test_soak_hostile_files_at_full_size_under_the_default_limits(tmp_path: Path, tiny_sentence_transformer: Path):
    outcome = _run_hostile(tmp_path, "", bomb_mb=2048, text_mb=200, embedder=tiny_sentence_transformer)
    peak = outcome["summary"]["peak_rss_mb"]
    print(f"\nhostile files at full size (200 MB text, 2 GB stream bomb, 1,000 pages): {outcome['seconds']:.1f} s, "
          f"peak RSS ingest {peak['ingest']:.0f} MiB, largest parse worker {peak['parse_worker']:.0f} MiB; "
          f"stages {outcome['summary']['stage_seconds']}")
    assert peak["parse_worker"] < Settings.parse_memory_mb


@pytest.mark.soak
def test_soak_each_hostile_file_alone_time_and_memory(tmp_path: Path, tiny_sentence_transformer: Path):
    """One `rag ingest` per hostile file at full size, under the default limits: its time and peak memory."""
    docs = tmp_path / "docs"
    docs.mkdir()
    makers = {
        "encrypted PDF": hostile.encrypted_pdf, "truncated PDF": hostile.truncated_pdf, "zero-byte": hostile.zero_byte,
        "1,000-page PDF": lambda folder: hostile.many_pages_pdf(folder, 1000),
        "stream bomb (2 GB inflated)": lambda folder: hostile.stream_bomb_pdf(folder, inflated_mb=2048),
        "image-only PDF": hostile.image_only_pdf, "invalid bytes in text": hostile.invalid_bytes_text,
        "200 MB one-line text": lambda folder: hostile.big_text(folder, 200),
        "100 nested folders": lambda folder: hostile.nested_folders(folder, 100).parents[99],
    }
    rows = []
    for what, make in makers.items():
        folder = docs / f"case-{len(rows)}"
        folder.mkdir()
        target = make(folder)
        started = time.monotonic()
        result = rag("ingest", str(target), "--index", str(tmp_path / f"index-{len(rows)}"), "--json",
                     "--embedder", str(tiny_sentence_transformer))
        seconds = time.monotonic() - started
        summary = json.loads(result.stdout)
        outcome = summary["failed"][0]["reason"] if summary["failed"] else f"{summary['chunks']} chunks"
        peak = summary["peak_rss_mb"]
        rows.append(f"| {what} | {seconds:.1f} | {peak['ingest']:.0f} | {peak['parse_worker']:.0f} | {outcome[:70]} |")
        assert result.returncode in (0, 3) and seconds < 300 and peak["parse_worker"] < Settings.parse_memory_mb
    print("\n| file | seconds | peak RSS ingest (MiB) | peak RSS parse worker (MiB) | outcome |\n|---|---|---|---|---|")
    print("\n".join(rows))


def test_a_file_over_the_size_limit_is_not_read(tmp_path: Path, tiny_sentence_transformer: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "huge.txt").write_bytes(b"word " * (3 << 18))  # 3.75 MB
    (docs / "small.md").write_text("The small note stays.", encoding="utf-8")
    settings = Settings.resolve({"index_dir": tmp_path / "index", "embed_model": str(tiny_sentence_transformer),
                                 "max_file_mb": 2}, env={})
    report = Ingestor(settings, progress=False).run([docs])
    assert report.failed == [{"path": str(docs / "huge.txt"),
                              "reason": "file too large: 4 MB, above the limit of 2 MB (max_file_mb)"}]
    assert report.added == 1 and report.stage_seconds["read"] < 0.5


def test_files_vanishing_mid_run_are_reported_and_the_rest_ingested(tmp_path: Path, tiny_sentence_transformer: Path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(12):
        (docs / f"note-{n:02d}.md").write_text(f"Note {n}: valve {n} closes at {n} bar.", encoding="utf-8")
    vanished: list[str] = []

    def delete_ahead(stage: str, done: int, total: int) -> None:
        """While ingest visits file ``done``, the file two places later disappears (every third file)."""
        ahead = docs / f"note-{done + 2:02d}.md"
        if stage == "files" and done % 3 == 0 and ahead.exists():
            ahead.unlink()
            vanished.append(str(ahead))

    settings = Settings.resolve({"index_dir": tmp_path / "index", "embed_model": str(tiny_sentence_transformer)}, env={})
    report = Ingestor(settings, progress=False, on_progress=delete_ahead).run([docs])
    assert vanished and sorted(f["path"] for f in report.failed) == sorted(vanished)
    assert {f["reason"] for f in report.failed} == {"file vanished during ingest"}
    assert report.added == 12 - len(vanished)
