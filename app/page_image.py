"""Render one PDF page (or an image's page) with a cited passage marked on it (CPU only, via pypdfium2).

The passage comes from the index's cleaned text (NFKC, whitespace collapsed, CJK line breaks removed,
tables written as ``| cell | cell |`` rows), so it is located in a whitespace-free NFKC copy of pdfium's
text layer (or of the page's OCR lines), without hyphens, dot leaders and table bars, not searched verbatim.
"""
from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image, ImageDraw, ImageOps

from ingest.loaders import IMAGE_TYPES
from rag.documents import LineBox

WINDOW = 40  # normalised chars in a fallback window; also the shortest partial match that is marked
_DROPPED = frozenset("-\u00ad\u2010\u2011\ufffe\x02|.⋅·")  # hyphens (joined at line ends), table bars, dot leaders
_FILL = (255, 190, 0, 96)  # semi-transparent yellow-orange


class PageRenderError(RuntimeError):
    """The page could not be rendered: not a PDF, encrypted, unreadable, or the page does not exist."""


@dataclass(frozen=True)
class PageImage:
    """A rendered page: ``marked`` when the passage was found in the text layer, ``boxes`` rectangles drawn.

    Example:
        >>> shot = render_page(Path("docs/lumen-l2-guide.pdf"), 1, "Lumen L2 Solar Lantern")
        >>> shot.marked, shot.image.width > 500
        (True, True)
    """

    image: Image.Image
    marked: bool
    boxes: int
    area: tuple[int, int, int, int] | None = None
    """The marked region in pixels (left, top, right, bottom), for zooming in on it."""

    def around_passage(self, margin: float = 0.12) -> Image.Image:
        """The full-width band of the page around the marked region (``margin``: share of the page height
        kept above and below), or the whole page when nothing is marked."""
        if self.area is None:
            return self.image
        width, height = self.image.size
        pad = int(margin * height)
        return self.image.crop((0, max(0, self.area[1] - pad), width, min(height, self.area[3] + pad)))


def _normalised(chars: str) -> tuple[str, list[int]]:
    """NFKC per char with whitespace, control characters and hyphens dropped; map back to char indices."""
    out: list[str] = []
    index: list[int] = []
    for i, char in enumerate(chars):
        for c in unicodedata.normalize("NFKC", char):
            if not (c.isspace() or c in _DROPPED or unicodedata.category(c) in ("Cc", "Cf", "Cs")):
                out.append(c)
                index.append(i)
    return "".join(out), index


