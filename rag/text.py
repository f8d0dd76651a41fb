"""Text repair for extracted pages and the bilingual tokenizer that BM25 indexes and queries share.

Example:
    >>> clean_text("Re-\\ntrieval of ﬁles")
    'Retrieval of files'
    >>> BM25Tokenizer().tokenize("检索增强生成 retrieval")[:2]
    ['检索', '增强']
"""
from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{CJK}]")
_CJK_PUNCT = re.compile("([\u3001-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]+)")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\n(?=[a-z])")
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{CJK}\u3000-\u303f\uff00-\uffef])[ \t]+(?=[{CJK}\u3000-\u303f\uff00-\uffef])")
_SPACE_AT_CJK_PUNCT = re.compile("(?<=[\u3000-\u303f\uff00-\uffef])[ \t]+(?!\\|)|(?<!\\|)[ \t]+(?=[\u3000-\u303f\uff00-\uffef])")
"""Spaces beside full-width punctuation, except a table cell's border ("宏包。 |")."""
_SPACED_LETTERS = re.compile(r"(?<!\S)(?:[A-Za-z_()\[\]{}.,:=] ){4,}[A-Za-z_()\[\]{}.,:=](?!\S)")
_SENTENCE_END = tuple(".!?:;。！？：；…”」』)）")
SOFT_HYPHEN = "\u00ad"
"""Marks a word broken at a line end (pdfium's mark for any hyphen there): see :func:`rejoin_hyphens`."""
_BROKEN_WORD = re.compile(f"([^\\W_]+){SOFT_HYPHEN}([^\\W_]+)")
_HYPHENATED = re.compile(r"([^\W_]+)-([^\W_]+)")
TABLE_ROW = re.compile(r"^\|\s.*\s\|$")
"""A Markdown table row, as the PDF layout writes tables (``| cell | cell |``): a line of its own."""
PAGE_NUMBER_LINE = re.compile(r"(?i)(?:page\s+)?[-–—(\[]?\s*(?:\d{1,4}|[ivxlcdm]{1,8})\s*[-–—)\]]?(?:\s+of\s+\d+)?")
"""A line that is only a page number ("12", "iv", "- 3 -", "Page 3 of 9")."""
TABLE_SEPARATOR = re.compile(r"^\|(?:\s*:?-{3,}:?\s*\|)+$")
"""The ``| --- | --- |`` line under a Markdown table's header row."""


