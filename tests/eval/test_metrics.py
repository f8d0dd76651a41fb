import math

import pytest

from eval.metrics import contains_answer, ndcg_at_k, percentile, ranking_metrics, recall_at_k, token_f1
from eval.significance import paired_randomization, wins_losses

RANKED = ["d3", "d1", "d7", "d2"]
GRADED = {"d1": 2, "d2": 1, "d9": 1, "d0": 0}


def test_ndcg_gains_are_the_grades_as_in_trec_eval_and_beir():
    dcg = 2 / math.log2(3) + 1 / math.log2(5)  # the grade itself, not 2^grade - 1
    ideal = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(RANKED, GRADED, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(RANKED, GRADED, 10) != pytest.approx(((2 ** 2 - 1) / math.log2(3) + 1 / math.log2(5)) / (3 + 1 / math.log2(3) + 1 / math.log2(4)))
    assert ndcg_at_k(RANKED, GRADED, 1) == 0.0
    assert ndcg_at_k(["d1", "d2", "d9"], GRADED, 3) == pytest.approx(1.0)


def test_graded_and_binary_judgements_give_the_textbook_values():
    graded = ranking_metrics(RANKED, GRADED, 2)
    assert graded == pytest.approx({"ndcg@2": (2 / math.log2(3)) / (2 + 1 / math.log2(3)), "recall@2": 1 / 3, "recall@100": 2 / 3,
                                    "precision@2": 1 / 2, "mrr@2": 1 / 2, "hit_rate@2": 1.0, "map": (1 / 2 + 2 / 4) / 3})
    binary = ranking_metrics(["x", "a", "y", "b"], {"a": 1, "b": 1}, 4)
    assert binary == pytest.approx({"ndcg@4": (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3)), "recall@4": 1.0,
                                    "recall@100": 1.0, "precision@4": 0.5, "mrr@4": 0.5, "hit_rate@4": 1.0, "map": (1 / 2 + 2 / 4) / 2})
    missed = ranking_metrics(["x", "a"], {"a": 1}, 1)
    assert missed["mrr@1"] == missed["hit_rate@1"] == missed["recall@1"] == 0.0 and missed["map"] == 0.5


def test_grade_zero_is_not_relevant_and_empty_rankings_score_zero():
    assert recall_at_k(["d0"], {"d0": 0, "d1": 1}, 1) == 0.0
    assert set(ranking_metrics([], GRADED, 10).values()) == {0.0}
    assert set(ranking_metrics(["d0"], {"d0": 0}, 10).values()) == {0.0}


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
