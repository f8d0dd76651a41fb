"""Loaders: a source file becomes its pages of raw text, or a :class:`LoadError` that says why not.

Work per file is bounded by :class:`ParseLimits`: pages past ``max_pages`` are not read and page text past
``max_page_chars`` is cut, each with a warning in :attr:`Loaded.warnings`.

Example:
    >>> loaded = load_file(Path("docs/handbook.md"))
    >>> loaded.pages[0].number, loaded.warnings
    (1, [])
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ingest.ocr import DPI, OcrReader
from ingest.ocr import page_text as ocr_text
from ingest.pdf_layout import page_text, running_lines
from rag.config import Settings
from rag.documents import LineBox, Page
from rag.text import rejoin_hyphens

if TYPE_CHECKING:
    from pypdf import PageObject

NOT_TEXT_SHARE = 0.3
"""A text file with more than this share of undecodable bytes is rejected as not text; below it, the bad
bytes become U+FFFD and the file is indexed with a warning."""
BINARY_CONTROL_SHARE = 0.05
"""More control characters than this share (tab and line breaks excepted) marks binary content, not text."""
BINARY_JUNK_SHARE = 0.02
"""Random bytes read as GB18030 are about 12% U+FFFD and private-use characters; real text, Chinese or
not, well under 0.1%: above this share a "text" file is refused as binary."""


class LoadError(Exception):
    """A file that cannot be ingested; the message is the one-line reason shown to the user."""


@dataclass(frozen=True)
class ParseLimits:
    """Bounds on the work one file may cause; the defaults are far above any normal document.

    Example:
        >>> ParseLimits(max_pages=2).max_pages
        2
    """

    max_pages: int = Settings.max_pages
    """Pages read from one PDF; the rest are skipped with a warning."""
    max_page_chars: int = Settings.max_page_chars
    """Characters kept from one page (a text file is one page); the rest is cut with a warning."""
    ocr: str = Settings.ocr
    """When pages are read by OCR (see :data:`rag.config.OCR_MODES`)."""


@dataclass
class Loaded:
    """A loaded file: its pages and what was given up on the way (replaced bytes, skipped pages, cut text)."""

    pages: list[Page]
    warnings: list[str] = field(default_factory=list)


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


def _decode(data: bytes, warnings: list[str]) -> str:
    """UTF-8, or GB18030 when UTF-8 cannot read it; a few undecodable bytes become U+FFFD, with a warning."""
    if b"\x00" in data[:8192]:
        raise LoadError("binary content in a text file (NUL bytes)")
    text = _strict(data)
    if text is None:
        replaced, text = _lenient("utf-8-sig", data)
        non_ascii = len(text) - len(text.encode("ascii", "ignore")) - text.count("\ufffd")
        if non_ascii < replaced:  # few valid UTF-8 sequences among the errors: a legacy Chinese encoding?
            replaced, text = min(_lenient("gb18030", data), (replaced, text))
        if replaced > NOT_TEXT_SHARE * len(data):
            raise LoadError(f"not text: {replaced:,} of its {len(data):,} bytes are not valid UTF-8 or GB18030")
        warnings.append(f"{replaced:,} undecodable byte(s) replaced with U+FFFD")
    controls = len(text) - len(text.translate(_WITHOUT_CONTROL_CHARACTERS))
    if controls > BINARY_CONTROL_SHARE * len(text):
        raise LoadError(f"binary content in a text file ({controls:,} control characters)")
    junk = text.count("\ufffd") + len(_PRIVATE_USE.findall(text))
    if junk > max(16, BINARY_JUNK_SHARE * len(text)):
        raise LoadError(f"binary content in a text file ({junk / len(text):.0%} of its characters are replacement or "
                        "private-use characters)")
    return text


def _strict(data: bytes) -> str | None:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


_PRIVATE_USE = re.compile("[\ue000-\uf8ff\U000f0000-\U0010ffff]")
_WITHOUT_CONTROL_CHARACTERS = dict.fromkeys([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_ESCAPED_BYTES = re.compile("[\udc80-\udcff]+")


def _lenient(encoding: str, data: bytes) -> tuple[int, str]:
    """``(bytes that could not be decoded, the text with each run of them as one U+FFFD)``."""
    text = data.decode(encoding, "surrogateescape")
    runs = _ESCAPED_BYTES.findall(text)
    return sum(map(len, runs)), _ESCAPED_BYTES.sub("\ufffd", text) if runs else text


@dataclass
class PageReading:
    """What reads a file's image pages: ``reader`` (its models load on first use) and ``on_page(done,
    total)``, called as each page is read by OCR.

    Usage, on a scanned PDF (its first line read by OCR)::

        reading = PageReading(OcrReader(), on_page=lambda done, total: print(f"OCR page {done}/{total}"))
        load_file(Path("scan.pdf"), reading=reading).pages[0].lines[0].text  # 'Alderson Reporting Company'
    """

    reader: OcrReader = field(default_factory=OcrReader)
    on_page: Callable[[int, int], None] | None = None

    def read(self, pages: Sequence[tuple[int, Callable[[], Image.Image]]], warnings: list[str]) -> dict[int, tuple[str, tuple[LineBox, ...]]]:
        """Text and lines of each ``(page number, image)`` by OCR; a page that fails is reported by number
        in ``warnings`` and left out."""
        out = {}
        for done, (number, image) in enumerate(pages):
            if self.on_page:
                self.on_page(done, len(pages))
            try:
                lines = self.reader.read(image())
            except MemoryError:
                raise
            except Exception as exc:  # one unreadable page must not cost the rest of the file
                reason = (str(exc).strip().splitlines() or [""])[-1]  # onnxruntime's message ends a traceback
                warnings.append(f"page {number}: OCR failed ({type(exc).__name__}: {reason[:120]})")
                continue
            out[number] = (ocr_text(lines), tuple(LineBox(line.text, line.box) for line in lines))
        if self.on_page and pages:
            self.on_page(len(pages), len(pages))
        return out


def _load_pdf(path: Path, data: bytes, limits: ParseLimits, warnings: list[str], reading: PageReading) -> list[Page]:
    """pypdf opens the file (encryption, page count, content streams within its size limit); pdfium's
    character boxes give each page's text in reading order (see :mod:`ingest.pdf_layout`), and pages
    without a useful text layer are read by OCR (see :func:`_needs_ocr`)."""
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
        total = len(reader.pages)
        if total > limits.max_pages:
            warnings.append(f"only the first {limits.max_pages:,} of its {total:,} pages indexed (max_pages)")
        bombs = [number for number in range(1, min(total, limits.max_pages) + 1) if _inflates_too_far(reader.pages[number - 1])]
    except LoadError:
        raise
    except FileNotDecryptedError as exc:
        raise LoadError("encrypted PDF: a password is required to open it") from exc
    except PdfReadError as exc:
        raise LoadError(f"corrupt or truncated PDF ({type(exc).__name__}: {str(exc)[:120]})") from exc
    except Exception as exc:  # pypdf raises many types on malformed files; none may stop the run
        raise LoadError(f"cannot parse PDF ({type(exc).__name__}: {str(exc)[:120]})") from exc
    if total == 0:
        raise LoadError("PDF has no pages (corrupt or truncated)")
    pages = _pdfium_pages(str(path), data, min(total, limits.max_pages), set(bombs), limits.ocr, reading, warnings)
    has_text = any(page.text.strip() for page in pages)
    if bombs:
        where = f"page {bombs[0]}" if len(bombs) == 1 else f"{len(bombs)} pages, from page {bombs[0]}"
        if not has_text:
            raise LoadError(f"content streams inflate past pypdf's size limit on {where} (a decompression bomb?); nothing to index")
        warnings.append(f"{where} skipped: content streams inflate past pypdf's size limit (a decompression bomb?)")
    if not has_text:
        why = "OCR is off (ocr = never)" if limits.ocr == "never" else "OCR found no text either"
        raise LoadError(f"no text layer in any of its {len(pages)} pages (scanned or image-only PDF; {why})")
    texts = rejoin_hyphens([page.text for page in pages])
    return [Page(page.source, page.number, text, page.lines) for page, text in zip(pages, texts, strict=True)]


def _inflates_too_far(page: PageObject) -> bool:
    """Whether the page's content streams inflate past pypdf's size limit (a decompression bomb)."""
    from pypdf.errors import LimitReachedError

    try:
        page.get_contents()
    except LimitReachedError:
        return True
    except Exception:  # a broken stream is pdfium's to read or skip, not a bomb
        return False
    return False


def _pdfium_page(document: Any, number: int) -> Any:
    """Page ``number`` of a pdfium document, or None when pdfium cannot load it (a damaged page)."""
    import pypdfium2 as pdfium

    try:
        return document[number - 1]
    except pdfium.PdfiumError:
        return None


def _pdfium_pages(source: str, data: bytes, pages: int, skipped: set[int], ocr: str, reading: PageReading,
                  warnings: list[str]) -> list[Page]:
    """The first ``pages`` pages in reading order; a page in ``skipped`` or one pdfium cannot read is
    empty; pages that need it (see :func:`_needs_ocr`) are read by OCR."""
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        raise LoadError(f"corrupt or truncated PDF (pdfium: {str(exc).rstrip('.')[:120]})") from exc
    texts: dict[int, str] = {}
    try:
        numbers = [n for n in range(1, min(pages, len(document)) + 1)]
        running = running_lines(page for n in numbers if n not in skipped and (page := _pdfium_page(document, n)) is not None)
        scans = []
        for number in numbers:
            if number in skipped:
                continue
            try:
                texts[number] = page_text(document[number - 1], running)
                if _needs_ocr(document[number - 1], ocr):
                    scans.append((number, partial(_render, document, number)))
            except Exception:  # a broken content stream on one page must not cost the rest of the file
                texts[number] = ""
        read = reading.read(scans, warnings)
    finally:
        document.close()
    out = []
    for number in range(1, pages + 1):
        text, lines = read.get(number, (texts.get(number, ""), ()))
        if lines and ocr == "auto" and len(text) < len(texts.get(number, "")):
            text, lines = texts[number], ()  # the text layer held more than OCR found: keep it
        out.append(Page(source, number, text, lines))
    return out


def _render(document: Any, number: int) -> Image.Image:
    return document[number - 1].render(scale=DPI / 72, grayscale=True).to_pil()


IMAGE_SHARE = 0.5
"""A page whose images cover more than this share of it, with little text (:data:`FEW_CHARS`), is a scan."""
FEW_CHARS = 200


def _needs_ocr(page: Any, ocr: str) -> bool:
    """Whether a PDF page is read by OCR: every page with ``always``; with ``auto``, a page whose text
    layer is empty, or holds little on a page mostly covered by images (a scan with a stamped header
    line). The text layer is counted as pdfium holds it, before running heads and table-of-contents
    lines are taken out."""
    if ocr == "always":
        return True
    if ocr != "auto":
        return False
    characters = page.get_textpage().count_chars()
    return characters == 0 or (characters < FEW_CHARS and _image_share(page) > IMAGE_SHARE)


def _image_share(page: Any) -> float:
    """The share of the page's area under image objects (overlaps counted twice, capped at 1)."""
    import pypdfium2.raw as pdfium_c

    width, height = page.get_size()
    area = 0.0
    for image in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2):
        left, bottom, right, top = image.get_pos()
        area += max(0.0, min(right, width) - max(left, 0.0)) * max(0.0, min(top, height) - max(bottom, 0.0))
    return min(1.0, area / (width * height)) if width and height else 0.0


