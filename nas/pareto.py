"""Pareto front and hypervolume for (accuracy: maximize, latency: minimize); pure functions."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (accuracy, latency) points, by increasing latency.

    A point is dominated when another is at least as accurate and at least as fast, and strictly
    better in one. Of exact duplicates, the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][0], i))
    front: list[int] = []
    best_accuracy = float("-inf")
    for i in order:
        if points[i][0] > best_accuracy:
            front.append(i)
            best_accuracy = points[i][0]
    return front


def hypervolume(points: Sequence[tuple[float, float]], ref_accuracy: float,
                ref_latency: float) -> float:
    """Area dominated by the points and bounded by the reference (worst accuracy, latency)."""
    area, prev_accuracy = 0.0, ref_accuracy
    for i in pareto_front(points):
        accuracy, latency = points[i]
        if latency >= ref_latency or accuracy <= ref_accuracy:
            continue
        # Walking by increasing latency, each front point adds a slab up to the reference.
        area += (accuracy - prev_accuracy) * (ref_latency - latency)
        prev_accuracy = accuracy
    return area


def noise_margin(seed_std: float, z: float = 2.0) -> float:
    """How far apart two accuracies must be to differ by more than seed noise: each carries a
    seed std ``seed_std``, so their difference has std sqrt(2) * seed_std; ``z`` of those."""
    return z * math.sqrt(2.0) * seed_std


def means_margin(seed_std: float, n1: int, n2: int, z: float = 2.0) -> float:
    """`noise_margin` for two means over ``n1`` and ``n2`` seeds: their difference has std
    seed_std * sqrt(1/n1 + 1/n2); ``z`` of those (one seed each: `noise_margin`)."""
    return noise_margin(seed_std * math.sqrt((1 / n1 + 1 / n2) / 2), z)


def within_noise(accuracies: Sequence[float], reference: float, seed_std: float) -> list[bool]:
    """Which accuracies cannot be told apart from ``reference`` (see `noise_margin`)."""
    margin = noise_margin(seed_std)
    return [abs(reference - a) <= margin for a in accuracies]
