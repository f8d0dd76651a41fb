"""render_page on PDFs whose text positions are known (drawn with reportlab) and on the shared corpus."""
from __future__ import annotations

from math import ceil
from pathlib import Path

import numpy as np
import pytest

from app.page_image import PageImage, PageRenderError, _find_spans, _normalised, render_page

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
PAGE_W, PAGE_H = 595.0, 842.0  # A4 in points
X, SIZE = 72.0, 12.0  # left edge and font size of every line drawn
ENGLISH = "The charge indicator blinks green while charging and stays green when full."
ENGLISH_Y = 500.0  # baseline of ENGLISH on page 2
OTHER_Y = 700.0  # baseline of an unrelated line above it
CHINESE_1, CHINESE_2 = "检索增强生成先从知识库中找出相关的段落，再把这些知", "识交给语言模型回答问题。"
CHINESE_Y1, CHINESE_Y2 = 400.0, 380.0  # the sentence breaks inside the word 知识


def _pdf(path: Path, pages: list[list[tuple[float, str]]], font: str = "Helvetica", **canvas_args) -> Path:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen.canvas import Canvas

    if font == "STSong-Light":
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    canvas = Canvas(str(path), pagesize=(PAGE_W, PAGE_H), invariant=1, **canvas_args)
    for lines in pages:
        canvas.setFont(font, SIZE)
        for y, text in lines:
            canvas.drawString(X, y, text)
        canvas.showPage()
    canvas.save()
    return path


