import math

import pytest

from eval.metrics import average_precision, contains_answer, hit_rate_at_k, mrr_at_k, ndcg_at_k, percentile, precision_at_k, recall_at_k, token_f1
from eval.significance import paired_randomization, wins_losses

RANKED = ["d3", "d1", "d7", "d2"]
GRADED = {"d1": 2, "d2": 1, "d9": 1, "d0": 0}


def test_ndcg_with_graded_relevance_and_log2_discount():
    dcg = (2 ** 2 - 1) / math.log2(3) + (2 ** 1 - 1) / math.log2(5)
    ideal = (2 ** 2 - 1) / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, GRADED, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(RANKED, GRADED, 1) == 0.0
    assert ndcg_at_k(["d1", "d2", "d9"], GRADED, 3) == pytest.approx(1.0)


def test_recall_precision_mrr_hit_rate_and_map():
    assert recall_at_k(RANKED, GRADED, 2) == pytest.approx(1 / 3)
    assert recall_at_k(RANKED, GRADED, 4) == pytest.approx(2 / 3)
    assert precision_at_k(RANKED, GRADED, 4) == pytest.approx(2 / 4)
    assert mrr_at_k(RANKED, GRADED, 10) == pytest.approx(1 / 2)
    assert mrr_at_k(RANKED, GRADED, 1) == 0.0
    assert hit_rate_at_k(RANKED, GRADED, 1) == 0.0 and hit_rate_at_k(RANKED, GRADED, 2) == 1.0
    assert average_precision(RANKED, GRADED) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_grade_zero_is_not_relevant():
    assert recall_at_k(["d0"], {"d0": 0, "d1": 1}, 1) == 0.0


def test_percentile_interpolates():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([5], 95) == 5 and percentile([], 50) == 0.0


def test_answer_containment_and_token_f1_for_english_and_chinese():
    assert contains_answer("The warranty lasts Two  Years.", ["two years"]) == 1.0
    assert contains_answer("保修期为 一年。", ["一年"]) == 1.0 and contains_answer("保修", ["一年"]) == 0.0
    assert token_f1("lasts two years", ["two years"]) == pytest.approx(0.8)
    assert token_f1("保修一年", ["一年"]) == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert token_f1("nothing", ["two years"]) == 0.0


def test_paired_randomization_and_wins():
    better = [0.9] * 30
    worse = [0.1] * 30
    assert paired_randomization(better, worse, trials=2000) < 0.01
    assert paired_randomization(better, better) == 1.0
    noisy = [0.5, 0.6, 0.4, 0.5]
    assert paired_randomization(noisy, [0.5, 0.5, 0.5, 0.5], trials=2000) > 0.2
    assert wins_losses([0.5, 0.2, 0.3], [0.4, 0.2, 0.9]) == {"wins": 1, "losses": 1, "ties": 1}


def test_gold_answers_flatten_alternatives():
    from eval.evaluate import gold_answers

    assert gold_answers({"answers": [["12人", "十二人"], "14人", ""]}) == ["12人", "十二人", "14人"]
    assert gold_answers({}) == []
