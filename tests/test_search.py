import signal

import optuna
import pytest

from conftest import LARGE_SPACE
from nas.arch import Arch
from nas.budget import BudgetRule
from nas.latency.predict import Prediction
from nas.config import SAMPLERS, SearchConfig
from nas.evaluator import Evaluation
from nas.report import front_info, trials_frame
from nas.search import (PROMOTED_FROM, RUNG, STATUS, SearchStalled, Status, best_under_budget,
                        make_sampler, open_study, run_trial, rung_results, sampler_view, search,
                        trained_count)
from nas.space import load_space
from nas.train import Diverged


SINGLE = (2.0,)  # one rung: single-fidelity search


class BlockCountLatency:
    """1 ms per block: deterministic, so the budget's effect is known exactly."""

    def predict(self, arch: Arch) -> Prediction:
        n = float(len(arch.blocks))
        return Prediction(latency_ms=n, error_ms=0.1, raw_sum_ms=n)


class FakeEvaluator:
    def __init__(self, diverge_on: int = -1) -> None:
        self.seen: list[tuple[Arch, int]] = []
        self.diverge_on = diverge_on

    def __call__(self, arch: Arch, seed: int, epochs: float = 2.0) -> Evaluation:
        self.seen.append((arch, seed))
        if len(self.seen) == self.diverge_on:
            raise Diverged("loss became nan at epoch 1, step 3")
        kernels = sum(b.kernel for b in arch.blocks)
        return Evaluation(accuracy=kernels / 200, train_seconds=0.0, macs=1, params=1)


def _study(tmp_path, name="s", sampler="tpe"):
    return open_study(f"sqlite:///{tmp_path / 'study.db'}", name, make_sampler(sampler, 0))


def test_over_budget_candidates_are_recorded_and_never_trained(tmp_path):
    study, evaluator = _study(tmp_path), FakeEvaluator()
    config = SearchConfig(budget_ms=14, trials=6, seed=1)
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), evaluator, config, SINGLE)
    statuses = [t.user_attrs[STATUS] for t in study.trials]
    assert statuses.count(Status.TRAINED) == 6 == len(evaluator.seen)
    assert all(len(arch.blocks) <= 14 for arch, _ in evaluator.seen)
    over = [t for t in study.trials if t.user_attrs[STATUS] == Status.OVER_BUDGET]
    assert over, "a 14-block budget must exclude some of 11..21-block networks"
    assert all(t.constraints["latency_budget"] > 0 for t in over)
    assert all(t.constraints["latency_budget"] <= 0 for t in study.trials
               if t.user_attrs[STATUS] == Status.TRAINED)
    best = best_under_budget(study.trials, BudgetRule(14))
    assert best.values[0] == max(t.values[0] for t in study.trials
                                 if t.user_attrs[STATUS] == Status.TRAINED)


def test_rerun_resumes_and_trials_count_trained_candidates(tmp_path):
    evaluator = FakeEvaluator()
    search(_study(tmp_path), load_space(LARGE_SPACE), BlockCountLatency(), evaluator,
           SearchConfig(budget_ms=16, trials=3), SINGLE)
    study = _study(tmp_path)
    assert trained_count(study) == 3
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), evaluator,
           SearchConfig(budget_ms=16, trials=5), SINGLE)
    assert trained_count(_study(tmp_path)) == 5 and len(evaluator.seen) == 5


def test_diverging_candidate_is_failed_with_reason_and_search_goes_on(tmp_path):
    study = _study(tmp_path)
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(diverge_on=2),
           SearchConfig(budget_ms=100, trials=4), SINGLE)
    failed = [t for t in study.trials if t.user_attrs[STATUS] == Status.FAILED]
    assert len(failed) == 1 and "nan" in failed[0].user_attrs["reason"]
    assert failed[0].state == optuna.trial.TrialState.FAIL
    assert sum(t.user_attrs[STATUS] == Status.TRAINED for t in study.trials) == 3


