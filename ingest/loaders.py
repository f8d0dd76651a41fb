"""Loaders: a source file becomes its pages of raw text, or a :class:`LoadError` that says why not.

Example:
    >>> pages = load_file(Path("examples/docs/handbook.md"))
    >>> pages[0].number
    1
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from rag.documents import Page


class LoadError(Exception):
    """A file that cannot be ingested; the message is the one-line reason shown to the user."""


def read_source(path: Path) -> bytes:
    """The file's bytes, or a :class:`LoadError` naming why they cannot be read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise LoadError("file vanished during ingest") from exc
    except PermissionError as exc:
        raise LoadError("permission denied: the file is not readable") from exc
    except IsADirectoryError as exc:
        raise LoadError("is a directory") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file ({exc.strerror or exc})") from exc
    if not data:
        raise LoadError("empty file (0 bytes)")
    return data


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise LoadError("binary content in a text file (NUL bytes)")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise LoadError("not UTF-8 or GB18030 text")


def _load_pdf(path: Path, data: bytes) -> list[Page]:
    import io

    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    if not data.lstrip()[:5] == b"%PDF-":
        raise LoadError("not a PDF (no %PDF- header)")
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF: a password is required to open it")
        pages = [Page(str(path), number, _page_text(page)) for number, page in enumerate(reader.pages, start=1)]
    except LoadError:
        raise
    except FileNotDecryptedError as exc:
        raise LoadError("encrypted PDF: a password is required to open it") from exc
    except PdfReadError as exc:
        raise LoadError(f"corrupt or truncated PDF ({type(exc).__name__}: {str(exc)[:120]})") from exc
    except Exception as exc:  # pypdf raises many types on malformed files; none may stop the run
        raise LoadError(f"cannot parse PDF ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if not pages:
        raise LoadError("PDF has no pages (corrupt or truncated)")
    if not any(page.text.strip() for page in pages):
        raise LoadError(f"no text layer in any of its {len(pages)} pages (scanned or image-only PDF; OCR is not supported)")
    return pages


def _page_text(page: object) -> str:
    try:
        return page.extract_text() or ""  # type: ignore[attr-defined]
    except Exception:  # a broken content stream on one page must not cost the rest of the file
        return ""


def _load_text(path: Path, data: bytes) -> list[Page]:
    return [Page(str(path), 1, _decode(data))]


def _load_html(path: Path, data: bytes) -> list[Page]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return [Page(str(path), 1, soup.get_text("\n"))]


def _load_docx(path: Path, data: bytes) -> list[Page]:
    import io

    import docx

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as exc:  # zipfile, lxml and zlib all raise their own types on damaged files
        raise LoadError(f"corrupt Word file ({type(exc).__name__}: {str(exc)[:120]})") from exc
    paragraphs = [p.text for p in document.paragraphs]
    for table in document.tables:
        paragraphs.extend(" | ".join(cell.text for cell in row.cells) for row in table.rows)
    return [Page(str(path), 1, "\n".join(paragraphs))]


LOADERS: dict[str, Callable[[Path, bytes], list[Page]]] = {
    ".pdf": _load_pdf,
    ".txt": _load_text,
    ".md": _load_text,
    ".markdown": _load_text,
    ".html": _load_html,
    ".htm": _load_html,
    ".docx": _load_docx,
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def check_supported(path: Path) -> None:
    if not is_supported(path):
        raise LoadError(f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {', '.join(sorted(LOADERS))}")


def load_file(path: Path, data: bytes | None = None) -> list[Page]:
    """Pages of raw text; raises :class:`LoadError` for anything that cannot be ingested."""
    check_supported(path)
    pages = LOADERS[path.suffix.lower()](path, read_source(path) if data is None else data)
    if not any(page.text.strip() for page in pages):
        raise LoadError("no text in the file")
    return pages
