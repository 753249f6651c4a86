"""Reports from a real (small, fake-scored) study: the trials table, summary and figure."""

import pandas as pd
import pytest

from conftest import LARGE_SPACE
from nas.budget import BudgetRule
from nas.config import SearchConfig
from nas.references import ReferenceResult
from nas.report import (budget_figure, family_curves, front_info, pareto_figure, plot_frame,
                        summary_markdown, trials_frame, verdict, write_report)
from nas.run import RunDir
from nas.search import Status, make_sampler, open_study, search
from nas.space import load_space
from test_run import make_record
from test_search import BlockCountLatency, FakeEvaluator


@pytest.fixture
def study(tmp_path):
    study = open_study(f"sqlite:///{tmp_path / 'study.db'}", "r", make_sampler("random", 0))
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(diverge_on=2),
           SearchConfig(budget_ms=14, trials=6), (2.0,))
    return study


def test_trials_frame_has_one_row_per_finished_trial_and_accuracy_only_when_trained(study):
    frame = trials_frame(study.trials)
    assert len(frame) == len(study.trials)
    trained = frame[frame["status"] == Status.TRAINED]
    assert len(trained) == 5 and trained["accuracy"].notna().all()
    assert frame.loc[frame["status"] != Status.TRAINED, "accuracy"].isna().all()
    assert (frame.loc[frame["status"] == Status.FAILED, "reason"].str.startswith("diverged")).all()
    assert (frame["arch"] != "").all() and frame["latency_ms"].notna().all()


def test_summary_states_provenance_counts_best_and_front(study, tmp_path):
    frame = trials_frame(study.trials)
    record = make_record(tmp_path)
    info = front_info(frame, BudgetRule(14), seed_std=100.0)  # everything is within noise
    text = summary_markdown(info, record)
    sampled = len(frame)
    over = int((frame["status"] == Status.OVER_BUDGET).sum())
    assert f"- target: {record.target.describe()}" in text
    assert "(sha256 abc)" in text and record.describe_data() in text
    assert f"{sampled} candidates sampled, {over} excluded by the budget before training" in text
    seconds = frame.loc[frame["status"] == Status.TRAINED, "train_seconds"].median()
    assert "1 failed;" in text
    assert f"- rungs: 5 trained at 2 epochs (median {seconds:.1f} s each) (single fidelity)" \
        in text
    best = frame.loc[frame["accuracy"].idxmax()]
    assert f"- trial {int(best['number'])}: validation accuracy {100 * best['accuracy']:.2f}%" \
        in text
    for _, row in info.front.iterrows():
        assert f"| {int(row['number'])} | {100 * row['accuracy']:.2f}% |" in text
    inside = frame[(frame["status"] == Status.TRAINED) & (frame["latency_ms"] <= 14)]
    fastest = inside.sort_values("latency_ms").iloc[0]
    assert f"within noise of the best ({len(inside)} candidates" in text
    assert f"the fastest of them is trial {int(fastest['number'])}" in text
    sharp = summary_markdown(front_info(frame, BudgetRule(14), seed_std=0.0), record)
    ties = (inside["accuracy"] == inside["accuracy"].max()).sum()
    assert ("within noise of the best" in sharp) == (ties > 1)  # with no noise only exact ties
    assert ("ahead of every other candidate" in sharp) == (ties == 1)


def test_figure_draws_candidates_front_budget_and_latency_uncertainty(study, tmp_path):
    frame = trials_frame(study.trials)
    info = front_info(frame, BudgetRule(14), seed_std=0.4)
    fig = pareto_figure(frame, info, "title")
    by_name = {t.name: t for t in fig.data}
    rejected = frame[frame["status"] == Status.OVER_BUDGET]
    strip = f"rejected before training ({len(rejected)}): predicted latency only"
    assert set(by_name) == {"within budget", "over budget", "Pareto front", strip}
    assert list(by_name[strip].x) == list(rejected["latency_ms"]) and len(rejected)
    inside = by_name["within budget"]
    rows = frame[(frame["status"] == Status.TRAINED) & (frame["latency_ms"] <= 14)]
    assert list(inside.x) == list(rows["latency_ms"])
    assert list(inside.y) == pytest.approx(list(rows["accuracy"] * 100))
    assert list(inside.error_x.array) == list(rows["latency_err_ms"])
    assert inside.error_y.value == 0.4 and "seed std 0.4" in fig.layout.yaxis.title.text
    assert by_name[strip].yaxis == "y2"  # its own strip below, on the shared latency axis
    assert list(by_name["Pareto front"].x) == list(info.front["latency_ms"])
    assert fig.layout.shapes[0].x0 == 14 and "budget 14 ms" in fig.layout.annotations[0].text
    assert "%{customdata[1]}" in inside.hovertemplate  # the architecture on hover


