"""Every loader on real files, and each kind of bad input named with a one-line reason."""
import random
import zipfile
from pathlib import Path

import docx
import pytest
from pypdf import PdfWriter

from examples.make_demo_docs import write_pdf
from ingest.loaders import LoadError, ParseLimits, load_file
from tests.hostile import invalid_bytes_text, many_pages_pdf, stream_bomb_pdf


def test_pdf_pages_are_numbered_from_one(tmp_path: Path):
    pdf = write_pdf(tmp_path / "three.pdf", [["alpha page"], ["beta page"], ["gamma page"]])
    pages = load_file(pdf).pages
    assert [(p.number, p.text.strip()) for p in pages] == [(1, "alpha page"), (2, "beta page"), (3, "gamma page")]


def test_chinese_pdf_text_is_extracted(tmp_path: Path):
    pdf = write_pdf(tmp_path / "zh.pdf", [["检索增强生成是一种技术。"]], chinese=True)
    assert "检索增强生成是一种技术" in load_file(pdf).pages[0].text


def test_text_markdown_html_and_docx(tmp_path: Path):
    (tmp_path / "a.txt").write_text("plain text", encoding="utf-8")
    (tmp_path / "b.md").write_text("# Title\nmarkdown body", encoding="utf-8")
    (tmp_path / "c.html").write_text("<html><script>alert(1)</script><p>html body</p></html>", encoding="utf-8")
    (tmp_path / "d.txt").write_bytes("国标编码的中文".encode("gb18030"))
    document = docx.Document()
    document.add_paragraph("word body")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "cell one", "cell two"
    document.save(tmp_path / "e.docx")
    texts = {name: load_file(tmp_path / name).pages[0].text for name in ["a.txt", "b.md", "c.html", "d.txt", "e.docx"]}
    assert texts["a.txt"] == "plain text"
    assert "markdown body" in texts["b.md"]
    assert "html body" in texts["c.html"] and "alert" not in texts["c.html"]
    assert texts["d.txt"] == "国标编码的中文"
    assert "word body" in texts["e.docx"] and "cell one | cell two" in texts["e.docx"]


def _encrypted(tmp_path: Path, user_password: str) -> Path:
    source = write_pdf(tmp_path / "plain.pdf", [["secret contents"]])
    writer = PdfWriter()
    writer.append(str(source))
    writer.encrypt(user_password=user_password, owner_password="owner-pass")
    path = tmp_path / f"encrypted-{user_password or 'empty'}.pdf"
    writer.write(path)
    return path


def test_pdf_encrypted_with_an_empty_user_password_opens(tmp_path: Path):
    assert "secret contents" in load_file(_encrypted(tmp_path, "")).pages[0].text


