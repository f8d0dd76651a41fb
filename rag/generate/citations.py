"""Checking an answer's citations against the passages they point at.

Example:
    >>> check = check_citations("It lasts two years [1]. It is blue [7].", {1: "The warranty lasts two years."}, tokenizer)
    >>> check.text, check.grounded, check.removed_markers
    ('It lasts two years [1]. It is blue.', True, [7])
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rag.text import BM25Tokenizer, split_sentences

_MARKER = re.compile(r"\s?[\[【]\s*(\d+(?:\s*[,，]\s*\d+)*)\s*[\]】]")
_LEADING_MARKERS = re.compile(r"^(?:\s*[\[【][\d,，\s]+[\]】])+")
SUPPORT_THRESHOLD = 0.5
"""A cited sentence is supported when at least this share of its content words occur in a cited passage."""


@dataclass
class SentenceCheck:
    text: str
    cited: list[int]
    support: float
    supported: bool


@dataclass
class CitationCheck:
    """The answer with invalid markers removed, each sentence's support, and whether it is grounded."""

    text: str
    sentences: list[SentenceCheck] = field(default_factory=list)
    removed_markers: list[int] = field(default_factory=list)

    @property
    def cited(self) -> list[int]:
        return sorted({n for s in self.sentences for n in s.cited})

    @property
    def unsupported(self) -> list[str]:
        return [s.text for s in self.sentences if not s.supported]

    @property
    def grounded(self) -> bool:
        """True when at least one sentence is supported by a passage it cites."""
        return any(s.supported for s in self.sentences)


def _sentences(text: str) -> list[str]:
    """The answer's sentences (see :func:`rag.text.split_sentences`: never cut inside "81.1M" or after
    "et al."), each with the citation markers that follow it."""
    sentences: list[str] = []
    for piece in split_sentences(text):
        leading = _LEADING_MARKERS.match(piece)
        if leading and sentences:
            sentences[-1] += " " + leading.group().strip()
            piece = piece[leading.end():]
        if piece.strip():
            sentences.append(piece)
    return sentences


def markers(text: str) -> list[int]:
    return [int(n) for group in _MARKER.findall(text) for n in re.split(r"\s*[,，]\s*", group)]


def check_citations(answer: str, passages: Mapping[int, str], tokenizer: BM25Tokenizer,
                    threshold: float = SUPPORT_THRESHOLD) -> CitationCheck:
    removed: list[int] = []

    def keep_valid(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,，]\s*", match.group(1))]
        valid = [n for n in numbers if n in passages]
        removed.extend(n for n in numbers if n not in passages)
        return "".join(f" [{n}]" if i == 0 else f"[{n}]" for i, n in enumerate(valid))

    text = _MARKER.sub(keep_valid, answer).strip()
    text = re.sub(r" +([.!?。！？,，])", r"\1", text)
    check = CitationCheck(text, removed_markers=removed)
    passage_tokens = {n: set(tokenizer.tokenize(t)) for n, t in passages.items()}
    for raw in _sentences(text):
        sentence = raw.strip()
        words = set(tokenizer.tokenize(_MARKER.sub("", sentence)))
        if not sentence or not words:
            continue
        cited = markers(sentence)
        support = max((len(words & passage_tokens[n]) / len(words) for n in cited), default=0.0)
        check.sentences.append(SentenceCheck(sentence, cited, round(support, 3), bool(cited) and support >= threshold))
    return check