def normalise(text: str) -> str:
    """NFKC (ligatures, full-width letters and digits) except CJK punctuation, which keeps its form."""
    parts = _CJK_PUNCT.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def clean_text(text: str) -> str:
    """Repair extraction artefacts of one page.

    Strips NUL and control characters, applies :func:`normalise`, joins words hyphenated across
    lines, removes spaces and line breaks that split CJK text and spaces beside full-width punctuation
    ("操作系统： Windows，"), collapses spaced-out letters
    (``d e f  m a i n`` from code listings) and reflows visual lines into paragraphs.
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")).replace(SOFT_HYPHEN, "")
    text = normalise(text).replace("\t", " ")
    text = _HYPHEN_BREAK.sub("", text)
    text = _SPACED_LETTERS.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _reflow(text)
    text = _SPACE_AT_CJK_PUNCT.sub("", _SPACE_BETWEEN_CJK.sub("", text))
    return re.sub(r"[ \u00a0]{2,}", " ", text).strip()


def _reflow(text: str) -> str:
    """Join the visual lines of a paragraph; break after a sentence end, a short line or a blank line."""
    lines = [line.strip() for line in text.split("\n")]
    widths = sorted(len(line) for line in lines if line)
    if not widths:
        return ""
    short = 0.6 * widths[len(widths) // 2]
    paragraphs: list[str] = []
    current, last = "", ""
    for line in lines:
        row = bool(TABLE_ROW.match(line)) or bool(TABLE_ROW.match(last))
        if current and (not line or row or last.endswith(_SENTENCE_END) or len(last) < short):
            paragraphs.append(current)
            current = ""
        if line:
            current = f"{current} {line}" if current else line
        last = line
    if current:
        paragraphs.append(current)
    return "\n".join(paragraphs)


def rejoin_hyphens(pages: Sequence[str]) -> list[str]:
    """Words broken at a line end (marked with :data:`SOFT_HYPHEN`) joined again, with the hyphen when the
    document spells the word with one elsewhere ("FAA-approved", "work-hours") or when a part ends or starts
    with a capital or a digit, and without it otherwise ("limi-tations").

    Example:
        >>> rejoin_hyphens(["cor\u00adpus of work\u00adhours", "at 90 work-hours"])
        ['corpus of work-hours', 'at 90 work-hours']
    """
    text = "\n".join(pages)
    with_hyphen: dict[str, set[str]] = {}
    for left, right in _HYPHENATED.findall(text):
        with_hyphen.setdefault(left.casefold(), set()).add(right.casefold())
    words = set(re.findall(r"[^\W_]+", _BROKEN_WORD.sub(" ", text).casefold()))

    def join(match: re.Match[str]) -> str:
        left, right = match.group(1), match.group(2)
        rights = with_hyphen.get(left.casefold(), set())
        if any(r.startswith(right.casefold()) or right.casefold().startswith(r) for r in rights):
            return f"{left}-{right}"
        if (left + right).casefold() in words:
            return left + right
        if left[-1].isupper() or left[-1].isdigit() or right[0].isupper() or right[0].isdigit():
            return f"{left}-{right}"
        return left + right

    return [_BROKEN_WORD.sub(join, page) for page in pages]


_ABBREVIATIONS = frozenset(
    "al e.g i.e etc vs cf fig figs eq eqs no nos vol vols pp p ch sec sect approx ca dr mr mrs ms prof st jr sr "
    "inc ltd co corp dept univ jan feb mar apr jun jul aug sep sept oct nov dec a.m p.m u.s u.k u.n esq cal".split()
)
"""Words whose full stop does not end a sentence ("et al.", "p.m.", "No. 07-1315"); single capitals
("Steven E. Mercer") and numbers ("81.1M") are never cut either."""
_SENTENCE_STOP = re.compile(r"(?<=[。！？!?；])(?![”」』)）\]】])|\n+|(?<=[.])\s+(?=[\"“‘(\[]?[A-Z0-9\u4e00-\u9fff])")
_LAST_WORD = re.compile(r"([^\s(\[\"“]+)\.$")


def split_sentences(text: str) -> list[str]:
    """Sentences of both scripts, and lines: never cut inside a number ("81.1M"), after an abbreviation
    ("et al.", "p.m.", "No.") or after an initial ("Steven E. Mercer").

    Example:
        >>> split_sentences("Steven E. Mercer argued at 1:01 p.m. for the state. The court listened。然后休庭。")
        ['Steven E. Mercer argued at 1:01 p.m. for the state.', 'The court listened。', '然后休庭。']
    """
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_STOP.finditer(text):
        head = text[start:match.start()]
        word = _LAST_WORD.search(head)
        if match.group().strip() == "" and match.group() != "" and "\n" not in match.group() and word is not None:
            stem = word.group(1).casefold()
            if stem.rstrip(".") in _ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()) or stem.replace(".", "").isalpha() and "." in stem:
                continue
        pieces.append(head)
        start = match.end()
    pieces.append(text[start:])
    return [p.strip() for p in pieces if len(p.strip()) > 1]


LANGUAGES = ("zh", "en")
CHINESE_SHARE = 0.2
"""Text whose visible characters are at least this share CJK counts as Chinese."""


def language_of(text: str) -> str:
    """``zh`` or ``en`` (everything that is not mostly CJK)."""
    return "zh" if cjk_share(text) >= CHINESE_SHARE else "en"


def written_language(text: str) -> str:
    """``zh`` when a reader meets at least as many Chinese characters as Latin words (a Chinese sentence
    naming Windows, Linux and pdflatex is Chinese), else ``en``."""
    words = len(re.findall(r"[A-Za-z]+", text))
    return "zh" if len(_CJK_CHAR.findall(text)) >= max(words, 1) else "en"


def estimate_tokens(text: str) -> int:
    """About one token per CJK character and one per four other characters (close to WordPiece)."""
    cjk = len(_CJK_CHAR.findall(text))
    return cjk + math.ceil((len(text) - cjk) / 4)


def cjk_share(text: str) -> float:
    """Fraction of non-space characters that are CJK."""
    visible = sum(1 for ch in text if not ch.isspace())
    return len(_CJK_CHAR.findall(text)) / visible if visible else 0.0


def held_share(token: str, tokens: set[str], text: str) -> float:
    """How much of a question's token a passage holds: all of it when it is among the passage's tokens; for
    a Chinese word, else, the share of its character pairs found in the passage's normalised ``text``
    (jieba cuts "王沈是哪里人" as 王沈是 | 哪里 | 人, and the passage as 王沈 | 字 | ...).

    Example:
        >>> held_share("王沈是", {"王沈", "太原"}, "王沈，字处道，太原晋阳人。")
        0.5
    """
    if token in tokens:
        return 1.0
    pairs = [token[i:i + 2] for i in range(len(token) - 1)] if _CJK_CHAR.match(token) else []
    return sum(pair in text for pair in pairs) / len(pairs) if pairs else 0.0


class BM25Tokenizer:
    """Tokens for BM25: jieba search-mode words for CJK runs, stemmed lower-case words otherwise.

    Mixed-language text is split into CJK and non-CJK runs first, so each script gets its own
    treatment. English stopwords and punctuation are dropped. Loading jieba's dictionary takes about
    a second, once per instance, on first use.

    Example:
        >>> BM25Tokenizer().tokenize("The indexes of retrieval")
        ['index', 'retriev']
    """

    name = "jieba-search+snowball-en/1"
    _RUNS = re.compile(f"([{CJK}]+)")
    _WORDS = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

    def __init__(self) -> None:
        import jieba
        import Stemmer

        logging.getLogger("jieba").setLevel(logging.WARNING)
        self._jieba = jieba.Tokenizer()
        self._stem = Stemmer.Stemmer("english").stemWord
        self._stopwords = _ENGLISH_STOPWORDS | _CHINESE_STOPWORDS

    def tokenize(self, text: str) -> list[str]:
        tokens: list[str] = []
        for i, run in enumerate(self._RUNS.split(normalise(text))):
            if not run:
                continue
            if i % 2:
                tokens.extend(w for w in self._jieba.cut_for_search(run, HMM=True) if w.strip() and w not in self._stopwords)
            else:
                tokens.extend(self._stem(w) for w in self._WORDS.findall(run.lower()) if w not in self._stopwords)
        return tokens

    def chinese_words(self, text: str) -> list[str]:
        """The words of the CJK runs as jieba cuts them (not for search: 土耳其 stays whole), stopwords kept."""
        return [w for run in self._RUNS.findall(normalise(text)) for w in self._jieba.cut(run, HMM=True)]

    def content_words(self, text: str) -> list[str]:
        """Lower-cased non-CJK words without stopwords, unstemmed (for keyword queries)."""
        return [w for w in self._WORDS.findall(normalise(text).lower()) if w not in self._stopwords]

    def tokenize_many(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.tokenize(text) for text in texts]


_ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with we our you your i he she his her its from was were been has have "
    "had do does did which who whom what when where why how all any both each few more most other some "
    "than too very can s t just should now".split()
)
_CHINESE_STOPWORDS = frozenset(
    "的 了 是 在 和 与 及 或 也 就 都 而 之 其 这 那 个 着 把 被 对 于 为 以 中 上 下 "
    "吗 呢 吧 多久 多少 多长 多大 几 哪 哪些 哪个 哪里 什么 怎么 怎样 如何 为什么 是否 能否 谁 何时".split()
)
