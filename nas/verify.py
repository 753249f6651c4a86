"""Verify the front on the target: time every front member under the budget end to end when the
search ends on the target machine, so that the best network is chosen on measured latency.

The measurements live in the run's ``verified.json``, tagged with the target's fingerprint:
they hold for that target only (a report re-scored for another table ignores them).
`run_choice` turns them, with the budget and the user's margin, into the `nas.choice.Choice`
that picks the best network everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from nas.arch import Arch
from nas.atomic import write_text
from nas.choice import Choice
from nas.latency.target import Target
from nas.run import RunDir, RunError, RunRecord

# Times networks end to end on this machine, in the given order (ms, one per network).
Timer = Callable[[Sequence[Arch]], list[float]]


def load_measured(run: RunDir, target: Target) -> dict[int, float]:
    """Trial -> latency measured on ``target``; empty when nothing was measured on it."""
    if not run.verified.is_file():
        return {}
    try:
        saved = json.loads(run.verified.read_text())
        if saved["target"] != target.fingerprint():
            return {}
        return {int(trial): float(ms) for trial, ms in saved["measured_ms"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{run.verified}: damaged ({exc.__class__.__name__}); delete it, the "
                       "next search on the target measures the front again") from exc


def run_choice(run: RunDir, record: RunRecord, target: Target | None = None,
               budget_ms: float | None = None) -> Choice:
    """How the run's best network is chosen: its budget (or ``budget_ms``) and margin, and the
    latencies measured on its target (or ``target``, for a re-scored report)."""
    return Choice(budget_ms=record.search.budget_ms if budget_ms is None else budget_ms,
                  margin=record.search.latency_margin,
                  measured_ms=load_measured(run, target or record.target))


def verify_front(members: Mapping[int, Arch], timer: Timer, run: RunDir,
                 target: Target) -> dict[int, float]:
    """Time ``members`` (trial -> architecture) end to end, add the figures to the run's
    measurements on ``target`` and return them all."""
    trials: Sequence[int] = list(members)
    timed = dict(zip(trials, timer([members[t] for t in trials])))
    measured = {**load_measured(run, target), **timed}
    write_text(run.verified, json.dumps({"target": target.fingerprint(), "measured_ms": {
        str(t): ms for t, ms in sorted(measured.items())}}, indent=2))
    return measured
