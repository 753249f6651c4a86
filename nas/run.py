"""A search run on disk: its folder's layout, its typed record (``run.json``), its best network.

``run.json`` holds a versioned `RunRecord`: every setting the run was made with, and what the
other commands (report, export) need to read it back. A record from another schema is refused
with one line. ``best/`` has one writer, `save_best`: the architecture, the weights and the
trial number go into one file written atomically; ``best/arch.json`` is a readable copy. Workers
that share a run folder take turns through a lock file in it.
"""

from __future__ import annotations

import json
import pickle
import typing
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.arch import Arch, ArchError
from nas.atomic import atomic_path, locked, write_text
from nas.budget import BudgetRule, Scored, best_of
from nas.config import DataConfig, SearchConfig, TrainConfig
from nas.errors import UserError
from nas.identity import Identity, identity
from nas.latency.target import Target
from nas.model import ModelConfig

if TYPE_CHECKING:  # nas.data imports numpy and Pillow, which reading a run does not need
    from nas.data import Dataset

RUN_SCHEMA = 3  # 3: the run's identity (space file's hash); cheaper rungs told as PRUNED


class RunError(UserError):
    """A run folder that cannot be read: not a run, another schema, or an inconsistent best."""


def run_name(dataset: str, space: str, budget_ms: float, seed: int) -> str:
    """The default name of a run: its data set (a folder's or file's name for ``folder:DIR``
    and ``npz:FILE``), space, budget and seed."""
    kind, _, where = dataset.partition(":")
    data = Path(where.rstrip("/")).stem if where else kind
    return f"{data}-{space}-{budget_ms:g}ms-seed{seed}"


@dataclass(frozen=True)
class RunDir:
    """Where each of a run's files lives; the only code that knows the folder's layout."""

    root: Path

    @property
    def record(self) -> Path:
        return self.root / "run.json"

    @property
    def study_db(self) -> Path:
        return self.root / "study.db"

    def trials_csv(self, suffix: str = "") -> Path:
        return self.root / f"trials{suffix}.csv"

    def pareto_csv(self, suffix: str = "") -> Path:
        return self.root / f"pareto{suffix}.csv"

    def pareto_html(self, suffix: str = "") -> Path:
        return self.root / f"pareto{suffix}.html"

    def summary(self, suffix: str = "") -> Path:
        return self.root / f"summary{suffix}.md"

    @property
    def lock(self) -> Path:
        """Held while a worker writes best/ or the report (`nas.atomic.locked`)."""
        return self.root / ".lock"

    @property
    def coordinator_lock(self) -> Path:
        """Held for its life by the run's one coordinator (`nas.atomic.claimed`)."""
        return self.root / ".coordinator"

    def training_turn(self) -> AbstractContextManager[None]:
        """Held (shared) by every process training a candidate of the run: the coordinator
        times on the target only when no training runs (`timing_turn`)."""
        return locked(self.root / ".timing", shared=True)

    def timing_turn(self) -> AbstractContextManager[None]:
        return locked(self.root / ".timing", "waiting for the candidates in training to end "
                      "before timing on the target")

    @property
    def best(self) -> Path:
        return self.root / "best"

    @property
    def best_checkpoint(self) -> Path:
        return self.best / "weights.pt"

    @property
    def best_arch(self) -> Path:
        return self.best / "arch.json"

    @property
    def verified(self) -> Path:
        """End-to-end timings of front members on the target (`nas.verify`)."""
        return self.root / "verified.json"

    @property
    def references(self) -> Path:
        """Reference networks trained and predicted by the run (`nas.references`)."""
        return self.root / "references.json"

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def final(self) -> Path:
        """``nas train``'s output (`nas.final`)."""
        return self.root / "final"

    @property
    def final_checkpoint(self) -> Path:
        """Written after every epoch; removed once the training is complete."""
        return self.final / "checkpoint.pt"

    @property
    def final_weights(self) -> Path:
        return self.final / "weights.pt"

    @property
    def final_record(self) -> Path:
        """Written last: its presence says the final training is complete."""
        return self.final / "final.json"

    @property
    def final_curve(self) -> Path:
        return self.final / "curve.csv"


@dataclass(frozen=True)
class LutInfo:
    """Which latency table a run's latencies come from, and how well it was checked."""

    path: str
    sha256: str  # first 12 hex digits of the file's SHA-256
    identity: str  # `nas.latency.table.LatencyTable.identity`: the run's identity holds it
    calibration: str  # one line: fit and held-out check
    speed_probe_ms: float | None = None  # the table's (`nas.bundle_timer.speed_probe`)


