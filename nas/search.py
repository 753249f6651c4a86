"""The Optuna study: sample, predict latency, reject over-budget candidates untrained, train
at the cheapest rung, promote the best per latency band to longer training (`nas.halving`).

Objectives are (validation accuracy: maximize, predicted latency: minimize); the budget is an
Optuna 5 constraint (``trial.set_constraint``), so samplers and ``study.best_trials`` treat
over-budget candidates as infeasible. The study lives in a storage (SQLite under the run folder by
default): rerunning the same command resumes it, and ``--trials`` counts candidates trained at
the top rung. A promotion is a new trial with its parent's parameters (``enqueue_trial``), so
every trial is one training at one rung: its ``rung`` and ``epochs`` attributes say which.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch import Arch
from nas.choice import Choice
from nas.config import SearchConfig
from nas.errors import UserError
from nas.evaluator import Evaluation
from nas.halving import RungResult, next_promotion
from nas.latency.predict import Prediction
from nas.run import BestNetwork
from nas.sampling import TrialSeeded
from nas.signals import hold_stops
from nas.space import SearchSpace
from nas.storage import WorkerStorage
from nas.train import Diverged

# user_attrs written on every trial; the report reads them back.
ARCH, STATUS, REASON = "arch", "status", "reason"
LATENCY, LATENCY_ERR, MACS, PARAMS, SECONDS = ("latency_ms", "latency_err_ms", "macs", "params",
                                               "train_seconds")
RUNG, EPOCHS, PROMOTED_FROM = "rung", "epochs", "promoted_from"
METRICS = ("validation_accuracy", "predicted_latency_ms")  # the objectives' names


class Status(StrEnum):
    """What became of a candidate (the ``status`` user attribute and column)."""

    TRAINED = "trained"
    OVER_BUDGET = "over_budget"  # rejected on its predicted latency, never trained
    FAILED = "failed"  # training diverged
    INTERRUPTED = "interrupted"  # Ctrl-C or an error while it was in flight


class LatencyPredictor(Protocol):
    def predict(self, arch: Arch) -> Prediction: ...


class Evaluator(Protocol):
    """Trains a candidate for ``epochs`` and scores it; raises `nas.train.Diverged` when
    training blows up."""

    def __call__(self, arch: Arch, seed: int, epochs: float) -> Evaluation: ...


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (one of `nas.config.SAMPLERS`), seeded for each trial from
    ``seed`` and the trial's number (`nas.sampling.TrialSeeded`), so workers sharing a study
    draw different candidates and one worker the same ones for the same study."""
    return TrialSeeded(lambda number: _sampler(name, trial_seed(seed, number)))


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


def open_study(storage: str | optuna.storages.BaseStorage, name: str,
               sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Create the study, or load it to resume or report; its objectives carry their names (what
    optuna-dashboard shows). Optuna's INFO lines ("A new study created") are silenced here:
    importing optuna sets its logger to INFO, after anything a caller set before."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                directions=["maximize", "minimize"], sampler=sampler)
    if study.metric_names != list(METRICS):
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(METRICS))
    return study


def close_stale_trials(study: optuna.Study, storage: WorkerStorage) -> list[int]:
    """Close the trials left RUNNING by a worker that died (SIGKILL, power cut) as FAIL, with
    status ``interrupted`` and a reason; returns their numbers."""
    return storage.close_stale_trials(study.study_name, {
        STATUS: Status.INTERRUPTED, REASON: "stale: its worker stopped while it ran (killed, or "
                                            "the machine went down)"})


def trial_seed(seed: int, number: int) -> int:
    """The seed of trial ``number`` (its draws and its training) in a run seeded ``seed``."""
    return seed * 100_003 + number


def _rung(trial: FrozenTrial) -> int:
    return int(trial.user_attrs.get(RUNG, 0))


def _trained(trial: FrozenTrial) -> bool:
    """Trained and told: another worker's trial is marked trained a moment before its values
    reach the study."""
    return trial.state == TrialState.COMPLETE and trial.user_attrs.get(STATUS) == Status.TRAINED


def trained_count(study: optuna.Study, top_rung: int = 0) -> int:
    """Candidates whose training at the top rung finished (trained or diverged)."""
    return sum((_trained(t) or (t.state == TrialState.FAIL
                                and t.user_attrs.get(STATUS) == Status.FAILED))
               and _rung(t) == top_rung for t in study.trials)


def best_under_budget(trials: list[FrozenTrial], choice: Choice,
                      top_rung: int = 0) -> FrozenTrial | None:
    """The most accurate candidate trained at the top rung that the ``choice`` admits (ties:
    faster)."""
    ok = [t for t in trials if _trained(t) and _rung(t) == top_rung
          and choice.admits(t.number, t.user_attrs[LATENCY])]
    return max(ok, key=lambda t: (t.values[0], -t.user_attrs[LATENCY]), default=None)


def trained_network(trial: FrozenTrial) -> BestNetwork:
    """A trained trial as a network: its architecture, validation accuracy, predicted latency."""
    return BestNetwork(trial=trial.number, arch=Arch.from_string(trial.user_attrs[ARCH]),
                       accuracy=trial.values[0], latency_ms=trial.user_attrs[LATENCY])


