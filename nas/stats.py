"""Rank statistics (pure functions): how well one ordering of things agrees with another; and
the seed noise pooled over several networks' repeated trainings.

The benchmarks' own tests (Kendall's tau, Mann-Whitney U) live in ``benchmarks/rank_stats.py``."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def ranks(values: Sequence[float]) -> list[float]:
    """Ranks from 1, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            result[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return result


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation: Pearson's correlation of the ranks."""
    return statistics.correlation(ranks(a), ranks(b))


def pooled_seed_std(accuracies: Mapping[str, Sequence[float]]) -> tuple[float, int]:
    """The std over seeds, pooled across networks (name -> accuracies over seeds, in points):
    sqrt(sum of (n_i - 1) * s_i^2 over sum of (n_i - 1)), with its degrees of freedom, the
    sum of (n_i - 1). Networks with one seed add nothing; none with two is a ValueError."""
    dof = sum(len(a) - 1 for a in accuracies.values() if len(a) > 1)
    if not dof:
        raise ValueError("no network has two seeds: the seed noise cannot be measured")
    squares = sum((len(a) - 1) * statistics.variance(a) for a in accuracies.values()
                  if len(a) > 1)
    return math.sqrt(squares / dof), dof