@dataclass(frozen=True)
class DataInfo:
    """What the loaded data turned out to be."""

    train: int
    val: int
    test: int
    image_size: int  # the run's resolution: images were resized to it
    class_names: tuple[str, ...]  # label i is class_names[i]
    mean: tuple[float, ...]  # per channel, of the training split, in [0, 1]
    std: tuple[float, ...]

    @classmethod
    def of(cls, data: Dataset) -> DataInfo:
        return cls(train=len(data.train), val=len(data.val), test=len(data.test),
                   image_size=data.image_size, class_names=data.class_names, mean=data.mean,
                   std=data.std)

    def shape(self) -> dict[str, Any]:
        """What a trial's numbers depend on, for the run's identity (`nas.identity`)."""
        return {"training images": self.train, "validation images": self.val,
                "test images": self.test, "image size (px)": self.image_size,
                "channels": len(self.mean), "classes": list(self.class_names),
                "mean": list(self.mean), "std": list(self.std)}


@dataclass(frozen=True)
class RunRecord:
    name: str
    storage: str  # Optuna storage URL
    space: str  # the space file's absolute path
    space_sha256: str  # `SearchSpace.fingerprint`: its choices, part of the run's identity
    space_name: str
    search: SearchConfig
    data: DataConfig
    data_info: DataInfo
    train: TrainConfig
    model: ModelConfig
    target: Target
    lut: LutInfo
    training_threads: int  # each worker's
    workers: int = 1  # processes training candidates of the study from one command
    schema: int = RUN_SCHEMA

    def identity(self) -> Identity:
        """What makes this run one experiment (`nas.identity`)."""
        return identity(space_sha256=self.space_sha256, space_name=self.space_name,
                        data=self.data, data_shape=self.data_info.shape(), train=self.train,
                        search=self.search, target=self.target.fingerprint(),
                        lut=self.lut.identity)

    def describe_data(self) -> str:
        d = self.data_info
        return (f"{self.data.dataset}: {d.train} train / {d.val} validation / {d.test} test "
                f"images of {d.image_size}px, {len(d.mean)} channel(s), {len(d.class_names)} "
                "classes")

    def describe_resolution(self) -> str:
        """One resolution for the whole run, or the opt-in mismatch, said plainly."""
        trained, timed = self.data_info.image_size, self.target.input_size
        if trained == timed:
            return f"{trained}x{trained} px for training, validation, latency and export"
        return (f"MISMATCH (--latency-input-size): trained, validated and exported at "
                f"{trained}x{trained} px, latency predicted at {timed}x{timed} px; the "
                "latencies belong to a network the export does not ship")

    def describe_settings(self) -> str:
        rungs = self.search.rungs(self.train.epochs)
        if len(rungs) == 1:
            epochs = f"{rungs[0]:g} epoch{'s' * (rungs[0] != 1)}"
            training = (f"{self.search.trials} candidates trained for {epochs} each "
                        "(single fidelity)")
        else:
            training = (f"{self.search.trials} candidates trained at the top rung, rungs of "
                        f"{', '.join(f'{e:g}' for e in rungs)} epochs")
        return (f"{training} on {self.data_info.train} images, {self.search.sampler} sampler, "
                f"seed {self.search.seed}, {self.describe_workers()}")

    def describe_workers(self) -> str:
        """Who trained, where and in what arithmetic, e.g. '2 training threads on cpu, fp32'."""
        threads = f"{self.training_threads} training thread{'s' * (self.training_threads > 1)}"
        workers = threads if self.workers == 1 else f"{self.workers} workers x {threads} each"
        return f"{workers} on {self.describe_device()}, {self.train.precision}"

    def describe_device(self) -> str:
        """The device that trained (the first worker's, where the others took the next GPUs in
        turn: `nas.workers.helper_gpus`)."""
        device = self.train.train_device
        if self.workers > 1 and device.startswith("cuda"):
            return f"{device} and, with several GPUs, the next ones in turn"
        return device

    def save(self, run: RunDir) -> None:
        write_text(run.record, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run: RunDir) -> RunRecord:
        path = run.record
        if not path.is_file():
            raise RunError(f"{run.root} is not a search run (no run.json); pass results/<run>")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:  # bad JSON or UTF-8
            raise RunError(f"{path}: unreadable ({exc.__class__.__name__}); rerun the search "
                           "to rewrite it") from exc
        schema = data.get("schema") if isinstance(data, dict) else None
        if schema != RUN_SCHEMA:
            raise RunError(f"{path}: written by another version of nas (run schema {schema!r}, "
                           f"this version reads {RUN_SCHEMA}); rerun the search with this version")
        try:
            return from_dict(cls, data)
        except (TypeError, ValueError, KeyError) as exc:
            raise RunError(f"{path}: malformed run record ({exc}); rerun the search") from exc


