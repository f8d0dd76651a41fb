"""Checking an answer's citations against the passages they point at.

Example:
    >>> check = check_citations("It lasts two years [1]. It is blue [7].", {1: "The warranty lasts two years."}, BM25Tokenizer())
    >>> check.text, check.grounded, check.removed_markers
    ('It lasts two years [1]. It is blue.', True, [7])
"""
from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import partial

from rag.generate.support import SUPPORT_THRESHOLD, support
from rag.text import BM25Tokenizer, split_sentences

_MARKER = re.compile(r"\s?[\[【]\s*(\d+(?:\s*[,，]\s*\d+)*)\s*[\]】]")
_AFTER_MARKER = re.compile(r"(?<=[\]】])\s+(?=[^\s\[【.,;:!?。，；：！？])")
_OPEN_MARKER = re.compile(r"[\[【][\d,，\s]*$")
_LEADING_MARKERS = re.compile(r"^(?:\s*[\[【][\d,，\s]+[\]】])+")


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
    "et al."), each with the citation markers that follow it; text after a marker starts a new claim
    ("row one [1] row two [2]": table rows end without a full stop)."""
    sentences: list[str] = []
    pieces = [part for piece in split_sentences(text) for part in _AFTER_MARKER.split(piece)]
    for piece in pieces:
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
    """Markers pointing at no passage are removed; then each marker of each sentence is kept only when its
    passage supports that sentence by itself (words, numbers, polarity and names: see
    :func:`rag.generate.support.support`). A sentence left with no marker is unsupported."""
    removed: list[int] = []

    def keep_valid(match: re.Match[str]) -> str:
        numbers = [int(n) for n in re.split(r"\s*[,，]\s*", match.group(1))]
        valid = [n for n in numbers if n in passages]
        removed.extend(n for n in numbers if n not in passages)
        return _render(valid)

    text = _tidy(_MARKER.sub(keep_valid, answer))
    passage_tokens = {n: set(tokenizer.tokenize(t)) for n, t in passages.items()}
    checked: list[SentenceCheck] = []
    kept_text = text
    for raw in _sentences(text):
        sentence = raw.strip()
        claim = _MARKER.sub("", sentence).strip()
        if not sentence or not tokenizer.tokenize(claim):
            continue
        scores = {n: support(claim, passages[n], tokenizer, passage_tokens[n]) for n in dict.fromkeys(markers(sentence))}
        kept = [n for n, score in scores.items() if score >= threshold]
        shown = _tidy(_MARKER.sub(partial(_keep_only, kept), sentence))
        kept_text = kept_text.replace(sentence, shown, 1)
        checked.append(SentenceCheck(shown, kept, round(max(scores.values(), default=0.0), 3), bool(kept)))
    return CitationCheck(kept_text, checked, removed_markers=removed)


def first_use_order(text: str, cited: Collection[int]) -> dict[int, int]:
    """The numbers 1..k given to the passages in ``cited`` in the order ``text`` first cites them.

    Example:
        >>> first_use_order("Two years [3][5]. Not water [3]. Odd [9].", [3, 5])
        {3: 1, 5: 2}
    """
    return {n: new for new, n in enumerate(dict.fromkeys(n for n in markers(text) if n in cited), start=1)}


def renumbered(text: str, order: Mapping[int, int]) -> str:
    """``text`` with each marker's numbers mapped by ``order`` (see :func:`first_use_order`), those it
    lacks dropped.

    Example:
        >>> renumbered("Two years [3][5]. Not water [3]. Odd [9].", {3: 1, 5: 2})
        'Two years [1][2]. Not water [1]. Odd.'
    """
    return _tidy(_MARKER.sub(partial(_mapped, order), text))


def renumbered_prefix(text: str, passages: Collection[int]) -> str:
    """A streamed answer so far, numbered as :func:`renumbered` by first use of the passages in ``passages``,
    without a marker still being written at its end: what is returned never changes as ``text`` grows."""
    text = _OPEN_MARKER.sub("", text)
    return _MARKER.sub(partial(_mapped, first_use_order(text, passages)), text)


def _mapped(order: Mapping[int, int], match: re.Match[str]) -> str:
    """A marker group with its numbers mapped by ``order``, keeping the space before it (a streamed prefix
    never loses a character it has shown; :func:`_tidy` cleans the final text)."""
    group = match.group(0)
    return group[: len(group) - len(group.lstrip())] + "".join(f"[{order[n]}]" for n in markers(group) if n in order)


def _keep_only(kept: list[int], match: re.Match[str]) -> str:
    """A marker group rewritten to the numbers in ``kept``."""
    return _render([n for n in markers(match.group(0)) if n in kept])


def _render(numbers: list[int]) -> str:
    return "".join(f" [{n}]" if i == 0 else f"[{n}]" for i, n in enumerate(numbers))


def _tidy(text: str) -> str:
    """No space before closing punctuation, none at the ends."""
    return re.sub(r" +([.!?。！？,，])", r"\1", text).strip()
