import pytest

from rag.retrieve.fusion import FusionMethod, fuse, normalise_scores, reciprocal_rank_fusion, score_fusion

A = [(1, 10.0), (2, 8.0), (3, 2.0)]
B = [(3, 0.9), (1, 0.5), (4, 0.4)]


def test_rrf_matches_hand_computed_scores():
    fused = dict(reciprocal_rank_fusion([A, B], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert fused[4] == pytest.approx(1 / 63)
    assert [item for item, _ in reciprocal_rank_fusion([A, B], k=60)] == [1, 3, 2, 4]


def test_rrf_weights_and_k_change_the_order():
    assert reciprocal_rank_fusion([A, B], weights=[1, 3], k=60)[0][0] == 3
    fused = dict(reciprocal_rank_fusion([A, B], weights=[2, 1], k=1))
    assert fused[2] == pytest.approx(2 / 3)


def test_minmax_normalisation_and_fusion():
    assert normalise_scores(A, FusionMethod.MINMAX) == [(1, 1.0), (2, 0.75), (3, 0.0)]
    fused = dict(score_fusion([A, B], weights=[1, 1], method=FusionMethod.MINMAX))
    assert fused[1] == pytest.approx(1.0 + 0.2)
    assert fused[3] == pytest.approx(0.0 + 1.0)
    assert fused[4] == pytest.approx(0.0)


def test_dbsf_normalisation_uses_three_standard_deviations():
    scores = [(1, 3.0), (2, 1.0)]  # mean 2, std 1: range [-1, 5]
    assert normalise_scores(scores, FusionMethod.DBSF) == [(1, pytest.approx(4 / 6)), (2, pytest.approx(2 / 6))]


def test_constant_scores_normalise_to_one():
    assert normalise_scores([(5, 2.0), (6, 2.0)], FusionMethod.MINMAX) == [(5, 1.0), (6, 1.0)]


def test_fuse_ignores_zero_weight_and_empty_lists():
    assert fuse([A, B], weights=[1, 0]) == reciprocal_rank_fusion([A])
    assert fuse([[], B], weights=[1, 1], method=FusionMethod.DBSF)[0][0] == 3
    assert fuse([A], weights=[0]) == []


def test_weight_count_must_match():
    with pytest.raises(ValueError, match="2 weights for 1 rankings"):
        reciprocal_rank_fusion([A], weights=[1, 2])