def _truncated(tmp_path: Path) -> Path:
    data = (Path(__file__).parents[2] / "examples" / "docs" / "handbook.md").read_bytes()
    source = write_pdf(tmp_path / "full.pdf", [[data.decode()]] * 3)
    truncated = tmp_path / "truncated.pdf"
    truncated.write_bytes(source.read_bytes()[: source.stat().st_size // 2])
    return truncated


def _image_only(tmp_path: Path) -> Path:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_blank_page(595, 842)
    path = tmp_path / "scan.pdf"
    writer.write(path)
    return path


def _damaged_docx(tmp_path: Path) -> Path:
    good = tmp_path / "good.docx"
    document = docx.Document()
    document.add_paragraph("some words " * 200)
    document.save(good)
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(tmp_path / "damaged.docx", "w") as target:
        for item in source.infolist():
            data = source.read(item)
            target.writestr(item, data[: len(data) // 2] if item.filename == "word/document.xml" else data)
    return tmp_path / "damaged.docx"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda t: _encrypted(t, "hunter2"), "encrypted PDF: a password is required"),
        (_truncated, "corrupt or truncated PDF"),
        (lambda t: _write(t, "garbage.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20), "PDF"),
        (lambda t: _write(t, "fake.pdf", b"this is not a pdf at all"), "not a PDF (no %PDF- header)"),
        (lambda t: _write(t, "empty.pdf", b""), "empty file (0 bytes)"),
        (lambda t: _write(t, "empty.md", b""), "empty file (0 bytes)"),
        (_image_only, "no text layer in any of its 2 pages"),
        (lambda t: _write(t, "photo.jpg", b"\xff\xd8\xff"), "not a readable image (damaged, or a format Pillow does not know)"),
        (lambda t: _write(t, "scan.djvu", b"AT&TFORM"), "unsupported file type '.djvu'"),
        (lambda t: _write(t, "binary.txt", b"ab\x00\x01\x02"), "binary content"),
        (lambda t: _write(t, "broken.docx", b"PK\x03\x04 not really a zip"), "corrupt Word file"),
        (_damaged_docx, "corrupt Word file"),
        (lambda t: t / "missing.txt", "file vanished during ingest"),
    ],
)
def test_bad_input_gets_a_one_line_reason(tmp_path: Path, make, reason: str):
    with pytest.raises(LoadError) as caught:
        load_file(make(tmp_path))
    message = str(caught.value)
    assert reason in message and "\n" not in message


def test_a_few_invalid_bytes_are_replaced_and_counted_not_the_file_rejected(tmp_path: Path):
    loaded = load_file(invalid_bytes_text(tmp_path))
    assert loaded.warnings == ["3 undecodable byte(s) replaced with U+FFFD"]
    assert "The pump restarts" in loaded.pages[0].text and "水泵在四十秒后重新启动" in loaded.pages[0].text
    assert loaded.pages[0].text.count("\ufffd") == 1  # one run of bad bytes, one mark


def test_gb18030_text_with_a_bad_byte_stays_chinese(tmp_path: Path):
    path = tmp_path / "gbk.txt"
    path.write_bytes("第三章 保修条款：整机保修两年。\n".encode("gb18030") * 40 + b"\xff")
    loaded = load_file(path)
    assert "整机保修两年" in loaded.pages[0].text and loaded.warnings == ["1 undecodable byte(s) replaced with U+FFFD"]


@pytest.mark.parametrize("data", [bytes(range(1, 256)) * 40, b"\x01\x02\x03\x04text\x05\x06\x07\x08" * 500,
                                  # random bytes without NUL or control bytes: GB18030 reads them as "Chinese"
                                  random.Random(7).randbytes(40_000).translate(bytes(range(256)), bytes([*range(0x20), 0x7F]))[:20_000]])
def test_a_text_file_that_is_mostly_not_text_is_rejected(tmp_path: Path, data: bytes):
    path = tmp_path / "binary.txt"
    path.write_bytes(data)
    with pytest.raises(LoadError, match="not text|binary content"):
        load_file(path)


def test_pages_past_the_limit_are_skipped_with_a_warning(tmp_path: Path):
    loaded = load_file(many_pages_pdf(tmp_path, 30), limits=ParseLimits(max_pages=12))
    assert [page.number for page in loaded.pages] == list(range(1, 13))
    assert loaded.warnings == ["only the first 12 of its 30 pages indexed (max_pages)"]


def test_page_text_past_the_limit_is_cut_with_a_warning(tmp_path: Path):
    path = tmp_path / "long.md"
    path.write_text("word " * 10_000, encoding="utf-8")
    loaded = load_file(path, limits=ParseLimits(max_page_chars=1000))
    assert len(loaded.pages[0].text) == 1000 and loaded.warnings == ["page 1 cut to 1,000 characters (max_page_chars)"]


def test_a_decompression_bomb_is_reported_as_one(tmp_path: Path):
    with pytest.raises(LoadError, match="decompression bomb"):
        load_file(stream_bomb_pdf(tmp_path, inflated_mb=100))
