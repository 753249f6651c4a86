"""The search's evaluator: build, count, train briefly, score on the validation split."""

from __future__ import annotations

from pathlib import Path

import torch

from nas.arch import Arch
from nas.data import Dataset
from nas.model import MobileNet, ModelConfig, complexity
from nas.search import Evaluation
from nas.train import TrainConfig, train_and_evaluate


class TrainEvaluator:
    """Trains each candidate from its seed; keeps the last model so the best can be saved."""

    def __init__(self, data: Dataset, model_config: ModelConfig, train_config: TrainConfig) -> None:
        self.data, self.model_config, self.train_config = data, model_config, train_config
        self.last: MobileNet | None = None

    def __call__(self, arch: Arch, seed: int) -> Evaluation:
        torch.manual_seed(seed)
        model = MobileNet(arch, self.model_config)
        size = complexity(model, self.data.image_size)
        self.last = model
        result = train_and_evaluate(model, self.data, self.train_config, seed)
        return Evaluation(accuracy=result.val_accuracy, train_seconds=result.train_seconds,
                          macs=size.macs, params=size.params)

    def save_last(self, path: Path) -> None:
        """Save the weights of the candidate trained last (contiguous, CPU)."""
        if self.last is None:
            raise RuntimeError("no candidate has been trained yet")
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.contiguous() for k, v in self.last.state_dict().items()}
        torch.save(state, path)
