"""A sampler whose draws for trial n come from a sampler seeded for n: reproducible for one
worker, and different for several workers sharing a study.

A sampler seeded once per process would, in two workers started with the same seed, draw the
same candidates in the same order (a random sampler forever, TPE for its random start-up
trials): each architecture trained twice. Seeding from the trial number, which the storage hands
out once per study, gives every trial its own draws, and the same ones again for the same study
history (a resumed run continues from the next number instead of replaying the first draws).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


class TrialSeeded(optuna.samplers.BaseSampler):
    """Delegates each trial to ``build(trial_number)``, made when the trial starts."""

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler]) -> None:
        self._build = build
        self._current = build(0)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._current = self._build(trial.number)
        self._current.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._current.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._current.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._current.reseed_rng()
