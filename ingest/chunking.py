"""Chunking: cleaned pages become overlapping chunks at paragraph and sentence boundaries.

Example:
    >>> chunker = Chunker(chunk_size=40, chunk_overlap=0)
    >>> [c.text for c in chunker.split([Page("a.md", 1, "第一句。第二句！" * 10)])][0][:8]
    '第一句。第二句！'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.documents import Chunk, Page
from rag.text import clean_text, estimate_tokens, strip_repeated_lines

# Paragraphs first, then sentence ends of both scripts, then clauses, then words, then characters.
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
        return [Page(page.source, page.number, clean_text(text)) for page, text in zip(pages, texts)]

    def split(self, pages: Sequence[Page]) -> list[Chunk]:
        """Chunks of already cleaned pages, in page order; linear in the pages' length.

        Each chunk's span is found from the previous chunk's start (chunks come in order and overlap),
        not with the splitter's ``add_start_index``: that searches from a character offset computed
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
            cursor = 0
            for text in splitter.split_text(page.text):
                start = page.text.find(text, cursor)
                if start < 0:  # not expected: the splitter returns pieces of the page in order
                    start = page.text.find(text)
                chunks.append(Chunk(page.source, page.number, start, start + len(text), text))
                cursor = start + 1
        return chunks
