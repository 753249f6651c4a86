"""The Optuna study: sample, predict latency, reject over-budget candidates untrained, train
at the cheapest rung, promote the best per latency band to longer training (`nas.halving`).

Objectives are (validation accuracy: maximize, predicted latency: minimize); the budget is an
Optuna 5 constraint (``trial.set_constraint``), so samplers and ``study.best_trials`` treat
over-budget candidates as infeasible. The study lives in a storage (SQLite under the run folder by
default): rerunning the same command resumes it, and ``--trials`` counts candidates trained at
the top rung. A promotion is a new trial with its parent's parameters (``enqueue_trial``), so
every trial is one training at one rung: its ``rung`` and ``epochs`` attributes say which.

Only the top rung's trainings are COMPLETE trials with values, so Optuna's own front
(``study.best_trials``, optuna-dashboard's Pareto view) is the report's front. A training at a
cheaper rung is told PRUNED (stopped early, in successive halving's terms) with its accuracy in
the ``accuracy`` attribute; the sampler still learns from it as before: it sees such trials as
COMPLETE with their values (`sampler_view`). Two workers may queue the same promotion at once;
the trial with the lower number takes it, and the other is closed untrained (`Status.DUPLICATE`).
"""

from __future__ import annotations

import copy
import sys
import warnings
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from typing import Protocol

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from nas.arch import Arch
from nas.budget import BudgetRule, Scored, best_of
from nas.config import SearchConfig
from nas.errors import UserError
from nas.evaluator import Evaluation
from nas.halving import RungResult, next_promotion
from nas.identity import STUDY_ATTR, Identity
from nas.latency.predict import Prediction
from nas.run import BestNetwork
from nas.sampling import TrialSeeded
from nas.signals import hold_stops
from nas.space import SearchSpace
from nas.storage import WorkerStorage
from nas.train import Diverged

# user_attrs written on every trial; the report reads them back.
ARCH, STATUS, REASON, ACCURACY = "arch", "status", "reason", "accuracy"
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
    DUPLICATE = "duplicate"  # a promotion another trial had already taken, never trained


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
    return TrialSeeded(lambda number: _sampler(name, trial_seed(seed, number)), sampler_view)


def sampler_view(trial: FrozenTrial) -> FrozenTrial:
    """A trial as the sampler sees it: one trained at a cheaper rung (PRUNED, so that Optuna's
    front holds the top rung only) as COMPLETE with its values, as it was told before."""
    if trial.state != TrialState.PRUNED or trial.user_attrs.get(STATUS) != Status.TRAINED:
        return trial
    shown = copy.copy(trial)
    shown.state = TrialState.COMPLETE
    shown.values = [trial.user_attrs[ACCURACY], trial.user_attrs[LATENCY]]
    return shown


def _sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=20)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown sampler {name!r}")


def open_study(storage: str | optuna.storages.BaseStorage, name: str,
               sampler: optuna.samplers.BaseSampler | None = None,
               identity: Identity | None = None) -> optuna.Study:
    """Create the study, or load it to resume or report; its objectives carry their names (what
    optuna-dashboard shows), and a new one records the run's ``identity`` (`made_identity`).
    Optuna's INFO lines ("A new study created") are silenced here: importing optuna sets its
    logger to INFO, after anything a caller set before."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                directions=["maximize", "minimize"], sampler=sampler)
    if study.metric_names != list(METRICS):
        with warnings.catch_warnings():  # experimental since Optuna 3.2, still in 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(METRICS))
    if identity is not None and STUDY_ATTR not in study.user_attrs:
        study.set_user_attr(STUDY_ATTR, identity)
    return study


def made_identity(storage: optuna.storages.BaseStorage, name: str) -> Identity | None:
    """The identity the study ``name`` was made with; None when there is no such study yet (or
    it records none). Reads only: a refused start writes nothing."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return None
    return storage.get_study_user_attrs(study_id).get(STUDY_ATTR)


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
    """Trained and told (at the top rung COMPLETE, below it PRUNED): another worker's trial is
    marked trained a moment before it is told."""
    return (trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and trial.user_attrs.get(STATUS) == Status.TRAINED)


def accuracy(trial: FrozenTrial) -> float:
    """A trained trial's validation accuracy, at whatever rung."""
    return float(trial.user_attrs[ACCURACY])


def trained_count(study: optuna.Study, top_rung: int = 0) -> int:
    """Candidates whose training at the top rung finished (trained or diverged)."""
    return sum((_trained(t) or (t.state == TrialState.FAIL
                                and t.user_attrs.get(STATUS) == Status.FAILED))
               and _rung(t) == top_rung for t in study.trials)


def best_under_budget(trials: list[FrozenTrial], rule: BudgetRule,
                      top_rung: int = 0) -> FrozenTrial | None:
    """The best candidate trained at the top rung under the ``rule`` (`nas.budget.best_of`)."""
    top = {t.number: t for t in trials if _trained(t) and _rung(t) == top_rung}
    best = best_of((Scored(n, accuracy(t), t.user_attrs[LATENCY]) for n, t in top.items()), rule)
    return None if best is None else top[best.trial]