def from_dict(cls: Any, data: Any) -> Any:
    """Rebuild a (nested) frozen dataclass from `asdict` output; lists become tuples."""
    if not isinstance(data, dict):
        raise TypeError(f"{cls.__name__}: expected a mapping, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise KeyError(f"unknown field(s) {sorted(unknown)} in {cls.__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if is_dataclass(kind):
            value = from_dict(kind, value)
        elif typing.get_origin(kind) is tuple:
            value = tuple(value)
        values[name] = value
    return cls(**values)


@dataclass(frozen=True)
class BestNetwork:
    """The best network under the budget: which trial, what it scored, its architecture."""

    trial: int
    arch: Arch
    accuracy: float  # validation accuracy in [0, 1]
    latency_ms: float  # predicted

    def to_dict(self) -> dict[str, Any]:
        return {"trial": self.trial, "arch": self.arch.to_string(), "accuracy": self.accuracy,
                "latency_ms": self.latency_ms}

    def scored(self) -> Scored:
        return Scored(self.trial, self.accuracy, self.latency_ms)

    def beats(self, other: BestNetwork, rule: BudgetRule) -> bool:
        """Whether this network is the better one under the ``rule`` (`nas.budget.best_of`)."""
        return best_of([self.scored(), other.scored()], rule) == self.scored()


def save_best(run: RunDir, best: BestNetwork, state_dict: dict[str, torch.Tensor],
              choice: BudgetRule) -> bool:
    """The one writer of ``best/``: network and weights in one atomically replaced file, then
    ``arch.json``, its readable copy. Workers of a run take turns (`RunDir.lock`), and ``best``
    replaces the network held only if the ``choice`` admits it and it `beats` the held one (or is
    the same trial, whose files are then rewritten), so a worker that saves later never puts a
    worse network over a better one. Returns whether it wrote."""
    if not choice.admits(best.trial, best.latency_ms):
        return False
    state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}  # loads anywhere
    with locked(run.lock):
        try:
            held: BestNetwork | None = read_checkpoint(run)[0]
        except RunError:  # none yet, or damaged: replace it
            held = None
        if held is not None and held.trial != best.trial and not best.beats(held, choice):
            return False
        with atomic_path(run.best_checkpoint) as tmp:
            torch.save({**best.to_dict(), "state_dict": state}, tmp)
        write_text(run.best_arch, json.dumps(best.to_dict(), indent=2))
        return True


def fit_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load ``state`` into ``model``; weights of another network (another run's, or a run whose
    data changed shape) are refused in one line naming the first mismatch."""
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = next((line.strip().rstrip(".") for line in str(exc).splitlines()[1:]
                       if line.strip()), "another network")
        raise RunError(f"{source}: these weights do not fit the run's network ({detail}); rerun "
                       "the command that wrote them on this run") from None


def read_checkpoint(run: RunDir) -> tuple[BestNetwork, dict[str, torch.Tensor]]:
    """The network and weights in ``best/weights.pt`` (``arch.json`` is only its copy)."""
    if not run.best_checkpoint.is_file():
        raise RunError(f"{run.root} has no trained network under its budget to export")
    try:
        saved = torch.load(run.best_checkpoint, weights_only=True)
        best = BestNetwork(trial=int(saved["trial"]), arch=Arch.from_string(saved["arch"]),
                           accuracy=float(saved["accuracy"]),
                           latency_ms=float(saved["latency_ms"]))
    except (OSError, RuntimeError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
            ArchError) as exc:  # damaged file: unpickling, missing keys, bad arch
        raise RunError(f"{run.best}: damaged ({exc.__class__.__name__}); rerun the search to "
                       "rewrite it") from exc
    return best, saved["state_dict"]


def load_best(run: RunDir) -> tuple[BestNetwork, dict[str, torch.Tensor]]:
    """The best network and its weights; refuses a ``best/`` whose two files disagree."""
    best, state = read_checkpoint(run)
    try:
        readable = json.loads(run.best_arch.read_text())
    except (OSError, ValueError) as exc:  # missing, or not JSON
        raise RunError(f"{run.best}: damaged ({exc.__class__.__name__}); rerun the search to "
                       "rewrite it") from exc
    if not isinstance(readable, dict) or readable != best.to_dict():
        raise RunError(f"{run.best}: arch.json and weights.pt (trial {best.trial}) disagree; "
                       "rerun the search to rewrite best/")
    return best, state
