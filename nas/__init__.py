"""Hardware-aware neural architecture search over MobileNetV3-style networks.

The public names below load on first use, so ``import nas`` stays light and ``nas profile`` runs
on a device with only torch installed.
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "Arch": "nas.arch", "BlockSpec": "nas.arch", "Stem": "nas.arch", "Head": "nas.arch",
    "SearchSpace": "nas.space", "load_space": "nas.space", "random_archs": "nas.space",
    "MobileNet": "nas.model", "ModelConfig": "nas.model",
    "DataConfig": "nas.config", "TrainConfig": "nas.config", "SearchConfig": "nas.config",
    "ProfileConfig": "nas.config", "FinalConfig": "nas.config",
    "Dataset": "nas.data", "load_dataset": "nas.data",
    "Target": "nas.latency.target", "LatencyTable": "nas.latency.table",
    "LatencyModel": "nas.latency.predict", "profile_space": "nas.latency.profile",
    "TrainEvaluator": "nas.evaluator", "open_study": "nas.search",
    "RunDir": "nas.run", "RunRecord": "nas.run", "train_final": "nas.final",
    "MOBILENETV3_LARGE": "nas.references", "MOBILENETV3_SMALL": "nas.references",
    "UserError": "nas.errors",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'nas' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
