"""Final training of a chosen network: from scratch, on every training image, with the full
recipe (`nas.config.FINAL_RECIPE`), resumable after a kill.

``final/checkpoint.pt`` is replaced atomically after every epoch and holds all that the next
epoch depends on: weights and batch-norm statistics, the optimizer's momentum, the global step
(the learning-rate schedule is by step), torch's global generator, CUDA's when training on a
GPU (dropout draws from it there), and the data generator (order, crops, flips), and the curve
so far. A training killed at any moment and rerun resumes after its last finished epoch and ends
with the weights of one never interrupted (on the CPU at the same thread count; on one GPU,
within what `nas.train.seeded` says CUDA keeps bit-exact). A checkpoint of another network, seed
or recipe is refused, never resumed; one of another device is resumed, with a note. At the end
come ``weights.pt``, ``curve.csv`` and, last, ``final.json``, whose presence says the training is
complete; the checkpoint is then removed. Every tensor saved is a CPU one (`nas.train.on_cpu`):
a training on a GPU resumes and exports on a machine without one.

The curve's test accuracies use batch-norm's running statistics, except the last epoch's, taken
after `nas.train.recalibrate_batchnorm` like the search's: it is the final test accuracy. With an
average of the weights (`TrainConfig.ema`, `nas.ema`), the average is what each epoch tests
(its batch-norm statistics re-estimated every time), what the checkpoint carries beside the
weights, and what ``weights.pt`` holds: the network exported is the one whose accuracy is shown.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import torch

from nas.arch import Arch, ArchError
from nas.atomic import atomic_path, write_text
from nas.config import TrainConfig
from nas.data import Dataset, Split
from nas.ema import WeightAverage
from nas.errors import UserError
from nas.model import MobileNet, ModelConfig
from nas.progress import Progress
from nas.run import BestNetwork, RunDir, fit_weights, from_dict
from nas.train import (Diverged, on_cpu, recalibrate_batchnorm, resolve_device, seeded,
                       start_training, steps_per_epoch, top1_accuracy, train_epoch)


class FinalError(UserError):
    """A final/ folder that cannot be used as it is: damaged, or another training's."""


@dataclass(frozen=True)
class CurvePoint:
    epoch: int  # from 1
    loss: float  # mean training loss of the epoch
    test_accuracy: float  # in [0, 1]
    seconds: float  # the epoch's training and testing


@dataclass(frozen=True)
class Training:
    """Which training: what makes two of them give the same weights."""

    arch: Arch
    seed: int
    config: TrainConfig

    def check_continues(self, held: Training, what: str, run: RunDir) -> None:
        """Refuse in one line to continue or reuse ``held`` (read from ``what``) for this
        training when it is another; the device may differ (`TrainConfig.train_device`)."""
        differences = [f"{name} {theirs} (asked: {ours})" for name, theirs, ours in (
            ("network", held.arch.to_string(), self.arch.to_string()),
            ("seed", held.seed, self.seed),
            ("epochs", f"{held.config.epochs:g}", f"{self.config.epochs:g}"),
            ("precision", held.config.precision, self.config.precision)) if theirs != ours]
        anywhere = replace(held.config, train_device=self.config.train_device)
        if not differences and anywhere != self.config:
            differences.append("another training recipe (another version of nas)")
        if differences:
            raise FinalError(f"{what} is another training's ({'; '.join(differences)}): pass "
                             f"its --trial/--seed/--epochs, or delete {run.final} to train anew")


