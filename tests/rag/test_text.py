from rag.text import BM25Tokenizer, cjk_share, clean_text, normalise, split_sentences


def test_ligatures_and_compatibility_forms_are_normalised():
    assert clean_text("the ﬁrst ﬀ eﬃcient") == "the first ff efficient"


def test_fullwidth_chinese_punctuation_keeps_its_form_but_fullwidth_letters_do_not():
    assert normalise("你好，世界！") == "你好，世界！"
    assert normalise("ＡＢＣ１２３，") == "ABC123，"


def test_words_hyphenated_across_lines_are_joined_but_real_hyphens_stay():
    assert clean_text("a large cor-\npus of well-known papers") == "a large corpus of well-known papers"


def test_chinese_broken_by_spaces_and_line_breaks_is_rejoined():
    assert clean_text("检索 增强\n生成是一种技术") == "检索增强生成是一种技术"


def test_nul_and_control_characters_are_stripped():
    assert clean_text("abc\x00def\x07 ghi\x1b") == "abcdef ghi"


def test_spaced_out_letters_from_code_listings_are_collapsed_but_digit_rows_are_not():
    assert clean_text("call d i s t r i b u t e d now") == "call distributed now"
    assert clean_text("row x 1 0 0 1 1 y") == "row x 1 0 0 1 1 y"


def test_visual_lines_are_reflowed_and_paragraph_ends_kept():
    text = "This sentence is broken over\nseveral visual lines of the\npage by the PDF writer.\nNew paragraph here."
    assert clean_text(text) == (
        "This sentence is broken over several visual lines of the page by the PDF writer.\nNew paragraph here."
    )


def test_cjk_share():
    assert cjk_share("中文 ab") == 0.5
    assert cjk_share("") == 0.0


def test_tokenizer_stems_english_and_drops_stopwords():
    assert BM25Tokenizer().tokenize("The Indexes of RETRIEVAL systems") == ["index", "retriev", "system"]


def test_tokenizer_uses_jieba_search_mode_for_chinese():
    tokens = BM25Tokenizer().tokenize("中国科学院大学学位论文")
    assert "中国" in tokens and "科学院" in tokens and "学位" in tokens and "论文" in tokens
    assert "的" not in BM25Tokenizer().tokenize("学校的论文")


def test_tokenizer_handles_mixed_language_text():
    tokens = BM25Tokenizer().tokenize("使用 LaTeX 模板撰写 theses")
    assert {"使用", "latex", "模板", "撰写", "these"} <= set(tokens)


def test_written_language_counts_chinese_characters_against_latin_words():
    from rag.text import written_language

    assert written_language("兼顾操作系统：Windows，Linux， MacOS 和 LATEX 编译引擎：pdflatex，xelatex，lualatex。") == "zh"
    assert written_language("The Lumen L2 has a two-year warranty.") == "en"
    assert written_language("调用 clip_grad_norm_ 裁剪梯度") == "zh"


def test_sentences_are_not_cut_inside_numbers_abbreviations_or_initials():
    text = ("We introduce S2ORC, a corpus of 81.1M papers. Lo et al. (2020) built it at 1:01 p.m. on a Monday. "
            "STEVEN E. MERCER, ESQ., argued. See Fig. 2 and No. 07-1315! 它很大。然后呢？")
    assert split_sentences(text) == [
        "We introduce S2ORC, a corpus of 81.1M papers.", "Lo et al. (2020) built it at 1:01 p.m. on a Monday.",
        "STEVEN E. MERCER, ESQ., argued.", "See Fig. 2 and No. 07-1315!", "它很大。", "然后呢？"]
