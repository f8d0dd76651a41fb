"""Property-based fuzzing (hypothesis) of the text path: decoding, cleaning, chunking and BM25 tokens.

`make soak` runs each property on ten times as many examples (RAG_FUZZ_EXAMPLES).
"""
from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import Chunker
from ingest.loaders import LoadError, ParseLimits, load_file
from rag.documents import Page
from rag.text import BM25Tokenizer, clean_text, estimate_tokens

EXAMPLES = int(os.environ.get("RAG_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as extraction gives it: both scripts, punctuation of both, line breaks, tabs, odd spaces and
# control characters, ligatures and full-width forms, and now and then anything at all.
pieces = st.sampled_from([
    "The valve closes at 3 bar. ", "检索增强生成是一种技术。", "电池", "，", "、", "！", "? ", "\n", "\n\n", "\t",
    "  ", "\u00a0", "\u3000", "-\n", "ﬁ", "ＡＢＣ１２３", "d e f  m a i n", "\x00", "\x0c", "\r\n", "\u200b", "…",
])
texts = st.lists(st.one_of(pieces, st.text(max_size=12)), max_size=60).map("".join)


@fuzz
@given(texts)
def test_cleaning_leaves_no_control_characters_or_stray_space(text: str):
    cleaned = clean_text(text)
    assert cleaned == cleaned.strip()
    assert not any(ord(ch) < 32 and ch != "\n" for ch in cleaned) and "\x7f" not in cleaned
    assert "  " not in cleaned and "\r" not in cleaned


@fuzz
@given(st.lists(texts, min_size=1, max_size=4), st.integers(8, 120), st.integers(0, 7))
def test_every_chunk_points_at_its_own_text_and_all_text_is_covered(pages: list[str], size: int, overlap: int):
    chunker = Chunker(chunk_size=size, chunk_overlap=min(overlap, size - 1))
    cleaned = chunker.clean([Page("doc.md", n, text) for n, text in enumerate(pages, start=1)])
    chunks = chunker.split(cleaned)
    by_number = {page.number: page.text for page in cleaned}
    covered: dict[int, set[int]] = {page.number: set() for page in cleaned}
    for chunk in chunks:
        assert chunk.text.strip() and by_number[chunk.page][chunk.start:chunk.end] == chunk.text
        covered[chunk.page].update(range(chunk.start, chunk.end))
    for number, text in by_number.items():
        missing = [i for i, ch in enumerate(text) if not ch.isspace() and i not in covered[number]]
        assert not missing, f"page {number}: characters {missing[:5]} are in no chunk"
    assert [c.page for c in chunks] == sorted(c.page for c in chunks)


@fuzz
@given(texts)
def test_chunks_keep_to_the_size_unless_one_character_is_bigger(text: str):
    chunker = Chunker(chunk_size=20, chunk_overlap=4)
    for chunk in chunker.split(chunker.clean([Page("doc.md", 1, text)])):
        assert estimate_tokens(chunk.text) <= 20 or len(chunk.text) == 1


TOKENIZER = BM25Tokenizer()


@fuzz
@given(texts)
def test_tokens_are_words_without_space_and_the_same_every_time(text: str):
    tokens = TOKENIZER.tokenize(text)
    assert all(token and token == token.strip() and not any(ch.isspace() for ch in token) for token in tokens)
    assert TOKENIZER.tokenize(text) == tokens == TOKENIZER.tokenize_many([text])[0]


@fuzz
@given(st.binary(max_size=3000), st.sampled_from(["a.txt", "a.md", "a.html"]))
def test_any_bytes_as_text_load_or_fail_with_a_load_error(data: bytes, name: str):
    try:
        loaded = load_file(Path(name), data, ParseLimits(max_page_chars=500))
    except LoadError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert all(len(page.text) <= 500 for page in loaded.pages)


@fuzz
@given(st.data())
def test_a_damaged_pdf_loads_or_fails_with_a_load_error(tmp_path_factory, data: st.DataObject):
    pdf = _sample_pdf(tmp_path_factory)
    original = pdf.read_bytes()
    cut = data.draw(st.integers(0, len(original)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), max_size=20))
    damaged = bytearray(original[:cut] if data.draw(st.booleans()) else original)
    for position, value in flips:
        if position < len(damaged):
            damaged[position] = value
    try:
        load_file(Path("damaged.pdf"), bytes(damaged))
    except LoadError as exc:
        assert str(exc) and "\n" not in str(exc)


def _sample_pdf(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    from examples.make_demo_docs import write_pdf

    path = tmp_path_factory.getbasetemp() / "fuzz-sample.pdf"
    if not path.exists():
        write_pdf(path, [["The lantern charges in ten hours.", "# Battery", "电池可使用十二个月。"]] * 3, chinese=True)
    return path
