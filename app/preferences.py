"""The settings chosen in the UI's sidebar, saved per index in ``INDEX_DIR/ui-settings.json``."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from rag.config import Settings
from rag.retrieve import Mode

PREFERENCES_FILE = "ui-settings.json"
BACKENDS = ("extractive", "hf", "openai")
SESSION_ONLY = frozenset({"server_url", "server_model"})
"""Sidebar values kept for one browser session only (an older file's values are ignored too)."""


@dataclass(frozen=True)
class Preferences:
    """What the sidebar controls; unset values come from :class:`Settings` (flags, env, rag.toml).

    Example:
        >>> prefs = Preferences.load(Path("rag-index"), Settings.resolve())
        >>> replace(prefs, top_k=8).save(Path("rag-index"))
        >>> prefs.llm_spec
        'extractive'
    """

    language: str = "auto"
    mode: str = Mode.HYBRID.value
    fusion: bool = True
    top_k: int = 5
    reranker: str = ""
    backend: str = "extractive"
    hf_model: str = ""
    adapter: str = ""
    server_url: str = ""
    server_model: str = ""

    @classmethod
    def defaults(cls, settings: Settings) -> Preferences:
        kind, _, rest = settings.llm.partition(":")
        prefs = cls(reranker=settings.reranker or "", adapter=settings.adapter or "")
        if kind == "hf":
            return replace(prefs, backend="hf", hf_model=rest)
        if kind == "openai":
            url, _, model = rest.partition("#")
            return replace(prefs, backend="openai", server_url=url, server_model=model)
        return prefs

    @classmethod
    def load(cls, index_dir: Path, settings: Settings) -> Preferences:
        """The saved choices for this index over the configured defaults; an unreadable file is ignored."""
        prefs = cls.defaults(settings)
        try:
            saved = json.loads((index_dir / PREFERENCES_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return prefs
        known = {f.name: f for f in fields(cls) if f.name not in SESSION_ONLY}
        usable = {k: v for k, v in saved.items() if k in known and isinstance(v, type(getattr(prefs, k)))}
        return replace(prefs, **usable).validated()

    def validated(self) -> Preferences:
        """Out-of-range values replaced by defaults (a hand-edited file must not break the UI)."""
        prefs = self
        if prefs.mode not in (Mode.HYBRID.value, Mode.DENSE.value, Mode.BM25.value):
            prefs = replace(prefs, mode=Mode.HYBRID.value)
        if prefs.backend not in BACKENDS:
            prefs = replace(prefs, backend="extractive")
        if not 1 <= prefs.top_k <= 20:
            prefs = replace(prefs, top_k=5)
        return prefs

    def save(self, index_dir: Path) -> None:
        """Write atomically, so a crash never leaves half a file. A server typed in the sidebar is not
        written: it stays in that browser session, and never becomes every new session's server."""
        index_dir.mkdir(parents=True, exist_ok=True)
        temporary = index_dir / f"{PREFERENCES_FILE}.{os.getpid()}.tmp"
        shared = {k: v for k, v in asdict(self).items() if k not in SESSION_ONLY}
        temporary.write_text(json.dumps(shared, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(temporary, index_dir / PREFERENCES_FILE)

    def operator_key(self, settings: Settings) -> str | None:
        """The operator's LLM key when the chosen backend is the operator's own server (``settings.llm``),
        else None: a URL typed in the sidebar never receives it."""
        return settings.openai_api_key if self.llm_spec == settings.llm else None

    @property
    def retrieval_mode(self) -> Mode:
        """RAG-Fusion is hybrid retrieval plus query variants, so it applies to the hybrid mode."""
        return Mode.FUSION if self.mode == Mode.HYBRID.value and self.fusion else Mode(self.mode)

    @property
    def missing_backend_field(self) -> str | None:
        """The field the chosen backend still needs, if any (``hf_model``, ``server_url``, ``server_model``)."""
        needed = {"hf": ("hf_model",), "openai": ("server_url", "server_model")}.get(self.backend, ())
        return next((name for name in needed if not getattr(self, name).strip()), None)

    @property
    def llm_spec(self) -> str:
        """The backend as a ``--llm`` spec; extractive while the chosen backend lacks a field."""
        if self.missing_backend_field or self.backend == "extractive":
            return "extractive"
        if self.backend == "hf":
            return f"hf:{self.hf_model.strip()}"
        return f"openai:{self.server_url.strip()}#{self.server_model.strip()}"

    @property
    def adapter_spec(self) -> str | None:
        return self.adapter.strip() or None if self.llm_spec.startswith("hf:") else None