def rung_results(trials: list[FrozenTrial]) -> tuple[list[RungResult], set[int]]:
    """What successive halving reads back from the study: every candidate's result at its
    rung, and the trials already promoted (finished, running or queued at the next rung)."""
    results = [RungResult(t.number, _rung(t), t.values[0] if _trained(t) else None,
                          t.user_attrs[LATENCY])
               for t in trials if LATENCY in t.user_attrs
               and t.user_attrs.get(STATUS) != Status.OVER_BUDGET]
    promoted = {int(t.user_attrs[PROMOTED_FROM]) for t in trials
                if PROMOTED_FROM in t.user_attrs  # an interrupted promotion is queued again
                and t.user_attrs.get(STATUS) != Status.INTERRUPTED}
    return results, promoted


def _queue_promotion(study: optuna.Study, config: SearchConfig, top_rung: int) -> None:
    """Queue the next promotion, if successive halving has one."""
    results, promoted = rung_results(study.trials)
    parent = next_promotion(results, promoted, top_rung, config.eta, config.bands)
    if parent is not None:
        study.enqueue_trial(study.trials[parent.number].params,
                            user_attrs={RUNG: parent.rung + 1, PROMOTED_FROM: parent.number})


class SearchStalled(UserError):
    """Too many consecutive candidates over the budget."""


def run_trial(study: optuna.Study, space: SearchSpace, latency: LatencyPredictor,
              evaluator: Evaluator, config: SearchConfig,
              rungs: Sequence[float]) -> FrozenTrial:
    """Ask for one candidate (a queued promotion first), train it for its rung's epochs unless
    it is over the budget, tell the study; returns the finished trial."""
    release = hold_stops()  # a stop inside ask() would leave the trial it created RUNNING
    try:
        trial = study.ask()
    except BaseException:
        release()
        raise
    try:
        release()  # a stop that came during ask() is raised here, where the trial gets closed
        rung = int(trial.user_attrs.get(RUNG, 0))
        trial.set_user_attr(RUNG, rung)
        trial.set_user_attr(EPOCHS, rungs[rung])
        arch = space.sample(trial)
        prediction = latency.predict(arch)
        trial.set_user_attr(ARCH, arch.to_string())
        trial.set_user_attr(LATENCY, prediction.latency_ms)
        trial.set_user_attr(LATENCY_ERR, prediction.error_ms)
        trial.set_constraint("latency_budget", prediction.latency_ms - config.budget_ms)
        if prediction.latency_ms > config.budget_ms:
            # Never trained, so no accuracy to tell: PRUNED, with its (violated) constraint.
            # TPE reads PRUNED trials and ranks infeasible ones by their violation alone (a
            # COMPLETE trial's values are not read either once it is infeasible), so it learns
            # from these exactly as from COMPLETE ones; NSGA-II breeds from COMPLETE trials
            # only, where an infeasible one ranks below every feasible one anyway. Optuna's
            # best_trials and optuna-dashboard then show no made-up 0% accuracy for them.
            trial.set_user_attr(STATUS, Status.OVER_BUDGET)
            return study.tell(trial, state=TrialState.PRUNED)
        try:
            result = evaluator(arch, trial_seed(config.seed, trial.number), rungs[rung])
        except Diverged as exc:
            trial.set_user_attr(STATUS, Status.FAILED)
            trial.set_user_attr(REASON, f"diverged: {exc}")
            return study.tell(trial, state=TrialState.FAIL)
        trial.set_user_attr(STATUS, Status.TRAINED)
        trial.set_user_attr(SECONDS, result.train_seconds)
        trial.set_user_attr(MACS, result.macs)
        trial.set_user_attr(PARAMS, result.params)
        return study.tell(trial, [result.accuracy, prediction.latency_ms])
    except BaseException as exc:  # Ctrl-C or a bug: close the trial so resume starts clean
        trial.set_user_attr(STATUS, Status.INTERRUPTED)
        trial.set_user_attr(REASON, exc.__class__.__name__)
        study.tell(trial, state=TrialState.FAIL)
        raise


def search(study: optuna.Study, space: SearchSpace, latency: LatencyPredictor,
           evaluator: Evaluator, config: SearchConfig, rungs: Sequence[float],
           on_trial: Callable[[FrozenTrial], None] = lambda t: None) -> None:
    """Run trials until ``config.trials`` candidates have been trained at the top rung, the
    last of ``rungs`` (epochs per rung, cheapest first), counting earlier runs."""
    rejections, top = 0, len(rungs) - 1
    while trained_count(study, top) < config.trials:
        _queue_promotion(study, config, top)
        trial = run_trial(study, space, latency, evaluator, config, rungs)
        rejections = rejections + 1 if trial.user_attrs.get(STATUS) == Status.OVER_BUDGET else 0
        on_trial(trial)
        if rejections >= config.max_rejections:
            raise SearchStalled(f"{rejections} candidates in a row were over the "
                                f"{config.budget_ms:g} ms budget; raise --latency-budget")
