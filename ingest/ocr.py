"""OCR of page images: rapidocr's PP-OCRv6 models (inside its wheel, run by onnxruntime; no download),
Chinese and English, turned into page text that searches like a text layer.

Each recognised line keeps its box (as shares of the page's width and height), so a quoted passage can
be marked on the page image. Lines come out in reading order: top to bottom, a two-column page column by
column, the words of one visual row joined left to right; a blank line between blocks. A page turned by
90 or 180 degrees is read upright (the direction classifier's verdict on its longest lines decides).

Example, on the first page of a PDF rendered as a scanner would see it:
    >>> import pypdfium2 as pdfium
    >>> image = pdfium.PdfDocument("docs/lumen-l2-guide.pdf")[0].render(scale=2).to_pil()
    >>> page_text(OcrReader().read(image)).splitlines()[0]
    'Lumen L2 Solar Lantern: User Guide'
"""
from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

DPI = 150
"""Resolution at which a PDF page is rendered for OCR."""
DETECT_SIDE = 1280
"""The longer side, in pixels, of the page image that text lines are detected on (rapidocr's default
leaves a 150 dpi A4 page at 1754: 1.5 times slower for no better text on scans of the shared corpus)."""
MIN_SCORE = 0.5
"""Recognised lines below this confidence are dropped (noise, stamps, specks)."""
_SAMPLE_LINES = 8
"""Lines whose direction decides whether a page is upside down."""
_SURE = 0.8
"""The direction classifier's least confidence for a line to count as upside down."""


@dataclass(frozen=True)
class OcrLine:
    """One recognised line: its text, its box ``(left, top, right, bottom)`` as shares of the page's width
    and height, and the recogniser's confidence."""

    text: str
    box: tuple[float, float, float, float]
    score: float = 1.0
    level_box: tuple[float, float, float, float] | None = None
    """The box with the page's tilt taken out (see :func:`_levelled`), for layout; None: not tilted."""

    @property
    def level(self) -> tuple[float, float, float, float]:
        return self.level_box or self.box

    @property
    def height(self) -> float:
        return self.level[3] - self.level[1]


class OcrReader:
    """Reads page images with rapidocr, loaded on first use (about 3 s) and kept for the process's life.

    Usage (see the module's example)::

        [line.text for line in OcrReader().read(Image.open("page.png"))]  # ['A full charge takes about 10 hours.']
    """

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        """onnxruntime's threads per model run; 0: as many as cores."""
        self._engine: Any = None

    def _ocr(self) -> Any:
        if self._engine is None:
            from rapidocr import RapidOCR

            logging.getLogger("RapidOCR").setLevel(logging.ERROR)
            threads = self.threads or -1
            self._engine = RapidOCR(params={
                "Global.log_level": "error", "Global.use_cls": False, "Global.text_score": MIN_SCORE,
                # lines are found on the page scaled to DETECT_SIDE pixels, and read at full resolution
                "Det.limit_type": "max", "Det.limit_side_len": DETECT_SIDE,
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            })
        return self._engine

    def read(self, image: Image.Image) -> list[OcrLine]:
        """The lines of ``image`` in reading order, turned upright first when the page lies on its side or
        upside down (the recogniser reads upside-down lines well, so the direction classifier decides on
        the longest lines' crops)."""
        grey = image.convert("L")
        lines = self._lines(grey)
        if _lying(lines):
            # turned clockwise, unless its lines then read upside down
            turn = 270 if not self._upside_down(grey, lines, 270) else 90
            return reading_order(self._lines(grey.rotate(turn, expand=True, fillcolor=255)))
        if self._upside_down(grey, lines, 0):
            return reading_order(self._lines(grey.rotate(180, expand=True, fillcolor=255)))
        return reading_order(lines)

    def _upside_down(self, grey: Image.Image, lines: list[OcrLine], turn: int) -> bool:
        """Whether most of the longest lines, cut out of ``grey`` and turned by ``turn`` degrees, are
        upside down by the direction classifier."""
        longest = sorted(lines, key=lambda line: -len(line.text))[:_SAMPLE_LINES]
        if not longest:
            return False
        width, height = grey.size
        crops = [np.asarray(grey.crop((int(a * width), int(b * height), int(c * width) + 1, int(d * height) + 1))
                            .rotate(turn, expand=True, fillcolor=255).convert("RGB")) for a, b, c, d in (line.box for line in longest)]
        verdicts = self._ocr()._load_cls_model()(crops).cls_res
        return sum(label == "180" and score >= _SURE for label, score in verdicts) > len(crops) / 2

    def _lines(self, grey: Image.Image) -> list[OcrLine]:
        result = self._ocr()(np.asarray(grey.convert("RGB")))
        if result.boxes is None or result.txts is None:
            return []
        width, height = grey.size
        lines = []
        for box, text, score in zip(result.boxes, result.txts, result.scores, strict=True):
            xs, ys = [float(p[0]) for p in box], [float(p[1]) for p in box]
            if text.strip():
                lines.append(OcrLine(text.strip(), (min(xs) / width, min(ys) / height, max(xs) / width, max(ys) / height),
                                     float(score)))
        return _levelled(lines, _tilt(result.boxes), width / height)


def _tilt(quads: Any) -> float:
    """The page's tilt (radians, clockwise positive in image coordinates): the median slope of the top
    edges of its long text boxes (rapidocr's boxes are quadrilaterals that follow the text)."""
    slopes = [np.arctan2(q[1][1] - q[0][1], q[1][0] - q[0][0]) for q in quads
              if q[1][0] - q[0][0] > 5 * max(1.0, q[3][1] - q[0][1])]
    return float(np.median(slopes)) if len(slopes) >= 3 else 0.0


