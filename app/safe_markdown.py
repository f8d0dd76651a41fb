"""Document and model text as literal Markdown: nothing in it can become a link, an image, HTML or formatting.

The only markup in what the UI shows is the one added here (highlights), around escaped text.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<:$])")


_LINKABLE = re.compile(r"(?i)\b(?:https?://|ftp://|www\.)[^\s<>`]*[^\s<>`.,;:!?)\]'\"]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
"""What a Markdown renderer would turn into a link by itself (URLs, "www." names, e-mail addresses)."""


def escape(text: str) -> str:
    """``text`` with every Markdown-special character backslash-escaped, and URLs and e-mail addresses set
    as code, which no renderer links.

    Example:
        >>> print(escape("[click](http://x.io) or mail a@b.org"))
        \\[click\\]\\(`http://x.io`\\) or mail `a@b.org`
    """
    pieces, position = [], 0
    for match in _LINKABLE.finditer(text):
        pieces.append(_MARKDOWN_SPECIAL.sub(r"\\\1", text[position:match.start()]))
        pieces.append(f"`{match.group(0)}`")
        position = match.end()
    pieces.append(_MARKDOWN_SPECIAL.sub(r"\\\1", text[position:]))
    return "".join(pieces)


def marked(text: str, spans: Sequence[str], color: str) -> str:
    """Escaped ``text`` with each of ``spans`` (where found) given a ``color`` background."""
    pieces: list[str] = []
    position = 0
    found = sorted((start, start + len(span)) for span in set(spans) if span and (start := text.find(span)) >= 0)
    for start, end in found:
        if start < position:
            continue  # overlaps a span already marked
        pieces.append(escape(text[position:start]))
        pieces.append(f":{color}-background[{escape(text[start:end])}]")
        position = end
    pieces.append(escape(text[position:]))
    return "".join(pieces)


def one_line(error: Exception, limit: int = 400) -> str:
    """An error as one line for the page: whitespace collapsed, at most ``limit`` characters."""
    return (" ".join(str(error).split()) or type(error).__name__)[:limit]
