"""An exponential moving average of a model's weights, the network a final training keeps.

Averaging the weights of the last few hundred steps (Polyak averaging) smooths out the noise of
the last steps of SGD; the CIFAR-10 speed-run recipes keep such an average and evaluate it. The
average is a copy of the model whose parameters follow the trained ones,
``average = decay * average + (1 - decay) * weights``, after every step; its batch-norm
statistics are re-estimated at the end (`nas.train.recalibrate_batchnorm`) instead of averaged.
Every operation is a plain tensor operation in a fixed order: the same steps give the same
average, and a checkpoint of its state resumes it bit-exactly.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class WeightAverage:
    """The average of ``model``'s weights with ``decay`` per step (0 < decay < 1)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.model = copy.deepcopy(model)
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step: parameters move toward ``model``'s, buffers are copied."""
        for mine, theirs in zip(self.model.parameters(), model.parameters(), strict=True):
            mine.lerp_(theirs, 1.0 - self.decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers(), strict=True):
            mine.copy_(theirs)
