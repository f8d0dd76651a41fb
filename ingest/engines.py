"""Ingest engines: where files are parsed into chunks and where chunks are embedded.

The ingest run itself (change detection, vector reuse, the single index writer) stays in the calling
process; an engine only does the two expensive, stateless stages:

- :class:`LocalEngine` parses in a pool of processes on this machine (in the calling process when only
  a few files need parsing) and embeds with the run's own embedder;
- :class:`RayEngine` parses with Ray Data tasks and embeds with ``map_batches`` on actors that each hold
  the embedder (one GPU each when the cluster has GPUs), on a local Ray instance or a cluster.

Both give the same chunks, in the same order, and the same vectors.

Example:
    >>> with LocalEngine(processes=1) as engine:
    ...     [(name, parsed.chunks[0].text)] = engine.parse([("a", ParseJob("a.md", b"Hello."))], Chunker())
    >>> parsed.error is None, name
    (True, 'a')
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import socket
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from ingest.chunking import Chunker
from ingest.loaders import LoadError, load_file
from rag.documents import Chunk, Page
from rag.embed import Embedder, Role, load_embedder

T = TypeVar("T")
Batches = Iterator[tuple[list[int], np.ndarray]]
"""``(positions in the texts, their vectors)``, batch by batch."""

POOL_MIN_FILES = 4
"""Fewer files than this are parsed in the calling process: starting workers would cost more than it saves."""


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
    seconds: dict[str, float] = field(default_factory=dict)
    """Time spent per stage (``parse``, ``clean``, ``chunk``), wherever the job ran."""


def parse_file(job: ParseJob, chunker: Chunker) -> Parsed:
    """Parse, clean and chunk one file; a file that cannot be indexed gives a :class:`Parsed` with ``error``."""
    parsed = Parsed(job.path)
    try:
        started = time.perf_counter()
        loaded = load_file(Path(job.path), job.data)
        parsed.seconds["parse"] = time.perf_counter() - started
        parsed.pages = chunker.clean(loaded)
        parsed.seconds["clean"] = time.perf_counter() - started - parsed.seconds["parse"]
        parsed.chunks = chunker.split(parsed.pages)
        parsed.seconds["chunk"] = time.perf_counter() - started - parsed.seconds["parse"] - parsed.seconds["clean"]
    except LoadError as exc:
        parsed.error = str(exc)
    except Exception as exc:  # a parser bug on one file must not cost the others
        parsed.error = f"cannot read file ({type(exc).__name__}: {str(exc)[:120]})"
    if parsed.error is None and not parsed.chunks:
        parsed.error = "no text to index after cleaning"
    return parsed


class Engine:
    """The interface of an ingest engine; use it as a context manager so workers are stopped."""

    name = "engine"
    flush_chunks = 2048
    """Chunks the run collects before embedding them: larger for engines with a start-up cost per batch."""

    def parse(self, jobs: Iterable[tuple[T, ParseJob]], chunker: Chunker) -> Iterator[tuple[T, Parsed]]:
        """``(context, Parsed)`` for each ``(context, job)``, in the jobs' order; jobs are read lazily."""
        raise NotImplementedError

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Batches:
        """Passage vectors for ``texts``, batch by batch."""
        return embedder.encode_batches(texts, Role.PASSAGE)

    def close(self) -> None:
        """Stop whatever the engine started."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalEngine(Engine):
    """Parse in up to ``processes`` worker processes (never more than the cores), embed in this process.

    Example:
        >>> with LocalEngine(processes=4) as engine:
        ...     results = list(engine.parse(((p, ParseJob(str(p), p.read_bytes())) for p in files), Chunker()))
    """

    name = "local"

    def __init__(self, processes: int = 4) -> None:
        self.processes = max(1, min(processes, os.cpu_count() or 1))
        self._pool: ProcessPoolExecutor | None = None

    def parse(self, jobs: Iterable[tuple[T, ParseJob]], chunker: Chunker) -> Iterator[tuple[T, Parsed]]:
        jobs = iter(jobs)
        first = list(islice(jobs, POOL_MIN_FILES))
        if self.processes == 1 or len(first) < POOL_MIN_FILES:
            for context, job in chain(first, jobs):
                yield context, parse_file(job, chunker)
            return
        window: deque[tuple[T, ParseJob, Future[Parsed] | None]] = deque()
        for context, job in chain(first, jobs):
            window.append((context, job, self._submit(job, chunker)))
            if len(window) >= 2 * self.processes:  # keep every worker busy, and no more files in memory than that
                yield self._result(*window.popleft(), chunker)
        while window:
            yield self._result(*window.popleft(), chunker)

    def _submit(self, job: ParseJob, chunker: Chunker) -> Future[Parsed] | None:
        """The job's future in the pool, or None once the pool is broken (the job then runs here)."""
        try:
            if self._pool is None:
                # forkserver: workers fork from a clean process, not from this one with its model threads
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(["ingest.engines"])
                self._pool = ProcessPoolExecutor(self.processes, mp_context=context)
            return self._pool.submit(parse_file, job, chunker)
        except BrokenProcessPool:
            return None

    @staticmethod
    def _result(context: T, job: ParseJob, future: Future[Parsed] | None, chunker: Chunker) -> tuple[T, Parsed]:
        if future is not None:
            try:
                return context, future.result()
            except BrokenProcessPool:  # a worker died (a parser crash): parse here what it had not returned
                pass
        return context, parse_file(job, chunker)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class RayEngine(Engine):
    """Parse and embed with Ray Data, on a local Ray instance or the cluster at ``address``.

    Files travel to the workers as bytes, so no shared file system is needed; the embedding actors load
    the index's embedder by name, so every node needs the package installed (or a ``runtime_env``).

    Example:
        >>> with RayEngine(address="ray://head:10001") as engine:
        ...     report = Ingestor(settings, engine=engine).run([Path("papers")])
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
                     log_to_driver=False, logging_level="warning", configure_logging=True)
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        context.execution_options.preserve_order = True

    def parse(self, jobs: Iterable[tuple[T, ParseJob]], chunker: Chunker) -> Iterator[tuple[T, Parsed]]:
        import ray.data

        for group in self._groups(iter(jobs)):
            items = [{"seq": i, "job": pickle.dumps(job)} for i, (_, job) in enumerate(group)]
            dataset = ray.data.from_items(items).map(_parse_row, fn_kwargs={"chunker": chunker})
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


def _parse_row(row: dict[str, Any], chunker: Chunker) -> dict[str, Any]:
    return {"seq": row["seq"], "parsed": pickle.dumps(parse_file(pickle.loads(row["job"]), chunker))}


class _EmbedActor:
    """A Ray actor holding one embedder: a batch of ``{position, text}`` in, ``{position, vector}`` out."""

    def __init__(self, name: str, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.embedder = load_embedder(name)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"position": batch["position"], "vector": self.embedder.encode(list(batch["text"]), Role.PASSAGE)}


def make_engine(name: str, parse_processes: int = 4, address: str | None = None) -> Engine:
    """The engine for ``--engine`` (``local`` or ``ray``; ``address`` is the Ray cluster to join)."""
    return RayEngine(address=address) if name == "ray" else LocalEngine(parse_processes)
