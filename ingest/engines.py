"""Ingest engines: where files are parsed into chunks and where chunks are embedded.

The ingest run itself (change detection, vector reuse, the single index writer) stays in the calling
process; an engine only does the two expensive, stateless stages:

- :class:`LocalEngine` parses in a pool of worker processes on this machine, each file under a time limit
  (the worker is stopped when it runs over) and each worker under a memory limit, and embeds with the
  run's own embedder;
- :class:`RayEngine` parses with Ray Data tasks and embeds with ``map_batches`` on actors that each hold
  the embedder (one GPU each when the cluster has GPUs), on a local Ray instance or a cluster.

Both give the same chunks, in the same order, and the same vectors.

Example:
    >>> with LocalEngine(processes=1) as engine:
    ...     [(name, parsed)] = engine.parse([("a", ParseJob("a.md", b"Hello."))], Chunker())
    >>> parsed.error is None, name
    (True, 'a')
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import resource
import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from itertools import chain, islice
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from ingest.chunking import Chunker
from ingest.loaders import LoadError, PageReading, ParseLimits, load_file
from ingest.ocr import OcrReader
from rag.config import Settings
from rag.documents import Chunk, Page
from rag.embed import Embedder, Role, load_embedder

T = TypeVar("T")
Batches = Iterator[tuple[list[int], np.ndarray]]
"""``(positions in the texts, their vectors)``, batch by batch."""
PageProgress = Callable[[str, int, int], None]
"""``(path, pages done, pages to read)`` as a file's pages are read by OCR."""

OUT_OF_MEMORY = "parsing needs more memory than a parse worker may use (parse_memory_mb)"
OUT_OF_MEMORY_EXIT = 86
"""A parse worker's exit status when even receiving its file would exceed its memory limit."""


@dataclass(frozen=True)
class ParseJob:
    """One file's bytes, read (and hashed) by the run, to be parsed, cleaned and chunked anywhere."""

    path: str
    data: bytes


