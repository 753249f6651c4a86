"""Rank statistics the benchmarks report (pure functions): Kendall's tau between two orderings,
and the exact Mann-Whitney U test between two small samples. Ranks and Spearman's correlation,
which the package itself uses, stay in `nas.stats`."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from nas.stats import ranks


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) pairs, corrected for ties."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("need two sequences of equal length, at least 2")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denominator = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denominator


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Mann-Whitney U of ``a`` against ``b`` (how often a value of ``a`` beats one of ``b``,
    ties counting half) and its exact two-sided p-value: the share of the ways to split the
    pooled values into groups of these sizes whose U is at least as far from its mean. Exact
    enumeration, for the small samples of a benchmark (a few seeds per arm)."""
    if not a or not b:
        raise ValueError("need two non-empty samples")
    pooled = ranks([*a, *b])
    n, total = len(a), len(a) + len(b)

    def u_of(group: Sequence[int]) -> float:
        return sum(pooled[i] for i in group) - n * (n + 1) / 2

    mean = n * len(b) / 2
    observed = abs(u_of(range(n)) - mean)
    splits = list(itertools.combinations(range(total), n))
    extreme = sum(abs(u_of(group) - mean) >= observed - 1e-9 for group in splits)
    return u_of(range(n)), extreme / len(splits)
