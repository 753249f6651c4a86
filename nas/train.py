"""Seeded training of a candidate and its top-1 accuracy; the recipe is `TrainConfig`'s.

The device is a parameter, not a branch: the same code trains on the CPU and on CUDA. The data
sits on the training device as uint8 and is augmented and normalised there, batch by batch;
every random draw comes from a CPU `torch.Generator` and moves to that device, so one seed gives
the same data order, crops and flips everywhere. What is saved is copied to the CPU (`on_cpu`),
so weights trained on a GPU load on a machine without one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nas.config import TrainConfig
from nas.data import Dataset, Split, normalize, random_crop_flip, random_erase
from nas.errors import UsageError

CPU = torch.device("cpu")
# `TrainConfig.precision` -> the dtype autocast computes in; float32 leaves autocast off.
AUTOCAST_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


class Diverged(RuntimeError):
    """The training loss became NaN or infinite; the message says when."""


@dataclass(frozen=True)
class TrainResult:
    val_accuracy: float  # in [0, 1]
    train_seconds: float
    final_loss: float


# After the warm-up, the share of the peak learning rate left at ``progress`` in [0, 1].
DECAYS: dict[str, Callable[[float], float]] = {
    "cosine": lambda progress: 0.5 * (1 + math.cos(math.pi * progress)),
    "triangle": lambda progress: 1.0 - progress,
}


def lr_at(step: int, total: int, peak: float, warmup_fraction: float,
          schedule: str = "cosine") -> float:
    """Linear warm-up to ``peak`` over the first steps, then decay to zero as ``schedule`` (of
    `DECAYS`) says."""
    warmup = max(1, int(total * warmup_fraction))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * DECAYS[schedule](progress)


def use_threads(threads: int | None) -> int:
    """The one place training's intra-op thread count is set (None keeps torch's default, one
    per core); returns the count in use. Latency timing sets its own, the target's, while it
    times (`nas.latency.measure.torch_threads`)."""
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def resolve_device(text: str) -> torch.device:
    """``--device``'s text as a device: ``auto`` is the first CUDA device where torch sees one,
    else the CPU; ``cpu``; ``cuda`` (the first GPU) or ``cuda:N``. A resolved device's text
    resolves to itself. A CUDA device this machine lacks is refused in one line (`UsageError`,
    exit 2)."""
    if text == "auto":
        return torch.device("cuda", 0) if torch.cuda.is_available() else CPU
    if text == "cpu":
        return CPU
    kind, colon, number = text.partition(":")
    if kind != "cuda" or colon and not number.isdigit():
        raise UsageError(f"--device {text!r}: choose auto, cpu, cuda or cuda:N")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        why = ("this torch is built without CUDA" if torch.version.cuda is None
               else "torch sees no CUDA device on this machine")
        raise UsageError(f"--device {text}: {why}; pass --device cpu, or auto (a GPU where "
                         "there is one, else the CPU)")
    index = int(number or 0)
    if index >= count:
        raise UsageError(f"--device {text}: this machine has {count} CUDA device(s), cuda:0 to "
                         f"cuda:{count - 1}; pass one of them")
    return torch.device("cuda", index)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """Mixed precision as `TrainConfig.precision` says, on ``device``: ``bf16`` runs the
    forward pass under torch.autocast with bfloat16, ``fp32`` leaves autocast off."""
    dtype = AUTOCAST_DTYPES[precision]
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def on_cpu(value: Any) -> Any:
    """``value`` with every tensor in it (nested in dicts, lists and tuples, as state dicts
    nest them) on the CPU: what is saved loads on a machine without a GPU. A tensor already
    there is not copied."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def seeded(seed: int) -> torch.Generator:
    """The one place a candidate's randomness is fixed: seeds torch's global generators (weight
    initialisation on the CPU; dropout, on the training device, CUDA's included) and returns a
    CPU generator for data order and augmentation. Call it before building the model.

    Same seed, same device, same weights: bit-exact on the CPU (at one thread count). On CUDA,
    cuDNN is asked for deterministic kernels, but some CUDA kernels accumulate gradients with
    atomic additions in an unfixed order (the backward pass of adaptive average pooling, which
    every head has, is one PyTorch lists as such), so two trainings on one GPU may differ in the
    last bits of their weights. The data order, crops, flips and erasing are the same on every
    device."""
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def model_inputs(pixels: torch.Tensor, data: Dataset) -> torch.Tensor:
    """uint8 images as the network takes them: normalised with the data set's statistics, in
    the channels-last layout the model is trained and evaluated in."""
    return normalize(pixels, data.mean, data.std).contiguous(memory_format=torch.channels_last)


def start_training(model: nn.Module, config: TrainConfig,
                   device: torch.device = CPU) -> torch.optim.Optimizer:
    """Put ``model`` on ``device`` in the layout it trains in and return its optimizer: SGD
    with Nesterov momentum, weight decay on weights only (not on biases and batch-norm
    parameters)."""
    # channels-last: 2.4x faster depthwise training on CPU
    model.to(device=device, memory_format=torch.channels_last)
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() > 1 else no_decay).append(p)
    return torch.optim.SGD(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum, nesterov=True)


