"""Calibration of summed layer timings against whole networks (pure functions).

A network's latency is modelled as ``intercept + sum_g scale_g * S_g`` where ``S_g`` is the sum
of its layers' table timings in group g (layer kind and input feature-map size, see
`Layer.group`). Isolated layers run with warm caches and their own call overhead; the scales and
intercept absorb how that differs, group by group, from a layer inside a network.

The fit minimises squared *relative* error (the error that "within +-5%" counts), with a ridge
pull of every scale towards 1 and of the intercept towards 0, so groups that never vary (stem,
head) stay identifiable and a handful of networks gives a stable fit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class Calibration:
    intercept_ms: float = 0.0
    scales: Mapping[str, float] = field(default_factory=dict)  # group -> factor; absent: 1
    rel_rmse: float = 0.0  # RMS relative error on the networks it was fitted on
    fitted_on: int = 0  # how many networks

    def apply(self, group_sums: Mapping[str, float]) -> float:
        return self.intercept_ms + sum(self.scales.get(g, 1.0) * s for g, s in group_sums.items())

    def to_dict(self) -> dict[str, object]:
        return {"intercept_ms": self.intercept_ms, "scales": dict(sorted(self.scales.items())),
                "rel_rmse": self.rel_rmse, "fitted_on": self.fitted_on}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Calibration:
        scales = data["scales"]
        if not isinstance(scales, Mapping):
            raise ValueError("calibration scales must be a mapping")
        return cls(intercept_ms=float(data["intercept_ms"]),  # type: ignore[arg-type]
                   scales={str(k): float(v) for k, v in scales.items()},
                   rel_rmse=float(data["rel_rmse"]),  # type: ignore[arg-type]
                   fitted_on=int(data["fitted_on"]))  # type: ignore[call-overload]


def fit_calibration(group_sums: Sequence[Mapping[str, float]], measured_ms: Sequence[float],
                    ridge: float = 1.0) -> Calibration:
    """Least-squares fit of the intercept and per-group scales to measured network latencies.

    ``ridge`` weighs the pull towards (intercept 0, scales 1) against the relative squared error
    of one network; 0 gives the plain weighted least-squares solution.
    """
    if len(group_sums) != len(measured_ms) or not measured_ms:
        raise ValueError("need one group-sum mapping per measured network, and at least one")
    if any(m <= 0 for m in measured_ms):
        raise ValueError("measured latencies must be positive")
    groups = sorted({g for sums in group_sums for g in sums})
    y = torch.tensor(measured_ms, dtype=torch.float64)
    x = torch.tensor([[1.0] + [sums.get(g, 0.0) for g in groups] for sums in group_sums],
                     dtype=torch.float64)
    # Relative error: divide each network's row and target by its measured latency.
    rows, targets = x / y[:, None], torch.ones_like(y)
    if ridge > 0:
        prior = torch.tensor([0.0] + [1.0] * len(groups), dtype=torch.float64)
        # Scale the intercept's pull by the typical latency so both are in relative units.
        typical = float(y.median())
        weights = torch.tensor([1.0 / typical] + [1.0] * len(groups), dtype=torch.float64)
        penalty = math.sqrt(ridge) * torch.diag(weights)
        rows = torch.cat([rows, penalty])
        targets = torch.cat([targets, penalty @ prior])
    theta = torch.linalg.lstsq(rows, targets[:, None], driver="gelsd").solution[:, 0]
    calibration = Calibration(intercept_ms=float(theta[0]),
                              scales={g: float(theta[i + 1]) for i, g in enumerate(groups)},
                              fitted_on=len(measured_ms))
    errors = [relative_error(calibration.apply(s), m) for s, m in zip(group_sums, measured_ms)]
    rmse = math.sqrt(sum(e * e for e in errors) / len(errors))
    return Calibration(calibration.intercept_ms, calibration.scales, rmse, len(measured_ms))


def relative_error(predicted: float, measured: float) -> float:
    return (predicted - measured) / measured
