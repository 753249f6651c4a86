"""Which trained network is "the best under the budget": one rule for the search, the report and
``best/``.

A network is admitted when its latency, raised by the user's safety margin, is within the
budget. Its latency is the one measured end to end on the target when the front was verified
there (`nas.verify`), else the table's prediction. Among the admitted networks the best is the
most accurate; ties go to the faster, then to the earlier trial (`best_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple


class Scored(NamedTuple):
    """A trained network as the rule sees it."""

    trial: int
    accuracy: float  # validation accuracy
    latency_ms: float  # predicted

    def rank(self) -> tuple[float, float, int]:
        """Larger is better: more accurate, then faster, then earlier."""
        return self.accuracy, -self.latency_ms, -self.trial


@dataclass(frozen=True)
class BudgetRule:
    budget_ms: float
    margin: float = 0.0  # safety margin, a fraction: 0.1 keeps a network 10% under the budget
    measured_ms: Mapping[int, float] = field(default_factory=dict)  # trial -> on the target
    # The speed probe timed with them: how fast the target ran
    measured_probe_ms: float | None = None

    def latency_ms(self, trial: int, predicted_ms: float) -> float:
        """The latency a choice rests on: measured on the target when it was, else predicted."""
        return self.measured_ms.get(trial, predicted_ms)

    def admits(self, trial: int, predicted_ms: float) -> bool:
        return self.latency_ms(trial, predicted_ms) * (1 + self.margin) <= self.budget_ms


def best_of(candidates: Iterable[Scored], rule: BudgetRule) -> Scored | None:
    """The best of ``candidates`` that ``rule`` admits; None when it admits none."""
    admitted = [c for c in candidates if rule.admits(c.trial, c.latency_ms)]
    return max(admitted, key=Scored.rank, default=None)
