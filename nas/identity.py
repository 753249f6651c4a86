"""A run's identity: every setting that gives its trials' numbers their meaning.

A run is one experiment. Its identity is recorded when the run is created (``run.json`` and the
study's user attribute `STUDY_ATTR`) and checked on every later start: the space's choices (as
loaded: a comment edited in its file changes nothing), the data set and what it turned out to be
(split sizes, resolution, channels, classes, per-channel statistics), every training and rung
setting, the sampler, the seed, the budget, and the latency table's target and fit (a table that
only gained layers keeps its identity). A start whose identity differs is refused with one line
that names the first difference. What only changes how fast a run goes, or how its results are read,
may change on resume: `MAY_CHANGE`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, asdict, fields
from typing import Any

from nas.config import DataConfig, SearchConfig, TrainConfig
from nas.errors import UserError

STUDY_ATTR = "nas:identity"  # the study's user attribute holding the identity
# Settings a rerun may change: how many candidates, how many processes and threads, the device
# they train on, and how the best is chosen and drawn (margin, seed noise, which references); none
# changes what a trial's result means (threads and devices only round differently).
MAY_CHANGE = frozenset({"trials", "latency_margin", "seed_std", "references", "max_rejections",
                        "train_threads", "train_device", "data_dir", "test_dir", "cache_dir"})

Identity = dict[str, Any]  # label (a flag's name where there is one) -> JSON value, in order


class IdentityError(UserError):
    """A start on an existing run whose settings differ from the run's."""


def _label(config: type, name: str) -> str:
    """How a user knows the setting: its flag's name, else the config's field."""
    for f in fields(config):
        if f.name == name and "flag" in f.metadata:
            return f.metadata["flag"].name or "--" + name.replace("_", "-")
    return f"{config.__name__}.{name}"


def _settings(config: DataConfig | TrainConfig | SearchConfig) -> Identity:
    values = asdict(config)
    return {_label(type(config), name): value for name, value in values.items()
            if name not in MAY_CHANGE}


def identity(*, space_sha256: str, space_name: str, data: DataConfig,
             data_shape: Mapping[str, Any], train: TrainConfig, search: SearchConfig, target: str,
             lut: str) -> Identity:
    """The identity of a run made with these settings, as plain JSON data (tuples as lists);
    ``data_shape`` says what the loaded data turned out to be (`nas.run.DataInfo.shape`)."""
    made = {"the space's choices (fingerprint)": space_sha256, "--space": space_name,
            **_settings(search), **_settings(train),
            **{k: v for k, v in _settings(data).items() if k != "DataConfig.seed"},  # --seed
            **{f"the data's {k}": v for k, v in data_shape.items()},
            "the latency target (fingerprint)": target,
            "the latency table (its target and fit)": lut}
    return json.loads(json.dumps(made))


def _defaults() -> Identity:
    """Every setting's default, by label: what a run made before the setting existed used."""
    return json.loads(json.dumps({
        _label(config, f.name): f.default for config in (DataConfig, TrainConfig, SearchConfig)
        for f in fields(config) if f.default is not MISSING and f.name not in MAY_CHANGE}))


def first_difference(made: Mapping[str, Any], now: Mapping[str, Any]) -> str | None:
    """The first setting whose value differs, said as 'LABEL: made with A, now B'; None when
    they agree. A setting newer than the run (absent from ``made``) agrees when it is at its
    default, which is how the version that made the run behaved."""
    defaults = _defaults()
    for label in dict.fromkeys([*made, *now]):
        if label not in made and label in defaults and now.get(label) == defaults[label]:
            continue
        if made.get(label) != now.get(label):
            return (f"{label}: the run was made with {_show(made.get(label))}, this start gives "
                    f"{_show(now.get(label))}")
    return None


def check(made: Mapping[str, Any], now: Mapping[str, Any], where: str) -> None:
    """Refuse (`IdentityError`, one line) a start whose identity differs from the run's."""
    difference = first_difference(made, now)
    if difference is not None:
        raise IdentityError(f"{where} is another experiment ({difference}); pass --run-name NAME "
                            "to start a new run with these settings, or rerun with the run's own")


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
