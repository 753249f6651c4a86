"""What a user can set, as frozen configs; a field's metadata makes it a command-line flag.

This module imports nothing heavy, so the command line is built without loading Optuna, and
``nas profile`` runs on a device with only torch installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from nas.errors import UsageError
from nas.flags import (budget_ms, comma_list, flag, float_list, percent, positive_float,
                       positive_int)

SAMPLERS = ("tpe", "nsga2", "random")  # built by `nas.search.make_sampler`
PRECISIONS = ("fp32", "bf16")  # `nas.train.autocast`'s
DEVICE_HELP = ("where to train: auto (CUDA when torch sees a GPU, else the CPU), cpu, cuda (the "
               "first GPU) or cuda:N; latency is still measured on the target")
PRECISION_HELP = ("training arithmetic: fp32, or bf16 (torch.autocast with bfloat16 on the "
                  "training device; opt-in, its effect on the proxy's accuracy is not measured)")
# The hand-designed baseline (`nas.references.REFERENCES`): MobileNetV3-Large and -Small at the
# width multipliers a user would scale them by (the paper's Table 3 has 0.75 and 1.0).
REFERENCE_FAMILIES = ("mobilenetv3-large", "mobilenetv3-small")
REFERENCE_WIDTHS = (0.5, 0.75, 1.0, 1.25)


def reference_name(family: str, width: float) -> str:
    """``mobilenetv3-small-0.75``; at width 1 the network's own name, ``mobilenetv3-small``."""
    return family if width == 1 else f"{family}-{width:g}"


# name -> (family, width multiplier), by family, then width
REFERENCE_MEMBERS = {reference_name(f, w): (f, w) for f in REFERENCE_FAMILIES
                     for w in REFERENCE_WIDTHS}
REFERENCE_NAMES = tuple(REFERENCE_MEMBERS)
# Each reference costs a proxy training per run (one thread, the default proxy: about 50 s for
# -Small 0.5, 80 s for -Small 0.75, 96 s for -Small, 170 s for -Large 0.75 and 224 s for -Large),
# so a search trains the two narrowest members of each family unless told: enough for a curve
# per family, near the candidates' latencies, within the 20-minute default run. `--references`
# names any.
DEFAULT_REFERENCES = tuple(reference_name(f, w) for f in REFERENCE_FAMILIES for w in (0.5, 0.75))
# Seed noise of the default proxy's validation accuracy, in points: the std over 2 seeds pooled
# over 12 networks spread over the default space, `mobilenetv3-28px-wide` (Fashion-MNIST, 28 px;
# benchmarks/proxy_fidelity.py, data in benchmarks/results/proxy_fidelity.jsonl: 0.30 points,
# against 0.68 between the networks' means).
SEED_STD = 0.30


@dataclass(frozen=True)
class DataConfig:
    """Which data set, and how much of it each candidate trains and is scored on."""

    dataset: str = field(default="fashion-mnist", metadata=flag(
        "fashion-mnist or mnist (IDX files), folder:DIR (one subfolder of images per class) or "
        "npz:FILE (x_train, y_train, x_test, y_test)"))
    data_dir: str | None = field(default=None, metadata=flag(
        "folder of an IDX data set's files (default: where Debian installs it)"))
    test_dir: str | None = field(default=None, metadata=flag(
        "folder:DIR only: the test images, one subfolder per class (default: DIR/../test if "
        "it exists, else a seeded share of DIR)"))
    cache_dir: str | None = field(default=None, metadata=flag(
        "folder:DIR only: where decoded images are cached (default: ~/.cache/nas/folders)"))
    resolution: int | None = field(default=None, metadata=flag(
        "input resolution for training, validation, timing and export; images are resized to "
        "it (default: the space's)", type=positive_int))
    # 1 epoch on 40,000 images ranked 12 networks of the default space as 3 epochs of the final
    # recipe did with Spearman 0.83, against 0.71 for 2 epochs on 10,000 images, at 1.5x the
    # seconds (benchmarks/proxy_fidelity.py: more images, fewer epochs, as EcoNAS found).
    train_samples: int | None = field(default=40_000, metadata=flag(
        "training images per candidate, a seeded subset", type=positive_int))
    val_samples: int = field(default=5_000, metadata=flag(
        "validation images carved (seeded) from the training files", type=positive_int))
    seed: int = 0  # the split's seed: the run's --seed


