"""What a question pins down, and whether the passages hold it (rag.specifics)."""
from __future__ import annotations

from rag.generate.units import asks_for_date, gives_quantity, new_date
from rag.specifics import missing_specifics, months_in, specifics_of


def test_months_read_alike_in_english_chinese_and_iso_dates():
    assert months_in("NICS Firearm Background Checks November - 2015") == {11}
    assert months_in("2015 年 11 月的数据；十二月；2019-03-01") == {11, 12, 3}
    assert months_in("You may run it. Mark the marine mayor.") == set()  # no month in "may", "Mark", "marine"


def test_names_years_months_and_money_are_what_a_question_pins_down():
    english = specifics_of("How many checks did the NICS run in Texas in October 2015, and what did they cost?")
    assert english.names == ("NICS", "Texas") and english.years == ("2015",) and english.months == (10,) and english.money
    chinese = specifics_of("预训练 S2ORC-SciBERT 一共花费了多少美元？")
    assert chinese.names == ("S2ORC", "SciBERT") and chinese.money
    # a capitalised first word, a language and an abbreviation the question spells out name nothing
    plain = specifics_of("Which bibliography style does the English guide use for diastolic blood pressure (DBP)?")
    assert plain.names == () and not plain.money
    assert not specifics_of("What R-squared does the Auto MPG and Price table give?").money  # "Price" is a name here


def test_a_question_about_another_month_or_a_missing_name_finds_it_missing():
    table = ["NICS Firearm Background Checks November - 2015\n| Texas | 21,550 | 56,941 |"]
    assert missing_specifics("How many NICS checks were run in Texas in October 2015?", table) == ["October"]
    assert missing_specifics("2015 年 11 月 Texas 的 NICS 检查有多少次？", table) == []
    assert missing_specifics("2015 年 10 月 Texas 的 NICS 检查有多少次？", table) == ["10 月"]  # in the question's language
    assert missing_specifics("How many NICS checks were run in Ohio in 2016?", table) == ["Ohio", "2016"]
    fleiss = ["Table 7: Fleiss kappa of our FINE annotation. | PubMed | 0.55 |"]
    assert missing_specifics("What Fleiss kappa did LongEval report on arXiv?", fleiss) == ["LongEval", "arXiv"]
    # the document's own name may be on its first page only
    assert missing_specifics("What Fleiss kappa did LongEval report on arXiv?", fleiss,
                             front_matter=["eacl.pdf", "LongEval: Guidelines for Human Evaluation"]) == ["arXiv"]
    # spelling apart: hyphens, spaces, plurals
    assert missing_specifics("Are HIV-positive PDFs parsed?", ["HIV positive patients' PDF files"]) == []


def test_money_asked_needs_an_amount_in_some_passage():
    assert missing_specifics("How much did pretraining cost?", ["We pretrain on 8 TPUs for 5 days."]) == ["an amount of money"]
    assert missing_specifics("How much did pretraining cost?", ["Pretraining cost about $1,200 on TPUs."]) == []
    assert missing_specifics("预训练花费了多少美元？", ["预训练花费约 5000 元。"]) == []
    assert missing_specifics("预训练花费了多少美元？", ["预训练用了 8 块 TPU。"]) == ["金额"]


def test_a_when_question_is_answered_by_a_date_and_a_quantity_may_be_in_words():
    assert asks_for_date("When was the directive issued?") and asks_for_date("该指令是哪一年发布的？")
    assert not asks_for_date("How many airplanes are affected?")
    assert new_date("Issued on August 3, 2020.", "When was the 737 MAX directive issued?")
    assert not new_date("It covers 737 airplanes of 3 operators.", "When was the 737 MAX directive issued?")
    assert gives_quantity("The warranty lasts two years.", "How long is the warranty?")
    assert gives_quantity("保修期为两年。", "保修期多长？")
    assert not gives_quantity("The warranty covers the lamp.", "How long is the warranty?")
    assert not gives_quantity("The 737 MAX is covered.", "How many 737 MAX airplanes?")


def test_a_word_that_makes_most_of_a_name_holds_it():
    notes = ["训练时调用 torch.nn.utils.clip_grad_norm_ 裁剪梯度。"]
    assert missing_specifics("Which PyTorch function clips gradients?", notes) == []
    assert missing_specifics("Which TensorRT engine builds the plan?", notes) == ["TensorRT"]
    assert missing_specifics("What did arXiv report?", ["The Xiv archive reported it."]) == ["arXiv"]
