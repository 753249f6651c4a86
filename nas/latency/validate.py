"""How well predicted latencies match measured ones (pure functions), nn-Meter's figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from nas.stats import spearman

# A table just built that puts fewer of its held-out networks than this within +-10% was timed on
# a busy machine every time it was seen here (10-50% busy, 90-100% quiet; docs/measurements.md,
# "Latency table accuracy").
TRUSTED_WITHIN_10 = 0.8


@dataclass(frozen=True)
class Agreement:
    count: int
    within_5: float  # share of networks with |error| <= 5%
    within_10: float
    mape: float  # mean absolute percentage error, as a fraction
    max_error: float  # worst |relative error|
    spearman: float  # rank correlation of predicted and measured

    def describe(self) -> str:
        return (f"{self.count} networks: {100 * self.within_5:.1f}% within +-5%, "
                f"{100 * self.within_10:.1f}% within +-10%, MAPE {100 * self.mape:.2f}%, "
                f"max {100 * self.max_error:.1f}%, Spearman {self.spearman:.3f}")

    @property
    def poor(self) -> bool:
        """Fewer than `TRUSTED_WITHIN_10` of the networks within +-10%."""
        return self.within_10 < TRUSTED_WITHIN_10

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, float]) -> Agreement:
        return cls(count=int(data["count"]), within_5=float(data["within_5"]),
                   within_10=float(data["within_10"]), mape=float(data["mape"]),
                   max_error=float(data["max_error"]), spearman=float(data["spearman"]))


def agreement(predicted: Sequence[float], measured: Sequence[float]) -> Agreement:
    if len(predicted) != len(measured) or len(measured) < 2:
        raise ValueError("need at least two (predicted, measured) pairs of equal length")
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    n = len(errors)
    return Agreement(count=n, within_5=sum(e <= 0.05 for e in errors) / n,
                     within_10=sum(e <= 0.10 for e in errors) / n, mape=sum(errors) / n,
                     max_error=max(errors), spearman=spearman(predicted, measured))
