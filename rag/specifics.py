"""What a question pins down (a year, a month, a number, a name, an amount of money) and whether the
passages hold it: a question about October's checks is not answered from November's table, nor one about
arXiv from a table of PubMed and SQuALITY.

Example:
    >>> missing_specifics("How many checks were run in Texas in October 2015?", ["Texas | 21,550 (November 2015)"])
    ['October']
    >>> missing_specifics("预训练一共花费了多少美元？", ["We pretrain on 8 TPUs for 5 days."])
    ['金额']
"""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text import CJK, language_of

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_CHINESE_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_ENGLISH_MONTH = re.compile(r"\b(" + "|".join(MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sept?|oct|nov|dec)\b\.?", re.IGNORECASE)
_CHINESE_MONTH = re.compile(r"(\d{1,2}|[一二三四五六七八九十]{1,3})\s*月")
_ISO_MONTH = re.compile(r"\b(?:19|20)\d\d[-/.](\d{1,2})\b")
_YEAR = re.compile(r"(?<![\d.,])((?:19|20)\d\d)(?![\d])")
_LATIN_WORD = re.compile(r"[A-Za-z\\][A-Za-z0-9_\\]*(?:[-'’][A-Za-z0-9]+)*")
_MONEY_ASKED = re.compile(r"(?i)\b(?:cost|costs|costing|price|priced|prices|dollars?|fees?|paid|spent|spend|budget|"
                          r"salary|salaries|expenditures?|usd)\b|\$|美元|费用|花费|花了|多少钱|价格|成本|金额|预算|人民币|多少元")
_MONEY_HELD = re.compile(r"(?i)[$€£¥￥]|\b(?:usd|eur|gbp|rmb|dollars?|cents?|euros?)\b|美元|人民币|\d\s*[万亿]?元")
_QUESTION_WORDS = frozenset("""what which who whom whose when where why how is are was were do does did can could
should would will may might according in on at for of to the a an and or if by from with as""".split())
"""Capitalised words at the start of a question or of its clauses that name nothing."""
_LANGUAGES = frozenset("english chinese french german japanese korean spanish russian italian".split())
"""Which language's edition a question asks about names no fact ("the English guide")."""


@dataclass(frozen=True)
class Specifics:
    """The particulars a question names: ``names`` as written, ``years`` as digits, ``months`` as 1-12,
    and whether it asks for an amount of money. Plain numbers are not among them: "6 months" is often
    "six months" in the text."""

    names: tuple[str, ...] = ()
    years: tuple[str, ...] = ()
    months: tuple[int, ...] = ()
    money: bool = False


def _normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def letters(text: str) -> str:
    """Letters and digits only, case folded: "HIV-positive" and "HIV positive" read alike."""
    return re.sub(r"[\W_]+", "", _normalise(text))


def _month(token: str) -> int:
    if token.isdigit():
        return int(token)
    if token in _CHINESE_DIGITS:
        return _CHINESE_DIGITS[token]
    return 10 + _CHINESE_DIGITS.get(token[-1], 0) if token.startswith("十") else 0


def months_in(text: str) -> set[int]:
    """The months a text names: "October", "Oct.", "10 月", "十月", "2015-10"."""
    found = {[m[:3] for m in MONTHS].index(match.group(1).lower()[:3]) + 1
             for match in _ENGLISH_MONTH.finditer(text) if match.group(0)[0].isupper()}
    found |= {_month(match.group(1)) for match in _CHINESE_MONTH.finditer(text)}
    found |= {int(match.group(1)) for match in _ISO_MONTH.finditer(text)}
    return {m for m in found if 1 <= m <= 12}


def _names(question: str) -> list[str]:
    """Words that name something: mixed case or with digits ("LongEval", "arXiv", "S2ORC"), in capitals
    ("NICS"), or capitalised inside an English sentence ("Texas"); in a Chinese question, every Latin word.
    A hyphenated word gives its naming parts ("UCP1-dependent": "UCP1"); an abbreviation that the question
    spells out itself ("diastolic blood pressure (DBP)") names nothing new."""
    chinese = bool(re.search(f"[{CJK}]", question))
    names = []
    for match in _LATIN_WORD.finditer(question):
        if question[match.start() - 1:match.start()] in "(（" and question[match.end():match.end() + 1] in ")）" \
                and match.start() > 1:
            continue
        before = question[:match.start()].rstrip()
        starts_clause = not before or before[-1] in ".?!:;,\"'“‘(（"
        for part in re.sub(r"['’]s$", "", match.group(0)).split("-"):
            core = part.lstrip("\\")
            if len(core) < 2 or core.lower() in _QUESTION_WORDS or core.lower() in _LANGUAGES or _ENGLISH_MONTH.fullmatch(core):
                continue
            if chinese or any(c.isupper() for c in core[1:]) or any(c.isdigit() for c in core) \
                    or (core[0].isupper() and not starts_clause):
                names.append(part)
    return names


def specifics_of(question: str) -> Specifics:
    """The names, years, months and money a question asks about (see :class:`Specifics`)."""
    names = _names(question)
    return Specifics(
        names=tuple(dict.fromkeys(names)),
        years=tuple(dict.fromkeys(_YEAR.findall(question))),
        months=tuple(sorted(months_in(question))),
        money=bool(_MONEY_ASKED.search(re.sub("|".join(map(re.escape, names)) or "^$", " ", question))),
    )


def _singular(name: str) -> str:
    """"PDFs" is found where "PDF" is."""
    return name[:-1] if re.fullmatch(r"[A-Z0-9]{2,}s", name) else name


def _holds_name(name: str, texts: Sequence[str], words: set[str]) -> bool:
    """Whether a text holds the name, or a word of five letters or more that makes most of it (the
    notes say "torch" where the question says "PyTorch")."""
    return any(name in t for t in texts) or any(w in name and len(w) >= 0.6 * len(name) for w in words)


def _holds_number(text: str, number: str) -> bool:
    bare = number.replace(",", "")
    return re.search(rf"(?<![\d.,]){re.escape(bare)}(?!\d|[.,]\d)", text.replace(",", "")) is not None


def missing_specifics(question: str, passages: Sequence[str], front_matter: Sequence[str] = ()) -> list[str]:
    """What the question names that none of ``passages`` holds, as the user wrote it (a month or money in
    the question's language: "October" or "10 月", "an amount of money" or "金额"): empty when every
    name, year and month is in some passage and, when money is asked, some passage gives an amount. A name may also be in ``front_matter`` (the passages' documents' first pages and file names):
    "LongEval" names the paper that a passage comes from."""
    specifics = specifics_of(question)
    texts = [_normalise(p) for p in passages]
    named = [letters(p) for p in [*passages, *front_matter]]
    words = {w for t in texts for w in re.findall(r"[a-z0-9]{5,}", t)}
    missing = [name for name in specifics.names if not _holds_name(letters(_singular(name)), named, words)]
    missing += [year for year in specifics.years if not any(_holds_number(t, year) for t in texts)]
    held_months = set().union(*(months_in(p) for p in passages)) if passages else set()
    chinese = language_of(question) == "zh"
    missing += [f"{m} 月" if chinese else MONTHS[m - 1].capitalize() for m in specifics.months if m not in held_months]
    if specifics.money and not any(_MONEY_HELD.search(p) for p in passages):
        missing.append("金额" if chinese else "an amount of money")
    return missing
