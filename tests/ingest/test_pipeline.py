"""The ingest pipeline against a real on-disk index: incremental runs, prune, dedup, bad input."""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from examples.make_demo_docs import write_pdf
from ingest import pipeline
from ingest.chunking import Chunker
from ingest.engines import LocalEngine, ParseJob
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.embed import Role
from rag.index import EmbedderMismatchError, Index, IndexNotFoundError
from rag.text import BM25Tokenizer

SENTENCES = [f"Sentence number {n} talks about topic{n} and nothing else at all." for n in range(60)]


def _docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.md").write_text("\n\n".join(SENTENCES), encoding="utf-8")
    (folder / "zh.txt").write_text("晴川气象站每隔四十八秒发送一次数据。保修期为一年。", encoding="utf-8")
    write_pdf(folder / "guide.pdf", [["The lantern charges in ten hours."], ["Warranty lasts two years."]])
    return folder


def _hits(index_dir: Path, query: str) -> list[tuple[str, int]]:
    index = Index.open(index_dir)
    ranked = index.search_bm25(BM25Tokenizer().tokenize(query), 5)
    return [(Path(c.path).name, c.page) for c in index.chunks([i for i, _ in ranked])]


def test_first_run_indexes_everything_with_pages(tmp_path: Path, ingestor: Ingestor):
    report = ingestor.run([_docs(tmp_path / "docs")])
    assert (report.added, report.failed, report.exit_code) == (3, [], 0)
    assert report.pages == 4 and report.chunks == report.embedded > 3
    assert _hits(ingestor.settings.index_dir, "warranty two years")[0] == ("guide.pdf", 2)
    assert _hits(ingestor.settings.index_dir, "保修期")[0] == ("zh.txt", 1)


