"""The Optuna study: sample, predict latency, reject over-budget candidates untrained, train.

Objectives are (validation accuracy: maximize, predicted latency: minimize); the budget is an
Optuna 5 constraint (``trial.set_constraint``), so samplers and ``study.best_trials`` treat
over-budget candidates as infeasible. The study lives in a storage (SQLite under the run folder by
default): rerunning the same command resumes it, and ``--trials`` counts trained candidates.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.arch import Arch
from nas.latency.predict import Prediction
from nas.space import SearchSpace
from nas.train import Diverged

# user_attrs written on every trial; the report reads them back.
ARCH, STATUS, REASON = "arch", "status", "reason"
LATENCY, LATENCY_ERR, MACS, PARAMS, SECONDS = ("latency_ms", "latency_err_ms", "macs", "params",
                                               "train_seconds")
TRAINED, OVER_BUDGET, FAILED, INTERRUPTED = "trained", "over_budget", "failed", "interrupted"

SAMPLERS: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed, population_size=20),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}


class LatencyPredictor(Protocol):
    def predict(self, arch: Arch) -> Prediction: ...


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # validation accuracy in [0, 1]
    train_seconds: float
    macs: int
    params: int


class Evaluator(Protocol):
    """Trains and scores a candidate; raises `nas.train.Diverged` when training blows up."""

    def __call__(self, arch: Arch, seed: int) -> Evaluation: ...


@dataclass(frozen=True)
class SearchConfig:
    budget_ms: float
    trials: int = 30  # trained candidates (over-budget ones are free and not counted)
    seed: int = 0
    sampler: str = "tpe"
    max_rejections: int = 2000  # consecutive over-budget samples before giving up


def open_study(storage: str, name: str, sampler: str, seed: int) -> optuna.Study:
    """Create or resume the study; the sampler is reseeded by how many trials exist."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                directions=["maximize", "minimize"])
    study.sampler = SAMPLERS[sampler](seed + len(study.trials))
    return study


def trained_count(study: optuna.Study) -> int:
    return sum(t.user_attrs.get(STATUS) in (TRAINED, FAILED) for t in study.trials)


def best_under_budget(trials: list[FrozenTrial], budget_ms: float) -> FrozenTrial | None:
    """The most accurate trained trial within the budget (ties: the faster)."""
    ok = [t for t in trials if t.user_attrs.get(STATUS) == TRAINED
          and t.user_attrs[LATENCY] <= budget_ms]
    return max(ok, key=lambda t: (t.values[0], -t.user_attrs[LATENCY]), default=None)


class SearchStalled(RuntimeError):
    """Too many consecutive candidates over the budget."""


def run_trial(study: optuna.Study, space: SearchSpace, latency: LatencyPredictor,
              evaluate: Evaluator, config: SearchConfig) -> FrozenTrial:
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
            trial.set_user_attr(STATUS, OVER_BUDGET)
            return study.tell(trial, [0.0, prediction.latency_ms])
        try:
            result = evaluate(arch, config.seed * 100_003 + trial.number)
        except Diverged as exc:
            trial.set_user_attr(STATUS, FAILED)
            trial.set_user_attr(REASON, f"diverged: {exc}")
            return study.tell(trial, state=TrialState.FAIL)
        trial.set_user_attr(STATUS, TRAINED)
        trial.set_user_attr(SECONDS, result.train_seconds)
        trial.set_user_attr(MACS, result.macs)
        trial.set_user_attr(PARAMS, result.params)
        return study.tell(trial, [result.accuracy, prediction.latency_ms])
    except BaseException as exc:  # Ctrl-C or a bug: close the trial so resume starts clean
        trial.set_user_attr(STATUS, INTERRUPTED)
        trial.set_user_attr(REASON, exc.__class__.__name__)
        study.tell(trial, state=TrialState.FAIL)
        raise


def search(study: optuna.Study, space: SearchSpace, latency: LatencyPredictor,
           evaluate: Evaluator, config: SearchConfig,
           on_trial: Callable[[FrozenTrial], None] = lambda t: None) -> None:
    """Run trials until ``config.trials`` candidates have been trained (including earlier runs)."""
    rejections = 0
    while trained_count(study) < config.trials:
        trial = run_trial(study, space, latency, evaluate, config)
        rejections = rejections + 1 if trial.user_attrs.get(STATUS) == OVER_BUDGET else 0
        on_trial(trial)
        if rejections >= config.max_rejections:
            raise SearchStalled(f"{rejections} candidates in a row were over the "
                                f"{config.budget_ms:g} ms budget; raise --latency-budget")
