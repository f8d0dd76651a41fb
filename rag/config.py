"""Settings, resolved as flags > environment > config file > defaults.

The config file is TOML: ``$RAG_CONFIG`` if set, else ``./rag.toml`` when it exists. Its keys are the
field names of :class:`Settings` (``index_dir``, ``embed_model``, ``chunk_size``, ...).
"""
from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_VARS = {
    "index_dir": "RAG_INDEX",
    "embed_model": "RAG_EMBED_MODEL",
    "llm": "RAG_LLM",
    "adapter": "RAG_ADAPTER",
    "reranker": "RAG_RERANKER",
    "openai_api_key": "RAG_OPENAI_API_KEY",
}


OCR_MODES = ("auto", "always", "never")
"""When pages are read by OCR: ``auto`` where a page has no useful text layer (and every image),
``always`` every page, ``never`` (image-only pages are left out, and images fail)."""


class ConfigError(ValueError):
    """A setting that cannot be used, with the reason in the message."""


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with its default.

    Example:
        >>> Settings.resolve({"chunk_size": 300}, env={}).chunk_size
        300
    """

    index_dir: Path = Path("rag-index")
    embed_model: str | None = None
    """``e5-small``, ``minilm`` or a sentence-transformers folder; unset, an index keeps the embedder it was
    built with and a new index gets multilingual-e5-small."""
    embed_batch_size: int = 32
    chunk_size: int = 200
    chunk_overlap: int = 30
    llm: str = "extractive"
    adapter: str | None = None
    reranker: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    """Sent as a bearer token to the ``openai:`` server of ``llm`` (the operator's), and to no other URL."""
    max_upload_mb: int = 200
    """The largest file the UI accepts for upload."""
    parse_processes: int = 4
    """Worker processes that parse files during ingest (never more than the cores or the files)."""
    max_file_mb: int = 512
    """Larger files are not read; ingest reports them in one line."""
    max_pages: int = 5000
    """Pages read from one PDF; later pages are skipped, with a warning."""
    max_page_chars: int = 10_000_000
    """Characters kept from one page (a text file is one page); the rest is cut, with a warning."""
    parse_timeout_s: int = 300
    """Seconds one file may take to parse before its worker is stopped and the file reported."""
    parse_memory_mb: int = 4096
    """Address space one parse worker may use; a file that needs more fails alone with a memory error (OCR's
    models use about 1 GiB resident, and onnxruntime reserves as much again)."""
    ocr: str = "auto"
    """When pages are read by OCR: one of :data:`OCR_MODES`."""
    ocr_page_timeout_s: int = 60
    """Seconds each page read by OCR adds to its file's ``parse_timeout_s``."""

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        config_file: Path | None = None,
    ) -> Settings:
        """Merge defaults, the config file, environment variables and flags (``None`` flags are unset)."""
        env = os.environ if env is None else env
        settings = cls()
        path = config_file or _config_path(env)
        if path is not None:
            settings = settings._updated(_read_toml(path), origin=str(path))
        from_env = {name: env[var] for name, var in ENV_VARS.items() if env.get(var)}
        settings = settings._updated(from_env, origin="environment")
        given = {k: v for k, v in (flags or {}).items() if v is not None}
        return settings._updated(given, origin="command line")

    def _updated(self, values: Mapping[str, Any], origin: str) -> Settings:
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(f"{origin}: unknown setting {key!r}")
            changes[key] = _coerce(key, known[key].type, value, origin)
        settings = replace(self, **changes)
        if not 0 <= settings.chunk_overlap < settings.chunk_size:
            raise ConfigError(f"{origin}: chunk_overlap must be >= 0 and smaller than chunk_size")
        if settings.ocr not in OCR_MODES:
            raise ConfigError(f"{origin}: ocr={settings.ocr!r} is not valid (one of {', '.join(OCR_MODES)})")
        return settings


def _config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("RAG_CONFIG"):
        return Path(env["RAG_CONFIG"])
    local = Path("rag.toml")
    return local if local.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def _coerce(key: str, type_name: Any, value: Any, origin: str) -> Any:
    type_name = str(type_name)
    try:
        if type_name == "int":
            number = int(value)
            if number <= 0 and key != "chunk_overlap":
                raise ValueError("must be positive")
            return number
        if type_name == "Path":
            return Path(value).expanduser()
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: {key}={value!r} is not valid ({exc})") from exc
