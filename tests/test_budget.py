"""One rule picks the best network under the budget: the search, the report and best/ agree."""

import random

import optuna
import pytest
from optuna.distributions import FloatDistribution

from nas.arch import Arch
from nas.budget import BudgetRule, Scored, best_of
from nas.references import MOBILENETV3_SMALL
from nas.report import front_info, trials_frame
from nas.run import BestNetwork, RunDir, read_checkpoint, save_best
from nas.search import ACCURACY, ARCH, LATENCY, RUNG, STATUS, Status, best_under_budget

ARCH_TEXT = MOBILENETV3_SMALL.to_string()


def _trial(number: int, accuracy: float, latency_ms: float) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(
        values=[accuracy, latency_ms], params={"x": 0.5},
        distributions={"x": FloatDistribution(0, 1)},
        user_attrs={STATUS: Status.TRAINED, ACCURACY: accuracy, LATENCY: latency_ms, RUNG: 0,
                    ARCH: ARCH_TEXT})
    trial.number = number
    return trial


def test_ties_go_to_the_faster_then_the_earlier():
    rule = BudgetRule(10.0)
    assert best_of([Scored(0, 0.9, 5.0), Scored(1, 0.9, 4.0)], rule).trial == 1
    assert best_of([Scored(2, 0.9, 4.0), Scored(1, 0.9, 4.0)], rule).trial == 1
    assert best_of([Scored(0, 0.95, 11.0), Scored(1, 0.9, 4.0)], rule).trial == 1
    assert best_of([Scored(0, 0.95, 11.0)], rule) is None
    # measured on the target beats predicted; the margin shrinks the budget
    assert best_of([Scored(0, 0.95, 5.0), Scored(1, 0.9, 4.0)],
                   BudgetRule(10.0, measured_ms={0: 12.0})).trial == 1
    assert best_of([Scored(0, 0.95, 9.5), Scored(1, 0.9, 4.0)],
                   BudgetRule(10.0, margin=0.1)).trial == 1


@pytest.mark.parametrize("seed", range(25))
def test_search_report_and_best_folder_agree_on_random_fronts(tmp_path, seed):
    rng = random.Random(seed)
    budget = 10.0
    n = rng.randint(1, 12)
    # few distinct values, so ties in accuracy and in latency are common
    trials = [_trial(i, rng.choice([0.8, 0.85, 0.9]), rng.choice([2.0, 5.0, 8.0, 10.0]))
              for i in range(n)]
    measured = {t.number: rng.choice([3.0, 9.0, 12.0]) for t in trials if rng.random() < 0.4}
    rule = BudgetRule(budget, margin=rng.choice([0.0, 0.1, 0.3]), measured_ms=measured)

    by_search = best_under_budget(trials, rule)
    info = front_info(trials_frame(trials, measured), rule, 0.5)
    by_report = None if info.best is None else int(info.best["number"])
    run = RunDir(tmp_path)
    for t in rng.sample(trials, len(trials)):  # best/ sees them in any order
        save_best(run, BestNetwork(t.number, Arch.from_string(ARCH_TEXT), t.values[0],
                                   t.values[1]), {}, rule)
    by_folder = read_checkpoint(run)[0].trial if run.best_checkpoint.is_file() else None

    assert (None if by_search is None else by_search.number) == by_report == by_folder
