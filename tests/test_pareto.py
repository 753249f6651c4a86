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
    from nas.stats import ranks, spearman

    assert ranks([10, 30, 20, 20]) == [1.0, 4.0, 2.5, 2.5]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
