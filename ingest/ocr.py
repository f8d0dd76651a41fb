"""OCR of page images: rapidocr's PP-OCRv6 models (inside its wheel, run by onnxruntime; no download),
Chinese and English, turned into page text that searches like a text layer.

Each recognised line keeps its box (as shares of the page's width and height), so a quoted passage can
be marked on the page image. Lines come out in reading order: top to bottom, a two-column page column by
column, the words of one visual row joined left to right; a blank line between blocks. A page turned by
90 or 180 degrees is read upright (the direction classifier's verdict on its longest lines decides).

Example:
    >>> reader = OcrReader()
    >>> lines = reader.read(Image.open("scan.png"))  # doctest: +SKIP
    >>> page_text(lines)  # doctest: +SKIP
    '保修期为两年。\\nThe warranty lasts two years.'
"""
from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

DPI = 150
"""Resolution at which a PDF page is rendered for OCR."""
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

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class OcrReader:
    """Reads page images with rapidocr, loaded on first use (about 3 s) and kept for the process's life.

    Example:
        >>> [line.text for line in OcrReader().read(Image.open("page.png"))]  # doctest: +SKIP
        ['A full charge takes about 10 hours.']
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
        return lines


def _lying(lines: list[OcrLine]) -> bool:
    """Whether most text boxes stand upright (taller than wide): the page lies on its side."""
    long = [line for line in lines if len(line.text) >= 4]
    # boxes are shares of width and height: compare them on the same scale by the page's aspect
    return len(long) >= 3 and sum(line.height > (line.box[2] - line.box[0]) for line in long) > 0.6 * len(long)


def reading_order(lines: list[OcrLine]) -> list[OcrLine]:
    """``lines`` top to bottom; where the page has two columns (a gutter that no narrow line crosses,
    with lines on both sides), the left column's lines come before the right's, between the full-width
    lines that span the gutter."""
    if not lines:
        return []
    gutter = _gutter(lines)
    ordered = sorted(lines, key=lambda line: (line.box[1], line.box[0]))
    if gutter is None:
        return ordered
    out: list[OcrLine] = []
    band: list[OcrLine] = []
    for line in ordered:
        if line.box[0] < gutter < line.box[2]:  # spans both columns: ends the band above it
            out += _columns(band, gutter) + [line]
            band = []
        else:
            band.append(line)
    return out + _columns(band, gutter)


def _columns(band: list[OcrLine], gutter: float) -> list[OcrLine]:
    return [line for line in band if line.box[2] <= gutter] + [line for line in band if line.box[2] > gutter]


def _gutter(lines: list[OcrLine], bins: int = 200) -> float | None:
    """The x (share of the page width) of an empty vertical band in the middle third of the page that
    narrow lines (under half the page wide) stay clear of, with a fifth of them or more on each side."""
    narrow = [line for line in lines if line.box[2] - line.box[0] < 0.5]
    if len(narrow) < 6:
        return None
    covered = np.zeros(bins, dtype=bool)
    for line in narrow:
        covered[int(line.box[0] * bins):int(np.ceil(line.box[2] * bins))] = True
    best: float | None = None
    for start in range(bins // 3, 2 * bins // 3):
        if not covered[start]:
            x = (start + 0.5) / bins
            left = sum(line.box[2] <= x for line in narrow)
            right = sum(line.box[0] >= x for line in narrow)
            if min(left, right) >= 0.2 * len(narrow):
                if best is None or abs(x - 0.5) < abs(best - 0.5):
                    best = x
    return best


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
        if i and row[0].box[1] - max(line.box[3] for line in rows[i - 1]) > statistics.median(line.height for line in row):
            out.append("")
        out.append(" ".join(line.text for line in sorted(row, key=lambda line: line.box[0])))
    return "\n".join(out)


def _same_row(a: OcrLine, b: OcrLine) -> bool:
    """Whether two boxes sit side by side on one visual row (they overlap by half the lower height)."""
    overlap = min(a.box[3], b.box[3]) - max(a.box[1], b.box[1])
    return overlap > 0.5 * min(a.height, b.height) and (b.box[0] >= a.box[2] or a.box[0] >= b.box[2])
