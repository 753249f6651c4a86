"""Reports from a real (small, fake-scored) study: the trials table, summary and figure."""

import pandas as pd
import pytest

from conftest import LARGE_SPACE
from nas.choice import Choice
from nas.config import SearchConfig
from nas.report import front_info, pareto_figure, summary_markdown, trials_frame, write_report
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
    info = front_info(frame, Choice(14), seed_std=100.0)  # everything is within noise
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
    sharp = summary_markdown(front_info(frame, Choice(14), seed_std=0.0), record)
    ties = (inside["accuracy"] == inside["accuracy"].max()).sum()
    assert ("within noise of the best" in sharp) == (ties > 1)  # with no noise only exact ties
    assert ("ahead of every other candidate" in sharp) == (ties == 1)


def test_figure_draws_candidates_front_budget_and_latency_uncertainty(study, tmp_path):
    frame = trials_frame(study.trials)
    info = front_info(frame, Choice(14), seed_std=0.4)
    fig = pareto_figure(frame, info, "title")
    by_name = {t.name: t for t in fig.data}
    assert set(by_name) == {"within budget", "over budget", "Pareto front"}
    inside = by_name["within budget"]
    rows = frame[(frame["status"] == Status.TRAINED) & (frame["latency_ms"] <= 14)]
    assert list(inside.x) == list(rows["latency_ms"])
    assert list(inside.y) == pytest.approx(list(rows["accuracy"] * 100))
    assert list(inside.error_x.array) == list(rows["latency_err_ms"])
    assert inside.error_y.value == 0.4 and "seed std 0.4" in fig.layout.yaxis.title.text
    assert list(by_name["Pareto front"].x) == list(info.front["latency_ms"])
    assert fig.layout.shapes[0].x0 == 14 and "budget 14 ms" in fig.layout.annotations[0].text
    assert "%{customdata[1]}" in inside.hovertemplate  # the architecture on hover


def test_write_report_writes_every_file_and_never_best(study, tmp_path):
    run = RunDir(tmp_path / "run")
    write_report(run, trials_frame(study.trials), Choice(14), make_record(tmp_path), "-x")
    for path in (run.trials_csv("-x"), run.pareto_csv("-x"), run.pareto_html("-x"),
                 run.summary("-x")):
        assert path.is_file()
    assert len(pd.read_csv(run.trials_csv("-x"))) == len(study.trials)
    assert not run.best.exists()
    assert not [p for p in run.root.iterdir() if p.name.endswith(".tmp")]
