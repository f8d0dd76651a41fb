"""The ingest pipeline: scan, detect changes, load, chunk, embed, and publish one new index generation.

Example:
    >>> report = Ingestor(Settings.resolve({"index_dir": "new-index"}, env={}), progress=False).run([Path("docs")])
    >>> report.exit_code, report.summary()["chunks"] > 0
    (0, True)
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ingest.chunking import Chunker
from ingest.engines import Engine, LocalEngine, PageProgress, Parsed, ParseJob, peak_rss_mb
from ingest.loaders import LoadError, ParseLimits, bytes_to_parse, check_supported, read_source
from ingest.scan import scan
from rag.config import Settings
from rag.documents import Chunk, Page
from rag.embed import Embedder, choose_embedder, load_embedder
from rag.index import ChunkRow, FileRecord, IndexWriter, built_with
from rag.text import BM25Tokenizer

UNKNOWN_TOKEN_WARNING = 0.2
"""Above this share of [UNK] tokens the embedder cannot represent the text and dense search is weak."""

ProgressCallback = Callable[[str, int, int], None]
"""Called as ``(stage, done, total)`` with stage ``files`` or ``embedding`` (for a UI's progress bar)."""


STAGES = ("read", "parse", "clean", "chunk", "embed", "tokenize", "write")
"""Where ingest time goes: reading files, parsing them into pages, cleaning the text, chunking,
embedding, BM25 tokens and [UNK] counts, and writing the index (staging and commit). Parse, clean and
chunk are summed over the parse processes, which work while this process embeds, so the stages can add up
to more than the run's wall time."""


@dataclass
class IngestReport:
    """What one run did; :meth:`summary` is the JSON object of the CLI contract."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    missing: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    pages: int = 0
    chunks: int = 0
    embedded: int = 0
    reused_vectors: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    index: dict[str, int] = field(default_factory=dict)
    generation: str | None = None
    warnings: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    """Time per stage (see :data:`STAGES`); the rest of ``seconds`` is scanning and bookkeeping."""
    peak_rss_mb: dict[str, float] = field(default_factory=lambda: {"ingest": 0.0, "parse_worker": 0.0})
    """Peak resident memory of the ingest process and of the largest parse worker (where parsing ran)."""

    @contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.stage_seconds[stage] += time.perf_counter() - started

    @property
    def exit_code(self) -> int:
        return 3 if self.failed else 0

    def summary(self) -> dict[str, Any]:
        return {
            "added": self.added, "updated": self.updated, "unchanged": self.unchanged, "removed": self.removed,
            "failed": self.failed, "pages": self.pages, "chunks": self.chunks, "seconds": round(self.seconds, 3),
            "embedded": self.embedded, "reused_vectors": self.reused_vectors,
            "embed_seconds": round(self.embed_seconds, 3), "missing": self.missing, "index": self.index,
            "generation": self.generation, "warnings": self.warnings,
            "stage_seconds": {stage: round(t, 3) for stage, t in self.stage_seconds.items()},
            "peak_rss_mb": {part: round(mb, 1) for part, mb in self.peak_rss_mb.items()},
        }


@dataclass
class _Loaded:
    record: FileRecord
    pages: list[Page]
    chunks: list[Chunk]
    is_new: bool


@dataclass(frozen=True)
class _ToParse:
    """What the run knows about a file sent to be parsed."""

    record: FileRecord
    known: FileRecord | None
    stat: os.stat_result


class Ingestor:
    """Bring an index up to date with files on disk, incrementally and atomically.

    Unchanged files (same size and mtime, or same sha256) cost a ``stat``; a file whose content is
    already indexed under another path is copied, not re-parsed; a chunk whose text was embedded before
    reuses its vector. Vectors are saved batch by batch, so an interrupted run loses no embedding work.
    Parsing and embedding run on ``engine`` (by default :class:`~ingest.engines.LocalEngine`: a pool of
    ``settings.parse_processes`` parse processes and the embedder in this process).

    Example:
        >>> ingestor = Ingestor(Settings.resolve({"index_dir": "rag-index"}, env={}), progress=False)
        >>> ingestor.run([Path("docs")], prune=True).summary()["failed"]
        []
    """

    def __init__(self, settings: Settings, embedders: Callable[[str, int], Embedder] = load_embedder,
                 progress: bool | None = None, lock_wait: float = 0.0, flush_chunks: int | None = None,
                 on_progress: ProgressCallback | None = None, engine: Engine | None = None) -> None:
        self.settings = settings
        self._embedders = embedders
        """``(name, batch size) -> Embedder``: the UI passes its cached models."""
        self._embedder: Embedder | None = None
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        self.limits = ParseLimits(settings.max_pages, settings.max_page_chars, settings.ocr)
        self._progress = progress
        self._lock_wait = lock_wait
        self.flush_chunks = flush_chunks
        """Chunks collected before they are embedded and staged; None: the engine's choice."""
        self.engine = engine
        """None: a :class:`LocalEngine` for each run."""
        self.on_progress = on_progress
        self._tokenizer: BM25Tokenizer | None = None

    @property
    def embedder(self) -> Embedder:
        """The index's own embedder, or for a new index the configured one (multilingual-e5-small by default)."""
        name = choose_embedder(self.settings.embed_model, built_with(self.settings.index_dir), self.settings.index_dir)
        if self._embedder is None or self._embedder.name != name:
            self._embedder = self._embedders(name, self.settings.embed_batch_size)
        return self._embedder

    def parsing(self) -> dict[str, Any]:
        """How files become chunks, as the manifest records it: the chunker and when pages are read by OCR.
        A run with other settings than the live index's re-reads every file."""
        return {**self.chunker.describe(), "ocr": self.limits.ocr}

    @property
    def tokenizer(self) -> BM25Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = BM25Tokenizer()
        return self._tokenizer

    def run(self, paths: Sequence[Path], prune: bool = False, force: bool = False) -> IngestReport:
        """Ingest ``paths`` (files or folders); ``force`` re-reads files even when they look unchanged."""
        started = time.perf_counter()
        report = IngestReport()
        found = scan(paths)
        report.failed.extend({"path": p, "reason": r} for p, r in found.failed)
        embedder = self.embedder
        with IndexWriter(self.settings.index_dir, embedder.name, lock_wait=self._lock_wait) as writer, \
                (self.engine or LocalEngine.for_settings(self.settings)) as engine:
            run = _Run(self, writer, embedder, engine, report, force)
            files = found.files + run.others_to_rechunk(found.files)
            for todo, parsed in engine.parse(self._jobs(run, files), self.chunker, self.limits, self._ocr_progress()):
                run.accept(todo, parsed)
            run.flush()
            self.report_progress("files", len(files), len(files))
            run.forget_missing(found.roots, {str(p) for p in found.files}, [Path(p) for p, _ in found.failed], prune)
            self._publish(writer, report, embedder, {"chunker": self.parsing(), "tokenizer": self.tokenizer.name,
                                                     "next_chunk_id": run.next_id})
            if run.poorly_embedded:
                report.warnings.append(
                    f"{len(run.poorly_embedded)} file(s), e.g. {run.poorly_embedded[0]}, are mostly unknown to the "
                    f"embedder {embedder.name!r} (more than {UNKNOWN_TOKEN_WARNING:.0%} [UNK] tokens: Chinese "
                    "under an English model?), so dense search cannot represent them and BM25 carries them; "
                    "ingest into a new index with the multilingual default (--embedder e5-small)"
                )
        report.seconds = time.perf_counter() - started
        report.peak_rss_mb["ingest"] = peak_rss_mb()
        return report

    def _jobs(self, run: _Run, files: list[Path]) -> Iterator[tuple[_ToParse, ParseJob]]:
        """Visit each file, with progress; yield those that need parsing."""
        for done, path in enumerate(tqdm(files, desc="files", unit="file", disable=self.progress_disabled(), file=sys.stderr)):
            self.report_progress("files", done, len(files))
            todo = run.visit(path)
            if todo is not None:
                yield todo

    def remove(self, paths: Sequence[str]) -> IngestReport:
        """Take these indexed files out of the index (the files on disk are left alone)."""
        started = time.perf_counter()
        report = IngestReport()
        embedder = self.embedder
        with IndexWriter(self.settings.index_dir, embedder.name, lock_wait=self._lock_wait) as writer:
            next_chunk_id = writer.next_chunk_id()
            for path in paths:
                if writer.store.file(path) is None:
                    report.failed.append({"path": path, "reason": "not in the index"})
                    continue
                writer.remove_file(path)
                report.removed += 1
            kept: dict[str, Any] = {key: writer.live_manifest[key] for key in ("chunker", "tokenizer") if key in writer.live_manifest}
            self._publish(writer, report, embedder, {**kept, "next_chunk_id": next_chunk_id})
        report.seconds = time.perf_counter() - started
        return report

    def _publish(self, writer: IndexWriter, report: IngestReport, embedder: Embedder, manifest: dict[str, Any]) -> None:
        """Commit the writer's changes, if any, and record the live index in the report."""
        if writer.changed:
            with report.timed("write"):
                writer.commit(manifest, describe_embedder=embedder.describe)
        report.index = dict(writer.live_manifest.get("counts", {}))
        report.generation = writer.live_name

    def _ocr_progress(self) -> PageProgress:
        """Pages read by OCR, as "OCR page 3/38": a bar per file on the terminal, stage ``ocr`` for the UI."""
        bars: dict[str, tqdm] = {}

        def on_page(path: str, done: int, total: int) -> None:
            self.report_progress("ocr", done, total)
            if self.progress_disabled():
                return
            bar = bars.get(path)
            if bar is None:
                bar = bars[path] = tqdm(total=total, desc=f"OCR {Path(path).name}", unit="page", file=sys.stderr, leave=False)
            bar.update(done - bar.n)
            if done >= total:
                bars.pop(path).close()

        return on_page

    def report_progress(self, stage: str, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(stage, done, total)

    def progress_disabled(self) -> bool | None:
        return None if self._progress is None else not self._progress


class _Run:
    """The state of one ingest run inside the writer lock."""

    def __init__(self, ingestor: Ingestor, writer: IndexWriter, embedder: Embedder, engine: Engine,
                 report: IngestReport, force: bool = False) -> None:
        self.ingestor = ingestor
        self.embedder = embedder
        self.engine = engine
        self.flush_chunks = ingestor.flush_chunks or engine.flush_chunks
        self.writer = writer
        self.report = report
        self.queue: list[_Loaded] = []
        live_chunker = writer.live_manifest.get("chunker")
        self.rechunk = bool(live_chunker) and live_chunker != ingestor.parsing()
        self.reread = self.rechunk or force
        """Read every visited file again, whatever its size, mtime or hash say."""
        self.next_id = writer.next_chunk_id()
        self.poorly_embedded: list[str] = []

    def fail(self, path: str, reason: str) -> None:
        self.report.failed.append({"path": path, "reason": reason})
        tqdm.write(f"failed: {path}: {reason}", file=sys.stderr)

    def visit(self, path: Path) -> tuple[_ToParse, ParseJob] | None:
        """Settle the file here if it is unchanged, a copy or unreadable; else the job to parse it."""
        key = str(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            self.fail(key, "file vanished during ingest")
            return None
        except OSError as exc:
            self.fail(key, f"cannot access ({exc.strerror})")
            return None
        known = self.writer.store.file(key)
        if known and not self.reread and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            if known.status == "failed":
                self.report.failed.append({"path": key, "reason": f"{known.error} (unchanged since the last attempt)"})
            else:
                self.report.unchanged += 1
            return None
        try:
            check_supported(path)
            limit = self.ingestor.settings.max_file_mb
            if stat.st_size > limit << 20:
                raise LoadError(f"file too large: {stat.st_size / (1 << 20):,.0f} MB, above the limit of {limit:,} MB (max_file_mb)")
            with self.report.timed("read"):
                data = read_source(path)
        except LoadError as exc:
            self._record_failure(key, known, stat, None, str(exc))
            return None
        sha = hashlib.sha256(data).hexdigest()
        record = FileRecord(key, sha, stat.st_size, stat.st_mtime_ns)
        if known and known.status == "ok" and known.sha256 == sha and not self.reread:
            self.writer.put_file(FileRecord(key, sha, stat.st_size, stat.st_mtime_ns, known.pages, known.chunks))
            self.report.unchanged += 1
            return None
        twin = None if self.reread else self.writer.store.indexed_file_with_sha(sha)
        if twin is not None and twin.path != key:
            self._copy_twin(record, twin, is_new=known is None)
            return None
        return _ToParse(record, known, stat), ParseJob(key, bytes_to_parse(path, data, self.ingestor.limits))

    def accept(self, todo: _ToParse, parsed: Parsed) -> None:
        """Queue a parsed file for embedding, or record why it cannot be indexed."""
        for stage, seconds in parsed.seconds.items():
            self.report.stage_seconds[stage] += seconds
        self.report.peak_rss_mb["parse_worker"] = max(self.report.peak_rss_mb["parse_worker"], parsed.peak_rss_mb)
        for warning in parsed.warnings:
            self.report.warnings.append(f"{todo.record.path}: {warning}")
        if parsed.error is not None:
            self._record_failure(todo.record.path, todo.known, todo.stat, todo.record.sha256, parsed.error)
            return
        self.queue.append(_Loaded(todo.record, parsed.pages, parsed.chunks, is_new=todo.known is None))
        if sum(len(item.chunks) for item in self.queue) >= self.flush_chunks:
            self.flush()

    def _record_failure(self, key: str, known: FileRecord | None, stat: os.stat_result, sha: str | None, reason: str) -> None:
        """Report the failure; keep whatever the file had in the index before."""
        self.fail(key, reason)
        self.writer.put_file(FileRecord(
            key, sha or "", stat.st_size, stat.st_mtime_ns,
            known.pages if known else 0, known.chunks if known else 0, "failed", reason,
        ))

    def _copy_twin(self, record: FileRecord, twin: FileRecord, is_new: bool) -> None:
        rows = self.writer.store.chunks_of(twin.path)
        vectors = self.writer.known_vectors([r.text_sha for r in rows])
        copies = [replace(r, id=self._take_id(), path=record.path) for r in rows]
        final = FileRecord(record.path, record.sha256, record.size, record.mtime_ns, twin.pages, len(copies))
        self.writer.replace_file(final, self.writer.store.pages(twin.path), copies, np.vstack([vectors[r.text_sha] for r in rows]))
        self._count(final, is_new)
        self.report.reused_vectors += len(rows)

    def _take_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def _count(self, record: FileRecord, is_new: bool) -> None:
        if is_new:
            self.report.added += 1
        else:
            self.report.updated += 1
        self.report.pages += record.pages
        self.report.chunks += record.chunks

    def flush(self) -> None:
        """Embed what the queued files need (reusing known vectors) and stage them."""
        if not self.queue:
            return
        texts = [c.text for item in self.queue for c in item.chunks]
        shas = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        vectors = self.writer.known_vectors(shas)
        self.report.reused_vectors += sum(1 for s in shas if s in vectors)
        with self.report.timed("embed"):
            self._embed_missing(texts, shas, vectors)
        with self.report.timed("tokenize"):
            counts = self.embedder.unknown_token_counts(texts)
            tokens = self.ingestor.tokenizer.tokenize_many(texts)
        with self.report.timed("write"):
            self._stage(texts, shas, vectors, counts, tokens)
        self.queue = []

    def _stage(self, texts: list[str], shas: list[str], vectors: dict[str, np.ndarray], counts: list[tuple[int, int]],
               tokens: list[list[str]]) -> None:
        """Hand the queued files, their chunks and vectors to the writer."""
        position = 0
        for item in self.queue:
            n = len(item.chunks)
            rows = [
                ChunkRow(self._take_id(), c.source, c.page, c.start, c.end, c.text, shas[position + i],
                         tuple(tokens[position + i]), *counts[position + i])
                for i, c in enumerate(item.chunks)
            ]
            matrix = np.vstack([vectors[shas[position + i]] for i in range(n)])
            tokens_in_file = sum(row.n_tokens for row in rows)
            if self.embedder.needs_unknown_warning and tokens_in_file and sum(row.n_unknown for row in rows) / tokens_in_file > UNKNOWN_TOKEN_WARNING:
                self.poorly_embedded.append(item.record.path)
            record = FileRecord(item.record.path, item.record.sha256, item.record.size, item.record.mtime_ns,
                                len(item.pages), n)
            self.writer.replace_file(record, [(p.number, p.text, p.lines) for p in item.pages], rows, matrix)
            self._count(record, item.is_new)
            position += n

    def _embed_missing(self, texts: list[str], shas: list[str], vectors: dict[str, np.ndarray]) -> None:
        todo: dict[str, str] = {}
        for text, sha in zip(texts, shas, strict=True):
            if sha not in vectors:
                todo.setdefault(sha, text)
        if not todo:
            return
        started = time.perf_counter()
        order = list(todo)
        embedder = self.embedder
        batches = tqdm(total=len(order), desc="embedding", unit="chunk", disable=self.ingestor.progress_disabled(), file=sys.stderr)
        done = 0
        self.ingestor.report_progress("embedding", done, len(order))  # the clock for chunks/s starts here
        for positions, batch in self.engine.embed(embedder, [todo[s] for s in order]):
            batch_shas = [order[i] for i in positions]
            self.writer.pending.put(batch_shas, batch)
            vectors.update(zip(batch_shas, batch, strict=True))
            batches.update(len(batch))
            done += len(batch)
            self.ingestor.report_progress("embedding", done, len(order))
        batches.close()
        self.report.embedded += len(order)
        self.report.embed_seconds += time.perf_counter() - started

    def others_to_rechunk(self, scanned: list[Path]) -> list[Path]:
        """With new chunk settings, every indexed file still on disk is re-chunked, not only the scanned ones."""
        if not self.rechunk:
            return []
        seen = {str(p) for p in scanned}
        return [Path(f.path) for f in self.writer.store.files() if f.path not in seen and os.path.isfile(f.path)]

    def forget_missing(self, roots: list[Path], seen: set[str], unreadable: list[Path], prune: bool) -> None:
        """Files indexed under the scanned roots but gone from disk: removed with ``prune``, else counted.

        Nothing under a folder that could not be listed counts as gone.
        """
        for record in self.writer.store.files():
            path = Path(record.path)
            if record.path in seen or not _under(path, roots) or _under(path, unreadable) or os.path.lexists(path):
                continue
            if prune:
                self.writer.remove_file(record.path)
                self.report.removed += 1
            else:
                self.report.missing += 1



def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == folder or folder in path.parents for folder in folders)