def test_write_report_writes_every_file_and_never_best(study, tmp_path):
    run = RunDir(tmp_path / "run")
    write_report(run, trials_frame(study.trials), BudgetRule(14), make_record(tmp_path), "-x")
    for path in (run.trials_csv("-x"), run.pareto_csv("-x"), run.pareto_html("-x"),
                 run.summary("-x")):
        assert path.is_file()
    assert len(pd.read_csv(run.trials_csv("-x"))) == len(study.trials)
    assert not run.best.exists()
    assert not [p for p in run.root.iterdir() if p.name.endswith(".tmp")]


def _references(frame: pd.DataFrame) -> list[ReferenceResult]:
    """One reference slower and worse than every trained candidate, one faster than all."""
    trained = frame[frame["status"] == Status.TRAINED]
    slow = ReferenceResult("slow-ref", "arch-a", float(trained["accuracy"].min()) - 0.01,
                           float(trained["latency_ms"].max()) + 1, 0.1, 2.0, 1.0)
    fast = ReferenceResult("fast-ref", "arch-b", 0.99, float(trained["latency_ms"].min()) - 1,
                           0.1, 2.0, 1.0)
    return [slow, fast]


def test_references_are_drawn_and_compared_with_the_best_candidate_at_no_more_latency(
        study, tmp_path):
    frame = trials_frame(study.trials)
    slow, fast = _references(frame)
    info = front_info(frame, BudgetRule(14), seed_std=0.4, references=[slow, fast])
    trained = frame[frame["status"] == Status.TRAINED]
    best = trained.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]
    row = info.references.set_index("name").loc["slow-ref"]
    assert row["rival_number"] == best["number"]  # every candidate is at no more latency
    assert pd.isna(info.references.set_index("name").loc["fast-ref", "rival_number"])
    text = summary_markdown(info, make_record(tmp_path))
    gap = 100 * (best["accuracy"] - slow.accuracy)
    beaten = "beaten" if gap > 2 * 2 ** 0.5 * 0.4 else "not beaten"
    assert (f"- slow-ref: {beaten} beyond seed noise: trial {int(best['number'])} is {gap:+.2f} "
            "points at no more latency") in text
    assert (f"- fast-ref: not beaten: no candidate was trained at {fast.latency_ms:.2f} ms or "
            "less") in text
    stars = {t.name: t for t in pareto_figure(frame, info, "t").data}[
        "reference networks (same proxy, same table)"]
    assert list(stars.text) == ["slow-ref", "fast-ref"]
    assert list(stars.y) == pytest.approx([100 * slow.accuracy, 100 * fast.accuracy])


def test_budget_figure_gives_the_best_accuracy_reachable_under_each_budget(study):
    frame = trials_frame(study.trials)
    info = front_info(frame, BudgetRule(14), seed_std=0.4)
    line = budget_figure(frame, info, "t").data[0]
    trained = frame[frame["status"] == Status.TRAINED]
    for budget, accuracy in zip(line.x, line.y):
        reachable = trained[trained["latency_ms"] <= budget]["accuracy"].max()
        assert accuracy == pytest.approx(100 * reachable)
    assert list(line.y) == sorted(line.y)  # more milliseconds never buy less accuracy
    assert max(line.y) == pytest.approx(100 * trained["accuracy"].max())