@pytest.mark.slow
def test_same_seed_same_trials(tmp_path):
    runs = []
    for name in ("a", "b"):
        evaluator = FakeEvaluator()
        study = open_study(f"sqlite:///{tmp_path / name}.db", name, make_sampler("tpe", 3))
        search(study, load_space(LARGE_SPACE), BlockCountLatency(), evaluator,
               SearchConfig(budget_ms=16, trials=4, seed=3), SINGLE)
        runs.append([(a.to_string(), s) for a, s in evaluator.seen])
    assert runs[0] == runs[1]


@pytest.mark.parametrize("sampler", ["random", "nsga2"])
def test_other_samplers_run(tmp_path, sampler):
    study = _study(tmp_path, sampler=sampler)
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(),
           SearchConfig(budget_ms=100, trials=2, sampler=sampler), SINGLE)
    assert trained_count(study) == 2


def test_impossible_budget_stops_with_a_message(tmp_path):
    with pytest.raises(SearchStalled, match="raise --latency-budget"):
        search(_study(tmp_path, sampler="random"), load_space(LARGE_SPACE), BlockCountLatency(),
               FakeEvaluator(), SearchConfig(budget_ms=1, trials=1, max_rejections=20), SINGLE)


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_name_builds_a_seeded_sampler(name):
    def proposals(seed: int) -> list[tuple[int, int]]:
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=make_sampler(name, seed))
        drawn = []
        for _ in range(4):
            trial = study.ask()
            drawn.append((trial.suggest_int("width", 0, 10**6),
                          trial.suggest_categorical("kernel", [3, 5, 7])))
            study.tell(trial, [drawn[-1][0] / 10**6, drawn[-1][1]])
        return drawn

    assert proposals(0) == proposals(0) != proposals(1)


def test_workers_sharing_a_study_draw_different_candidates(tmp_path):
    """Two studies on one storage, as two worker processes started with the same seed: each
    trial is seeded by its number, so they do not draw the same architectures."""
    space = load_space(LARGE_SPACE)
    workers = [_study(tmp_path, sampler="random") for _ in range(2)]
    for _ in range(3):
        for study in workers:
            run_trial(study, space, BlockCountLatency(), FakeEvaluator(),
                      SearchConfig(budget_ms=100, trials=6), SINGLE)
    archs = [t.user_attrs["arch"] for t in workers[0].trials]
    assert len(archs) == 6 == len(set(archs))


def test_over_budget_candidates_are_pruned_without_values(tmp_path):
    study = _study(tmp_path, sampler="random")
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(),
           SearchConfig(budget_ms=14, trials=3), SINGLE)
    assert study.metric_names == ["validation_accuracy", "predicted_latency_ms"]
    over = [t for t in study.trials if t.user_attrs[STATUS] == Status.OVER_BUDGET]
    assert over and all(t.state == optuna.trial.TrialState.PRUNED and t.values is None
                        and t.constraints["latency_budget"] > 0 for t in over)
    assert {t.number for t in study.best_trials}.isdisjoint(t.number for t in over)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_a_stop_inside_ask_still_closes_the_trial_it_created(tmp_path, stop):
    """The window CI once hit: the stop lands after ask() has written the trial's row, before
    run_trial holds the trial; it must still end FAIL (interrupted), not stay RUNNING."""
    study = _study(tmp_path, sampler="random")
    ask = study.ask

    def ask_then_stop():
        trial = ask()
        signal.raise_signal(stop)
        return trial

    study.ask = ask_then_stop
    previous = signal.signal(stop, signal.default_int_handler)  # either stop raises
    try:
        with pytest.raises(KeyboardInterrupt):
            run_trial(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(),
                      SearchConfig(budget_ms=100, trials=1), SINGLE)
    finally:
        signal.signal(stop, previous)
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.FAIL
    assert trial.user_attrs[STATUS] == Status.INTERRUPTED


