"""Verify the front on the target: time every front member under the budget end to end when the
search ends on the target machine, so that the best network is chosen on measured latency.

The measurements live in the run's ``verified.json``, tagged with the target's fingerprint:
they hold for that target only (a report re-scored for another table ignores them).
`run_choice` turns them, with the budget and the user's margin, into the `nas.budget.BudgetRule`
that picks the best network everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from nas.arch import Arch
from nas.atomic import write_text
from nas.budget import BudgetRule
from nas.latency.target import Target
from nas.run import RunDir, RunError, RunRecord

# Times networks end to end on this machine, in the given order, with the speed probe in the
# same rounds: (ms, one per network; the probe's ms).
Timer = Callable[[Sequence[Arch]], tuple[list[float], float]]


def _load(run: RunDir, target: Target) -> tuple[dict[int, float], float | None]:
    """Trial -> latency measured on ``target``, and the speed probe's time with them; ({}, None)
    when nothing was measured on it."""
    if not run.verified.is_file():
        return {}, None
    try:
        saved = json.loads(run.verified.read_text())
        if saved["target"] != target.fingerprint():
            return {}, None
        probe = saved.get("speed_probe_ms")  # absent in files from before the probe
        return ({int(t): float(ms) for t, ms in saved["measured_ms"].items()},
                None if probe is None else float(probe))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise RunError(f"{run.verified}: damaged ({exc.__class__.__name__}); delete it, the "
                       "next search on the target measures the front again") from exc


def run_choice(run: RunDir, record: RunRecord, target: Target | None = None,
               budget_ms: float | None = None) -> BudgetRule:
    """How the run's best network is chosen: its budget (or ``budget_ms``) and margin, and the
    latencies measured on its target (or ``target``, for a re-scored report)."""
    measured, probe = _load(run, target or record.target)
    return BudgetRule(budget_ms=record.search.budget_ms if budget_ms is None else budget_ms,
                  margin=record.search.latency_margin, measured_ms=measured,
                  measured_probe_ms=probe)


def verify_front(members: Mapping[int, Arch], timer: Timer, run: RunDir,
                 target: Target) -> dict[int, float]:
    """Time ``members`` (trial -> architecture) end to end, add the figures to the run's
    measurements on ``target`` (with the speed probe's latest time) and return them all."""
    trials: Sequence[int] = list(members)
    times, probe = timer([members[t] for t in trials])
    measured = {**_load(run, target)[0], **dict(zip(trials, times))}
    write_text(run.verified, json.dumps({"target": target.fingerprint(), "measured_ms": {
        str(t): ms for t, ms in sorted(measured.items())}, "speed_probe_ms": probe}, indent=2))
    return measured
