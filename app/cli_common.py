"""What the ``rag`` commands share: settings from flags, the fatal one-line error, opening the index."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from rag.config import ConfigError, Settings

EXIT_FATAL = 1

embedder_option = click.option(
    "--embedder", "embed_model",
    help="e5-small-bf16 (multilingual, the default for new indexes where the CPU or GPU has bfloat16) | e5-small (the "
         "same in float32, the default elsewhere) | e5-small-int8 (the same, int8 kernel, about 1.25x "
         "faster on CPU) | minilm (English only, faster ingest) | a sentence-transformers model folder "
         "[env RAG_EMBED_MODEL]. An existing index keeps its own.")


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    try:
        return Settings.resolve(flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc), ctx) from exc


def fatal(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_FATAL)


def storage_failure(exc: Exception, folder: Path) -> str:
    """Why writing to ``folder`` failed, in words: the OS's reason and file, or SQLite's and FAISS's, which
    report a full disk as an I/O error; a disk with less than 1 MiB left is then named as full."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reason given'}"
    try:
        full = shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        full = False
    return f"No space left on device ({reason})" if full else reason


def open_knowledge_base(settings: Settings) -> Any:
    """The knowledge base at ``settings.index_dir`` with its retriever open, or a one-line error: no index,
    another embedder named, or no passages in it."""
    from app.knowledge_base import KnowledgeBase
    from rag.embed import EmbedderError
    from rag.index import EmbedderMismatchError, IndexNotFoundError

    kb = KnowledgeBase(settings)
    try:
        retriever = kb.retriever()
    except (IndexNotFoundError, EmbedderMismatchError, EmbedderError) as exc:
        fatal(str(exc))
    if retriever.index.is_empty():
        fatal(f"{settings.index_dir}: the knowledge base holds no passages yet (its folder had no readable documents); "
              f"add some and run `rag ingest FOLDER --index {settings.index_dir}`")
    return kb
