"""Document and model text as literal Markdown: nothing in it can become a link, an image, HTML or formatting.

The only markup in what the UI shows is the one added here (highlights), around escaped text.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~<:$])")


def escape(text: str) -> str:
    """``text`` with every Markdown-special character backslash-escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


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
