"""Chunking: cleaned pages become overlapping chunks at paragraph and sentence boundaries.

Example:
    >>> chunker = Chunker(chunk_size=40, chunk_overlap=0)
    >>> [c.text for c in chunker.split([Page("a.md", 1, "第一句。第二句！" * 10)])][0][:8]
    '第一句。第二句！'
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.documents import Chunk, Page
from rag.text import TABLE_ROW, TABLE_SEPARATOR, clean_text, estimate_tokens

# Paragraphs first, then sentence ends of both scripts, then clauses, then words, then characters.
_WHITESPACE = re.compile(r"\s*")
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", "、", ", ", " ", ""]


TITLE_CHARS = 120
"""The longest table title (caption or lines above) repeated in the table's chunks."""
LAYOUT = "pdfium-layout/3"
"""Which PDF reader made the pages (see :mod:`ingest.pdf_layout`; 3: image-only pages read by OCR):
recorded in the manifest, so a new one re-reads every file."""


@dataclass(frozen=True)
class Chunker:
    """Clean pages (see :func:`rag.text.clean_text`) and split them into chunks of about
    ``chunk_size`` tokens that overlap by about ``chunk_overlap`` tokens.

    Each chunk stays within one page and records its character span in the cleaned page text. Tables
    (Markdown rows, as the PDF layout and Markdown files write them) are split between rows, never inside
    one, without overlap, and a table's header row goes first in each of its chunks: a chunk past the
    first is its header, a line break, then its own span of the page; each of them starts with the table's
    title (see :func:`_table_title`).
    """

    chunk_size: int = 200
    chunk_overlap: int = 30

    def describe(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap, "unit": "estimated tokens",
                "separators": SEPARATORS, "tables": "rows, header repeated", "pdf": LAYOUT}

    def clean(self, pages: Sequence[Page]) -> list[Page]:
        """Pages with extraction artefacts repaired (a PDF's running heads are gone already: see
        :func:`ingest.pdf_layout.running_lines`)."""
        return [Page(page.source, page.number, clean_text(page.text), page.lines) for page in pages]

    def split(self, pages: Sequence[Page]) -> list[Chunk]:
        """Chunks of already cleaned pages, in page order; linear in the pages' length.

        Each chunk's span is found next to the previous chunk (see :func:`_place`), not with the
        splitter's ``add_start_index``: that searches from a character offset computed
        with the overlap in tokens, misses, and restarts from the top of the page, which made a
        single 2 MB page take seconds and a 50 MB one most of an hour.
        """
        splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            length_function=estimate_tokens,
        )
        chunks = []
        for page in pages:
            segments = _segments(page.text)
            for i, (first, last, is_table) in enumerate(segments):
                if is_table:
                    chunks += self._table_chunks(page, first, last, _table_title(page.text, segments, i))
                    continue
                segment, end = page.text[first:last], 0
                for text in splitter.split_text(segment):
                    start = _place(segment, text, end)
                    chunks.append(Chunk(page.source, page.number, first + start, first + start + len(text), text))
                    end = max(end, start + len(text))
        return chunks

    def _table_chunks(self, page: Page, first: int, last: int, title: str = "") -> list[Chunk]:
        """A table's rows packed into chunks of about ``chunk_size`` tokens (a longer row is a chunk of its
        own), each led by the table's ``title`` and, after the first, by its header."""
        rows: list[tuple[int, int]] = []
        offset = first
        for line in page.text[first:last].split("\n"):
            rows.append((offset, offset + len(line)))
            offset += len(line) + 1
        header_rows = 2 if len(rows) > 2 and TABLE_SEPARATOR.match(page.text[rows[1][0]:rows[1][1]]) else 0
        header = page.text[rows[0][0]:rows[header_rows - 1][1]] if header_rows else ""
        budget = self.chunk_size - estimate_tokens(header) - estimate_tokens(title)
        chunks: list[Chunk] = []
        start = rows[0][0]
        used = 0
        for row_start, row_end in rows[header_rows:] if header_rows else rows:
            cost = estimate_tokens(page.text[row_start:row_end]) + 1
            if used and used + cost > budget and row_start > start:
                chunks.append(self._table_chunk(page, title, header, start, row_start - 1, first))
                start, used = row_start, 0
            used += cost
        chunks.append(self._table_chunk(page, title, header, start, last, first))
        return chunks

    @staticmethod
    def _table_chunk(page: Page, title: str, header: str, start: int, end: int, table_start: int) -> Chunk:
        lead = [title] if title else []
        if header and start != table_start:
            lead.append(header)
        return Chunk(page.source, page.number, start, end, "\n".join([*lead, page.text[start:end]]))


_CAPTION = re.compile(r"(?:Table|Tab\.|表)\s*[A-Z]?\d+(?:\.\d+)*\s*[:：.]?\s*[^.。]*[.。]?")


def _table_title(text: str, segments: list[tuple[int, int, bool]], i: int) -> str:
    """What names the table of segment ``i``: its caption ("Table 3: Statistics on paper provenance.") when
    the text after it starts with one, else the short lines just above it ("NICS Firearm Background
    Checks / November - 2015"); each table chunk starts with it, so a row is found by its table's name."""
    if i + 1 < len(segments) and not segments[i + 1][2]:
        caption = _CAPTION.match(text[segments[i + 1][0]:segments[i + 1][1]].lstrip())
        if caption and len(caption.group()) <= TITLE_CHARS:
            return caption.group().strip()
    if i > 0 and not segments[i - 1][2]:
        lines = text[segments[i - 1][0]:segments[i - 1][1]].strip().split("\n")[-2:]
        while lines and (sum(map(len, lines)) > TITLE_CHARS or len(lines[0]) > TITLE_CHARS // 2):
            lines.pop(0)
        return " ".join(line.strip() for line in lines)
    return ""


def _segments(text: str) -> list[tuple[int, int, bool]]:
    """``(start, end, is a table)`` spans covering ``text``: runs of two or more Markdown table rows, and the
    text between them."""
    segments: list[tuple[int, int, bool]] = []
    table_start = prose_start = offset = 0
    rows = 0
    for line in text.split("\n") + [""]:
        if TABLE_ROW.match(line):
            if rows == 0:
                table_start = offset
            rows += 1
        else:
            if rows >= 2:
                if table_start > prose_start:
                    segments.append((prose_start, table_start - 1, False))
                segments.append((table_start, offset - 1, True))
                prose_start = offset
            rows = 0
        offset += len(line) + 1
    if prose_start < len(text):
        segments.append((prose_start, len(text), False))
    return [(a, b, t) for a, b, t in segments if text[a:b].strip()]


def _place(page: str, text: str, previous_end: int) -> int:
    """Where chunk ``text`` starts in ``page``, given where the chunks before it ended.

    Chunks come in order, and only whitespace lies between one chunk and the text the next adds. So the
    start is the last occurrence that begins no later than the previous end plus the whitespace after
    it and ends after the previous end: in repetitive text (``000000`` then ``00``) never a place inside
    the previous chunk, so the chunks cover the whole page. A piece that adds nothing (the splitter
    sometimes repeats the tail of an over-long word) is the last occurrence that ends by then.
    """
    latest = _WHITESPACE.match(page, previous_end).end()  # type: ignore[union-attr]  # r"\s*" always matches
    start = page.rfind(text, max(0, previous_end - len(text) + 1), latest + len(text))
    if start < 0:
        start = page.rfind(text, 0, latest + len(text))
    return start if start >= 0 else page.find(text)  # not expected: the splitter returns pieces of the page
