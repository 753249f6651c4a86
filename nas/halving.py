"""Successive halving within latency bands (asynchronous, as in ASHA): what to promote next.

Every candidate starts at the cheapest rung. Within a rung, finished candidates are split into
latency bands (equal-count groups by predicted latency), and in each band the most accurate
``1/eta`` (rounded down) may move up one rung, trained from scratch for that rung's epochs.
Bands are added as results come in (`bands_for`): one band until a rung holds 2 x eta results,
so the first promotion comes after eta results, not after bands x eta (with 3 bands of eta 6,
the top rung used to wait for 18 cheap trainings, and a short search reached it 0-1 times).
Deciding within bands keeps fast networks competing with fast ones: a cheap rung favours
networks that learn quickly, not the ones a budget-bound user wants culled. Promotions go to
the deepest rung first, and a candidate is promoted at most once per rung; everything is read
back from the trials, so a restarted search resumes without training a finished rung again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class RungResult:
    number: int  # the trial
    rung: int
    accuracy: float | None  # None while training, or when training failed
    latency_ms: float


def latency_bands(results: Sequence[RungResult], bands: int) -> list[list[RungResult]]:
    """``bands`` groups of (nearly) equal size, by increasing latency."""
    ordered = sorted(results, key=lambda r: (r.latency_ms, r.number))
    n = len(ordered)
    return [ordered[i * n // bands:(i + 1) * n // bands] for i in range(bands)]


def bands_for(results: int, eta: int, bands: int) -> int:
    """How many latency bands ``results`` finished candidates of a rung are split into: as many
    as hold eta results each, at least one, at most ``bands``."""
    return max(1, min(bands, results // eta))


def next_promotion(results: Sequence[RungResult], promoted: Iterable[int], top_rung: int,
                   eta: int, bands: int) -> RungResult | None:
    """The candidate to train at the next rung now, or None; ``promoted`` holds the trial
    numbers already promoted (their next-rung trial finished, running or queued)."""
    done = set(promoted)
    for rung in reversed(range(top_rung)):
        finished = [r for r in results if r.rung == rung and r.accuracy is not None]
        for band in latency_bands(finished, bands_for(len(finished), eta, bands)):
            ranked = sorted(band, key=lambda r: (-(r.accuracy or 0.0), r.latency_ms, r.number))
            for result in ranked[:len(band) // eta]:
                if result.number not in done:
                    return result
    return None