@dataclass(frozen=True)
class TrainConfig:
    """The brief training of a candidate (the accuracy proxy).

    Recipe: SGD with Nesterov momentum, cosine decay with a short linear warm-up, label
    smoothing 0.1 (as in MobileNetV3's training), random crop + flip on whole uint8 batches.
    """

    epochs: float = field(default=1.0, metadata=flag(
        "training epochs of a candidate at the top rung (the front's accuracy)",
        type=positive_float))
    batch_size: int = 128  # small batches give more steps per second of CPU on tiny images
    lr: float = 0.1  # peak learning rate for SGD at this batch size
    momentum: float = 0.9
    weight_decay: float = 4e-5  # MobileNetV3's value; short runs barely feel it
    label_smoothing: float = 0.1  # MobileNetV3 trains with it
    warmup_fraction: float = 0.05  # linear warm-up share of the steps, then `schedule` to zero
    # How the learning rate falls to zero after the warm-up (`nas.train.DECAYS`): "cosine", or
    # "triangle", linear, the shape of the CIFAR-10 speed-run recipes' short schedules.
    schedule: str = "cosine"
    crop_padding: int = 0  # random-crop padding in px; crops cost 5 points in a 2-epoch run
    flip: bool = True  # random horizontal flips
    # Random-erasing probability per image (`nas.data.random_erase`); no gain in final training
    # (benchmarks/results/final_training.jsonl), so off in both recipes.
    erase: float = 0.0
    # Decay per step of an average of the weights (`nas.ema`) that a final training tests and
    # saves instead of its last weights; 0 keeps the last weights (the proxy's setting).
    ema: float = 0.0
    eval_batch_size: int = 256  # larger batches ran slower here (1000: 1.7x the time at 28 px)
    # Training images whose plain average re-estimates batch-norm statistics after training
    # (`nas.train.recalibrate_batchnorm`); without it, quarter-epoch rungs score chance level.
    recalibration_images: int = 2048
    train_threads: int | None = field(default=None, metadata=flag(
        "intra-op threads a worker trains with (default: torch's, one per core); with "
        "several workers on one machine, give each its share of the cores",
        type=positive_int))
    # Where candidates train; a search records the device it resolved
    # (`nas.train.resolve_device`). Not the latency target's `device`, the CPU that timed. Not
    # part of the run's identity: it changes how fast a candidate trains and how floats round,
    # not the draws (see `nas.train.seeded` on what CUDA keeps bit-exact).
    train_device: str = field(default="auto", metadata=flag(DEVICE_HELP, name="--device"))
    precision: str = field(default="fp32", metadata=flag(PRECISION_HELP, choices=PRECISIONS))


# The final training's recipe: the proxy's (SGD with Nesterov momentum, lr 0.1 at batch 128,
# cosine with warm-up, label smoothing 0.1, weight decay 4e-5, flips, batch-norm re-estimation)
# with random crops (padding 2 px). Crops cost 5 points in a 2-epoch run, too short to learn
# through them; at 12 epochs they gave 93.86% against 93.64% without (one seed each, the no-crop
# training ahead until epoch 9 and then overfitting; benchmarks/results/final_recipe.jsonl).
# The speed runs' changes measured no better here at 8 epochs: a triangular schedule with peak
# lr 0.2, weight decay 5e-4 and a weight average (`ema` 0.999) gave 92.86% against 93.31%.
# Its epochs are `FinalConfig.epochs`; its seed noise is `FINAL_SEED_STD`.
FINAL_RECIPE = TrainConfig(crop_padding=2)
# Seed noise of one final accuracy, in points: the std over 3 seeds of the shipped recipe on the
# default run's best network (93.86, 93.63, 93.47% test accuracy; docs/measurements.md, "Final
# training"). Two final accuracies differ beyond noise by `nas.pareto.means_margin` of it.
FINAL_SEED_STD = 0.20


@dataclass(frozen=True)
class FinalConfig:
    """Final training (``nas train``): which network, how long, from which seed."""

    # 12: about 28 minutes for the default run's best network on 2 cores, within 0.3-0.5
    # points of 30 epochs' accuracy at 40% of the time (docs/measurements.md, "Final training")
    epochs: int = field(default=12, metadata=flag("epochs of the final training",
                                                  type=positive_int))
    trial: int | None = field(default=None, metadata=flag(
        "train this trial of the study (default: the best under the budget, best/)", type=int))
    seed: int | None = field(default=None, metadata=flag(
        "training seed (default: the run's --seed)", type=int))
    train_threads: int | None = field(default=None, metadata=flag(
        "intra-op threads to train with (default: torch's, one per core); resume with the "
        "same count for the same weights", type=positive_int))
    train_device: str = field(default="auto", metadata=flag(
        DEVICE_HELP + "; resume on the same device for the same weights", name="--device"))
    precision: str = field(default="fp32", metadata=flag(PRECISION_HELP, choices=PRECISIONS))

    def recipe(self) -> TrainConfig:
        return replace(FINAL_RECIPE, epochs=float(self.epochs), train_device=self.train_device,
                       precision=self.precision)


