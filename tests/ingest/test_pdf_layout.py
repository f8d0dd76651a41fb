"""PDF pages rebuilt from character positions, on real pages of the shared corpus: tables as rows under
their header, columns in reading order, running heads, line numbers and tables of contents out, words
broken at line ends joined."""
from __future__ import annotations

from pathlib import Path

import pytest

from ingest.chunking import Chunker
from ingest.loaders import load_file
from ingest.pdf_layout import running_key
from rag.text import rejoin_hyphens


@pytest.fixture(scope="module")
def pages(shared_corpus: Path):
    cache: dict[str, list[str]] = {}

    def text_of(name: str) -> list[str]:
        if name not in cache:
            path = next(shared_corpus.glob(f"*/{name}"))
            cache[name] = [page.text for page in Chunker().clean(load_file(path).pages)]
        return cache[name]

    return text_of


def test_a_ruled_cost_table_reads_as_rows_under_its_header(pages):
    page = pages("federal-register-2020-17221.pdf")[5]
    assert "| Action | Labor cost | Parts cost | Cost per product | Cost on U.S. operators |" in page
    # the cell of two lines stays whole, and the row keeps its $3,400 (it used to be cut before it)
    assert "| AOA sensor system test | 40 work-hours × $85 per hour = $3,400. | $0 | $3,400 | $248,200. |" in page
    assert "| Stabilizer wiring change | Up to 79 work-hours × $85 per hour = Up to $6,715. | Up to $3,790 |" in page


def test_a_wide_statistics_table_keeps_each_state_on_its_row(pages):
    page = pages("nics-background-checks-2015-11.pdf")[0]
    kentucky = next(line for line in page.splitlines() if line.startswith("| Kentucky |"))
    assert kentucky.startswith("| Kentucky | 264,140 | 12,155 | 14,847 |") and kentucky.endswith("| 295,891 |")
    header = page.splitlines()[page.splitlines().index(kentucky) - 18 - 1]
    assert "Permit" in page.split("| Alabama |")[0] and header.startswith("|")


def test_a_sideways_page_reads_upright_and_a_description_of_two_lines_stays_in_its_row(pages):
    page = pages("senate-expenditures.pdf")[0]
    assert "| DOCUMENT NO. | DATE POSTED | PAYEE NAME |" in page
    assert "|  |  | ENGLERT, PAYTON A |  |  | STAFF ASSISTANT | 25,499.96 |" in page.replace("| |", "|  |").replace("| |", "|  |")
    naylor = next(line for line in page.splitlines() if "C NAYLOR" in line)
    assert naylor.startswith("| DHAW20190067 | 09/04/2019 |") and "SAN DIEGO CA AND RETURN" in naylor


def test_three_columns_read_top_to_bottom_one_after_another(pages):
    page = pages("federal-register-2020-17221.pdf")[0]
    first, second = page.index("This section of the FEDERAL REGISTER contains notices"), page.index("Federal eRulemaking Portal")
    third = page.index("proposal, explain the reason for any recommended change")
    assert first < second < third
    assert "the final rules." in page.replace("\n", " ")


def test_transcript_line_numbers_go_and_its_sentences_join(pages):
    page = pages("scotus-transcript-p1.pdf")[0]
    assert "The above-entitled matter came on for oral argument before the Supreme Court of the United States at 1:01 p.m." in page
    assert "No. 07-1315" in page
    assert not any(line.strip().isdigit() and int(line) < 26 for line in page.splitlines()[:-2])


def test_running_heads_and_the_table_of_contents_stay_out(pages):
    guide = pages("ucasthesis-template-guide.pdf")
    assert "研究背景" not in guide[10] and "⋅ ⋅ ⋅" not in "".join(guide)  # page 11 is the table of contents
    assert not any(page.startswith("中国科学院大学学位论文 LATEX 模板") for page in guide)
    register = pages("federal-register-2020-17221.pdf")
    assert not any("VerDate" in page or "Federal Register / Vol. 85" in page for page in register)


def test_words_broken_at_line_ends_are_joined_with_the_hyphen_only_where_it_belongs(pages):
    acl = "\n".join(pages("acl2020-main-447.pdf"))
    assert "\ufffe" not in acl and "\u00ad" not in acl
    assert "limitations" in acl and "limi- tations" not in acl
    register = "\n".join(pages("federal-register-2020-17221.pdf"))
    assert "revising the operator’s existing FAA-approved MEL" in register
    assert "$85 per work-hour" in register


def test_rejoin_hyphens_asks_the_document_how_it_spells_a_word():
    assert rejoin_hyphens(["the cor\u00adpus", "a cor\u00adpus corpus"]) == ["the corpus", "a corpus corpus"]
    assert rejoin_hyphens(["90 work\u00adhours", "per work-hour"]) == ["90 work-hours", "per work-hour"]
    assert rejoin_hyphens(["COVID\u00ad19 and FAA\u00adapproved"]) == ["COVID-19 and FAA-approved"]


def test_running_heads_match_whatever_their_page_numbers():
    assert running_key("47703 Federal Register / Vol. 85, No. 152") == running_key("Federal Register / Vol. 85, No. 152 47704")
    assert {running_key(n) for n in ["12", "III", "iv", "Page 3 of 9", "- 7 -"]} == {"#"}
    assert running_key("Chapter 2 Methods") != running_key("Chapter 3 Results")


def test_table_chunks_never_split_a_row_and_repeat_the_header(pages):
    from rag.documents import Page

    page = Page("nics.pdf", 1, pages("nics-background-checks-2015-11.pdf")[0])
    chunks = Chunker(chunk_size=200, chunk_overlap=30).split([page])
    table = [c for c in chunks if "| Kentucky |" in c.text or "| Alabama |" in c.text]
    header = next(line for line in page.text.splitlines() if line.startswith("| State / Territory |"))
    assert len(table) == 2 and all(c.text.startswith(f"NICS Firearm Background Checks November - 2015\n{header}") for c in table)
    for chunk in chunks:
        assert chunk.text.endswith(page.text[chunk.start:chunk.end])
        title = "NICS Firearm Background Checks November - 2015"
        for line in chunk.text.splitlines()[1 if chunk.text.startswith(title + "\n") else 0:]:
            assert line in page.text.splitlines()  # whole rows only


def test_a_caption_below_a_table_names_each_of_its_chunks(pages):
    from rag.documents import Page

    text = pages("acl2020-main-447.pdf")[4]
    chunks = Chunker().split([Page("acl.pdf", 5, text)])
    doi = next(c for c in chunks if "| Papers w/ DOIs | 52.2M (64.3%) |" in c.text)
    assert doi.text.startswith("Table 3: Statistics on paper provenance.")