@dataclass(frozen=True)
class FinalResult:
    """What ``final.json`` holds."""

    network: BestNetwork  # the network trained; its accuracy is the search's validation one
    epochs: int
    seed: int
    test_accuracy: float  # in [0, 1], after the last epoch: one view, as the network runs
    train_seconds: float  # summed over the epochs, across resumptions
    config: TrainConfig
    # The same weights scored with test-time augmentation (`nas.train.top1_accuracy`'s
    # ``mirror``: two forward passes per image, twice the latency); None when the training
    # used no flips (the mirror image is then not one it learned from).
    test_accuracy_mirror: float | None = None

    @property
    def training(self) -> Training:
        return Training(self.network.arch, self.seed, self.config)

    def to_dict(self) -> dict[str, Any]:
        n = self.network
        return {"trial": n.trial, "arch": n.arch.to_string(), "validation_accuracy": n.accuracy,
                "predicted_latency_ms": n.latency_ms, "epochs": self.epochs, "seed": self.seed,
                "test_accuracy": self.test_accuracy,
                "test_accuracy_mirror": self.test_accuracy_mirror,
                "train_seconds": self.train_seconds, "config": asdict(self.config)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FinalResult:
        network = BestNetwork(trial=int(d["trial"]), arch=Arch.from_string(d["arch"]),
                              accuracy=float(d["validation_accuracy"]),
                              latency_ms=float(d["predicted_latency_ms"]))
        return cls(network=network, epochs=int(d["epochs"]), seed=int(d["seed"]),
                   test_accuracy=float(d["test_accuracy"]),
                   train_seconds=float(d["train_seconds"]),
                   config=from_dict(TrainConfig, d["config"]),
                   test_accuracy_mirror=d.get("test_accuracy_mirror"))


def mirror_note(result: FinalResult) -> str:
    """The test-time-augmented accuracy as printed beside the single-view one, or nothing."""
    if result.test_accuracy_mirror is None:
        return ""
    return (f" ({100 * result.test_accuracy_mirror:.2f}% when each image is also scored "
            "mirrored: 2 forward passes, twice the latency)")


def all_training_images(data: Dataset, mean: tuple[float, ...],
                        std: tuple[float, ...]) -> Dataset:
    """``data`` with its validation images put back into its training split: the search carved
    them out to score candidates, the final training uses every training image. Normalised
    with ``mean`` and ``std``, the run's (the statistics its export's card states)."""
    train = Split(torch.cat([data.train.images, data.val.images]),
                  torch.cat([data.train.labels, data.val.labels]))
    return replace(data, train=train, mean=mean, std=std)


def load_final(run: RunDir) -> tuple[FinalResult, dict[str, torch.Tensor]] | None:
    """The complete final training's record and weights; None when there is none (yet)."""
    if not run.final_record.is_file():
        return None
    try:
        result = FinalResult.from_dict(json.loads(run.final_record.read_text()))
        state = torch.load(run.final_weights, weights_only=True)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError,
            ArchError) as exc:  # missing weights, bad JSON, missing keys, bad arch
        raise FinalError(f"{run.final}: damaged ({exc.__class__.__name__}); delete it and rerun "
                         "`python -m nas train`") from exc
    return result, state


