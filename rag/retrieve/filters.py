"""Restricting retrieval to some files, languages or pages.

Example:
    >>> Filters.parse(paths=["*.pdf"], languages=["zh"], pages="3-5").pages
    (3, 5)
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.index.segments import SegmentedStore
from rag.text import LANGUAGES


@dataclass(frozen=True)
class Filters:
    """Which chunks may be returned: paths (glob patterns or folders), languages, an inclusive page range."""

    paths: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    pages: tuple[int, int] | None = None

    @classmethod
    def parse(cls, paths: list[str] | tuple[str, ...] = (), languages: list[str] | tuple[str, ...] = (),
              pages: str | None = None) -> Filters:
        """Build from user input; raises ``ValueError`` with the reason for a bad language or page range."""
        unknown = [lang for lang in languages if lang not in LANGUAGES]
        if unknown:
            raise ValueError(f"unknown language {unknown[0]!r}; use one of {', '.join(LANGUAGES)}")
        page_range = None
        if pages:
            first, _, last = pages.partition("-")
            try:
                page_range = (int(first), int(last or first))
            except ValueError:
                raise ValueError(f"page range {pages!r} is not N or N-M") from None
            if page_range[0] < 1 or page_range[1] < page_range[0]:
                raise ValueError(f"page range {pages!r} is empty")
        resolved = tuple(p if any(ch in p for ch in "*?[") else str(Path(p).expanduser().resolve()) for p in paths)
        return cls(resolved, tuple(languages), page_range)

    def __bool__(self) -> bool:
        return bool(self.paths or self.languages or self.pages)

    def matches_path(self, path: str) -> bool:
        if not self.paths:
            return True
        return any(
            fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(Path(path).name, pattern) or path.startswith(pattern.rstrip("/") + "/")
            or path == pattern
            for pattern in self.paths
        )

    def allowed_ids(self, store: SegmentedStore) -> np.ndarray:
        """The ids of every chunk that passes, sorted."""
        allowed = [
            chunk_id
            for chunk_id, path, page, language in store.chunk_locations()
            if self.matches_path(path)
            and (self.pages is None or self.pages[0] <= page <= self.pages[1])
            and (not self.languages or language in self.languages)
        ]
        return np.asarray(allowed, dtype=np.int64)
