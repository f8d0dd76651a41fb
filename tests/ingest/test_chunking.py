from itertools import pairwise
from pathlib import Path

from ingest.chunking import Chunker
from ingest.loaders import load_file
from rag.documents import Page
from rag.text import estimate_tokens

ENGLISH = (
    "Retrieval augmented generation answers questions from documents. It first finds passages. "
    "Then a language model writes the answer! Does it cite its sources? It must; every claim needs one. "
) * 6
CHINESE = "检索增强生成从文档中回答问题。它首先找到相关段落！然后由语言模型写出答案？每个结论都要有出处；不能编造。" * 8


def _check_spans(page: Page, chunks) -> None:
    for chunk in chunks:
        assert page.text[chunk.start : chunk.end] == chunk.text
        assert chunk.page == page.number and chunk.source == page.source


def test_english_chunks_end_at_sentence_boundaries_and_respect_size():
    chunker = Chunker(chunk_size=60, chunk_overlap=10)
    page = Page("en.txt", 1, ENGLISH.strip())
    chunks = chunker.split([page])
    assert len(chunks) > 3
    assert all(estimate_tokens(c.text) <= 60 for c in chunks)
    assert all(c.text.endswith((".", "!", "?", ";")) for c in chunks[:-1])
    _check_spans(page, chunks)


def test_chinese_chunks_end_at_chinese_punctuation_and_respect_size():
    chunker = Chunker(chunk_size=50, chunk_overlap=8)
    page = Page("zh.txt", 2, CHINESE)
    chunks = chunker.split([page])
    assert len(chunks) > 3
    assert all(estimate_tokens(c.text) <= 50 for c in chunks)
    assert all(c.text.endswith(("。", "！", "？", "；")) for c in chunks[:-1])
    _check_spans(page, chunks)


def test_chunks_overlap_by_whole_sentences():
    chunks = Chunker(chunk_size=80, chunk_overlap=30).split([Page("en.txt", 1, ENGLISH.strip())])
    shared = [a for a, b in pairwise(chunks) if b.start < a.end]
    assert shared, "neighbouring chunks should overlap"


def test_overlap_zero_tiles_the_page():
    page = Page("zh.txt", 1, CHINESE)
    chunks = Chunker(chunk_size=50, chunk_overlap=0).split([page])
    assert "".join(c.text for c in chunks) == CHINESE


def test_real_english_pdf_chunks_carry_their_page(shared_corpus: Path):
    pdf = shared_corpus / "en" / "acl2020-main-447.pdf"
    chunker = Chunker()
    pages = chunker.clean(load_file(pdf).pages)
    chunks = chunker.split(pages)
    assert {c.page for c in chunks} == set(range(1, 16))
    title = next(c for c in chunks if "Semantic Scholar Open Research Corpus" in c.text)
    assert title.page == 1
    assert all(c.text.endswith(pages[c.page - 1].text[c.start : c.end]) for c in chunks)
    spans = [pages[c.page - 1].text[c.start : c.end] for c in chunks]
    assert all(span == c.text or span.startswith("| ") for c, span in zip(chunks, spans, strict=True))  # tables lead with a title
    assert not any("ﬁ" in c.text for c in chunks), "ligatures are normalised"


def test_real_chinese_pdf_chunks_have_no_spaces_inside_chinese_words(shared_corpus: Path):
    pdf = shared_corpus / "zh" / "ucasthesis-template-guide.pdf"
    chunker = Chunker()
    chunks = chunker.split(chunker.clean(load_file(pdf).pages))
    abstract = [c for c in chunks if "中国科学院大学学位论文模板" in c.text]
    assert abstract and abstract[0].page == 7
    assert max(c.page for c in chunks) >= 30


def test_chunking_time_grows_linearly_with_page_length():
    """One page of 1 MB against one of 4 MB, as a ratio in one process: linear is about 4x, the old
    start-index search was about 16x. Spans stay exact, and each chunk starts after the one before."""
    import random
    import time

    words = ENGLISH.replace(".", "").replace("!", "").replace("?", "").replace(";", "").split()
    rng = random.Random(0)
    chunker = Chunker()
    seconds = {}
    for megabytes in (1, 4):  # one line of words, no two stretches alike: a log or an export
        page = Page("big.txt", 1, " ".join(rng.choice(words) for _ in range(megabytes * 160_000)))
        runs = []
        for _ in range(3):  # the best of three: another process on the machine slows a run, never speeds it
            started = time.perf_counter()
            chunks = chunker.split([page])
            runs.append(time.perf_counter() - started)
        seconds[megabytes] = min(runs)
        _check_spans(page, chunks[:50] + chunks[-50:])
        assert all(b.start > a.start for a, b in pairwise(chunks))
    assert seconds[4] / seconds[1] < 8, seconds
