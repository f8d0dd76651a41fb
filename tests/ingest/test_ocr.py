"""OCR of scanned pages and images: real pages of ../shared/corpus rendered to image-only PDFs and images,
read back by rapidocr's packaged models; reading order and row joining on synthetic line boxes."""
import io
import unicodedata
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from app.page_image import render_page
from ingest.loaders import LoadError, PageReading, ParseLimits, load_file
from ingest.ocr import OcrLine, OcrReader, page_text, reading_order
from ingest.pipeline import Ingestor
from rag.config import ConfigError, Settings
from rag.index import Index
from rag.retrieve import Mode, Retriever


def _squeezed(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def _accuracy(real: str, read: str) -> float:
    """1 - CER after NFKC with whitespace removed (difflib's alignment: no extra dependency in tests)."""
    import difflib

    real, read = _squeezed(real), _squeezed(read)
    matcher = difflib.SequenceMatcher(None, real, read, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / max(len(real), len(read))


def _scan(pdf: Path, page: int, crop: tuple[float, float] = (0.0, 1.0), rotate: int = 0) -> tuple[Image.Image, str]:
    """Page ``page`` of a real PDF rendered at 150 dpi in grey, cut to a band of its height, turned by
    ``rotate`` degrees; and the text layer of that band."""
    document = pdfium.PdfDocument(pdf)
    try:
        source = document[page - 1]
        image = source.render(scale=150 / 72, grayscale=True).to_pil().convert("L")
        width, height = source.get_size()
        top, bottom = crop
        text = source.get_textpage().get_text_bounded(0, height * (1 - bottom), width, height * (1 - top))
    finally:
        document.close()
    band = image.crop((0, int(top * image.height), image.width, int(bottom * image.height)))
    return band.rotate(rotate, expand=True, fillcolor=255), text


def _image_pdf(images: list[Image.Image], path: Path) -> Path:
    images[0].save(path, "PDF", resolution=150, save_all=True, append_images=images[1:])
    return path


@pytest.fixture(scope="module")
def reading() -> PageReading:
    return PageReading(OcrReader())


def test_a_scanned_chinese_and_english_page_is_read_with_its_boxes(shared_corpus: Path, tmp_path: Path, reading: PageReading):
    chinese, chinese_text = _scan(shared_corpus / "zh" / "elegantpaper-cn.pdf", 1, (0.3, 0.45))
    english, english_text = _scan(shared_corpus / "en" / "scotus-transcript-p1.pdf", 1, (0.463, 0.695))  # between lines
    scan = _image_pdf([chinese, english], tmp_path / "scan.pdf")
    pages = load_file(scan, reading=reading).pages
    assert [p.number for p in pages] == [1, 2]
    assert _accuracy(chinese_text, pages[0].text) > 0.95
    assert _accuracy(english_text, pages[1].text) > 0.9
    assert "本文为ElegantPaper的说明文档" in _squeezed(pages[0].text)
    assert "CHARLES M. SEVILLA, ESQ., San Diego" in pages[1].text
    for page in pages:
        assert page.lines and all(0 <= x <= 1 for line in page.lines for x in line.box)
        assert [line.box[1] for line in page.lines] == sorted(line.box[1] for line in page.lines)


def test_a_page_on_its_side_or_upside_down_is_read_upright(shared_corpus: Path, reading: PageReading):
    upright, _ = _scan(shared_corpus / "zh" / "elegantpaper-cn.pdf", 1, (0.1, 0.5))
    want = _squeezed(page_text(reading.reader.read(upright)))  # type: ignore[union-attr]
    for angle in (90, 180, 270):
        read = _squeezed(page_text(reading.reader.read(upright.rotate(angle, expand=True, fillcolor=255))))  # type: ignore[union-attr]
        assert _accuracy(want, read) > 0.9, angle


def test_images_are_documents_every_tiff_frame_a_page(shared_corpus: Path, tmp_path: Path, reading: PageReading):
    first, first_text = _scan(shared_corpus / "en" / "scotus-transcript-p1.pdf", 1, (0.463, 0.6))
    second, second_text = _scan(shared_corpus / "zh" / "elegantpaper-cn.pdf", 1, (0.3, 0.38))
    first.save(tmp_path / "photo.png")
    first.save(tmp_path / "two.tiff", save_all=True, append_images=[second])
    assert _accuracy(first_text, load_file(tmp_path / "photo.png", reading=reading).pages[0].text) > 0.9
    pages = load_file(tmp_path / "two.tiff", reading=reading).pages
    assert [p.number for p in pages] == [1, 2] and _accuracy(second_text, pages[1].text) > 0.9
    with pytest.raises(LoadError, match="OCR is off"):
        load_file(tmp_path / "photo.png", limits=ParseLimits(ocr="never"), reading=reading)


def test_with_ocr_off_a_scan_fails_with_the_reason(shared_corpus: Path, tmp_path: Path, reading: PageReading):
    scan = _image_pdf([_scan(shared_corpus / "en" / "scotus-transcript-p1.pdf", 1, (0.45, 0.5))[0]], tmp_path / "s.pdf")
    with pytest.raises(LoadError, match=r"no text layer in any of its 1 pages \(scanned or image-only PDF; OCR is off"):
        load_file(scan, limits=ParseLimits(ocr="never"), reading=reading)
    with pytest.raises(ConfigError, match="ocr='sometimes' is not valid"):
        Settings.resolve({"ocr": "sometimes"}, env={})


def test_a_page_whose_ocr_fails_is_reported_by_number_and_the_rest_kept(shared_corpus: Path, tmp_path: Path):
    class FailsOnSecondPage(OcrReader):
        """Fault injection: the second page read raises, as a damaged image would."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def read(self, image: Image.Image) -> list[OcrLine]:
            self.calls += 1
            if self.calls == 2:
                raise ValueError("bad page image")
            return super().read(image)

    band, _ = _scan(shared_corpus / "en" / "scotus-transcript-p1.pdf", 1, (0.45, 0.55))
    progress: list[tuple[int, int]] = []
    loaded = load_file(_image_pdf([band, band, band], tmp_path / "three.pdf"),
                       reading=PageReading(FailsOnSecondPage(), on_page=lambda done, total: progress.append((done, total))))
    assert loaded.warnings == ["page 2: OCR failed (ValueError: bad page image)"]
    assert [bool(p.text) for p in loaded.pages] == [True, False, True]
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_a_scanned_pdf_is_ingested_searched_and_its_quote_marked_on_the_page(shared_corpus: Path, tmp_path: Path, embedders, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    band, _ = _scan(shared_corpus / "en" / "scotus-transcript-p1.pdf", 1, (0.45, 0.75))
    scan = _image_pdf([band], docs / "transcript-scan.pdf")
    stages: list[tuple[str, int, int]] = []
    settings = Settings.resolve({"index_dir": tmp_path / "index"}, env={})
    report = Ingestor(settings, embedders=embedders, progress=False, on_progress=lambda *s: stages.append(s)).run([docs])
    assert report.failed == [] and report.pages == 1
    assert ("ocr", 1, 1) in stages
    index = Index.open(tmp_path / "index")
    retriever = Retriever(index, embedder)
    hit = retriever.search("Who appeared on behalf of the Respondent?", mode=Mode.BM25, k=1).hits[0]
    assert (Path(hit.source).name, hit.page) == ("transcript-scan.pdf", 1) and "SEVILLA" in hit.text
    lines = index.store.page_lines(str(scan), 1)
    assert any("SEVILLA" in line.text for line in lines)
    shot = render_page(scan, 1, "CHARLES M. SEVILLA, ESQ., San Diego", lines=lines)
    assert shot.marked and shot.area is not None
    seville = next(line for line in lines if "SEVILLA" in line.text)
    assert abs(shot.area[1] / shot.image.height - seville.box[1]) < 0.02  # marked where the line is


def _line(text: str, left: float, top: float, right: float, height: float = 0.02) -> OcrLine:
    return OcrLine(text, (left, top, right, top + height))


def test_two_columns_are_read_column_by_column_under_a_full_width_title():
    title = _line("A Title Across Both Columns", 0.1, 0.05, 0.9)
    left = [_line(f"left {i}", 0.08, 0.1 + 0.03 * i, 0.46) for i in range(4)]
    right = [_line(f"right {i}", 0.54, 0.1 + 0.03 * i, 0.92) for i in range(4)]
    shuffled = [right[2], left[1], title, right[0], left[3], left[0], right[3], right[1], left[2]]
    assert [line.text for line in reading_order(shuffled)] == [title.text] + [line.text for line in left + right]


def test_a_row_of_boxes_is_one_line_and_a_gap_starts_a_block():
    lines = reading_order([_line("Total", 0.1, 0.1, 0.2), _line("$3,400", 0.6, 0.101, 0.7),
                           _line("next row", 0.1, 0.13, 0.3), _line("after a gap", 0.1, 0.3, 0.3)])
    assert page_text(lines) == "Total $3,400\nnext row\n\nafter a gap"


def test_the_ocr_setting_reaches_ingest_from_the_command_line(tmp_path: Path):
    from click.testing import CliRunner

    from app.cli import main

    image = Image.new("L", (200, 100), 255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "blank.png").write_bytes(buffer.getvalue())
    result = CliRunner().invoke(main, ["ingest", str(docs), "--index", str(tmp_path / "index"), "--ocr", "never", "--json"])
    assert "OCR is off (ocr = never)" in result.output