def _frame(rows):
    """A trials frame from (number, status, rung, accuracy, latency_ms) rows."""
    frame = pd.DataFrame([{"number": n, "state": "COMPLETE", "status": s, "rung": r, "epochs": 1,
                           "accuracy": a, "latency_ms": ms, "latency_err_ms": 0.1,
                           "measured_latency_ms": None, "macs": 1e6, "params": 1e5,
                           "train_seconds": 1.0, "arch": f"a{n}", "reason": ""}
                          for n, s, r, a, ms in rows])
    frame["reached_epochs"] = 2.0
    return frame


def test_the_plot_frames_the_top_rung_and_references_not_the_budget_or_cheap_rungs():
    rows = [(0, Status.TRAINED, 0, 0.30, 1.8), (1, Status.TRAINED, 0, 0.22, 3.1),
            (2, Status.TRAINED, 1, 0.85, 2.0), (3, Status.TRAINED, 1, 0.86, 3.0)]
    frame = _frame(rows)
    refs = [ReferenceResult("mobilenetv3-small", "x", 0.84, 2.5, 0.1, 2.0, 1.0)]
    info = front_info(frame, BudgetRule(20.0), 0.5, (0.25, 2.0), refs)
    axes = plot_frame(frame, info)
    # 1.9 to 3.1 ms with the latency error bars (0.1 ms), padded by 8% of that
    assert axes.latency_ms == pytest.approx((1.9 - 0.096, 3.1 + 0.096))
    assert axes.accuracy == pytest.approx((84 - 0.5 - 0.08 * 3, 86 + 0.5 + 0.08 * 3))  # +-std
    assert axes.budget_edge == "right"  # 20 ms lies beyond every candidate
    fig = pareto_figure(frame, info, "t")
    assert list(fig.layout.xaxis.range) == pytest.approx(list(axes.latency_ms))
    assert list(fig.layout.yaxis.range) == pytest.approx(list(axes.accuracy))
    assert any("budget 20 ms →" in a.text for a in fig.layout.annotations)
    cheap = {t.name: t for t in fig.data}["stopped at a cheaper rung"]
    assert cheap.visible == "legendonly"
    inside = plot_frame(frame, front_info(frame, BudgetRule(2.5), 0.5, (0.25, 2.0), refs))
    assert inside.budget_edge is None


def test_a_budget_that_binds_nothing_says_which_budgets_would(tmp_path):
    rows = [(i, Status.TRAINED, 0, 0.8, 1.0 + i) for i in range(11)]
    frame = _frame(rows)
    text = summary_markdown(front_info(frame, BudgetRule(20.0), 0.5), make_record(tmp_path))
    assert ("the budget binds nothing here: budgets of 2.00 to 10.00 ms would (10th to 90th "
            "percentile of the sampled candidates' predicted latency)") in text
    over = _frame([*rows, (11, Status.OVER_BUDGET, 0, None, 30.0)])
    text = summary_markdown(front_info(over, BudgetRule(20.0), 0.5), make_record(tmp_path))
    assert "binds nothing" not in text


def test_a_verdict_says_beaten_only_beyond_seed_noise():
    # seed std 0.5: two accuracies differ beyond noise when more than 2 x sqrt(2) x 0.5 apart
    assert [verdict(gap, 0.5) for gap in (1.5, 1.4, 0.0, -1.4, -1.5, None)] == [
        "beaten", "within noise", "within noise", "within noise", "ahead", "unmatched"]