@dataclass
class Parsed:
    """A parse job's outcome: cleaned pages and chunks, or the one-line reason the file cannot be indexed."""

    path: str
    pages: list[Page] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    """What was given up to index the file (replaced bytes, pages past the limit, cut text)."""
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent per stage (``parse``, ``clean``, ``chunk``), wherever the job ran."""
    peak_rss_mb: float = 0.0
    """The peak resident memory of the process that parsed the file (in a worker: over all its files so far)."""


def parse_file(job: ParseJob, chunker: Chunker, limits: ParseLimits = ParseLimits(), reading: PageReading | None = None) -> Parsed:
    """Parse, clean and chunk one file; a file that cannot be indexed gives a :class:`Parsed` with ``error``.
    ``reading`` reads image pages by OCR (see :func:`ingest.loaders.load_file`)."""
    parsed = Parsed(job.path)
    try:
        started = time.perf_counter()
        loaded = load_file(Path(job.path), job.data, limits, reading)
        parsed.warnings = loaded.warnings
        parsed.seconds["parse"] = time.perf_counter() - started
        parsed.pages = chunker.clean(loaded.pages)
        parsed.seconds["clean"] = time.perf_counter() - started - parsed.seconds["parse"]
        parsed.chunks = chunker.split(parsed.pages)
        parsed.seconds["chunk"] = time.perf_counter() - started - parsed.seconds["parse"] - parsed.seconds["clean"]
    except LoadError as exc:
        parsed.error = str(exc)
    except MemoryError:
        parsed.pages, parsed.chunks = [], []
        parsed.error = OUT_OF_MEMORY
    except Exception as exc:  # a parser bug on one file must not cost the others
        parsed.error = f"cannot read file ({type(exc).__name__}: {str(exc)[:120]})"
    if parsed.error is None and not parsed.chunks:
        parsed.error = "no text to index after cleaning"
    parsed.peak_rss_mb = peak_rss_mb()
    return parsed


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (VmHWM: unlike ``ru_maxrss`` it is not inherited across exec)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Engine:
    """The interface of an ingest engine; use it as a context manager so workers are stopped."""

    name = "engine"
    flush_chunks = 2048
    """Chunks the run collects before embedding them: larger for engines with a start-up cost per batch."""

    def parse(self, jobs: Iterable[tuple[T, ParseJob]], chunker: Chunker, limits: ParseLimits = ParseLimits(),
              on_page: PageProgress | None = None) -> Iterator[tuple[T, Parsed]]:
        """``(context, Parsed)`` for each ``(context, job)``, in the jobs' order; jobs are read lazily.
        ``on_page(path, done, total)`` follows the pages of a file read by OCR, where the engine can."""
        raise NotImplementedError

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Batches:
        """Passage vectors for ``texts``, batch by batch."""
        return embedder.encode_batches(texts, Role.PASSAGE)

    def close(self) -> None:
        """Stop whatever the engine started."""

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEngine(Engine):
    """Parse in up to ``processes`` worker processes (never more than the cores or the files), embed here.

    Each file gets ``timeout`` seconds: a worker still parsing after that is killed and replaced, and the
    file is reported. Each worker may use ``memory_mb`` of address space, so a file whose streams inflate
    to gigabytes fails alone with a memory error. A worker that dies (a parser crash, a kill) costs its
    file one retry in a fresh worker; a second death reports the file. Each worker has its own pipe, so
    one death never disturbs the others.

    Example:
        >>> files = sorted(Path("docs").glob("*.md"))
        >>> with LocalEngine(processes=2, timeout=60) as engine:
        ...     results = list(engine.parse(((p.name, ParseJob(str(p), p.read_bytes())) for p in files), Chunker()))
        >>> [(name, parsed.error) for name, parsed in results]
        [('handbook.md', None), ('训练笔记.md', None)]
    """

    name = "local"

    def __init__(self, processes: int = 4, timeout: float = 300.0, memory_mb: int = 4096, page_timeout: float = 60.0) -> None:
        self.processes = max(1, min(processes, os.cpu_count() or 1))
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.page_timeout = page_timeout
        """Seconds each page read by OCR adds to its file's ``timeout``."""
        self.workers: list[_Worker] = []

    @classmethod
    def for_settings(cls, settings: Settings) -> LocalEngine:
        return cls(settings.parse_processes, settings.parse_timeout_s, settings.parse_memory_mb, settings.ocr_page_timeout_s)

    def parse(self, jobs: Iterable[tuple[T, ParseJob]], chunker: Chunker, limits: ParseLimits = ParseLimits(),
              on_page: PageProgress | None = None) -> Iterator[tuple[T, Parsed]]:
        jobs = iter(jobs)
        first = list(islice(jobs, self.processes))  # a run of one file starts one worker, not all of them
        if not first:
            return
        for worker in self.workers:
            worker.abandon()  # a task left by a parse that was not iterated to the end
        while len(self.workers) < len(first):
            self.workers.append(_Worker(self.memory_mb, max(1, (os.cpu_count() or 1) // self.processes)))
        source = enumerate(chain(first, jobs))
        retries: deque[_Task[T]] = deque()
        done: dict[int, tuple[T, Parsed]] = {}
        delivered, exhausted = 0, False
        while True:
            while delivered in done:
                yield done.pop(delivered)
                delivered += 1
            for worker in self.workers:
                if worker.task is not None:
                    continue
                if retries:
                    worker.start(retries.popleft(), chunker, limits, self.timeout, self.page_timeout)
                elif not exhausted and len(done) + self._busy() < 2 * len(self.workers):  # a bounded window of files
                    try:
                        number, (context, job) = next(source)
                    except StopIteration:
                        exhausted = True
                        continue
                    worker.start(_Task(number, context, job), chunker, limits, self.timeout, self.page_timeout)
            if exhausted and not retries and not self._busy():
                return
            self._collect(done, retries, on_page)

    def _busy(self) -> int:
        return sum(worker.task is not None for worker in self.workers)

    def _collect(self, done: dict[int, tuple[Any, Parsed]], retries: deque[_Task[Any]], on_page: PageProgress | None) -> None:
        """Wait for a worker to finish, die or run out of time, and settle its task; OCR progress goes to ``on_page``."""
        busy = [worker for worker in self.workers if worker.task is not None]
        deadline = min(worker.deadline for worker in busy)
        multiprocessing.connection.wait([w.connection for w in busy] + [w.process.sentinel for w in busy],
                                        timeout=max(0.0, deadline - time.monotonic()))
        for worker in busy:
            task = worker.task
            assert task is not None
            outcome = worker.outcome(on_page)
            if isinstance(outcome, Parsed):
                done[task.number] = (task.context, outcome)
            elif outcome == "died" and worker.process.exitcode == OUT_OF_MEMORY_EXIT:
                done[task.number] = (task.context, Parsed(task.job.path, error=OUT_OF_MEMORY))
            elif outcome == "died" and not task.retried:
                retries.append(replace(task, retried=True))
            elif outcome == "died":
                death = _death(worker.process.exitcode)
                done[task.number] = (task.context, Parsed(task.job.path, error=f"the parser crashed twice on this file ({death})"))
            elif outcome == "timeout":
                allowed = f"{self.timeout:g} s (parse_timeout_s)"
                if worker.pages:
                    allowed += f" plus {self.page_timeout:g} s for each of its {worker.pages} pages read by OCR (ocr_page_timeout_s)"
                done[task.number] = (task.context, Parsed(task.job.path, error=f"parsing took longer than {allowed}; "
                                                                              "the worker was stopped"))
            if outcome != "busy":
                worker.replace_if_dead()

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []


@dataclass(frozen=True)
class _Task(Generic[T]):
    number: int
    context: T
    job: ParseJob
    retried: bool = False


class _Worker:
    """One parse process with its own pipe: a task in, a :class:`Parsed` out."""

    def __init__(self, memory_mb: int, threads: int = 1) -> None:
        self.memory_mb = memory_mb
        self.threads = threads
        """Threads for OCR model runs: the cores shared among the workers."""
        self.pages = 0
        """Pages of the task in hand to be read by OCR, once the worker has said."""
        # forkserver: workers fork from a clean process, not from this one with its model threads
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["ingest.engines"])
        self.task: _Task[Any] | None = None
        self.deadline = 0.0
        self._spawn()

    def _spawn(self) -> None:
        self.connection, child = self._context.Pipe()
        self.process = self._context.Process(target=_serve, args=(child, self.memory_mb, self.threads), daemon=True, name="rag-parse")
        self.process.start()
        child.close()

    def start(self, task: _Task[Any], chunker: Chunker, limits: ParseLimits, timeout: float, page_timeout: float) -> None:
        self.task, self.deadline = task, time.monotonic() + timeout
        self.page_timeout, self.pages = page_timeout, 0
        try:
            self.connection.send((task.job, chunker, limits))
        except OSError:  # died between tasks: outcome() sees it and the task is retried
            pass

    def outcome(self, on_page: PageProgress | None = None) -> Parsed | Literal["busy", "died", "timeout"]:
        """The finished task's result, or ``busy``, ``died`` or ``timeout`` (the worker is then killed).
        Progress messages on the way (``(done, total)`` pages read by OCR) go to ``on_page``; the first
        extends the task's deadline by ``page_timeout`` per page."""
        try:
            while self.connection.poll():
                message = self.connection.recv()
                if isinstance(message, Parsed):
                    self.task = None
                    return message
                done, total = message
                if not self.pages:
                    self.pages = total
                    self.deadline += total * self.page_timeout
                if on_page is not None and self.task is not None:
                    on_page(self.task.job.path, done, total)
        except (EOFError, OSError, pickle.UnpicklingError):
            pass
        if not self.process.is_alive() or self.connection.closed:
            self.process.join()
            self.task = None
            return "died"
        if time.monotonic() >= self.deadline:
            self.stop()
            self.task = None
            return "timeout"
        return "busy"

    def abandon(self) -> None:
        """Drop the task in hand, if any, with the process that has it."""
        if self.task is not None:
            self.stop()
            self.task = None
            self.replace_if_dead()

    def replace_if_dead(self) -> None:
        if not self.process.is_alive():
            self.connection.close()
            self._spawn()

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.connection.close()


def _serve(connection: Connection, memory_mb: int, threads: int) -> None:
    """A parse worker's loop: address space capped at ``memory_mb``, one task at a time until the pipe
    closes; pages read by OCR are reported as ``(done, total)`` before the :class:`Parsed`."""
    limit = memory_mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    reading = PageReading(OcrReader(threads), on_page=lambda done, total: connection.send((done, total)))
    while True:
        try:
            job, chunker, limits = connection.recv()
        except EOFError:
            return
        except MemoryError:  # the job did not fit: the pipe is left mid-message, so this worker is done
            os._exit(OUT_OF_MEMORY_EXIT)
        connection.send(parse_file(job, chunker, limits, reading))


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by signal {-exitcode}" + (", out of memory?" if -exitcode == 9 else "")
    return f"exit code {exitcode}"


class RayEngine(Engine):
    """Parse and embed with Ray Data, on a local Ray instance or the cluster at ``address``.

    Files travel to the workers as bytes, so no shared file system is needed; the embedding actors load
    the index's embedder by name, so every node needs the package installed (or a ``runtime_env``).

    Usage, with a Ray cluster's head at ``head:10001``::

        with RayEngine(address="ray://head:10001") as engine:
            report = Ingestor(settings, engine=engine).run([Path("papers")])
    """

    name = "ray"
    flush_chunks = 16384
    group_bytes = 256 << 20
    """Files are sent to the cluster in groups of at most this many bytes (and :attr:`group_files` files)."""
    group_files = 512

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import ray

        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            if address and address != "auto":
                _check_reachable(address)
            ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                     log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.execution_options.preserve_order = True

    def parse(self, jobs: Iterable[tuple[T, ParseJob]], chunker: Chunker, limits: ParseLimits = ParseLimits(),
              on_page: PageProgress | None = None) -> Iterator[tuple[T, Parsed]]:
        import ray.data

        for group in self._groups(iter(jobs)):
            items = [{"seq": i, "job": pickle.dumps(job)} for i, (_, job) in enumerate(group)]
            dataset = ray.data.from_items(items).map(partial(_parse_row, chunker=chunker, limits=limits))
            results = sorted(dataset.iter_rows(), key=lambda row: row["seq"])
            for (context, _), row in zip(group, results, strict=True):
                yield context, pickle.loads(row["parsed"])

    def _groups(self, jobs: Iterator[tuple[T, ParseJob]]) -> Iterator[list[tuple[T, ParseJob]]]:
        group: list[tuple[T, ParseJob]] = []
        size = 0
        for item in jobs:
            group.append(item)
            size += len(item[1].data)
            if size >= self.group_bytes or len(group) >= self.group_files:
                yield group
                group, size = [], 0
        if group:
            yield group

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Batches:
        import ray.data

        resources = self._ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        threads = max(1, min(4, int(resources.get("CPU", 1))))
        actors = gpus or max(1, int(resources.get("CPU", 1)) // threads)
        lengths = embedder.lengths(texts)
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # batches of similar length pad little
        dataset = ray.data.from_items([{"position": i, "text": texts[i]} for i in order])
        vectors = dataset.map_batches(
            _EmbedActor, fn_constructor_kwargs={"name": embedder.name, "threads": threads},
            batch_size=embedder.batch_size, compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            num_gpus=1 if gpus else 0, num_cpus=0 if gpus else threads,
        )
        for batch in vectors.iter_batches(batch_size=embedder.batch_size, batch_format="numpy"):
            yield [int(p) for p in batch["position"]], np.asarray(batch["vector"], dtype=np.float32)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail at once, with the address in the message, when nothing listens there: Ray itself retries for minutes."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except ValueError as exc:
        raise ConnectionError(f"{address!r} is not HOST:PORT") from exc
    except OSError as exc:
        raise ConnectionError(f"nothing answers at {address} ({exc.strerror or type(exc).__name__})") from exc


def _parse_row(row: dict[str, Any], chunker: Chunker, limits: ParseLimits) -> dict[str, Any]:
    return {"seq": row["seq"], "parsed": pickle.dumps(parse_file(pickle.loads(row["job"]), chunker, limits))}


class _EmbedActor:
    """A Ray actor holding one embedder: a batch of ``{position, text}`` in, ``{position, vector}`` out."""

    def __init__(self, name: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.embedder = load_embedder(name)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"position": batch["position"], "vector": self.embedder.encode(list(batch["text"]), Role.PASSAGE)}


def make_engine(name: str, settings: Settings, address: str | None = None) -> Engine:
    """The engine for ``--engine`` (``local`` or ``ray``; ``address`` is the Ray cluster to join)."""
    return RayEngine(address=address) if name == "ray" else LocalEngine.for_settings(settings)
