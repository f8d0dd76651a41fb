"""Whether one passage supports one sentence: enough of its words, and the same numbers, the same polarity
and the same names. Word overlap alone accepts "The warranty is 9 years" against "a two-year warranty" and
"It covers water damage" against "water damage is not covered".

Example:
    >>> tokenizer = BM25Tokenizer()
    >>> passage = "The Lumen L2 has a two-year warranty. Water damage is not covered."
    >>> [supports(s, passage, tokenizer) for s in ("The Lumen L2 warranty is two years.", "The Lumen L2 warranty is 9 years.",
    ...                                            "Water damage is covered.", "The Lumen L3 has a two-year warranty.")]
    [True, False, False, False]
"""
from __future__ import annotations

import re

from rag.specifics import letters, months_in
from rag.text import TABLE_ROW, TABLE_SEPARATOR, BM25Tokenizer, split_sentences

SUPPORT_THRESHOLD = 0.5
"""A sentence needs at least this share of its content words in the passage."""

_DIGITS = re.compile(r"(?<![A-Za-z\d.,])\d+(?:[.,]\d+)*")
"""Digits that state a quantity: not those inside a name ("L2", "S2ORC")."""
_ENGLISH_NUMBERS = {w: n for n, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12,
    "once": 1, "twice": 2, "single": 1, "double": 2, "half": 0.5}
_ENGLISH_NUMBER = re.compile(r"(?i)\b(" + "|".join(_ENGLISH_NUMBERS) + r")\b")
_CHINESE_DIGIT = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_CHINESE_UNIT = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "亿": 100_000_000}
_CHINESE_NUMBER = re.compile(f"[{''.join(_CHINESE_DIGIT)}{''.join(_CHINESE_UNIT)}]+")
_CHINESE_NOT_NUMBERS = re.compile(r"一些|一起|一样|一般|一直|一旦|一定|统一|唯一|之一|一致|万一|一切|一下|一点|进一步|第一|千万|百分|十分|万分")
"""Words written with numerals that count nothing ("一些" some, "十分" very); 第一 is an order."""
_NEGATION = re.compile(r"(?i)\b(?:not|never|none|nor|neither|without|cannot|nothing|nobody|nowhere)\b|\bno\b(?![.:]|\s*\d)|"
                       r"n['’]t\b|不(?!仅|但|过|断|少|同|久|如|论)|没|未(?!来)|无(?!论|线|人机)|非(?!常)|勿|(?<![是能可与])否")
"""Words that turn a statement around, in English and Chinese (not "不仅" only, "非常" very, "无论" whatever)."""
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_.][A-Za-z0-9]+)*")


def _chinese_value(text: str) -> float | None:
    """The value of a run of Chinese numerals ("两", "十二", "三百五十", "一万"), None when not a number."""
    total, section, digit = 0.0, 0.0, None
    for char in text:
        if char in _CHINESE_DIGIT:
            digit = _CHINESE_DIGIT[char] if digit is None else digit * 10 + _CHINESE_DIGIT[char]
        elif char in ("万", "亿"):
            section = (section + (digit or 0)) * _CHINESE_UNIT[char] if section or digit else _CHINESE_UNIT[char]
            total, section, digit = total + section, 0.0, None
        else:
            section += (1 if digit is None else digit) * _CHINESE_UNIT[char]
            digit = None
    value = total + section + (digit or 0)
    return value or (0.0 if "零" in text or "〇" in text else None)


def numbers_in(text: str) -> set[float]:
    """The quantities a text states, as values: "3,400", "81.1M" (81.1), "64.3%", "two", "两", "三百"."""
    found = {float(n.replace(",", "")) for n in _DIGITS.findall(text) if n.replace(",", "").count(".") <= 1}
    found |= {float(_ENGLISH_NUMBERS[w.lower()]) for w in _ENGLISH_NUMBER.findall(text)}
    plain = _CHINESE_NOT_NUMBERS.sub(" ", text)
    found |= {v for run in _CHINESE_NUMBER.findall(plain) if (v := _chinese_value(run)) is not None}
    return found


def negations(text: str) -> int:
    """How many times a sentence says something is not so (not/no/never/without, 不/没有/未/无/非)."""
    return len(_NEGATION.findall(text))


def negated(text: str) -> bool:
    return negations(text) > 0


def names_in(text: str) -> set[str]:
    """Latin names and identifiers: words with a capital or a digit after the first letter ("L2", "GPT-4",
    "PyTorch"), in capitals, or capitalised inside the sentence; lower-cased, letters and digits only."""
    names = set()
    for match in _NAME.finditer(text):
        word = match.group(0)
        inside = match.start() > 0 and not re.search(r"[.!?。！？:：]\s*$|^\s*$", text[:match.start()])
        if len(word) >= 2 and (any(c.isupper() or c.isdigit() for c in word[1:]) or (word[0].isupper() and inside)):
            names.add(letters(word))
    return names


def _windows(passage: str) -> list[tuple[str, str]]:
    """Each sentence or table row of the passage (a row with its table's header row), and the window
    around it (with its neighbours): ``(piece, window)``."""
    pieces = split_sentences(passage) or [passage]
    windows, header = [], ""
    for i, piece in enumerate(pieces):
        is_row = bool(TABLE_ROW.match(piece))
        if is_row and i + 1 < len(pieces) and TABLE_SEPARATOR.match(pieces[i + 1]):
            header = piece
        elif not is_row:
            header = ""
        windows.append((f"{header} {piece}", " ".join([header, *pieces[max(0, i - 1):i + 2]])))
    return windows


def support(sentence: str, passage: str, tokenizer: BM25Tokenizer, passage_tokens: set[str] | None = None) -> float:
    """The share of the sentence's content words found in the passage, when one of the passage's sentences
    (or table rows, read with their header) states it: that sentence holds at least ``SUPPORT_THRESHOLD``
    of its words and negates as many times ("no title, no authors" is not "title, no authors"), and with
    its neighbours all of its numbers and months; and the passage holds all of its names. 0 otherwise."""
    words = set(tokenizer.tokenize(sentence))
    if not words:
        return 0.0
    held = passage_tokens if passage_tokens is not None else set(tokenizer.tokenize(passage))
    spelled = letters(passage)
    if any(name not in spelled for name in names_in(sentence)):
        return 0.0
    numbers, months, negation = numbers_in(sentence), months_in(sentence), negations(sentence)
    for piece, window in _windows(passage):
        if (negations(piece) == negation and numbers <= numbers_in(window) and months <= months_in(window)
                and len(words & set(tokenizer.tokenize(piece))) >= SUPPORT_THRESHOLD * len(words)):
            return len(words & held) / len(words)
    return 0.0


def supports(sentence: str, passage: str, tokenizer: BM25Tokenizer, threshold: float = SUPPORT_THRESHOLD) -> bool:
    """Whether the passage by itself supports the sentence (see :func:`support`)."""
    return support(sentence, passage, tokenizer) >= threshold