def test_each_family_member_gets_its_verdict_a_row_and_a_place_on_its_curve(tmp_path):
    """Fake accuracies: candidates at 2, 3 and 4 ms; the MobileNetV3 family around them."""
    frame = _frame([(0, Status.TRAINED, 0, 0.80, 2.0), (1, Status.TRAINED, 0, 0.85, 3.0),
                    (2, Status.TRAINED, 0, 0.90, 4.0)])
    refs = [ReferenceResult(name, "x", accuracy, ms, 0.1, 2.0, 1.0) for name, accuracy, ms in (
        ("mobilenetv3-small-0.5", 0.75, 1.5),   # faster than every candidate
        ("mobilenetv3-small-0.75", 0.78, 2.5),  # trial 0: +2 points, beyond noise (1.41)
        ("mobilenetv3-small", 0.84, 3.2),       # trial 1: +1 point, within noise
        ("mobilenetv3-small-1.25", 0.95, 4.5),  # trial 2: -5 points: the reference is ahead
        ("mobilenetv3-large", 0.89, 5.0))]      # alone in its family: no curve
    info = front_info(frame, BudgetRule(20.0), 0.5, (2.0,), refs)
    table = info.references.set_index("name")
    assert dict(table["verdict"]) == {
        "mobilenetv3-small-0.5": "unmatched", "mobilenetv3-small-0.75": "beaten",
        "mobilenetv3-small": "within noise", "mobilenetv3-small-1.25": "ahead",
        "mobilenetv3-large": "within noise"}
    assert list(table["rival_number"].fillna(-1)) == [-1, 0, 1, 2, 2]
    assert list(table["width"]) == [0.5, 0.75, 1.0, 1.25, 1.0]
    text = summary_markdown(info, make_record(tmp_path))
    for line in (
            "1 of 5 beaten beyond seed noise by a candidate at no more latency:",
            "- mobilenetv3-small-0.5: not beaten: no candidate was trained at 1.50 ms or less",
            "- mobilenetv3-small-0.75: beaten beyond seed noise: trial 0 is +2.00 points at no "
            "more latency (beyond seed noise, 1.41 points)",
            "- mobilenetv3-small: not beaten beyond seed noise: trial 1 is +1.00 points at no "
            "more latency (within seed noise, 1.41 points)",
            "- mobilenetv3-small-1.25: not beaten, more accurate beyond seed noise: trial 2 is "
            "-5.00 points at no more latency (beyond seed noise, 1.41 points)",
            "| mobilenetv3-small-0.75 | 78.00% | 2.50 | trial 0: 80.00% at 2.00 ms |"):
        assert line in text.splitlines()
    curves = family_curves(info.references)
    assert list(curves) == ["mobilenetv3-small"]
    assert list(curves["mobilenetv3-small"]["name"]) == [
        "mobilenetv3-small-0.5", "mobilenetv3-small-0.75", "mobilenetv3-small",
        "mobilenetv3-small-1.25"]
    lines = {t.name: t for t in pareto_figure(frame, info, "t").data}
    curve = lines["mobilenetv3-small family (width 0.5, 0.75, 1, 1.25)"]
    assert list(curve.x) == [1.5, 2.5, 3.2, 4.5]
    assert list(curve.y) == pytest.approx([75, 78, 84, 95])
    assert not [name for name in lines if name.startswith("mobilenetv3-large family")]


def test_two_family_curves_are_told_apart_and_an_empty_rejected_strip_says_why():
    frame = _frame([(0, Status.TRAINED, 0, 0.80, 2.0), (1, Status.TRAINED, 0, 0.85, 3.0)])
    refs = [ReferenceResult(name, "x", 0.8, ms, 0.1, 1.0, 1.0) for name, ms in (
        ("mobilenetv3-small-0.5", 1.8), ("mobilenetv3-small-0.75", 1.9),
        ("mobilenetv3-large-0.5", 2.6), ("mobilenetv3-large-0.75", 3.4))]
    fig = pareto_figure(frame, front_info(frame, BudgetRule(20.0), 0.3, (1.0,), refs), "t")
    curves = [t for t in fig.data if t.name.endswith("(width 0.5, 0.75)")]
    assert [c.name.split(" ")[0] for c in curves] == ["mobilenetv3-small", "mobilenetv3-large"]
    assert curves[0].line.dash != curves[1].line.dash
    note = "no candidate rejected before training: every sampled one was within the budget"
    assert note in [a.text for a in fig.layout.annotations]
    over = _frame([(0, Status.TRAINED, 0, 0.80, 2.0), (1, Status.OVER_BUDGET, 0, None, 30.0)])
    fig = pareto_figure(over, front_info(over, BudgetRule(20.0), 0.3, (1.0,)), "t")
    assert note not in [a.text for a in fig.layout.annotations]
