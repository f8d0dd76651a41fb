"""What the ``rag`` commands share: settings from flags, the fatal one-line error, opening the index."""
from __future__ import annotations

import sys
from typing import Any

import click

from rag.config import ConfigError, Settings

EXIT_FATAL = 1

embedder_option = click.option(
    "--embedder", "embed_model",
    help="e5-small (multilingual, the default for new indexes) | minilm (English only, faster ingest) | a "
         "sentence-transformers model folder [env RAG_EMBED_MODEL]. An existing index keeps its own.")


def settings_from(ctx: click.Context, **flags: Any) -> Settings:
    try:
        return Settings.resolve(flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc), ctx) from exc


def fatal(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_FATAL)


def open_retriever(settings: Settings) -> Any:
    from rag.embed import EmbedderError
    from rag.index import EmbedderMismatchError, IndexNotFoundError
    from rag.retrieve import Retriever

    try:
        return Retriever.open(settings.index_dir, settings)
    except (IndexNotFoundError, EmbedderMismatchError, EmbedderError) as exc:
        fatal(str(exc))