def test_a_stop_just_after_tell_keeps_the_told_trial_and_unwinds(tmp_path, monkeypatch):
    """A stop that lands once ``tell`` finished the trial: nothing is left to close, and the
    stop itself (not an error about a finished trial) reaches the caller."""
    study = _study(tmp_path, sampler="random")
    tell = study.tell

    def tell_then_stop(*args, **kwargs):
        tell(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "tell", tell_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_trial(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(),
                  SearchConfig(budget_ms=100, trials=1), SINGLE)
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.user_attrs[STATUS] == Status.TRAINED


def test_a_promotion_queued_twice_is_trained_once(tmp_path):
    """Two workers that pick the same promotion at once both queue it; the trial with the lower
    number takes it, the other is closed untrained, and the parent counts as promoted."""
    study, evaluator = _study(tmp_path, sampler="random"), FakeEvaluator()
    space, config, rungs = load_space(LARGE_SPACE), SearchConfig(budget_ms=100, trials=1), (
        0.5, 2.0)
    parent = run_trial(study, space, BlockCountLatency(), evaluator, config, rungs)
    for _ in range(2):
        study.enqueue_trial(parent.params, user_attrs={RUNG: 1, PROMOTED_FROM: parent.number})
    first = run_trial(study, space, BlockCountLatency(), evaluator, config, rungs)
    second = run_trial(study, space, BlockCountLatency(), evaluator, config, rungs)
    assert first.user_attrs[STATUS] == Status.TRAINED and first.user_attrs[RUNG] == 1
    assert second.user_attrs[STATUS] == Status.DUPLICATE
    assert second.state == optuna.trial.TrialState.FAIL
    assert f"trial {first.number} took this promotion first" == second.user_attrs["reason"]
    assert len(evaluator.seen) == 2  # the parent at rung 0, its promotion once
    assert rung_results(study.trials)[1] == {parent.number}
    assert trained_count(study, top_rung=1) == 1


def test_optunas_front_is_the_reports_front(tmp_path):
    """Cheaper rungs are PRUNED: ``study.best_trials`` (and so optuna-dashboard's Pareto view)
    holds exactly the report's front, while the sampler saw those trials as COMPLETE."""
    study, rungs = _study(tmp_path), (0.25, 2.0)
    config = SearchConfig(budget_ms=16, trials=3, eta=2, bands=1, rung_epochs=(0.25,))
    search(study, load_space(LARGE_SPACE), BlockCountLatency(), FakeEvaluator(), config, rungs)
    frame = trials_frame(study.trials)
    info = front_info(frame, BudgetRule(16), 0.5, rungs)
    assert len(info.front) >= 1 and (frame["rung"] == 0).sum() > len(info.front)
    assert {t.number for t in study.best_trials} == set(info.front["number"])
    cheap = [t for t in study.trials if t.user_attrs.get(RUNG) == 0
             and t.user_attrs[STATUS] == Status.TRAINED]
    assert cheap and all(t.state == optuna.trial.TrialState.PRUNED for t in cheap)
    seen = sampler_view(cheap[0])
    assert seen.state == optuna.trial.TrialState.COMPLETE
    assert seen.values == [cheap[0].user_attrs["accuracy"], cheap[0].user_attrs["latency_ms"]]
    assert cheap[0].state == optuna.trial.TrialState.PRUNED  # the study's own is untouched


def test_a_trial_closed_as_stale_while_it_trains_is_dropped_not_fatal(tmp_path, capsys):
    """A worker whose heartbeat came too late finds its trial closed by another worker when it
    records the result: it says so and goes on, the study keeping the trial closed."""
    study = _study(tmp_path, sampler="random")
    evaluator = FakeEvaluator()

    def closed_meanwhile(arch, seed, epochs=2.0):
        [running] = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        study._storage.set_trial_state_values(running._trial_id, optuna.trial.TrialState.FAIL)
        return evaluator(arch, seed, epochs)

    trial = run_trial(study, load_space(LARGE_SPACE), BlockCountLatency(), closed_meanwhile,
                      SearchConfig(budget_ms=100, trials=1), SINGLE)
    assert trial.state == optuna.trial.TrialState.FAIL
    assert f"trial {trial.number} was closed by another worker" in capsys.readouterr().err
