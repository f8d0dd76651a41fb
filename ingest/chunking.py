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
from rag.text import clean_text, estimate_tokens, strip_repeated_lines

# Paragraphs first, then sentence ends of both scripts, then clauses, then words, then characters.
_WHITESPACE = re.compile(r"\s*")
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", "、", ", ", " ", ""]


@dataclass(frozen=True)
class Chunker:
    """Clean pages (see :func:`rag.text.clean_text`) and split them into chunks of about
    ``chunk_size`` tokens that overlap by about ``chunk_overlap`` tokens.

    Each chunk stays within one page and records its character span in the cleaned page text.
    """

    chunk_size: int = 200
    chunk_overlap: int = 30

    def describe(self) -> dict[str, Any]:
        return {"chunk_size": self.chunk_size, "chunk_overlap": self.chunk_overlap, "unit": "estimated tokens",
                "separators": SEPARATORS}

    def clean(self, pages: Sequence[Page]) -> list[Page]:
        """Pages with running headers and footers removed and extraction artefacts repaired."""
        texts = strip_repeated_lines([page.text for page in pages])
        return [Page(page.source, page.number, clean_text(text)) for page, text in zip(pages, texts, strict=True)]

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
            end = 0
            for text in splitter.split_text(page.text):
                start = _place(page.text, text, end)
                chunks.append(Chunk(page.source, page.number, start, start + len(text), text))
                end = max(end, start + len(text))
        return chunks


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
