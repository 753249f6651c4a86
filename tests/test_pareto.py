import pytest

from nas.pareto import hypervolume, pareto_front


def test_front_is_non_dominated_and_sorted_by_latency():
    points = [(0.80, 10), (0.85, 12), (0.83, 15), (0.90, 20), (0.70, 5), (0.85, 12)]
    assert pareto_front(points) == [4, 0, 1, 3]
    assert pareto_front([]) == []


def test_hypervolume_by_hand():
    points = [(0.80, 10), (0.85, 12), (0.83, 15), (0.90, 20), (0.70, 5)]
    # slabs: 0.7 x 25 + 0.1 x 20 + 0.05 x 18 + 0.05 x 10
    assert hypervolume(points, 0.0, 30) == pytest.approx(20.9)
    assert hypervolume(points, 0.0, 4) == 0.0


def test_rank_correlations_by_hand():
    from nas.stats import kendall_tau, ranks, spearman

    assert ranks([10, 30, 20, 20]) == [1.0, 4.0, 2.5, 2.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # pairs: (1,2)+ (1,3)+ (1,4)+ (2,3)- (2,4)+ (3,4)+ -> (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)


def test_mann_whitney_exact_p_values_by_hand():
    from nas.stats import mann_whitney_u

    # 3 vs 3 wholly separated: 2 of the C(6, 3) = 20 splits are that extreme (either way).
    assert mann_whitney_u([1, 2, 3], [4, 5, 6]) == (0.0, pytest.approx(0.1))
    assert mann_whitney_u([6, 5, 4], [1, 2, 3]) == (9.0, pytest.approx(0.1))
    # 5 seeds each, separated: 2 / C(10, 5) = 2 / 252, scipy's exact two-sided p.
    assert mann_whitney_u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])[1] == pytest.approx(2 / 252)
    # 1.5 beats 1 and ties 1.5 (half): U = 1 + 0.5; identical samples are no evidence at all.
    assert mann_whitney_u([1.5], [1, 1.5, 2])[0] == 1.5
    assert mann_whitney_u([1, 1], [1, 1]) == (2.0, 1.0)
