"""A sampler whose draws for trial n come from a sampler seeded for n: reproducible for one
worker, and different for several workers sharing a study.

A sampler seeded once per process would, in two workers started with the same seed, draw the
same candidates in the same order (a random sampler forever, TPE for its random start-up
trials): each architecture trained twice. Seeding from the trial number, which the storage hands
out once per study, gives every trial its own draws, and the same ones again for the same study
history (a resumed run continues from the next number instead of replaying the first draws).

The sampler also sees the study through a ``view`` of its trials (`nas.search.sampler_view`): the
study may record a trial one way for Optuna's front and the dashboard, and the sampler still
learn from it as its values say.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState


TrialView = Callable[[FrozenTrial], FrozenTrial]


class _StudyView:
    """The study with each trial read through ``view``; everything else is the study's."""

    def __init__(self, study: optuna.Study, view: TrialView) -> None:
        self._study, self._view = study, view

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def _get_trials(self, deepcopy: bool = True,
                    states: Container[TrialState] | None = None,
                    use_cache: bool = False) -> list[FrozenTrial]:
        trials = [self._view(t) for t in self._study._get_trials(deepcopy=deepcopy,
                                                                use_cache=use_cache)]
        return trials if states is None else [t for t in trials if t.state in states]

    def get_trials(self, deepcopy: bool = True,
                   states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()


class TrialSeeded(optuna.samplers.BaseSampler):
    """Delegates each trial to ``build(trial_number)``, made when the trial starts, which sees
    the study's trials through ``view``."""

    def __init__(self, build: Callable[[int], optuna.samplers.BaseSampler],
                 view: TrialView = lambda t: t) -> None:
        self._build, self._view = build, view
        self._current = build(0)

    def _seen(self, study: optuna.Study) -> optuna.Study:
        return _StudyView(study, self._view)  # type: ignore[return-value]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._current = self._build(trial.number)
        self._current.before_trial(self._seen(study), trial)

    def infer_relative_search_space(self, study: optuna.Study,
                                    trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._current.infer_relative_search_space(self._seen(study), trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._current.sample_relative(self._seen(study), trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._current.sample_independent(self._seen(study), trial, param_name,
                                                param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._current.after_trial(self._seen(study), trial, state, values)

    def reseed_rng(self) -> None:
        self._current.reseed_rng()
