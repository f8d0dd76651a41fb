"""Hostile input, generated: files and folders built to break a parser or an ingest run.

Each maker writes one file (or tree) under the given folder and returns its path.

Example:
    >>> bomb = stream_bomb_pdf(Path("."), inflated_mb=2)
    >>> bomb.suffix, bomb.stat().st_size < 2 * 1024 * 1024
    ('.pdf', True)
"""
from __future__ import annotations

import os
import zlib
from pathlib import Path

from pypdf import PdfWriter

from examples.make_demo_docs import write_pdf

LINE = b"BT /F1 12 Tf 72 712 Td (the stream bomb repeats this line) Tj ET\n"


def encrypted_pdf(folder: Path) -> Path:
    source = write_pdf(folder / ".plain.pdf", [["secret contents of the sealed report"]])
    writer = PdfWriter()
    writer.append(str(source))
    writer.encrypt(user_password="user-pass", owner_password="owner-pass")
    path = folder / "encrypted.pdf"
    writer.write(path)
    source.unlink()
    return path


def truncated_pdf(folder: Path) -> Path:
    source = write_pdf(folder / ".whole.pdf", [["a page that will be cut in half"] * 20] * 3)
    data = source.read_bytes()
    source.unlink()
    path = folder / "truncated.pdf"
    path.write_bytes(data[: len(data) // 2])
    return path


def zero_byte(folder: Path) -> Path:
    path = folder / "empty.pdf"
    path.write_bytes(b"")
    return path


def many_pages_pdf(folder: Path, pages: int = 1000) -> Path:
    """A real text PDF of ``pages`` pages, each saying which page it is."""
    return write_pdf(folder / f"pages-{pages}.pdf", [[f"Page {n} of the long manual: valve {n} closes at {n % 7} bar."] for n in range(1, pages + 1)])


def stream_bomb_pdf(folder: Path, inflated_mb: int = 1024, pages: int = 3) -> Path:
    """A small PDF whose one content stream, shared by ``pages`` pages, inflates to ``inflated_mb`` MB."""
    compressor = zlib.compressobj(9)
    block = LINE * ((1 << 20) // len(LINE))
    stream = b"".join(compressor.compress(block) for _ in range(inflated_mb)) + compressor.flush()
    kids = " ".join(f"{4 + n} 0 R" for n in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Length " + str(len(stream)).encode() + b" /Filter /FlateDecode >>\nstream\n" + stream + b"\nendstream",
        *(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
          b"/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>" for _ in range(pages)),
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path = folder / f"bomb-{inflated_mb}mb.pdf"
    path.write_bytes(bytes(out))
    return path


def image_only_pdf(folder: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = folder / "scanned.pdf"
    page = canvas.Canvas(str(path), pagesize=A4)
    for _ in range(2):
        page.rect(72, 72, 300, 400, fill=1)
        page.showPage()
    page.save()
    return path


def invalid_bytes_text(folder: Path) -> Path:
    """Valid UTF-8 text, Chinese and English, with three bytes that are not UTF-8 in the middle."""
    path = folder / "mostly-fine.txt"
    path.write_bytes(b"The pump restarts after 40 seconds.\n" * 50 + b"\xff\xfe\x80"
                     + "水泵在四十秒后重新启动。\n".encode() * 50)
    return path


def big_text(folder: Path, megabytes: int = 200) -> Path:
    """A text file of ``megabytes`` MB on one line (no paragraph breaks), written a block at a time."""
    path = folder / f"big-{megabytes}mb.txt"
    block = b"the export repeats these words without a line break " * 20_000
    with path.open("wb") as out:
        for _ in range(megabytes * (1 << 20) // len(block) + 1):
            out.write(block)
    return path


def nested_folders(folder: Path, depth: int = 100) -> Path:
    """A note at the bottom of ``depth`` nested folders."""
    deepest = folder.joinpath(*(f"d{n}" for n in range(depth)))
    deepest.mkdir(parents=True)
    path = deepest / "deep-note.md"
    path.write_text("The deepest note: the spare fuse is behind the panel.", encoding="utf-8")
    return path


def awkward_names(folder: Path) -> list[Path]:
    """Notes whose names have spaces, a newline, Chinese and emoji, and a leading dash."""
    paths = [folder / name for name in ("with spaces.md", "line\nbreak.md", "说明 书✓.md", "-rf.md", "--help.md")]
    for n, path in enumerate(paths):
        path.write_text(f"Awkward name {n}: the filter is changed every {n + 2} months.", encoding="utf-8")
    return paths


def symlink_loop(folder: Path) -> Path:
    """A folder that contains a link to itself, and a pair of links pointing at each other."""
    loop = folder / "loop"
    loop.mkdir()
    (loop / "note.md").write_text("A note inside a folder that links to itself.", encoding="utf-8")
    os.symlink(loop, loop / "again")
    os.symlink(folder / "ping.md", folder / "pong.md")
    os.symlink(folder / "pong.md", folder / "ping.md")
    return loop