@pytest.fixture(scope="module")
def english(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pages = [[(700, "Page one is about something else entirely.")],
             [(OTHER_Y, "Unrelated heading line on the second page"), (ENGLISH_Y, ENGLISH)],
             [(700, "Page three closes the guide.")]]
    return _pdf(tmp_path_factory.mktemp("en") / "lantern guide.pdf", pages)


@pytest.fixture(scope="module")
def chinese(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pages = [[(600, "第一页"), (CHINESE_Y1, CHINESE_1), (CHINESE_Y2, CHINESE_2)]]
    return _pdf(tmp_path_factory.mktemp("zh") / "检索说明.pdf", pages, font="STSong-Light")


def _tinted_rows(marked: PageImage, plain: PageImage) -> tuple[np.ndarray, np.ndarray]:
    """Row indices where the marked render became yellower (blue drops, red stays) than the plain one."""
    a = np.asarray(marked.image, dtype=np.int16)
    b = np.asarray(plain.image, dtype=np.int16)
    yellower = (b[..., 2] - a[..., 2] > 30) & (np.abs(a[..., 0] - b[..., 0]) < 30)
    return np.nonzero(yellower.any(axis=1))[0], yellower


def _band(baselines: list[float], scale: float) -> tuple[float, float]:
    """Pixel rows from a font-size above the highest baseline to half a font-size below the lowest."""
    return (PAGE_H - max(baselines) - SIZE) * scale, (PAGE_H - min(baselines) + SIZE / 2) * scale


def test_english_sentence_is_marked_where_it_was_drawn(english: Path) -> None:
    scale = 2.0
    shot = render_page(english, 2, ENGLISH, scale=scale)
    plain = render_page(english, 2, "a passage that is not on this page at all", scale=scale)
    assert shot.marked and shot.boxes >= 1 and not plain.marked and plain.boxes == 0
    assert shot.image.mode == "RGB" and shot.image.size == (ceil(PAGE_W * scale), ceil(PAGE_H * scale))
    rows, mask = _tinted_rows(shot, plain)
    top, bottom = _band([ENGLISH_Y], scale)
    assert rows.size >= SIZE * scale * 0.6, "nothing, or too little, was tinted"
    assert top <= rows.min() and rows.max() <= bottom, f"tint on rows {rows.min()}-{rows.max()}, text {top}-{bottom}"
    columns = np.nonzero(mask.any(axis=0))[0]
    from reportlab.pdfbase.pdfmetrics import stringWidth
    assert X * scale - 4 <= columns.min() < (X + 20) * scale
    end = (X + stringWidth(ENGLISH, "Helvetica", SIZE)) * scale
    assert end - 3 * SIZE <= columns.max() <= end + 4, "the tint stops where the sentence does"
    # the tint covers the sentence: most of its band is yellow, an unmarked line's band is untouched
    band = np.asarray(shot.image)[int(top) + 8:int(bottom) - 8, int(X * scale) + 10:int((X + 300) * scale)]
    assert band[..., 2].mean() < band[..., 0].mean() - 40
    other = np.asarray(shot.image)[int((PAGE_H - OTHER_Y - SIZE) * scale):int((PAGE_H - OTHER_Y + 6) * scale)]
    assert abs(int(other[..., 2].mean()) - int(other[..., 0].mean())) < 3


def test_around_passage_crops_to_the_marked_band(english: Path) -> None:
    scale = 2.0
    shot = render_page(english, 2, ENGLISH, scale=scale)
    top, bottom = _band([ENGLISH_Y], scale)
    left, area_top, right, area_bottom = shot.area
    assert top - 2 <= area_top < area_bottom <= bottom + 2 and left < right
    crop = shot.around_passage(margin=0.1)
    pad = int(0.1 * shot.image.size[1])
    assert crop.size == (shot.image.size[0], min(shot.image.size[1], area_bottom + pad) - max(0, area_top - pad))
    unmarked = render_page(english, 1, ENGLISH)
    assert unmarked.area is None and unmarked.around_passage() is unmarked.image


def test_image_size_follows_scale(english: Path) -> None:
    shot = render_page(english, 1, "Page one", scale=1.0)
    assert shot.image.size == (ceil(PAGE_W), ceil(PAGE_H))
    assert render_page(english, 1, "Page one").image.size == (ceil(PAGE_W * 1.5), ceil(PAGE_H * 1.5))


def test_passage_with_different_whitespace_is_found(english: Path) -> None:
    passage = "  The charge   indicator blinks\ngreen while\n\ncharging and stays green when full. "
    assert render_page(english, 2, passage).marked


def test_chinese_passage_broken_inside_a_word_is_found_and_marked_on_both_lines(chinese: Path) -> None:
    scale = 1.5
    passage = "检索增强 生成先从知识库中找出相关的段落，再把这些知\n识交给语言模型回答问题。"  # extra space, break in 知识
    shot = render_page(chinese, 1, passage, scale=scale)
    plain = render_page(chinese, 1, "完全不在这一页上的句子", scale=scale)
    assert shot.marked and shot.boxes >= 2 and not plain.marked
    rows, _ = _tinted_rows(shot, plain)
    top, bottom = _band([CHINESE_Y1, CHINESE_Y2], scale)
    assert rows.size and top <= rows.min() and rows.max() <= bottom
    first_line_end = (PAGE_H - CHINESE_Y1 + SIZE / 2) * scale
    assert rows.min() < first_line_end < rows.max(), "both lines of the sentence are tinted"


def test_chinese_normalised_like_the_ingested_text(chinese: Path) -> None:
    from rag.text import clean_text

    assert render_page(chinese, 1, clean_text(CHINESE_1 + "\n" + CHINESE_2)).marked


def test_partial_match_marks_the_part_that_is_on_the_page(english: Path) -> None:
    tail = " and then this passage continues with words that the page never had in it."
    prefix = render_page(english, 2, ENGLISH + tail)
    window = render_page(english, 2, "Words from another page, long enough to not match. " + ENGLISH)
    assert prefix.marked and window.marked
    assert not render_page(english, 2, "The charge indicator blinks red").marked  # short and partial: no mark


def test_passage_not_on_page_returns_the_unmarked_page(english: Path) -> None:
    shot = render_page(english, 1, ENGLISH)  # the sentence is on page 2, not 1
    assert not shot.marked and shot.boxes == 0 and shot.image.size == (ceil(PAGE_W * 1.5), ceil(PAGE_H * 1.5))
    assert render_page(english, 2, "").marked is False


def test_normalised_keeps_a_map_to_source_chars() -> None:
    assert _normalised("ﬁle a\r\nb－1") == ("fileab1", [0, 0, 1, 2, 4, 7, 9])  # ligature, full-width hyphen
    assert _normalised("知\n识") == ("知识", [0, 2])
    haystack = "x" * 10 + "abcdefghij" * 6 + "y" * 10
    assert _find_spans(haystack, "abcdefghij" * 6) == [(10, 70)]
    assert _find_spans(haystack, "abcdefghij" * 5 + "QQQQQ") == [(10, 60)]  # longest prefix
    assert _find_spans(haystack, "short miss") == []


@pytest.mark.parametrize("page", [0, 4, -1])
def test_page_out_of_range(english: Path, page: int) -> None:
    with pytest.raises(PageRenderError, match="lantern guide.pdf") as error:
        render_page(english, page, ENGLISH)
    assert "out of range" in str(error.value) and "\n" not in str(error.value)


def test_not_a_pdf(tmp_path: Path) -> None:
    fake = tmp_path / "notes.pdf"
    fake.write_text("just some text, not a PDF\n")
    with pytest.raises(PageRenderError, match="notes.pdf"):
        render_page(fake, 1, "text")
    with pytest.raises(PageRenderError, match="missing.pdf"):
        render_page(tmp_path / "missing.pdf", 1, "text")


def test_encrypted_pdf(tmp_path: Path) -> None:
    locked = _pdf(tmp_path / "locked.pdf", [[(500, ENGLISH)]], encrypt="secret")
    with pytest.raises(PageRenderError, match=r"locked\.pdf.*encrypted"):
        render_page(locked, 1, ENGLISH)


@pytest.mark.parametrize("name", ["en/acl2020-main-447.pdf", "zh/elegantpaper-cn.pdf"])
def test_shared_corpus_page_two(name: str) -> None:
    from pypdf import PdfReader

    from rag.text import clean_text

    pdf = CORPUS / name
    if not pdf.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    text = clean_text(PdfReader(pdf).pages[1].extract_text())
    middle = len(text) // 2
    shot = render_page(pdf, 2, text[middle - 100:middle + 100])
    assert shot.marked and shot.boxes >= 1
    plain = render_page(pdf, 2, "")
    assert shot.image.size == plain.image.size and shot.image.tobytes() != plain.image.tobytes()


def test_a_table_row_quote_is_marked_on_its_page() -> None:
    from ingest.chunking import Chunker
    from ingest.loaders import load_file

    pdf = CORPUS / "en" / "federal-register-2020-17221.pdf"
    if not pdf.is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    page = Chunker().clean(load_file(pdf).pages)[5].text
    row = next(line for line in page.splitlines() if line.startswith("| AOA sensor system test |"))
    shot = render_page(pdf, 6, row)
    assert shot.marked and shot.area is not None and shot.area[1] < shot.image.size[1] // 4  # the table sits at the top
