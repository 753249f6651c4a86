"""Verifying the front on the target: the best network must be within the budget as measured."""

from __future__ import annotations

import json

import pytest

from nas.budget import BudgetRule
from nas.cli import main
from nas.latency.measure import Timing
from nas.latency.table import LatencyTable
from nas.run import RunDir, load_best


def test_choice_uses_the_measured_latency_and_the_margin():
    choice = BudgetRule(budget_ms=10.0, margin=0.1, measured_ms={3: 10.5})
    assert choice.admits(1, 9.0)  # 9.9 <= 10
    assert not choice.admits(2, 9.5)  # 10.45 > 10: inside the budget, not inside the margin
    assert not choice.admits(3, 5.0)  # predicted 5, measured 10.5
    assert BudgetRule(10.0).admits(2, 9.5) and BudgetRule(10.0).latency_ms(3, 5.0) == 5.0


@pytest.fixture
def fake_timer(monkeypatch):
    """`time_networks` in `nas.coordinate`, timing each architecture at ``slow[arch]`` ms
    (1 ms unless listed), recording what it was asked to time."""
    slow: dict[str, float] = {}
    timed: list[list[str]] = []

    def time_networks(archs, target, model_config, config):
        timed.append([a.to_string() for a in archs])
        return [Timing(slow.get(a.to_string(), 1.0), 0.0, 2) for a in archs], Timing(0.3, 0.0, 2)

    monkeypatch.setattr("nas.coordinate.time_networks", time_networks)
    return slow, timed


def test_a_best_network_over_the_budget_as_measured_is_replaced_by_the_next(
        tmp_path, tiny_space, tiny_lut, tiny_data, fake_timer, capsys):
    slow, timed = fake_timer
    results = tmp_path / "results"
    search = ["search", "--latency-budget", "1000ms", "--data-dir", str(tiny_data),
              "--space", str(tiny_space), "--lut", str(tiny_lut),  # profiled on this machine
              "--val-samples", "100", "--epochs", "1", "--results-dir", str(results),
              "--run-name", "v", "--sampler", "random", "--rung-epochs", "none",
              "--references", "none",
              "--trials", "4"]
    assert main(search) == 0
    # The table, profiled on this machine, is checked against its speed now before the search.
    assert "speed probe: " in capsys.readouterr().err
    run = RunDir(results / "v")
    first, _ = load_best(run)
    assert any(first.arch.to_string() in t for t in timed)  # the front, best included, timed
    verified = json.loads(run.verified.read_text())
    assert verified["measured_ms"][str(first.trial)] == 1.0
    assert verified["speed_probe_ms"] == 0.3  # the fake's probe, timed with them
    then = LatencyTable.load(tiny_lut).speed_probe.median_ms
    assert (f"- speed probe: 0.300 ms during these measurements, {then:.3f} ms when the table "
            f"was timed: the target ran ") in run.summary().read_text()

    # The same network now measures over the budget on the target: the rerun (nothing left to
    # train) verifies again, passes it over, and best/ holds the next one, retrained.
    slow[first.arch.to_string()] = 5000.0
    timed.clear()
    capsys.readouterr()
    assert main(search) == 0
    second, _ = load_best(run)
    assert second.trial != first.trial and second.accuracy <= first.accuracy
    assert any(second.arch.to_string() in t for t in timed)  # chosen only once measured
    summary = run.summary().read_text()
    assert (f"- trial {first.trial} ({100 * first.accuracy:.2f}%) was passed over: measured at "
            "5000.00 ms, over the budget of 1000 ms") in summary
    assert f"so the best network under the budget is trial {second.trial}" in summary
    assert "| measured / predicted |" in summary
    assert f"retraining trial {second.trial}" in capsys.readouterr().err

    # A 50% safety margin: 800 ms is within 1000 ms but not within 1000 / 1.5.
    slow[second.arch.to_string()] = 800.0
    assert main([*search, "--latency-margin", "50%"]) == 0
    third, _ = load_best(run)
    assert third.trial not in (first.trial, second.trial)
    summary = run.summary().read_text()
    assert "safety margin 50%: the best network's latency must be within 666.67 ms" in summary
    assert f"- trial {second.trial}" in summary and "measured at 800.00 ms" in summary


@pytest.mark.parametrize("margin, message", [("-5%", "of 0% or more"), ("abc", "such as 10%"),
                                             ("nan", "of 0% or more")])
def test_bad_margins_are_refused_in_one_line(capsys, margin, message):
    with pytest.raises(SystemExit) as exited:
        main(["search", "--latency-budget", "10ms", f"--latency-margin={margin}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
