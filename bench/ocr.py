"""OCR on scans of the shared corpus: character accuracy per language and pages per second.

    PYTHONPATH=. .venv/bin/python bench/ocr.py [--pages-per-file 3] [--dpi 150] [--out FILE]

The first ``--pages-per-file`` pages of every PDF under ../shared/corpus are copied (pypdf) and turned into
image-only scans by ../shared/tools/make_scans.py (rendered at ``--dpi``, greyscale, a slight rotation,
noise, JPEG), which also writes each page's real text. Each scan is then loaded as ingest loads it
(``ingest.loaders.load_file``, OCR in ``auto`` mode, one reader on all cores) and each page's OCR text
compared with its real text: character accuracy is 1 - CER (Levenshtein distance over the real text's
length) after NFKC and with all whitespace removed, pooled per language (a page is Chinese when a fifth of
its letters are CJK). A text layer is not always in reading order (the Federal Register's footnotes
come first, the transcript's line numbers form one block, tables run cell by cell), which the edit distance
counts as errors, so ``char_accuracy_any_order`` also compares the pages as bags of characters (1 - the
characters not matched, over the real text's length). Pages per second is pages over the wall time of loading the scans, model loading
excluded (a warm-up page first). Goals (issue 24): accuracy >= 0.97 for each language, >= 0.25 pages/s at
150 dpi on 2 cores. ``make bench`` runs it too and writes the figures under ``"ocr"`` in bench/results.json.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

from pypdf import PdfReader, PdfWriter
from rapidfuzz.distance import Levenshtein

from ingest.loaders import PageReading, ParseLimits, load_file
from ingest.ocr import OcrReader
from rag.text import language_of

SHARED = Path(__file__).resolve().parents[2] / "shared"
MAKE_SCANS = SHARED / "tools" / "make_scans.py"


def _squeezed(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split())


def make_scans(corpus: Path, out: Path, pages_per_file: int, dpi: int) -> list[dict[str, Any]]:
    """Scans of the first pages of each PDF of ``corpus`` under ``out``; their pages' real text."""
    source = out / "src"
    for pdf in sorted(corpus.rglob("*.pdf")):
        writer = PdfWriter()
        for page in PdfReader(pdf).pages[:pages_per_file]:
            writer.add_page(page)
        target = source / pdf.relative_to(corpus)
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        writer.write(buffer)
        target.write_bytes(buffer.getvalue())
    subprocess.run([sys.executable, str(MAKE_SCANS), str(source), str(out / "scans"), "--dpi", str(dpi)],
                   check=True, capture_output=True)
    return [json.loads(line) for line in (out / "scans.truth.jsonl").read_text(encoding="utf-8").splitlines()]


def measure(pages_per_file: int = 3, dpi: int = 150) -> dict[str, Any]:
    """The benchmark's figures (see the module docstring)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        truth = make_scans(SHARED / "corpus", out, pages_per_file, dpi)
        reading = PageReading(OcrReader())
        scans = sorted((out / "scans").rglob("*.pdf"))
        load_file(scans[0], limits=ParseLimits(max_pages=1), reading=reading)  # load the models
        started = time.perf_counter()
        read = {(str(scan.relative_to(out / "scans")), page.number): page.text
                for scan in scans for page in load_file(scan, reading=reading).pages}
        seconds = time.perf_counter() - started
    errors: dict[str, int] = {"zh": 0, "en": 0}
    unread: dict[str, int] = {"zh": 0, "en": 0}
    lengths: dict[str, int] = {"zh": 0, "en": 0}
    for row in truth:
        real = _squeezed(row["text"])
        if not real:
            continue
        language = language_of(row["text"])
        ocr = _squeezed(read.get((row["file"], row["page"]), ""))
        errors[language] += Levenshtein.distance(real, ocr)
        unread[language] += max(len(real), len(ocr)) - sum((Counter(real) & Counter(ocr)).values())
        lengths[language] += len(real)
    return {
        "command": f"PYTHONPATH=. .venv/bin/python bench/ocr.py --pages-per-file {pages_per_file} --dpi {dpi}",
        "dpi": dpi, "pages": len(read), "seconds": round(seconds, 1), "pages_per_s": round(len(read) / seconds, 3),
        "char_accuracy": {language: round(1 - errors[language] / lengths[language], 4)
                          for language in errors if lengths[language]},
        "char_accuracy_any_order": {language: round(1 - unread[language] / lengths[language], 4)
                                    for language in unread if lengths[language]},
        "characters": lengths,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages-per-file", type=int, default=3)
    parser.add_argument("--dpi", type=int, default=150)
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    figures = measure(args.pages_per_file, args.dpi)
    print(json.dumps(figures, ensure_ascii=False))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
