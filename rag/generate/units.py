"""Answer units: the sentences and table rows of a passage that an answer may quote, and the lines it never
quotes (headings, table-of-contents entries, code and formulas, questions, file lists).

A table row (a Markdown row, as the PDF layout writes tables) is one unit, shown with its column names:
``Action: AOA sensor system test; Labor cost: 40 work-hours × $85 per hour = $3,400; Parts cost: $0``.

Example:
    >>> [u.text for u in answer_units("| Item | Cost |\\n| --- | --- |\\n| Lamp | $4 |\\nIt ships in May. Why?")]
    ['Item: Lamp; Cost: $4', 'It ships in May.']
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text import CJK, PAGE_NUMBER_LINE, TABLE_ROW, TABLE_SEPARATOR, split_sentences

_LEADERS = re.compile(r"(?:[.⋅·…]\s?){4,}\s*\S{0,6}$")
_RULE = re.compile(r"(?:[-–—_=*]\s){5,}")
"""A rule drawn with characters ("- - - - - - x"), as transcript captions and forms have: a layout line."""
_CODE_CHARS = re.compile(r"[\\{}=^$&%#<>~`]")
_WORDISH = re.compile(f"[A-Za-z]{{2,}}|[{CJK}]")
_PATH_LIKE = re.compile(r"\S+\.(?:pdf|md|txt|docx?|html?|tex|cls|bib|sty|png|jpe?g|zip|json|csv)\b|\b[0-9a-f]{12,}\b|"
                        r"https?://\S+|\b[\w.-]+/[\w.-]+(?:/[\w.-]+)*\s@", re.IGNORECASE)
_HEADING_END = tuple(".!?;。！？；")
_REFERENCE = re.compile(r"\d+\s*\(\d+\)\s*[:：]\s*\d+\s*[-–]\s*\d+|\bIn Proceedings of\b|\barXiv preprint\b|\bpages \d+[-–]\d+|"
                        r"\bdoi:\s*10\.|\bpp\. \d+[-–]\d+")
"""A bibliography entry ("8(3):256-274", "In Proceedings of ..., pages 41–48"): no answer to a question."""
_NUMBERED = re.compile(f"(?:第\\s*\\S{{1,3}}\\s*[章节篇]|[A-Z]?\\d+(?:\\.\\d+)*\\.?|[A-Z]\\.)(?:\\s|(?=[{CJK}]))")
_FOOTNOTE = re.compile(r"\d+\s+[a-z]")
_VALUE = re.compile(r"\d{3,}|\d\.\d")
_SMALL_WORDS = frozenset("a an and as at by for in of on or the to vs v. with & -".split())


def _is_title_case(text: str) -> bool:
    """Whether every Latin word is capitalised or a small word, and few are Chinese: a title or a
    byline ("Ethan DENG Dongsheng DENG Fudan University PA Technology ElegantLATEX 项目组")."""
    words = text.split()
    latin = [w for w in words if w[0].isascii() and w[0].isalpha()]
    chinese = [w for w in words if re.match(f"[{CJK}]", w)]
    return bool(latin) and len(chinese) <= 0.3 * len(words) and all(w[0].isupper() or w.lower() in _SMALL_WORDS for w in latin)


def _is_heading(text: str) -> bool:
    """A short line without closing punctuation that is a heading or a label: numbered ("2.2.5 Tex 文件夹",
    "第 1 章 引言"), in capitals or Title Case, or Chinese ("作者：莫晃锐"); not a footnote ("7 pronounced
    “stork”") nor a line holding a value ("No. 07-1315", "Version: 0.07")."""
    if _FOOTNOTE.match(text):
        return False
    if _NUMBERED.match(text):
        return True
    if _VALUE.search(text):
        return False
    if re.search(f"[{CJK}]", text):
        return True
    return _is_title_case(text)


_ASKS_FOR_NUMBER = re.compile(
    r"(?i)\b(?:how (?:many|much|long|old|far|big|large|often|well|high|fast)|when|what time|(?:which|what) (?:year|day|month|date)|"
    r"number|total|amount|count|cost|price|percentage|percent|rate|accuracy|score|version|release|size|length|average|mean)\b|"
    r"多少|几|多大|多长|多久|多高|多远|哪一年|哪年|何时|什么时候|版本|日期|时间|金额|比例|数量|总数|总计|合计|平均|[字页人次个]数")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_MATH = re.compile(r"[=+−×÷±∂∇∫∑∏√≤≥≈∞⎧⎨⎩⎪λθσρφΛΩ]")


_ASKS_FOR_DATE = re.compile(r"(?i)\b(?:when|what time|(?:which|what) (?:year|day|month|date))\b|哪一年|哪年|何时|什么时候|日期|哪天|哪一天|几月")
_DATE = re.compile(r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}\b|\b\d{1,2}\s+(?:jan|feb|mar|apr|may|"
                   r"jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(?:19|20)\d\d\b|\d{1,2}\s*月|\d{4}\s*年|\d{1,2}\s*日")


def asks_for_date(question: str) -> bool:
    """Whether the question asks when (answered by a date, not just any number)."""
    return bool(_ASKS_FOR_DATE.search(question))


def new_date(text: str, question: str) -> bool:
    """Whether ``text`` holds a date ("August 3, 2020", "2019 年") that the question does not."""
    asked = set(_DATE.findall(question))
    return any(d not in asked for d in _DATE.findall(text))


def asks_for_number(question: str) -> bool:
    """Whether the question asks for a quantity, a date, a time or a version (answered by a number)."""
    return bool(_ASKS_FOR_NUMBER.search(question))


_NUMBER_WORD = re.compile(r"(?i)\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
                          r"fifty|hundred|thousand|million|billion|dozen|half|twice|once)\b|[一二两三四五六七八九十百千万亿半]")


def new_numbers(text: str, question: str) -> bool:
    """Whether ``text`` holds a number that the question does not."""
    asked = set(_NUMBER.findall(question))
    return any(n not in asked for n in _NUMBER.findall(text))


def gives_quantity(text: str, question: str) -> bool:
    """Whether ``text`` states a quantity the question does not: a new number, or one in words ("two
    years", "两年")."""
    asked = {w.lower() for w in _NUMBER_WORD.findall(question)}
    return new_numbers(text, question) or any(w.lower() not in asked for w in _NUMBER_WORD.findall(text))


@dataclass(frozen=True)
class Unit:
    """A quotable piece of a passage: ``text`` is what an answer shows, ``source`` the passage's own text
    of it (for a row, its Markdown line)."""

    text: str
    source: str
    position: int
    is_row: bool = False


def _cells(row: str) -> list[str]:
    return [cell.strip().rstrip(".").strip() for cell in row.strip().strip("|").split("|")]


def row_text(row: str, header: list[str] | None) -> str:
    """A table row as text: ``name: value`` for each filled cell under its column name, else the cells."""
    cells = _cells(row)
    if header and len(header) == len(cells):
        return "; ".join(f"{name}: {value}" if name else value for name, value in zip(header, cells, strict=True) if value)
    return " | ".join(cell for cell in cells if cell)


def is_quotable(text: str) -> bool:
    """Whether a sentence may be quoted as an answer: not a heading, a question, a table-of-contents entry,
    a line of code or a formula, a run of numbers (a chart's axis), or a list of files and commits."""
    stripped = text.strip()
    if not stripped.rstrip(" )]）】\"”").endswith(_HEADING_END) and (
            _is_heading(stripped) if len(stripped) < 40 else not _VALUE.search(stripped) and _is_title_case(stripped)):
        return False  # a heading, a label, a byline
    if stripped.endswith(("?", "？")) or _LEADERS.search(stripped) or _RULE.search(stripped) or PAGE_NUMBER_LINE.fullmatch(stripped):
        return False
    visible = len(re.sub(r"\s", "", stripped))
    if stripped.startswith("\\") or len(_CODE_CHARS.findall(stripped)) > 0.06 * visible:
        return False  # LaTeX, code
    if _wordish_share(stripped) < 0.5 and (len(_NUMBER.findall(stripped)) >= 3 or len(_MATH.findall(stripped)) >= 2):
        return False  # a formula, numbers without words (a chart's axis)
    return len(_PATH_LIKE.findall(stripped)) < 2 and not _REFERENCE.search(stripped)  # a file list, a reference


def _wordish_share(text: str) -> float:
    """The share of visible characters in words (two letters or more) or CJK characters."""
    visible = len(re.sub(r"\s", "", text))
    return sum(len(w) for w in _WORDISH.findall(text)) / visible if visible else 0.0


def answer_units(text: str) -> list[Unit]:
    """The passage's quotable units in order: sentences, and table rows under their header (a table's
    title line is left out)."""
    units: list[Unit] = []
    header: list[str] | None = None
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if TABLE_ROW.match(line):
            if TABLE_SEPARATOR.match(line):
                continue
            if i + 1 < len(lines) and TABLE_SEPARATOR.match(lines[i + 1]):
                header = _cells(line)
                continue
            shown = row_text(line, header)
            if shown and len(_PATH_LIKE.findall(line)) < 2 and (header or _wordish_share(shown) >= 0.3):
                units.append(Unit(shown, line, len(units), is_row=True))
            continue
        header = None
        if i + 1 < len(lines) and TABLE_ROW.match(lines[i + 1]):
            continue  # a table's title, which every chunk of the table repeats: no answer
        for sentence in split_sentences(line):
            if is_quotable(sentence):
                units.append(Unit(sentence, sentence, len(units)))
    return units