def steps_per_epoch(split: Split, config: TrainConfig) -> int:
    return max(1, len(split) // config.batch_size)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, data: Dataset,
                config: TrainConfig, generator: torch.Generator, *, epoch: int, step: int,
                total: int, on_step: Callable[[], None] | None = None) -> tuple[float, int]:
    """One epoch over ``data.train`` in a fresh random order: ``steps_per_epoch`` steps, or the
    fewer left before global step ``total``. The learning rate follows `lr_at` by global step
    (``step`` is the steps done so far), so training resumed at an epoch boundary continues the
    same schedule. ``epoch`` (from 0) only names where a `Diverged` happened. Trains where
    ``data`` is (``model`` must be there too); ``generator`` is a CPU one. Returns the epoch's
    mean loss and the global step after it."""
    images, labels = data.train.images, data.train.labels
    device = images.device
    per_epoch = steps_per_epoch(data.train, config)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    model.train()
    order = torch.randperm(len(labels), generator=generator).to(device)
    running = torch.zeros((), device=device)
    steps = min(per_epoch, total - step)
    for i in range(steps):
        idx = order[i * config.batch_size:(i + 1) * config.batch_size]
        batch = random_crop_flip(images[idx], config.crop_padding, config.flip, generator)
        if config.erase:
            batch = random_erase(batch, config.erase, generator)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, total, config.lr, config.warmup_fraction,
                                config.schedule)
        with autocast(device, config.precision):
            loss = loss_fn(model(model_inputs(batch, data)), labels[idx])
        if not torch.isfinite(loss):
            raise Diverged(f"loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running += loss.detach()
        step += 1
        if on_step is not None:
            on_step()
    return float(running) / steps, step


def train(model: nn.Module, data: Dataset, config: TrainConfig,
          generator: torch.Generator) -> float:
    """Train in place on ``config.train_device`` (``model`` and ``data`` are moved there) for
    ``config.epochs`` epochs (a fraction trains that share of an epoch's steps); returns the
    mean loss of the last epoch. Raises `Diverged` on NaN."""
    device = resolve_device(config.train_device)
    data = data.to(device)
    per_epoch = steps_per_epoch(data.train, config)
    total = max(1, round(per_epoch * config.epochs))
    optimizer = start_training(model, config, device)
    step, epoch_loss = 0, float("nan")
    for epoch in range(math.ceil(total / per_epoch)):
        epoch_loss, step = train_epoch(model, optimizer, data, config, generator, epoch=epoch,
                                       step=step, total=total)
    recalibrate_batchnorm(model, data, config.recalibration_images, config.batch_size,
                          precision=config.precision)
    return epoch_loss


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, data: Dataset, images: int, batch_size: int, *,
                          precision: str = "fp32") -> None:
    """Re-estimate every batch-norm layer's running statistics as the plain average over the
    first ``images`` training images (no augmentation), with the weights as trained, where the
    data is, in ``precision`` (`autocast`).

    After a short training the running averages (momentum 0.1) still mix statistics of early,
    very different weights: evaluated with them, networks trained for a quarter or half an
    epoch scored chance level (10% on Fashion-MNIST) while the same weights scored 30-67% with
    re-estimated statistics; after 2 epochs the change is within +-0.2 points. Costs a forward
    pass over ``images`` images (about 1.3 s for 2,048 at 28 px on the development machine).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms or images <= 0:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    model.train()
    pixels = data.train.images[:images]
    with autocast(pixels.device, precision):
        for start in range(0, len(pixels), batch_size):
            model(model_inputs(pixels[start:start + batch_size], data))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


@torch.no_grad()
def top1_accuracy(model: nn.Module, split: Split, data: Dataset,
                 batch_size: int = TrainConfig.eval_batch_size, *,
                 precision: str = "fp32", mirror: bool = False) -> float:
    """Top-1 accuracy in [0, 1], in eval mode, where ``split`` is (``model`` must be there
    too), in ``precision`` (`autocast`). ``mirror``: test-time augmentation, each image scored
    by the mean of its and its mirror image's class probabilities, two forward passes (only
    meaningful for a network trained with flips); the model is not changed."""
    model.eval()
    correct = 0
    with autocast(split.images.device, precision):
        for start in range(0, len(split), batch_size):
            inputs = model_inputs(split.images[start:start + batch_size], data)
            scores = model(inputs).float().softmax(1)
            if mirror:
                scores = scores + model(inputs.flip(-1)).float().softmax(1)
            correct += int((scores.argmax(1) == split.labels[start:start + batch_size]).sum())
    return correct / len(split)


def train_and_validate(model: nn.Module, data: Dataset, config: TrainConfig,
                       generator: torch.Generator) -> TrainResult:
    """Train on ``config.train_device`` and return the validation accuracy (the search's
    objective); ``model`` is left on that device."""
    start = time.perf_counter()
    data = data.to(resolve_device(config.train_device))
    final_loss = train(model, data, config, generator)
    accuracy = top1_accuracy(model, data.val, data, config.eval_batch_size,
                             precision=config.precision)
    return TrainResult(val_accuracy=accuracy, train_seconds=time.perf_counter() - start,
                       final_loss=final_loss)
