"""Successive halving: promotion per latency band, and resuming without retraining a rung."""

import optuna

from conftest import LARGE_SPACE
from nas.config import SearchConfig
from nas.halving import RungResult, bands_for, latency_bands, next_promotion
from nas.search import (ACCURACY, EPOCHS, PROMOTED_FROM, RUNG, STATUS, Status, make_sampler,
                        open_study, search)
from nas.space import load_space
from test_search import BlockCountLatency, FakeEvaluator


def test_bands_split_by_latency_into_equal_groups():
    results = [RungResult(i, 0, 0.5, float(10 - i)) for i in range(6)]
    assert [[r.number for r in b] for b in latency_bands(results, 3)] == [[5, 4], [3, 2], [1, 0]]


def test_promotes_the_best_of_each_band_not_the_best_overall():
    # slow networks (latency 20-25) are all more accurate than fast ones (1-6)
    fast = [RungResult(i, 0, 0.50 + i / 100, 1.0 + i) for i in range(6)]
    slow = [RungResult(10 + i, 0, 0.90 + i / 100, 20.0 + i) for i in range(6)]
    results = fast + slow
    first = next_promotion(results, [], top_rung=1, eta=3, bands=2)
    chosen, promoted = [], []
    while (nxt := next_promotion(results, promoted, top_rung=1, eta=3, bands=2)) is not None:
        chosen.append(nxt.number)
        promoted.append(nxt.number)
    assert first.number == 5  # the best fast one comes first (bands in latency order)
    assert sorted(chosen) == [4, 5, 14, 15]  # 6 // 3 = 2 per band
    # the deepest rung first: a finished rung-1 pool promotes before rung 0 does
    deeper = results + [RungResult(20 + i, 1, 0.6 + i / 10, 2.0) for i in range(3)]
    assert next_promotion(deeper, [], top_rung=2, eta=3, bands=1).number == 22
    # failed or running candidates (no accuracy) are never promoted
    assert next_promotion([RungResult(1, 0, None, 1.0)] * 3, [], 1, 3, 1) is None


def test_bands_are_added_as_results_come_in_so_the_first_promotion_needs_eta_results():
    assert [bands_for(n, eta=6, bands=3) for n in (0, 5, 6, 11, 12, 17, 18, 100)] == \
        [1, 1, 1, 1, 2, 2, 3, 3]
    six = [RungResult(i, 0, 0.5 + i / 100, float(i)) for i in range(6)]
    assert next_promotion(six[:5], [], top_rung=1, eta=6, bands=3) is None
    assert next_promotion(six, [], top_rung=1, eta=6, bands=3).number == 5  # one band of 6
    twelve = six + [RungResult(10 + i, 0, 0.9 + i / 100, 10.0 + i) for i in range(6)]
    chosen, promoted = [], []
    while (nxt := next_promotion(twelve, promoted, 1, eta=6, bands=3)) is not None:
        chosen.append(nxt.number)
        promoted.append(nxt.number)
    assert sorted(chosen) == [5, 15]  # two bands of 6: the best of each


def test_search_with_rungs_trains_each_rung_once_and_resumes(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    config = SearchConfig(budget_ms=100, trials=2, eta=3, bands=1, rung_epochs=(0.5,))
    evaluator = FakeEvaluator()
    search(open_study(storage, "s", make_sampler("random", 0)), load_space(LARGE_SPACE),
           BlockCountLatency(), evaluator, config, (0.5, 2.0))
    study = open_study(storage, "s")
    trials = [t for t in study.trials if t.user_attrs.get(STATUS) == Status.TRAINED]
    top = [t for t in trials if t.user_attrs[RUNG] == 1]
    # Optuna's own front holds the top rung only: cheaper rungs are told PRUNED
    assert {t.number for t in study.best_trials} <= {t.number for t in top}
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in trials if t not in top)
    assert len(top) == 2 and all(t.user_attrs[EPOCHS] == 2.0 for t in top)
    parents = {t.user_attrs[PROMOTED_FROM] for t in top}
    for t in top:  # a promotion trains its parent's architecture again, longer
        assert t.params == study.trials[t.user_attrs[PROMOTED_FROM]].params
    rung0 = [t for t in trials if t.user_attrs[RUNG] == 0]
    assert len(rung0) >= 6  # 2 promotions need 2 x eta candidates at rung 0
    best0 = sorted(rung0, key=lambda t: -t.user_attrs[ACCURACY])
    assert parents <= {t.number for t in best0[:len(rung0) // 3]}
    # a rerun asking for one more top-rung candidate trains no finished rung again
    seen = len(evaluator.seen)
    search(open_study(storage, "s", make_sampler("random", 1)), load_space(LARGE_SPACE),
           BlockCountLatency(), evaluator, SearchConfig(budget_ms=100, trials=3, eta=3,
                                                        bands=1, rung_epochs=(0.5,)), (0.5, 2.0))
    study = open_study(storage, "s")
    promoted = [t.user_attrs[PROMOTED_FROM] for t in study.trials if PROMOTED_FROM in t.user_attrs]
    assert len(promoted) == len(set(promoted)) == 3
    new = len(evaluator.seen) - seen
    assert new == 1 + (len(study.trials) - len(trials) - 1)  # one promotion + new rung-0 ones
