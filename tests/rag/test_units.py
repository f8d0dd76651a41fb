"""Answer units: what the extractive backend may quote (sentences, table rows under their column names)
and what it never quotes."""
from __future__ import annotations

import pytest

from rag.generate.units import answer_units, asks_for_number, is_quotable, row_text

COST_TABLE = (
    "ESTIMATED COSTS—Continued\n"
    "| Action | Labor cost | Parts cost | Cost per product | Cost on U.S. operators |\n"
    "| --- | --- | --- | --- | --- |\n"
    "| Stabilizer wiring change | Up to 79 work-hours × $85 per hour = Up to $6,715. | Up to $3,790 | Up to $10,505 | Up to $766,865. |\n"
    "| AOA sensor system test | 40 work-hours × $85 per hour = $3,400. | $0 | $3,400 | $248,200. |\n"
    "The FAA has received no definitive data that would enable the agency to provide cost estimates."
)


def test_a_table_row_is_one_unit_shown_under_its_column_names():
    units = answer_units(COST_TABLE)
    assert [u.is_row for u in units] == [True, True, False]
    assert units[1].text == ("Action: AOA sensor system test; Labor cost: 40 work-hours × $85 per hour = $3,400; "
                             "Parts cost: $0; Cost per product: $3,400; Cost on U.S. operators: $248,200")
    assert units[1].source.startswith("| AOA sensor system test |")  # the quote is the row as the page has it
    assert "ESTIMATED COSTS" not in " ".join(u.text for u in units)  # a heading is no answer


def test_a_row_without_a_header_keeps_its_cells():
    assert row_text("| Papers w/ DOIs | 52.2M (64.3%) |", None) == "Papers w/ DOIs | 52.2M (64.3%)"


@pytest.mark.parametrize("line", [
    "第 1 章 引言 ⋅ ⋅ ⋅ ⋅ ⋅ ⋅ ⋅ ⋅ ⋅ ⋅ 1",                      # a table-of-contents entry
    "2.2.5 Tex 文件夹",                                         # a numbered Chinese heading
    "Authority for This Rulemaking",                            # a Title Case heading
    "大模型 AI 能干什么?",                                       # a question, even as a heading
    "What is the warranty period of the lamp?",
    "\\documentclass[lang=cn]{elegantpaper} % or \\documentclass{cn}{elegantpaper}",  # code
    "⎧ ∂ρ + ∇ (ρV ) = 0 ⎪ ∂t ⎪ ∂(ρV ) ⎨ + ∇ (ρV V ) = ∇ σ",     # a formula
    "13,463 15,885 50,278 44,023 27,504 55,031",               # numbers without words
    "| elegantpaper-cn.pdf | 5 | template doc | ElegantLaTeX/ElegantPaper @ fe1d54a1b1020df438bcd4f : elegantpaper-cn.pdf |",
    "Page 1 of 205",
    "Chen M. China Finance Review International, 2018, 8(3):256-274.",  # a reference
    "Kyle Lo, Lucy Wang, 2020, S2ORC: an open corpus, In Proceedings of the 58th Annual Meeting of the ACL, pages 4969–4983.",
    "Ethan DENG Dongsheng DENG Fudan University PA Technology ElegantLATEX 项目组",  # a byline, however long
    "ElegantPaper: An Elegant LATEX Template for Working Papers",  # a title
])
def test_lines_that_never_answer(line: str):
    assert not is_quotable(line)
    assert not answer_units(line)


@pytest.mark.parametrize("line", [
    "7 pronounced “stork”",  # a footnote, short and unpunctuated, is not a heading
    "v. : No. 07-1315",
    "v. : No. 07-1315 ALEXANDRE MIRZAYANCE. :",  # a long caption holding a value
    "The above-entitled matter came on for oral argument before the Supreme Court of the United States at 1:01 p.m.",
    "兼顾操作系统：Windows，Linux，MacOS 和 LATEX 编译引擎：pdflatex，xelatex，lualatex。",
])
def test_lines_that_may_answer(line: str):
    assert is_quotable(line)


def test_questions_that_ask_for_a_number():
    assert asks_for_number("What was Kentucky's total number of NICS checks?")
    assert asks_for_number("When was the directive issued?") and asks_for_number("S2ORC-SciBERT 的词表有多大？")
    assert not asks_for_number("Which attorney appeared for the respondent?")
    assert not asks_for_number("ElegantPaper 用哪个宏包来设置数学字体？")