def trained_network(trial: FrozenTrial) -> BestNetwork:
    """A trained trial as a network: its architecture, validation accuracy, predicted latency."""
    return BestNetwork(trial=trial.number, arch=Arch.from_string(trial.user_attrs[ARCH]),
                       accuracy=accuracy(trial), latency_ms=trial.user_attrs[LATENCY])


def rung_results(trials: list[FrozenTrial]) -> tuple[list[RungResult], set[int]]:
    """What successive halving reads back from the study: every candidate's result at its
    rung, and the trials already promoted (finished, running or queued at the next rung)."""
    results = [RungResult(t.number, _rung(t), accuracy(t) if _trained(t) else None,
                          t.user_attrs[LATENCY])
               for t in trials if LATENCY in t.user_attrs
               and t.user_attrs.get(STATUS) not in (Status.OVER_BUDGET, Status.DUPLICATE)]
    promoted = {int(t.user_attrs[PROMOTED_FROM]) for t in trials if _takes_promotion(t)}
    return results, promoted


def _takes_promotion(trial: FrozenTrial) -> bool:
    """Whether ``trial`` is (or was) its parent's promotion: an interrupted one is queued again,
    a duplicate never held it."""
    return PROMOTED_FROM in trial.user_attrs and trial.user_attrs.get(STATUS) not in (
        Status.INTERRUPTED, Status.DUPLICATE)


def _taken_by(trials: Sequence[FrozenTrial], trial: FrozenTrial) -> int | None:
    """The earlier trial that holds the promotion ``trial`` was queued for, if any: the lowest
    number wins, which every worker reads the same from the storage."""
    parent = trial.user_attrs[PROMOTED_FROM]
    return next((t.number for t in trials if t.number < trial.number and _takes_promotion(t)
                 and t.user_attrs[PROMOTED_FROM] == parent), None)


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
    it is over the budget or its promotion was taken, tell the study; returns the finished
    trial."""
    release = hold_stops()  # a stop inside ask() would leave the trial it created RUNNING
    try:
        trial = study.ask()
    except BaseException:
        release()
        raise
    try:
        release()  # a stop that came during ask() is raised here, where the trial gets closed
        rung = int(trial.user_attrs.get(RUNG, 0))
        if PROMOTED_FROM in trial.user_attrs:
            holder = _taken_by(study.trials, trial)
            if holder is not None:
                trial.set_user_attr(STATUS, Status.DUPLICATE)
                trial.set_user_attr(REASON, f"trial {holder} took this promotion first")
                return study.tell(trial, state=TrialState.FAIL)
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
        trial.set_user_attr(ACCURACY, result.accuracy)
        trial.set_user_attr(SECONDS, result.train_seconds)
        trial.set_user_attr(MACS, result.macs)
        trial.set_user_attr(PARAMS, result.params)
        if rung < len(rungs) - 1:  # see the module's docstring
            return study.tell(trial, state=TrialState.PRUNED)
        return study.tell(trial, [result.accuracy, prediction.latency_ms])
    except UpdateFinishedTrialError:
        # Another worker closed this trial as stale while it trained: its heartbeat came too
        # late (a machine or database too busy to record it for `nas.storage.GRACE_S`). The
        # study keeps it closed; this worker goes on with the next candidate.
        print(f"trial {trial.number} was closed by another worker while it trained (its "
              "heartbeat came too late); its result is dropped", file=sys.stderr)
        return next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
    except BaseException as exc:  # Ctrl-C or a bug: close the trial so resume starts clean
        _close_interrupted(study, trial, exc)
        raise


def _close_interrupted(study: optuna.Study, trial: optuna.Trial, exc: BaseException) -> None:
    """Close ``trial`` as interrupted by ``exc``, unless it was told already (a stop that came
    just after ``tell``): then there is nothing to close, and ``exc`` goes on as it is."""
    try:
        trial.set_user_attr(STATUS, Status.INTERRUPTED)
        trial.set_user_attr(REASON, exc.__class__.__name__)
        study.tell(trial, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        pass


def search(study: optuna.Study, space: SearchSpace, latency: LatencyPredictor,
           evaluator: Evaluator, config: SearchConfig, rungs: Sequence[float],
           on_trial: Callable[[FrozenTrial], None] = lambda t: None,
           turn: Callable[[], AbstractContextManager[None]] = nullcontext) -> None:
    """Run trials until ``config.trials`` candidates have been trained at the top rung, the
    last of ``rungs`` (epochs per rung, cheapest first), counting earlier runs; each trial,
    from its promotion to its ``tell``, runs inside a ``turn`` (`nas.run.RunDir.training_turn`:
    never beside a timing on the target)."""
    rejections, top = 0, len(rungs) - 1
    while trained_count(study, top) < config.trials:
        with turn():
            _queue_promotion(study, config, top)
            trial = run_trial(study, space, latency, evaluator, config, rungs)
        rejections = rejections + 1 if trial.user_attrs.get(STATUS) == Status.OVER_BUDGET else 0
        on_trial(trial)
        if rejections >= config.max_rejections:
            raise SearchStalled(f"{rejections} candidates in a row were over the "
                                f"{config.budget_ms:g} ms budget; raise --latency-budget")
