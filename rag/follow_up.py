"""Whether a chat message depends on the conversation before it, and what to search for when it does.

A message is a follow-up when it refers back (it, its, they, this, that; 它, 这个, 那个, 其, 他们), opens
with an ellipsis ("and the battery?", "what about…", "那电池呢？", "还有…"), or is too short to stand
alone ("why?", "多少钱？"). Only a follow-up is rewritten; a question that stands alone is searched as
written, so an earlier topic never leaks into a new one. A pronoun in a question that names its own
subject ("How long does it take to charge the Lumen L2?") refers inside the question.

Example:
    >>> is_follow_up("What is its battery life?")
    True
    >>> is_follow_up("模型量化是什么意思？")
    False
    >>> is_follow_up("那电池呢？")
    True
    >>> carried_topic("How long is it?", ["What is the warranty of the Lumen L2?"])
    'warranty lumen l2'
"""
from __future__ import annotations

import re
from collections.abc import Sequence

from rag.retrieve.variants import KeywordExtractor
from rag.specifics import specifics_of
from rag.text import CJK, BM25Tokenizer, normalise

_REFERRING = re.compile(
    r"(?i)\b(?:it|its|itself|they|them|their|theirs|themselves|he|him|his|she|her|hers|this|these|those|such|same|"
    r"former|latter|aforementioned)\b"
    r"|(?:^|\b(?:is|was|are|were|does|did|do|about|of|in|on|for|with|from|to|by|at|like|than|and|why|how|what|when|"
    r"where|who|mean|means|explain)\s+)that\b")
"""English words that point back at something said before ("that" only where it cannot be a relative pronoun)."""
_EXPLETIVE = re.compile(r"(?i)\b(?:is|was|would|will|isn't|wasn't)\s+it\s+(?:possible|true|necessary|safe|ok|okay|"
                        r"allowed|required|legal|important|better|worth|recommended)\b|\bit\s+(?:is|was)\s+"
                        r"(?:possible|true|necessary|said|reported|known|required)\b")
""""Is it possible to…": an ``it`` that refers to nothing."""
_CHINESE_REFERRING = frozenset("它 它们 它的 他 他们 他的 她 她们 她的 其 该 此 上述 前者 后者 这 那".split())
"""Chinese words that point back, as jieba cuts them (土耳其, 辛辛那提 and 其他 are words of their own);
two-character words opening with 这 or 那 (这款, 这次, 那个) point back too."""
_ELLIPSIS = re.compile(r"(?i)^\s*(?:and|also|or|but|then|so|what about|how about|what else|why not|same for|as for)\b"
                       r"|^\s*(?:那么?|还有|另外|以及|并且|而且|和|跟|同样|再|至于)")
_CHINESE_ELLIPSIS_END = re.compile(r"呢\s*[？?]?\s*$")
_MAX_ELLIPSIS_HAN = 10
"""A Chinese message ending in 呢 of at most this many characters asks about the topic before it (那电池呢？)."""
_LONG_CONTENT_WORDS = 6
_LONG_HAN = 16
"""A question this long (English content words, Chinese characters) says what it is about: its pronouns
refer inside it ("…segregate their chromosomes")."""
_MAX_SHORT_WORDS = 3
"""An English message of at most this many words, with at most one content word and no name, is too short to stand alone."""
_MAX_SHORT_HAN = 4
"""A Chinese message of at most this many characters is too short to stand alone (多少钱？为什么？)."""
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’-]*")
_HAN = re.compile(f"[{CJK}]")
_TITLED = re.compile(r"《[^》]+》|“[^”]+”|\"[^\"]+\"")
"""A quoted title names the question's subject like a name does: 《林投姐》这部作品."""


def is_follow_up(message: str, tokenizer: BM25Tokenizer | None = None) -> bool:
    """Whether ``message`` depends on the conversation before it (see the module's docstring)."""
    text = normalise(message).strip()
    if not text:
        return False
    tokenizer = tokenizer or BM25Tokenizer()
    han = len(_HAN.findall(text))
    if _ELLIPSIS.search(text) or (han and han <= _MAX_ELLIPSIS_HAN and _CHINESE_ELLIPSIS_END.search(text)):
        return True
    words = _WORD.findall(text)
    content = tokenizer.content_words(text)
    named = bool(specifics_of(text).names or _TITLED.search(text))
    long = len(content) >= _LONG_CONTENT_WORDS or han >= _LONG_HAN
    if not named and not long and _refers_back(text, tokenizer):
        return True
    if han:
        return han <= _MAX_SHORT_HAN and not words
    return len(words) <= _MAX_SHORT_WORDS and len(content) <= 1 and not named


def _refers_back(text: str, tokenizer: BM25Tokenizer) -> bool:
    if _REFERRING.search(_EXPLETIVE.sub(" ", text)):
        return True
    return any(word in _CHINESE_REFERRING or (len(word) == 2 and word[0] in "这那")
               for word in tokenizer.chinese_words(text))


def topic_questions(history: Sequence[str], tokenizer: BM25Tokenizer | None = None) -> list[str]:
    """The earlier questions a follow-up continues: the last one that stood alone and those after it."""
    start = 0
    for n in range(len(history) - 1, -1, -1):
        if not is_follow_up(history[n], tokenizer):
            start = n
            break
    return list(history[start:])


def carried_topic(message: str, history: Sequence[str], keywords: KeywordExtractor | None = None) -> str:
    """The keywords of the questions ``message`` follows up (see :func:`topic_questions`) that it lacks."""
    keywords = keywords or KeywordExtractor(BM25Tokenizer())
    tokenizer = keywords.tokenizer
    asked = normalise(message).lower()
    carried = [word for question in topic_questions(history, tokenizer) for word in keywords.keywords(question).split()]
    return " ".join(word for word in dict.fromkeys(carried) if word.lower() not in asked)
