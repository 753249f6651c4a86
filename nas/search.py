"""The Optuna study: sample, predict latency, reject over-budget candidates untrained, train.

Objectives are (validation accuracy: maximize, predicted latency: minimize); the budget is an
Optuna 5 constraint (``trial.set_constraint``), so samplers and ``study.best_trials`` treat
over-budget candidates as infeasible. The study lives in a storage (SQLite under the run folder by
default): rerunning the same command resumes it, and ``--trials`` counts trained candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from enum import StrEnum
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch import Arch
from nas.config import SearchConfig
from nas.errors import UserError
from nas.evaluator import Evaluation
from nas.latency.predict import Prediction
from nas.sampling import TrialSeeded
from nas.space import SearchSpace
from nas.storage import WorkerStorage
from nas.train import Diverged

# user_attrs written on every trial; the report reads them back.
ARCH, STATUS, REASON = "arch", "status", "reason"
LATENCY, LATENCY_ERR, MACS, PARAMS, SECONDS = ("latency_ms", "latency_err_ms", "macs", "params",
                                               "train_seconds")
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
    """Trains and scores a candidate; raises `nas.train.Diverged` when training blows up."""

    def __call__(self, arch: Arch, seed: int) -> Evaluation: ...


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
    optuna-dashboard shows)."""
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


def trained_count(study: optuna.Study) -> int:
    return sum(t.user_attrs.get(STATUS) in (Status.TRAINED, Status.FAILED) for t in study.trials)


def best_under_budget(trials: list[FrozenTrial], budget_ms: float) -> FrozenTrial | None:
    """The most accurate trained trial within the budget (ties: the faster)."""
    ok = [t for t in trials if t.user_attrs.get(STATUS) == Status.TRAINED
          and t.user_attrs[LATENCY] <= budget_ms]
    return max(ok, key=lambda t: (t.values[0], -t.user_attrs[LATENCY]), default=None)


class SearchStalled(UserError):
    """Too many consecutive candidates over the budget."""


def run_trial(study: optuna.Study, space: SearchSpace, latency: LatencyPredictor,
              evaluator: Evaluator, config: SearchConfig) -> FrozenTrial:
    """Ask for one candidate, score it, tell the study; returns the finished trial."""
    trial = study.ask()
    try:
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
            result = evaluator(arch, trial_seed(config.seed, trial.number))
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
           evaluator: Evaluator, config: SearchConfig,
           on_trial: Callable[[FrozenTrial], None] = lambda t: None) -> None:
    """Run trials until ``config.trials`` candidates have been trained (including earlier runs)."""
    rejections = 0
    while trained_count(study) < config.trials:
        trial = run_trial(study, space, latency, evaluator, config)
        rejections = rejections + 1 if trial.user_attrs.get(STATUS) == Status.OVER_BUDGET else 0
        on_trial(trial)
        if rejections >= config.max_rejections:
            raise SearchStalled(f"{rejections} candidates in a row were over the "
                                f"{config.budget_ms:g} ms budget; raise --latency-budget")
