"""The records that flow through the pipeline: pages of a source file and chunks of a page."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LineBox:
    """A line of a page read by OCR and where it sits: ``box`` is (left, top, right, bottom) as shares of
    the page's width and height, so a quote can be marked on the page image at any resolution."""

    text: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Page:
    """Text of one page (or of a whole file that has no pages), 1-based ``number``; ``lines`` when the
    text was read by OCR (a scanned page or an image)."""

    source: str
    number: int
    text: str
    lines: tuple[LineBox, ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A span of a page: ``page_text[start:end] == text``, except that a chunk of a table has the table's
    title and (past its first chunk) header rows, each on a line, before its span in ``text``."""

    source: str
    page: int
    start: int
    end: int
    text: str