@dataclass(frozen=True)
class SearchConfig:
    budget_ms: float = field(metadata=flag("latency budget, e.g. 20ms, 0.02s or 20 (ms)",
                                           name="--latency-budget", type=budget_ms))
    latency_margin: float = field(default=0.0, metadata=flag(
        "safety margin when choosing the best network: its latency (measured on the target "
        "when the search ends there, else predicted) plus this share must be within the "
        "budget, e.g. 10%", type=percent))
    trials: int = field(default=8, metadata=flag(
        "candidates to train at the top rung, across reruns (over-budget ones are free, "
        "cheaper rungs come on top)", type=positive_int))
    seed: int = field(default=0, metadata=flag("seed of the data split, sampler and training",
                                               type=int))
    sampler: str = field(default="tpe", metadata=flag("Optuna sampler", choices=SAMPLERS))
    # Single fidelity by default: the cheap rung measured on the default space (0.125 of an
    # epoch, 5,000 images) ranked 12 networks within latency bands at Spearman 0.33 with a seed
    # std of 3.1 points (benchmarks/proxy_fidelity.py), and in the default run it scored the
    # stride-1 stem 6.1 points below stride 2 (57.2% against 63.3%) where final training puts
    # it 1.7 points above: it promoted none, and the front missed the stem that decides the
    # final ranking (docs/measurements.md). `--rung-epochs` turns successive halving on.
    rung_epochs: tuple[float, ...] = field(default=(), metadata=flag(
        "successive halving: epochs of the cheaper rungs below the top one, comma-separated, "
        "increasing; 'none' for single-fidelity search", type=float_list))
    eta: int = field(default=6, metadata=flag(
        "successive halving: 1 in eta candidates of a rung, the most accurate within its "
        "latency band, is promoted to the next rung", type=positive_int))
    bands: int = field(default=3, metadata=flag(
        "successive halving: latency bands (equal-count groups by predicted latency) in which "
        "promotion is decided, so fast networks compete with fast ones", type=positive_int))
    references: tuple[str, ...] = field(default=DEFAULT_REFERENCES, metadata=flag(
        "hand-designed networks adapted to the run's resolution, trained with the same proxy, "
        "predicted by the same table and drawn beside the front, comma-separated, or none; "
        "MobileNetV3-Large and -Small at width 0.5, 0.75, 1 and 1.25 (mobilenetv3-small-0.75; "
        "mobilenetv3-small is width 1)", type=comma_list(REFERENCE_NAMES, allow_none=True)))
    seed_std: float = field(default=SEED_STD, metadata=flag(
        "seed noise of a candidate's validation accuracy, in points (the std over training "
        "seeds); drawn as error bars and used to say which candidates differ by more than "
        "noise. The default was measured for the default proxy and data on the default space "
        "by benchmarks/proxy_fidelity.py: measure yours with it", type=float))
    max_rejections: int = 2000  # consecutive over-budget samples before giving up

    def rungs(self, top_epochs: float) -> tuple[float, ...]:
        """Epochs of every rung, cheapest first; the last is the top rung."""
        ladder = (*self.rung_epochs, top_epochs)
        if any(a >= b for a, b in zip(ladder, ladder[1:])):
            raise UsageError(f"--rung-epochs {','.join(f'{e:g}' for e in self.rung_epochs)}: "
                             f"rungs must increase and stay below --epochs {top_epochs:g}")
        return ladder


@dataclass(frozen=True)
class ProfileConfig:
    """Round-robin timing (see `nas.latency.measure`): every item is timed once per round."""

    warmup: int = 5  # untimed runs first: caches, allocator, oneDNN primitive creation
    rounds: int = field(default=15, metadata=flag(
        "round-robin rounds over all layers (the median across rounds is kept)",
        type=positive_int))
    runs: int = 3  # timed runs of a layer per round (their median is the round's value)
    layers_per_save: int = 128  # layers timed together, then saved: a build resumes from there
    network_rounds: int = 7  # rounds over whole networks
    network_runs: int = 5
    calibration_networks: int = field(default=20, metadata=flag(
        "random whole networks timed to fit the calibration", type=positive_int))
    validation_networks: int = 10  # more, timed alongside, to score it on networks it never saw
    seed: int = 0  # which random networks