def train_final(run: RunDir, network: BestNetwork, data: Dataset, model_config: ModelConfig,
                training: Training) -> FinalResult:
    """Train ``network`` (whose architecture is ``training.arch``) as ``training`` says on
    ``data.train`` for ``config.epochs`` (whole) epochs on ``config.train_device``, testing on
    ``data.test`` after each, resuming from ``final/checkpoint.pt`` if there is one; writes the
    final files (see the module's docstring), which record the device resolved."""
    device = resolve_device(training.config.train_device)
    config, seed = replace(training.config, train_device=str(device)), training.seed
    data = data.to(device)
    epochs = int(config.epochs)
    total = steps_per_epoch(data.train, config) * epochs
    generator = seeded(seed)
    model = MobileNet(network.arch, model_config)
    optimizer = start_training(model, config, device)
    average = WeightAverage(model, config.ema) if config.ema else None
    kept = model if average is None else average.model  # tested each epoch, and saved
    curve: list[CurvePoint] = []
    step = 0
    resumed = _read_checkpoint(run)
    if resumed is not None:
        held, saved = resumed
        training.check_continues(held, str(run.final_checkpoint), run)
        fit_weights(model, saved["model"], run.final_checkpoint)
        if average is not None:
            fit_weights(average.model, saved["average"], run.final_checkpoint)
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        if "cuda_rng" in saved and device.type == "cuda":
            torch.cuda.set_rng_state(saved["cuda_rng"], device)
        generator.set_state(saved["data_rng"])
        curve = [CurvePoint(**row) for row in saved["curve"]]
        step = saved["step"]
        print(f"final training: resuming after epoch {len(curve)} of {epochs}")
        if held.config.train_device != config.train_device:
            print(f"final training: epochs so far ran on {held.config.train_device}, the rest "
                  f"on {config.train_device}: the weights will not be bit-identical to a "
                  "training on one device")
    with Progress(f"final training of trial {network.trial}, steps", total - step) as progress:
        for epoch in range(len(curve), epochs):
            start = time.perf_counter()
            try:
                loss, step = train_epoch(model, optimizer, data, config, generator, epoch=epoch,
                                         step=step, total=total,
                                         on_step=_stepper(progress, model, average))
            except Diverged as exc:
                raise FinalError(f"final training diverged ({exc}); delete {run.final} and try "
                                 "another --seed") from exc
            if epoch == epochs - 1 or average is not None:  # an average's are its model's
                recalibrate_batchnorm(kept, data, config.recalibration_images,
                                      config.batch_size, precision=config.precision)
            accuracy = top1_accuracy(kept, data.test, data, config.eval_batch_size,
                                     precision=config.precision)
            curve.append(CurvePoint(epoch + 1, loss, accuracy, time.perf_counter() - start))
            progress.note = (f"epoch {epoch + 1}/{epochs}, loss {loss:.3f}, test accuracy "
                             f"{100 * accuracy:.2f}%")
            save_checkpoint(run, {
                "arch": network.arch.to_string(), "seed": seed, "config": asdict(config),
                "model": on_cpu(model.state_dict()), "optimizer": on_cpu(optimizer.state_dict()),
                **({} if average is None else {"average": on_cpu(average.model.state_dict())}),
                "torch_rng": torch.get_rng_state(), **_cuda_rng(device),
                "data_rng": generator.get_state(),
                "curve": [asdict(point) for point in curve], "step": step})
    mirror = (top1_accuracy(kept, data.test, data, config.eval_batch_size,
                            precision=config.precision, mirror=True) if config.flip else None)
    result = FinalResult(network=network, epochs=epochs, seed=seed,
                         test_accuracy=curve[-1].test_accuracy,
                         train_seconds=sum(point.seconds for point in curve), config=config,
                         test_accuracy_mirror=mirror)
    _write_result(run, result, kept.state_dict(), curve)
    return result


def _stepper(progress: Progress, model: torch.nn.Module,
             average: WeightAverage | None) -> Callable[[], None]:
    """After each step: progress, and the weights' average when there is one."""
    if average is None:
        return progress.step

    def step() -> None:
        average.update(model)
        progress.step()

    return step


def _cuda_rng(device: torch.device) -> dict[str, torch.Tensor]:
    """CUDA's generator state, for the checkpoint, when training on CUDA (none on the CPU)."""
    return {"cuda_rng": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {}


def save_checkpoint(run: RunDir, checkpoint: dict[str, Any]) -> None:
    """Replace ``final/checkpoint.pt`` atomically (a module function: tests interrupt here)."""
    with atomic_path(run.final_checkpoint) as tmp:
        torch.save(checkpoint, tmp)


def _read_checkpoint(run: RunDir) -> tuple[Training, dict[str, Any]] | None:
    """The training a checkpoint belongs to, and the checkpoint; None when there is none."""
    if not run.final_checkpoint.is_file():
        return None
    try:
        saved = torch.load(run.final_checkpoint, weights_only=True)
        return Training(Arch.from_string(saved["arch"]), int(saved["seed"]),
                        from_dict(TrainConfig, saved["config"])), saved
    except (OSError, RuntimeError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
            ArchError) as exc:
        raise FinalError(f"{run.final_checkpoint}: damaged ({exc.__class__.__name__}); delete it "
                         "to train anew") from exc


def _write_result(run: RunDir, result: FinalResult, state: dict[str, torch.Tensor],
                  curve: list[CurvePoint]) -> None:
    with atomic_path(run.final_weights) as tmp:
        torch.save({k: v.contiguous() for k, v in on_cpu(state).items()}, tmp)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow([f.name for f in fields(CurvePoint)])
    writer.writerows([point.epoch, point.loss, point.test_accuracy, point.seconds]
                     for point in curve)
    write_text(run.final_curve, table.getvalue())
    write_text(run.final_record, json.dumps(result.to_dict(), indent=2))  # last: complete
    run.final_checkpoint.unlink(missing_ok=True)