def _find_spans(haystack: str, needle: str) -> list[tuple[int, int]]:
    """Spans (start, end) of ``haystack`` that match ``needle``: all of it, else its longest prefix and windows."""
    if not needle:
        return []
    if (start := haystack.find(needle)) >= 0:
        return [(start, start + len(needle))]
    low, high = 0, len(needle) - 1  # longest prefix found: found prefixes are closed under shortening
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if needle[:mid] in haystack else (low, mid - 1)
    spans = [(start, start + low)] if low >= WINDOW and (start := haystack.find(needle[:low])) >= 0 else []
    for offset in range(0, len(needle) - WINDOW + 1, WINDOW // 2):
        if (start := haystack.find(needle[offset:offset + WINDOW])) >= 0:
            spans.append((start, start + WINDOW))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def render_page(source: Path, page: int, passage: str, scale: float = 1.5, lines: Sequence[LineBox] = ()) -> PageImage:
    """Render 1-based ``page`` of a PDF at ``scale`` pixels per PDF point (size: ceil(points × scale)), or
    frame ``page`` of an image, the passage's characters tinted; raises :class:`PageRenderError` when the
    page cannot be rendered. The passage is found in the PDF's text layer or, where that does not hold
    it (a scanned page, an image), in the page's OCR ``lines``.

    Example:
        >>> shot = render_page(Path("docs/lumen-l2-guide.pdf"), 1, "Lumen L2 Solar Lantern")
        >>> shot.image.save("page-1.png")
    """
    if source.suffix.lower() in IMAGE_TYPES:
        image = _image_page(source, page)
        return _marked(image, _line_boxes(image.size, lines, passage))
    try:
        document = pdfium.PdfDocument(Path(source))
    except FileNotFoundError:
        raise PageRenderError(f"{source}: no such file") from None
    except pdfium.PdfiumError as exc:
        code = getattr(exc, "err_code", None)
        reason = {pdfium_c.FPDF_ERR_PASSWORD: "encrypted (a password is needed)",
                  pdfium_c.FPDF_ERR_FORMAT: "not a PDF or damaged"}.get(code, str(exc).rstrip("."))
        raise PageRenderError(f"{source}: cannot open: {reason}") from None
    try:
        if not 1 <= page <= len(document):
            raise PageRenderError(f"{source}: page {page} is out of range (the document has {len(document)} pages)")
        try:
            pdf_page = document[page - 1]
            bitmap = pdf_page.render(scale=scale)
            image = bitmap.to_pil().convert("RGB")
            textpage = pdf_page.get_textpage()
            codes = (pdfium_c.FPDFText_GetUnicode(textpage.raw, i) for i in range(textpage.count_chars()))
            chars = "".join(chr(c) if c < 0x110000 else "\ufffd" for c in codes)
        except (pdfium.PdfiumError, ValueError) as exc:
            raise PageRenderError(f"{source}: page {page} is unreadable: {exc}") from None
        text, where = _normalised(chars)
        rects: list[tuple[float, float, float, float]] = []
        for start, end in _find_spans(text, _normalised(passage)[0]):
            first, last = where[start], where[end - 1]
            rects += [textpage.get_rect(i) for i in range(textpage.count_rects(first, last - first + 1))]
        convert = bitmap.get_posconv(pdf_page)
        boxes = []
        for left, bottom, right, top in rects:
            (x0, y0), (x1, y1) = convert.to_bitmap(left, top), convert.to_bitmap(right, bottom)
            boxes.append((min(x0, x1) - 1, min(y0, y1) - 1, max(x0, x1) + 1, max(y0, y1) + 1))
        return _marked(image, boxes or _line_boxes(image.size, lines, passage))
    finally:
        document.close()


def _image_page(source: Path, page: int) -> Image.Image:
    """Frame ``page`` of an image file, upright, at most 1600 pixels a side."""
    try:
        with Image.open(source) as opened:
            if not 1 <= page <= getattr(opened, "n_frames", 1):
                raise PageRenderError(f"{source}: page {page} is out of range")
            opened.seek(page - 1)
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except FileNotFoundError:
        raise PageRenderError(f"{source}: no such file") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PageRenderError(f"{source}: cannot open: {exc}") from None
    image.thumbnail((1600, 1600))
    return image


def _line_boxes(size: tuple[int, int], lines: Sequence[LineBox], passage: str) -> list[tuple[float, float, float, float]]:
    """Pixel boxes of the passage on a page read by OCR: each line's characters spread evenly over its box,
    and the matched characters of a line marked as one box."""
    chars: list[str] = []
    spots: list[tuple[int, float, float]] = []  # (line, left share, right share) per character
    for number, line in enumerate(lines):
        left, _, right, _ = line.box
        step = (right - left) / max(1, len(line.text))
        for i, char in enumerate(line.text + "\n"):
            chars.append(char)
            spots.append((number, left + i * step, left + (i + 1) * step))
    text, where = _normalised("".join(chars))
    marked: dict[int, tuple[float, float]] = {}
    for start, end in _find_spans(text, _normalised(passage)[0]):
        for position in where[start:end]:
            number, left, right = spots[position]
            low, high = marked.get(number, (left, right))
            marked[number] = (min(low, left), max(high, right))
    width, height = size
    return [(low * width - 1, lines[n].box[1] * height - 1, high * width + 1, lines[n].box[3] * height + 1)
            for n, (low, high) in sorted(marked.items())]


def _marked(image: Image.Image, boxes: list[tuple[float, float, float, float]]) -> PageImage:
    """``image`` with ``boxes`` tinted (see :class:`PageImage`)."""
    if not boxes:
        return PageImage(image=image, marked=False, boxes=0)
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for box in boxes:
        draw.rectangle(box, fill=_FILL)
    image = Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")
    area = (int(min(b[0] for b in boxes)), int(min(b[1] for b in boxes)), int(max(b[2] for b in boxes)), int(max(b[3] for b in boxes)))
    return PageImage(image=image, marked=True, boxes=len(boxes), area=area)
