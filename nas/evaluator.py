"""The search's evaluator: seed, build, count, train briefly, score on the validation split."""

from __future__ import annotations

from dataclasses import dataclass, replace

from nas.arch import Arch
from nas.config import TrainConfig
from nas.data import Dataset
from nas.model import MobileNet, ModelConfig, complexity
from nas.train import CPU, resolve_device, seeded, train_and_validate


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # validation accuracy in [0, 1]
    train_seconds: float
    macs: int
    params: int


class TrainEvaluator:
    """Trains each candidate from its seed on ``train_config.train_device``, where the data is moved
    once; keeps the last model trained, on the CPU, so the best can be saved."""

    def __init__(self, data: Dataset, model_config: ModelConfig, train_config: TrainConfig) -> None:
        self.data = data.to(resolve_device(train_config.train_device))
        self.model_config, self.train_config = model_config, train_config
        self.last: MobileNet | None = None

    def __call__(self, arch: Arch, seed: int, epochs: float | None = None) -> Evaluation:
        """Train ``arch`` from ``seed`` for ``epochs`` (default: the config's) and score it."""
        config = self.train_config if epochs is None else replace(self.train_config,
                                                                   epochs=epochs)
        generator = seeded(seed)
        model = MobileNet(arch, self.model_config)
        size = complexity(model, self.data.image_size)
        self.last = None
        result = train_and_validate(model, self.data, config, generator)
        self.last = model.to(CPU)
        return Evaluation(accuracy=result.val_accuracy, train_seconds=result.train_seconds,
                          macs=size.macs, params=size.params)