def test_second_run_does_no_work_and_keeps_the_generation(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    first = ingestor.run([docs])
    second = ingestor.run([docs])
    assert (second.unchanged, second.added, second.updated, second.embedded) == (3, 0, 0, 0)
    assert second.generation == first.generation


def test_touched_but_identical_file_is_not_re_embedded(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    ingestor.run([docs])
    os.utime(docs / "notes.md", ns=(1, 1))
    report = ingestor.run([docs])
    assert (report.unchanged, report.updated, report.embedded) == (3, 0, 0)


def test_changed_file_is_replaced_and_only_new_text_is_embedded(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    first = ingestor.run([docs])
    notes_chunks = len(Index.open(ingestor.settings.index_dir).store.chunk_ids(str(docs / "notes.md")))
    with (docs / "notes.md").open("a", encoding="utf-8") as fh:
        fh.write("\n\nA brand new closing paragraph mentions zeppelins.")
    report = ingestor.run([docs])
    assert (report.updated, report.unchanged, report.added) == (1, 2, 0)
    assert 0 < report.embedded < notes_chunks and report.reused_vectors > 0
    assert report.generation != first.generation
    assert _hits(ingestor.settings.index_dir, "zeppelins")[0][0] == "notes.md"
    assert Index.open(ingestor.settings.index_dir).manifest["counts"]["files"] == 3


def test_deleted_files_stay_until_prune(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    ingestor.run([docs])
    (docs / "guide.pdf").unlink()
    kept = ingestor.run([docs])
    assert (kept.removed, kept.missing) == (0, 1)
    assert _hits(ingestor.settings.index_dir, "lantern charges")
    pruned = ingestor.run([docs], prune=True)
    assert pruned.removed == 1
    assert _hits(ingestor.settings.index_dir, "lantern charges") == []
    index = Index.open(ingestor.settings.index_dir)
    assert len(index.dense) == index.manifest["counts"]["chunks"] == len(index.sparse)


def test_prune_only_touches_files_under_the_given_paths(tmp_path: Path, ingestor: Ingestor):
    a, b = _docs(tmp_path / "a"), _docs(tmp_path / "b")
    ingestor.run([a, b])
    (b / "zh.txt").unlink()
    report = ingestor.run([a], prune=True)
    assert report.removed == 0
    assert report.index["files"] == 6


def test_identical_content_under_two_paths_is_embedded_once(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    shutil.copy(docs / "notes.md", docs / "notes-copy.md")
    first = ingestor.run([docs])
    index = Index.open(ingestor.settings.index_dir)
    per_file = {Path(f.path).name: f.chunks for f in index.files()}
    assert per_file["notes.md"] == per_file["notes-copy.md"] > 1
    assert first.embedded == first.chunks - per_file["notes.md"]
    shutil.copy(docs / "guide.pdf", docs / "guide-again.pdf")
    later = ingestor.run([docs])
    assert (later.added, later.embedded, later.reused_vectors) == (1, 0, 2)


def test_a_file_that_turns_bad_keeps_its_indexed_content(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    ingestor.run([docs])
    (docs / "guide.pdf").write_bytes(b"%PDF-1.4\n garbage that is not a pdf body")
    report = ingestor.run([docs])
    assert [Path(f["path"]).name for f in report.failed] == ["guide.pdf"]
    assert report.exit_code == 3
    assert _hits(ingestor.settings.index_dir, "warranty two years")[0] == ("guide.pdf", 2)
    record = Index.open(ingestor.settings.index_dir).store.file(str(docs / "guide.pdf"))
    assert record.status == "failed" and "PDF" in record.error and record.chunks == 2
    again = ingestor.run([docs])
    assert "unchanged since the last attempt" in again.failed[0]["reason"]


def test_bad_files_in_a_folder_are_reported_and_the_rest_is_committed(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    (docs / "empty.pdf").write_bytes(b"")
    (docs / "image.png").write_bytes(b"\x89PNG\r\n")
    (docs / "corrupt.pdf").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8)
    (docs / "dangling.md").symlink_to(docs / "does-not-exist.md")
    (docs / "self-loop.md").symlink_to(docs / "self-loop.md")
    (docs / "sub").mkdir()
    (docs / "sub" / "up").symlink_to(docs)
    report = ingestor.run([docs])
    reasons = {Path(f["path"]).name: f["reason"] for f in report.failed}
    assert reasons == {
        "empty.pdf": "empty file (0 bytes)",
        "image.png": reasons["image.png"],
        "corrupt.pdf": reasons["corrupt.pdf"],
        "dangling.md": "broken symlink: its target does not exist",
        "self-loop.md": "symlink loop",
        "up": reasons["up"],
    }
    assert reasons["image.png"].startswith("not a readable image")
    assert "PDF" in reasons["corrupt.pdf"]
    assert reasons["up"].startswith("symlink loop")
    assert report.added == 3 and report.exit_code == 3
    assert Index.open(ingestor.settings.index_dir).manifest["counts"]["files"] == 3


def test_file_vanishing_between_scan_and_load_is_reported(tmp_path: Path, ingestor: Ingestor, monkeypatch):
    docs = _docs(tmp_path / "docs")
    real_scan = pipeline.scan

    def scan_then_delete(paths):
        found = real_scan(paths)
        (docs / "zh.txt").unlink()  # another process deletes it while the run is under way
        return found

    monkeypatch.setattr(pipeline, "scan", scan_then_delete)
    report = ingestor.run([docs])
    assert report.failed == [{"path": str(docs / "zh.txt"), "reason": "file vanished during ingest"}]
    assert report.added == 2


@contextmanager
def file_access_as_nobody():
    """Root reads anything; as root, check file permissions as 'nobody' (Linux setfsuid, this thread only)."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.setfsuid(65534)
    try:
        yield
    finally:
        libc.setfsuid(0)


@contextmanager
def world_writable_folder(prefix: str):
    """A temporary folder (with an empty ``idx`` inside) that 'nobody' can use too; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        (base / "idx").mkdir()
        open_to_all(base)
        yield base
    finally:
        for path in base.rglob("*"):
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def open_to_all(root: Path) -> None:
    for path in (root, *root.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)


def test_unreadable_file_is_reported_and_the_rest_ingested(embedders):
    with world_writable_folder("rag-perm-") as base:
        docs = _docs(base / "docs")
        secret = docs / "secret.md"
        secret.write_text("hidden", encoding="utf-8")
        open_to_all(docs)
        secret.chmod(0o000)
        warm_up = _docs(base / "warm-up")  # loads every lazily imported module while access is unrestricted
        Ingestor(Settings.resolve({"index_dir": base / "warm-idx"}, env={}), embedders=embedders, progress=False).run([warm_up])
        # a parse worker started as root: its forkserver's socket is root's (this process reads the files)
        with LocalEngine(processes=1) as engine:
            list(engine.parse([(None, ParseJob("warm.md", b"warm"))], Chunker()))
            ingestor = Ingestor(Settings.resolve({"index_dir": base / "idx"}, env={}), embedders=embedders,
                                progress=False, engine=engine)
            with file_access_as_nobody():
                report = ingestor.run([docs])
        assert report.failed == [{"path": str(secret), "reason": "permission denied: the file is not readable"}]
        assert report.added == 3


def test_index_built_with_another_embedder_is_refused(tmp_path: Path, ingestor: Ingestor, embedder):
    docs = _docs(tmp_path / "docs")
    ingestor.run([docs])
    before = sorted(p.name for p in ingestor.settings.index_dir.iterdir())
    other = Settings.resolve({"index_dir": ingestor.settings.index_dir, "embed_model": str(tmp_path / "other-model")}, env={})
    (docs / "new.md").write_text("new content", encoding="utf-8")
    with pytest.raises(EmbedderMismatchError, match=f"built with embedder '{embedder.name}'"):
        Ingestor(other, progress=False).run([docs])
    assert sorted(p.name for p in ingestor.settings.index_dir.iterdir()) == before


def test_changing_chunk_settings_rechunks_every_file(tmp_path: Path, embedders):
    docs = _docs(tmp_path / "docs")
    index_dir = tmp_path / "index"
    Ingestor(Settings.resolve({"index_dir": index_dir}, env={}), embedders=embedders, progress=False).run([docs])
    small = Settings.resolve({"index_dir": index_dir, "chunk_size": 40, "chunk_overlap": 0}, env={})
    report = Ingestor(small, embedders=embedders, progress=False).run([docs])
    assert report.updated == 3
    assert Index.open(index_dir).manifest["chunker"]["chunk_size"] == 40


@pytest.mark.slow
def test_shared_corpus_is_ingested_with_page_numbers(corpus_index):
    docs, index_dir, summary = corpus_index
    assert summary["failed"] == []
    assert summary["pages"] >= 100 and summary["chunks"] >= 300
    index = Index.open(index_dir)
    pdfs = [f for f in index.files() if f.path.endswith(".pdf")]
    assert len(pdfs) == 9 and all(f.status == "ok" and f.chunks > 0 for f in pdfs)
    assert _hits(index_dir, "81.1M English-language academic papers spanning many disciplines")[0] == ("acl2020-main-447.pdf", 1)
    assert ("ucasthesis-template-guide.pdf", 7) in _hits(index_dir, "中国科学院大学学位论文模板使用说明")
    assert index.manifest["unknown_token_share"] < 0.01  # the multilingual default reads Chinese too
    stages = summary["stage_seconds"]
    assert list(stages) == ["read", "parse", "clean", "chunk", "embed", "tokenize", "write"]
    assert all(t > 0 for t in stages.values())  # every stage timed (which one is longest depends on the kernel)
    in_this_process = ("read", "embed", "tokenize", "write")  # parse, clean and chunk run in parse processes
    assert sum(stages[s] for s in in_this_process) <= summary["seconds"]


@pytest.mark.slow
def test_shared_corpus_second_run_reads_no_file(corpus_index, embedders, monkeypatch):
    docs, index_dir, summary = corpus_index
    monkeypatch.setattr(pipeline, "read_source", lambda path: pytest.fail(f"{path} was read again"))
    report = Ingestor(Settings.resolve({"index_dir": index_dir}, env={}), embedders=embedders, progress=False).run([docs])
    assert (report.unchanged, report.embedded, report.generation) == (11, 0, Index.open(index_dir).generation.name)


def test_file_name_that_is_not_utf8_is_reported_not_fatal(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    (docs / os.fsdecode("报告".encode("gbk") + b".txt")).write_text("gbk named file", encoding="utf-8")
    report = ingestor.run([docs])
    assert report.added == 3
    assert [f["reason"] for f in report.failed] == ["file name is not valid UTF-8; rename the file"]


def test_text_with_no_bm25_tokens_is_indexed(tmp_path: Path, ingestor: Ingestor):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "stopwords.md").write_text("--- *** the of", encoding="utf-8")
    report = ingestor.run([docs])
    assert (report.added, report.failed) == (1, [])
    assert Index.open(ingestor.settings.index_dir).search_bm25(["the"], 3) == []


def test_prune_keeps_files_under_a_folder_that_cannot_be_listed(embedders):
    with world_writable_folder("rag-prune-") as base:
        docs = _docs(base / "docs")
        locked = docs / "locked"
        locked.mkdir()
        (locked / "kept.md").write_text("the locked folder holds quokkas", encoding="utf-8")
        open_to_all(docs)
        settings = Settings.resolve({"index_dir": base / "idx"}, env={})
        Ingestor(settings, embedders=embedders, progress=False).run([docs])
        open_to_all(base / "idx")  # the second run writes the index as 'nobody' too
        locked.chmod(0o000)
        with file_access_as_nobody():
            report = Ingestor(settings, embedders=embedders, progress=False).run([docs], prune=True)
        assert report.removed == 0
        assert [f["reason"] for f in report.failed] == ["permission denied: the folder is not readable"]
        assert _hits(base / "idx", "quokkas")[0] == ("kept.md", 1)


def test_new_chunk_settings_rechunk_files_outside_the_scanned_folder(tmp_path: Path, embedders):
    a, b = _docs(tmp_path / "a"), _docs(tmp_path / "b")
    index_dir = tmp_path / "index"
    Ingestor(Settings.resolve({"index_dir": index_dir}, env={}), embedders=embedders, progress=False).run([a, b])
    small = Settings.resolve({"index_dir": index_dir, "chunk_size": 40, "chunk_overlap": 0}, env={})
    report = Ingestor(small, embedders=embedders, progress=False).run([a])
    assert report.updated == 6


def test_an_index_in_an_older_format_is_upgraded_by_the_next_ingest(tmp_path: Path, ingestor: Ingestor):
    import sqlite3

    docs = _docs(tmp_path / "docs")
    first = ingestor.run([docs])
    generation = ingestor.settings.index_dir / first.generation
    manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    (segment,) = manifest.pop("segments")
    # as the version before segments wrote it: one store holding the files too (schema 1), one FAISS file
    (generation / segment / "chunks.sqlite").rename(generation / "chunks.sqlite")
    (generation / segment / "dense.faiss").rename(generation / "dense.faiss")
    db = sqlite3.connect(generation / "chunks.sqlite")
    db.execute("ATTACH DATABASE ? AS catalog", (str(generation / "files.sqlite"),))
    db.execute("DELETE FROM files")
    db.execute("INSERT INTO files SELECT * FROM catalog.files")
    db.commit()
    db.execute("DETACH DATABASE catalog")
    db.execute("ALTER TABLE chunks DROP COLUMN lang")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    for leftover in (generation / segment, generation / "files.sqlite", generation / "dead.npy"):
        shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    (generation / "manifest.json").write_text(json.dumps({**manifest, "format": 1}), encoding="utf-8")
    with pytest.raises(IndexNotFoundError, match="run `rag ingest` on the index once to upgrade it"):
        Index.open(ingestor.settings.index_dir)
    report = ingestor.run([docs])
    assert report.unchanged == 3 and report.embedded == 0 and report.generation != first.generation
    index = Index.open(ingestor.settings.index_dir)
    assert set(index.manifest["unknown_token_share_by_language"]) == {"en", "zh"}
    assert index.manifest["counts"] == first.index and len(index.dense) == len(index.sparse) == first.index["chunks"]
    assert _hits(ingestor.settings.index_dir, "保修期")[0] == ("zh.txt", 1)


def test_remove_takes_one_file_out_and_keeps_the_others(tmp_path: Path, ingestor: Ingestor):
    docs = _docs(tmp_path / "docs")
    first = ingestor.run([docs])
    report = ingestor.remove([str(docs / "guide.pdf"), str(docs / "never-indexed.md")])
    assert report.removed == 1
    assert report.failed == [{"path": str(docs / "never-indexed.md"), "reason": "not in the index"}]
    assert report.generation != first.generation and report.index["files"] == 2
    assert (docs / "guide.pdf").exists()
    assert _hits(ingestor.settings.index_dir, "lantern charges") == []
    assert _hits(ingestor.settings.index_dir, "保修期")[0] == ("zh.txt", 1)
    index = Index.open(ingestor.settings.index_dir)
    assert len(index.dense) == index.manifest["counts"]["chunks"] == len(index.sparse)
    assert ingestor.run([docs]).added == 1  # an ingest of the folder brings it back


def test_force_rereads_unchanged_files_and_reports_progress(tmp_path: Path, embedders):
    docs = _docs(tmp_path / "docs")
    calls: list[tuple[str, int, int]] = []
    ingestor = Ingestor(Settings.resolve({"index_dir": tmp_path / "index"}, env={}), embedders=embedders, progress=False,
                        on_progress=lambda stage, done, total: calls.append((stage, done, total)))
    ingestor.run([docs])
    assert calls[-1] == ("files", 3, 3) and ("embedding", calls[-2][2], calls[-2][2]) == calls[-2]
    again = ingestor.run([docs / "guide.pdf"], force=True)
    assert (again.updated, again.unchanged, again.embedded, again.reused_vectors) == (1, 0, 0, 2)


def test_a_large_single_page_file_ingests_with_progress_in_linear_time(tmp_path: Path, tiny_sentence_transformer: Path):
    """A 1 MB and a 4 MB one-page text file (logs, exports) through the whole ingest, in one process: the
    time grows about 4x, not 16x, and embedding reports its progress chunk batch by chunk batch."""
    import random

    settings = Settings.resolve({"index_dir": tmp_path / "index", "embed_model": str(tiny_sentence_transformer)}, env={})
    events: list[tuple[str, int, int]] = []
    ingestor = Ingestor(settings, progress=False, on_progress=lambda stage, done, total: events.append((stage, done, total)))
    ingestor.embedder.encode(["load the model before timing"], Role.PASSAGE)
    rng = random.Random(0)
    words = "lantern battery charge warranty sensor display radio signal station reading hour year".split()
    seconds = {}
    for megabytes in (1, 4):
        folder = tmp_path / f"docs-{megabytes}"
        folder.mkdir()
        sentences = (" ".join(rng.choice(words) for _ in range(12)) + ". " for _ in range(megabytes * 13_000))
        (folder / "export.txt").write_text("".join(sentences), encoding="utf-8")
        events.clear()
        report = ingestor.run([folder])
        seconds[megabytes] = report.seconds
        assert report.summary()["failed"] == [] and report.pages == 1 and report.chunks > 1000 * megabytes
    embedding = [(done, total) for stage, done, total in events if stage == "embedding"]
    assert len(embedding) > 20 and embedding[-1][0] == embedding[-1][1] == report.embedded
    assert [done for done, _ in embedding] == sorted(done for done, _ in embedding)
    assert seconds[4] / seconds[1] < 8, seconds


def test_each_commit_writes_only_the_changes_and_scores_as_a_rebuild(tmp_path: Path, ingestor: Ingestor, monkeypatch):
    from rag.index.sparse import PostingsBuilder, SparseIndex

    docs = _docs(tmp_path / "docs")
    first = ingestor.run([docs])
    (docs / "notes.md").write_text("\n\n".join(SENTENCES[:20] + ["A changed paragraph about topic7 and valves."]), encoding="utf-8")
    (docs / "new.txt").write_text("Valves open at three bar. 晴川气象站的阀门。", encoding="utf-8")
    (docs / "zh.txt").unlink()
    built: list[int] = []
    add = PostingsBuilder.add
    monkeypatch.setattr(PostingsBuilder, "add", lambda self, ids, tokens: built.extend(ids) or add(self, ids, tokens))
    report = ingestor.run([docs], prune=True)
    monkeypatch.undo()
    assert (report.added, report.updated, report.removed) == (1, 1, 1)
    changed = Index.open(ingestor.settings.index_dir)
    new_ids = sorted(c.id for path in ("notes.md", "new.txt") for c in changed.store.chunks_of(str(docs / path)))
    assert sorted(built) == new_ids  # BM25 of the changed files only (then merged with the rest, most of it dead)
    assert first.generation != report.generation
    index = Index.open(ingestor.settings.index_dir)
    rows = list(index.store.all_tokens())
    rebuilt = SparseIndex.build([i for i, _ in rows], [t for _, t in rows])
    assert index.sparse.ids.tolist() == sorted(i for i, _ in rows)
    for query in ("valves three bar", "topic7 changed", "晴川 阀门", "保修期", "lantern charges"):
        tokens = BM25Tokenizer().tokenize(query)
        ours, theirs = index.sparse.search(tokens, 50), rebuilt.search(tokens, 50)
        assert ours[1].tolist() == theirs[1].tolist() and np.allclose(ours[0], theirs[0], atol=1e-6)