def _levelled(lines: list[OcrLine], tilt: float, aspect: float) -> list[OcrLine]:
    """``lines`` with their layout boxes turned by ``-tilt`` about the page's centre (``aspect``: width
    over height): on a scan tilted by a degree, a table row's right end sits a row lower than its left
    end, and a column's bottom a gutter's width to the side of its top."""
    if abs(tilt) < 0.001:
        return lines
    slope = np.tan(tilt)
    out = []
    for line in lines:
        x0, y0, x1, y1 = line.box
        cx, cy = (x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5
        dy = -cx * slope * aspect  # in shares of the height
        dx = cy * slope / aspect  # in shares of the width
        out.append(replace(line, level_box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy)))
    return out


def _lying(lines: list[OcrLine]) -> bool:
    """Whether most text boxes stand upright (taller than wide): the page lies on its side."""
    long = [line for line in lines if len(line.text) >= 4]
    # boxes are shares of width and height: compare them on the same scale by the page's aspect
    return len(long) >= 3 and sum(line.height > (line.box[2] - line.box[0]) for line in long) > 0.6 * len(long)


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """``lines`` top to bottom; where the page has columns (gutters that no column-wide line crosses, with
    lines on each side), the columns' lines come left to right, each top to bottom, between the lines that
    span a gutter (a title, a full-width figure caption)."""
    if not lines:
        return []
    gutters = _gutters(lines)
    ordered = sorted(lines, key=lambda line: (line.level[1], line.level[0]))
    if not gutters:
        return ordered
    out: list[OcrLine] = []
    band: list[OcrLine] = []
    for line in ordered:
        if any(line.level[0] + _REACH < gutter < line.level[2] - _REACH for gutter in gutters):  # spans columns: ends the band
            out += _by_column(band, gutters) + [line]
            band = []
        else:
            band.append(line)
    return out + _by_column(band, gutters)


def _by_column(band: list[OcrLine], gutters: list[float]) -> list[OcrLine]:
    """The band's lines column by column (by their centres), each column top to bottom."""
    return sorted(band, key=lambda line: (sum((line.level[0] + line.level[2]) / 2 > gutter for gutter in gutters),
                                          line.level[1], line.level[0]))


_REACH = 0.05
"""How far (a share of the page width) a line must reach past a gutter on both sides to span it: a tilted
scan's lines overhang a narrow gutter a little."""


COLUMN_LINE = (0.15, 0.5)
"""Widths (shares of the page) of a text line inside a column: table cells are narrower, titles wider."""


def _gutters(lines: list[OcrLine], bins: int = 200) -> list[float]:
    """The x (shares of the page width) of the gutters between columns: between 15% and 85% of the width,
    the least-crossed x of each band that a quarter or less as many column lines (:data:`COLUMN_LINE`)
    cross as cross the page's busy parts (a scan's slight tilt makes some lines reach over a narrow
    gutter), with a tenth of those lines or more on both sides."""
    narrow = [line for line in lines if COLUMN_LINE[0] <= line.level[2] - line.level[0] < COLUMN_LINE[1]]
    if len(narrow) < 6:
        return []
    crossing = np.zeros(bins, dtype=int)
    for line in narrow:
        crossing[int(line.level[0] * bins):int(np.ceil(line.level[2] * bins))] += 1
    low, high = int(0.15 * bins), int(0.85 * bins)
    sparse = crossing <= 0.25 * np.percentile(crossing[low:high], 75)
    gutters: list[float] = []
    i = low
    while i <= high:
        if not sparse[i]:
            i += 1
            continue
        end = i
        while end + 1 <= high and sparse[end + 1]:
            end += 1
        x = (i + int(np.argmin(crossing[i:end + 1])) + 0.5) / bins
        left = sum(line.level[2] <= x and all(line.level[0] >= g for g in gutters[-1:]) for line in narrow)
        right = sum(line.level[0] >= x for line in narrow)
        if min(left, right) >= 0.1 * len(narrow):
            gutters.append(x)
        i = end + 1
    return gutters


def page_text(lines: list[OcrLine]) -> str:
    """Page text from lines in reading order: the boxes of one visual row joined left to right, one row
    per line, a blank line where the gap to the next row is more than a row's height (a new block).
    :func:`rag.text.clean_text` then joins the rows of a paragraph, without spaces between CJK characters."""
    rows: list[list[OcrLine]] = []
    for line in lines:
        row = rows[-1] if rows else None
        if row and _same_row(row[-1], line):
            row.append(line)
        else:
            rows.append([line])
    out: list[str] = []
    for i, row in enumerate(rows):
        if i and row[0].level[1] - max(line.level[3] for line in rows[i - 1]) > statistics.median(line.height for line in row):
            out.append("")
        out.append(" ".join(line.text for line in sorted(row, key=lambda line: line.level[0])))
    return "\n".join(out)


def _same_row(a: OcrLine, b: OcrLine) -> bool:
    """Whether two boxes sit side by side on one visual row (they overlap by half the lower height)."""
    overlap = min(a.level[3], b.level[3]) - max(a.level[1], b.level[1])
    return overlap > 0.5 * min(a.height, b.height) and (b.level[0] >= a.level[2] or a.level[0] >= b.level[2])