def _load_text(path: Path, data: bytes, limits: ParseLimits, warnings: list[str], reading: PageReading) -> list[Page]:
    return [Page(str(path), 1, _decode(data[: _text_bytes(limits)], warnings))]


def _text_bytes(limits: ParseLimits) -> int:
    """A text file is one page: past what max_page_chars keeps (4 bytes a character at most), bytes are not read."""
    return 4 * limits.max_page_chars + 4


def bytes_to_parse(path: Path, data: bytes, limits: ParseLimits) -> bytes:
    """The part of ``data`` that loading ``path`` within ``limits`` reads: what a parse worker needs to be sent."""
    return data[: _text_bytes(limits)] if LOADERS.get(path.suffix.lower()) is _load_text else data


def _load_html(path: Path, data: bytes, limits: ParseLimits, warnings: list[str], reading: PageReading) -> list[Page]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(_decode(data, warnings), "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    return [Page(str(path), 1, soup.get_text("\n"))]


def _load_docx(path: Path, data: bytes, limits: ParseLimits, warnings: list[str], reading: PageReading) -> list[Page]:
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


def _load_image(path: Path, data: bytes, limits: ParseLimits, warnings: list[str], reading: PageReading) -> list[Page]:
    """An image is a page read by OCR; every frame of a multi-page TIFF is a page."""
    import io

    from PIL import ImageSequence, UnidentifiedImageError

    if limits.ocr == "never":
        raise LoadError("an image: its text can only be read by OCR, and OCR is off (ocr = never)")
    try:
        image = Image.open(io.BytesIO(data))
        frames = [frame.copy() for frame in islice(ImageSequence.Iterator(image), limits.max_pages)]
    except UnidentifiedImageError as exc:
        raise LoadError("not a readable image (damaged, or a format Pillow does not know)") from exc
    except Image.DecompressionBombError as exc:
        raise LoadError(f"image too large to read safely (a decompression bomb?): {str(exc)[:120]}") from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or damaged image data
        raise LoadError(f"corrupt or truncated image ({type(exc).__name__}: {str(exc)[:120]})") from exc
    frames_in_file = getattr(image, "n_frames", 1)
    if frames_in_file > limits.max_pages:
        warnings.append(f"only the first {limits.max_pages:,} of its {frames_in_file:,} pages indexed (max_pages)")
    read = reading.read([(number, partial(_upright, frame)) for number, frame in enumerate(frames, start=1)], warnings)
    return [Page(str(path), number, *read.get(number, ("", ()))) for number in range(1, len(frames) + 1)]


def _upright(image: Image.Image) -> Image.Image:
    """The image as a camera meant it (EXIF orientation applied), at most :data:`MAX_SIDE` pixels a side."""
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    return image


MAX_SIDE = 2400
"""A photo's longer side is scaled down to this many pixels before OCR (a phone's 4000 add time, not text)."""

IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

LOADERS: dict[str, Callable[[Path, bytes, ParseLimits, list[str], PageReading], list[Page]]] = {
    ".pdf": _load_pdf,
    ".txt": _load_text,
    ".md": _load_text,
    ".markdown": _load_text,
    ".html": _load_html,
    ".htm": _load_html,
    ".docx": _load_docx,
    **dict.fromkeys(IMAGE_TYPES, _load_image),
}


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in LOADERS


def check_supported(path: Path) -> None:
    if not is_supported(path):
        raise LoadError(f"unsupported file type {path.suffix or '(no extension)'!r}; supported: {', '.join(sorted(LOADERS))}")


def load_file(path: Path, data: bytes | None = None, limits: ParseLimits = ParseLimits(),
              reading: PageReading | None = None) -> Loaded:
    """Pages of raw text within ``limits``; raises :class:`LoadError` for anything that cannot be ingested.
    Image pages are read by ``reading``'s OCR reader (none given: a reader of this call's own)."""
    check_supported(path)
    warnings: list[str] = []
    reading = reading or PageReading()
    pages = LOADERS[path.suffix.lower()](path, read_source(path) if data is None else data, limits, warnings, reading)
    if not any(page.text.strip() for page in pages):
        raise LoadError("no text in the file")
    cut = [page.number for page in pages if len(page.text) > limits.max_page_chars]
    if cut:
        pages = [Page(page.source, page.number, page.text[: limits.max_page_chars], page.lines) for page in pages]
        where = f"page {cut[0]}" if len(cut) == 1 else f"{len(cut)} pages, from page {cut[0]},"
        warnings.append(f"{where} cut to {limits.max_page_chars:,} characters (max_page_chars)")
    return Loaded(pages, warnings)
