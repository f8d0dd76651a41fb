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
from collections import Counter
from collections.abc import Iterable, Sequence

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_CJK_CHAR = re.compile(f"[{CJK}]")
_CJK_PUNCT = re.compile("([\u3001-\u303f\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]+)")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_HYPHEN_BREAK = re.compile(r"(?<=[^\W\d_])-\n(?=[a-z])")
_SPACE_BETWEEN_CJK = re.compile(f"(?<=[{CJK}\u3000-\u303f\uff00-\uffef])[ \t]+(?=[{CJK}\u3000-\u303f\uff00-\uffef])")
_SPACED_LETTERS = re.compile(r"(?<!\S)(?:[A-Za-z_()\[\]{}.,:=] ){4,}[A-Za-z_()\[\]{}.,:=](?!\S)")
_SENTENCE_END = tuple(".!?:;。！？：；…”」』)）")
_DIGITS = re.compile(r"\d+")


def normalise(text: str) -> str:
    """NFKC (ligatures, full-width letters and digits) except CJK punctuation, which keeps its form."""
    parts = _CJK_PUNCT.split(text)
    return "".join(p if i % 2 else unicodedata.normalize("NFKC", p) for i, p in enumerate(parts))


def clean_text(text: str) -> str:
    """Repair extraction artefacts of one page.

    Strips NUL and control characters, applies :func:`normalise`, joins words hyphenated across
    lines, removes spaces and line breaks that split CJK text, collapses spaced-out letters
    (``d e f  m a i n`` from code listings) and reflows visual lines into paragraphs.
    """
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = normalise(text).replace("\t", " ")
    text = _HYPHEN_BREAK.sub("", text)
    text = _SPACED_LETTERS.sub(lambda m: m.group(0).replace(" ", ""), text)
    text = _reflow(text)
    text = _SPACE_BETWEEN_CJK.sub("", text)
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
        if current and (not line or last.endswith(_SENTENCE_END) or len(last) < short):
            paragraphs.append(current)
            current = ""
        if line:
            current = f"{current} {line}" if current else line
        last = line
    if current:
        paragraphs.append(current)
    return "\n".join(paragraphs)


def strip_repeated_lines(pages: Sequence[str], edge_lines: int = 2, min_pages: int = 3) -> list[str]:
    """Drop running headers and footers: edge lines that recur (digits ignored) on half the pages or more."""
    if len(pages) < min_pages:
        return list(pages)
    split = [page.split("\n") for page in pages]

    def edge_lines_of(lines: list[str]) -> list[str]:
        kept = [line.strip() for line in lines if line.strip()]
        k = min(edge_lines, len(kept) // 3)  # a short page keeps most of its lines out of reach
        return kept[:k] + kept[len(kept) - k :] if k else []

    def edges(lines: list[str]) -> set[str]:
        return {_DIGITS.sub("#", line) for line in edge_lines_of(lines)}

    counts = Counter(key for lines in split for key in edges(lines))
    threshold = max(min_pages, (len(pages) + 1) // 2)
    repeated = {key for key, n in counts.items() if n >= threshold}
    if not repeated:
        return list(pages)
    result = []
    for lines in split:
        edge_set = set(edge_lines_of(lines))
        result.append("\n".join(
            line for line in lines
            if not (line.strip() in edge_set and _DIGITS.sub("#", line.strip()) in repeated)
        ))
    return result


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
