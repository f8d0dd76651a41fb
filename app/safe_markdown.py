"""Document and model text as literal Markdown: nothing in it can become a link, an image, HTML or formatting.

The only markup in what the UI shows is the one added here (highlights), around escaped text.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence

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


_ESCAPED_MARKER = re.compile(r"\\\[(\d+)\\\]")


def linked_markers(markdown: str, href: Callable[[int], str | None]) -> str:
    """Escaped ``markdown`` with each citation marker ``\\[n\\]`` made a link to ``href(n)`` (left as
    text where that is None): the only links the UI draws in an answer are its own.

    Example:
        >>> linked_markers(escape("Two years [1]."), lambda n: f"#cite-{n}")
        'Two years [\\\\[1\\\\]](#cite-1)\\\\.'
    """

    def link(match: re.Match[str]) -> str:
        target = href(int(match.group(1)))
        return f"[{match.group(0)}]({target})" if target else match.group(0)

    return _ESCAPED_MARKER.sub(link, markdown)


def one_line(error: Exception, limit: int = 400) -> str:
    """An error as one line for the page: whitespace collapsed, at most ``limit`` characters."""
    return (" ".join(str(error).split()) or type(error).__name__)[:limit]
