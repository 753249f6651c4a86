"""Search spaces as data: load and validate a space file, sample an `Arch`, enumerate its blocks.

A space file (YAML, or JSON, which is YAML too) names a stem, fixed leading blocks, the
searchable stages with their stride and width, the per-stage and per-block choices and the head.
See ``search_spaces/mobilenetv3.yaml``; ``search_spaces/mobilenetv3-28px-wide.yaml`` also
searches each stage's width (``choices.width``, multipliers of its ``channels``) and the stem's
stride (``stem.stride: [1, 2]``). Loading works with only the standard library when the file
is JSON, so ``nas profile`` runs on a device with only torch installed.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import itertools
import json
import math
import random
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Collection, Protocol, Sequence

from nas.arch import (ACTIVATIONS, Arch, ArchError, BlockSpec, Head, Stem, conv_output_size,
                      make_divisible)
from nas.errors import UserError

# The shipped spaces: ``search_spaces/`` in the checkout, linked from ``nas/search_spaces``, which
# a wheel carries as package data.
SHIPPED_SPACES = Path(str(importlib.resources.files("nas"))) / "search_spaces"
# The default space fits the default data, 28 px images, and searches the stem's stride and each
# stage's width (docs/measurements.md).
DEFAULT_SPACE = SHIPPED_SPACES / "mobilenetv3-28px-wide.yaml"


class SpaceError(UserError):
    """A space file that cannot be used; the message names the file and the key."""


def resolve_space(name_or_path: str | None) -> Path:
    """A space file: the default when None, a path, or the name of a shipped space."""
    if name_or_path is None:
        return DEFAULT_SPACE
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = SHIPPED_SPACES / f"{path.stem}.yaml"
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED_SPACES.glob("*.yaml")))
    raise SpaceError(f"space file {name_or_path} does not exist; pass a file or one of the "
                     f"shipped spaces: {names}")


class Suggester(Protocol):
    """What `SearchSpace.sample` needs from an Optuna trial (or any stand-in)."""

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


def _choose(trial: Suggester, name: str, choices: Sequence[Any]) -> Any:
    """``trial``'s choice among ``choices``; the only one, without asking, when there is one
    (so a space that does not search it has no such parameter, and draws nothing for it)."""
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))


@dataclass(frozen=True)
class BlockChoice:
    """The per-block choices, one value each."""

    kernel: int
    expansion: float
    se: bool
    activation: str

    def block(self, out_channels: int, stride: int) -> BlockSpec:
        return BlockSpec(kernel=self.kernel, expansion=self.expansion, out_channels=out_channels,
                         stride=stride, se=self.se, activation=self.activation)


@dataclass(frozen=True)
class Stage:
    """A searchable stage: its first block has ``stride`` (with the space's finest stem, see
    `SearchSpace.stage_strides`), the rest stride 1."""

    channels: int
    stride: int
    depths: tuple[int, ...]

    def width(self, multiplier: float) -> int:
        """Output channels at a width multiplier, rounded as MobileNetV3 rounds them
        (`nas.arch.make_divisible`: nearest multiple of 8, never below 90%); 1 keeps
        ``channels`` as the file gives them."""
        return self.channels if multiplier == 1 else make_divisible(self.channels * multiplier)


@dataclass(frozen=True)
class StageChoice:
    """What one stage chose: its width multiplier and its blocks (as many as its depth)."""

    width: float
    blocks: tuple[BlockChoice, ...]


@dataclass(frozen=True)
class SearchSpace:
    name: str
    resolution: int  # deployment input size, the latency target's default
    stem: Stem
    fixed_blocks: tuple[BlockSpec, ...]  # between stem and the first searchable stage
    stages: tuple[Stage, ...]
    kernels: tuple[int, ...]
    expansions: tuple[float, ...]
    se: tuple[bool, ...]
    activations: tuple[str, ...]
    head: Head
    widths: tuple[float, ...]  # per stage: multipliers of its channels; (1.0,) when not searched
    # The stem's stride choices, increasing; ``stem.stride`` is the first, the finest, for which
    # the stages' strides are planned. (stem.stride,) when not searched.
    stem_strides: tuple[int, ...]

    def fingerprint(self) -> str:
        """12 hex digits of the SHA-256 of the space as loaded: every choice and fixed layer,
        not the file's comments or layout (part of a run's identity). The width and stem-stride
        choices are left out where a space does not search them, so a space file written before
        they existed keeps its fingerprint, and its runs their identity."""
        data = asdict(self)
        if self.widths == (1.0,):
            del data["widths"]
        if self.stem_strides == (self.stem.stride,):
            del data["stem_strides"]
        text = json.dumps(data, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def choices(self) -> list[BlockChoice]:
        """Every per-block choice combination, in a fixed order."""
        return [BlockChoice(k, e, s, a) for k, e, s, a in
                itertools.product(self.kernels, self.expansions, self.se, self.activations)]

    def stage_strides(self, stem_stride: int) -> tuple[int, ...]:
        """The stages' strides under a stem of ``stem_stride``.

        The file plans them for the finest stem (``stem.stride``). A stem that halves the image
        once more takes over the plan's last reduction: the last stage of stride 2 runs at
        stride 1. Every stem choice then ends at the same smallest map (halvings round up, in
        any order), so a kernel visible there under one stem is visible under all; with the
        28 px plans, stem stride 2 gives ``mobilenetv3-28px``'s strides and stride 1
        ``mobilenetv3-28px-s1``'s.
        """
        strides = [s.stride for s in self.stages]
        halving = [i for i, s in enumerate(strides) if s == 2]
        if stem_stride > self.stem.stride and halving:  # `load_space` makes sure of one
            strides[halving[-1]] = 1
        return tuple(strides)

    def build(self, stages: Sequence[StageChoice], stem_stride: int | None = None) -> Arch:
        """The architecture whose stage i is ``stages[i]``, with a stem of ``stem_stride``
        (default: the finest)."""
        stem_stride = self.stem.stride if stem_stride is None else stem_stride
        blocks = list(self.fixed_blocks)
        for stage, stride, chosen in zip(self.stages, self.stage_strides(stem_stride), stages,
                                         strict=True):
            channels = stage.width(chosen.width)
            blocks += [c.block(channels, stride if j == 0 else 1)
                       for j, c in enumerate(chosen.blocks)]
        return Arch(stem=replace(self.stem, stride=stem_stride), blocks=tuple(blocks),
                    head=self.head)

    def sample(self, trial: Suggester) -> Arch:
        """Sample an architecture; block parameters exist only for the blocks the depth keeps,
        width and stem-stride parameters only where the space gives more than one choice (a
        space without them samples the parameters, and draws, it always did)."""
        stem_stride = int(_choose(trial, "stem_stride", self.stem_strides))
        stages = []
        for i, stage in enumerate(self.stages):
            width = float(_choose(trial, f"s{i}_width", self.widths))
            depth = int(trial.suggest_categorical(f"s{i}_depth", list(stage.depths)))
            stages.append(StageChoice(width, tuple(
                BlockChoice(kernel=int(trial.suggest_categorical(f"s{i}_b{j}_kernel",
                                                                 list(self.kernels))),
                            expansion=float(trial.suggest_categorical(f"s{i}_b{j}_expansion",
                                                                      list(self.expansions))),
                            se=bool(trial.suggest_categorical(f"s{i}_b{j}_se", list(self.se))),
                            activation=str(trial.suggest_categorical(f"s{i}_b{j}_activation",
                                                                     list(self.activations))))
                for j in range(depth))))
        return self.build(stages, stem_stride)

    def covering_archs(self) -> list[Arch]:
        """Architectures whose blocks, together, hold every layer configuration of the space.

        For every stem stride, every pair of widths (a, b) and every block choice combination,
        one network: every stage at its largest depth, every block using that combination, the
        stages' widths alternating a, b, a, ... Each stage's first position (its stride, the
        previous stage's width) and its later positions (stride 1, its own width) then appear
        with every choice, every pair of neighbouring widths and every stem's map sizes.
        Walking these through the latency key function enumerates the LUT without a second
        enumeration code path.
        """
        depths = [max(s.depths) for s in self.stages]
        return [self.build([StageChoice((a, b)[i % 2], (c,) * d) for i, d in enumerate(depths)],
                           stem_stride)
                for stem_stride in self.stem_strides
                for a, b in itertools.product(self.widths, repeat=2)
                for c in self.choices()]

    def stage_input_sizes(self, resolution: int,
                          stem_stride: int | None = None) -> list[tuple[int, int]]:
        """Per searchable stage, the input map size of its first block and of its later ones,
        with a stem of ``stem_stride`` (default: the finest)."""
        stem_stride = self.stem.stride if stem_stride is None else stem_stride
        size = conv_output_size(resolution, stem_stride)
        for block in self.fixed_blocks:
            size = conv_output_size(size, block.stride)
        sizes = []
        for stride in self.stage_strides(stem_stride):
            after = conv_output_size(size, stride)
            sizes.append((size, after))
            size = after
        return sizes

    def invisible_kernels(self, resolution: int) -> list[str]:
        """Kernel choices that training at ``resolution`` cannot tell apart, one line each.

        A k x k depthwise kernel with 'same' padding reaches, from every output position, every
        input position of a map of side s once k // 2 >= s - 1; a larger kernel then adds
        nothing. So a kernel is visible only where the next smaller choice k' leaves part of the
        map out of reach: s >= (k' + 1) / 2 + 1 (4x4 maps for 7 after 5, 3x3 for 5 after 3).
        Empty when every searched kernel can change what every stage computes.
        With several stem strides, every stem is checked and a line names its stem.
        """
        problems: list[str] = []
        kernels = sorted(self.kernels)
        for stem_stride in self.stem_strides:
            stem = f" with a stride-{stem_stride} stem" if len(self.stem_strides) > 1 else ""
            for i, (first, later) in enumerate(self.stage_input_sizes(resolution, stem_stride)):
                smallest_map = min(first, later) if max(self.stages[i].depths) > 1 else first
                for smaller, kernel in zip(kernels, kernels[1:]):
                    if smallest_map <= smaller // 2 + 1:
                        problems.append(f"stage {i + 1} sees {smallest_map}x{smallest_map} maps "
                                        f"at {resolution}px{stem}: kernel {kernel} computes "
                                        f"what kernel {smaller} does")
        return problems

    def size(self) -> int:
        """How many distinct architectures the space holds (width multipliers that round to
        the same channels count once)."""
        per_block = len(self.choices())
        total = len(self.stem_strides)
        for stage in self.stages:
            widths = len({stage.width(m) for m in self.widths})
            total *= widths * sum(per_block ** d for d in stage.depths)
        return total


# --- loading and validation -------------------------------------------------------------------

def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(f"cannot read space file {path}: {exc.strerror}") from exc
    try:
        import yaml
    except ImportError:  # a profiling device with only torch: JSON spaces still load
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # not JSON, or a number too long
            raise SpaceError(f"{path}: PyYAML is not installed and the file is not JSON; "
                             "install pyyaml or give the space as JSON") from exc
    else:
        try:
            data = yaml.safe_load(text)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: a bad date
            raise SpaceError(f"{path}: not valid YAML ({exc.__class__.__name__}); "
                             "fix the file's syntax") from exc
    if not isinstance(data, dict):
        raise SpaceError(f"{path}: expected a mapping at the top level")
    return data


class _Reader:
    """Typed access to a nested mapping whose errors name the file and the key path."""

    def __init__(self, path: Path, data: Any, where: str = "") -> None:
        self.path, self.data, self.where = path, data, where

    def fail(self, key: str, what: str) -> SpaceError:
        return SpaceError(f"{self.path}: key '{self.where}{key}': {what}")

    def get(self, key: str, default: Any = ...) -> Any:
        if not isinstance(self.data, dict):
            raise SpaceError(f"{self.path}: key '{self.where.rstrip('.')}': expected a mapping")
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "missing")
            return default
        return self.data[key]

    def sub(self, key: str, default: Any = ...) -> _Reader:
        return _Reader(self.path, self.get(key, default), f"{self.where}{key}.")

    def positive_int(self, key: str, default: Any = ...) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"expected a positive integer, got {value!r}")
        return value

    def stride(self, key: str, default: Any = ...) -> int:
        value = self.positive_int(key, default)
        if value not in (1, 2):
            raise self.fail(key, f"expected 1 or 2, got {value}")
        return value

    def strides(self, key: str, default: int) -> tuple[int, ...]:
        """A stride (1 or 2) or a list of them to choose from, in increasing order."""
        if not isinstance(self.get(key, default), list):
            return (self.stride(key, default),)
        return tuple(sorted(self.choice_list(key, int, lambda v: v in (1, 2))))

    def activation(self, key: str, default: Any = ...) -> str:
        value = self.get(key, default)
        if value not in ACTIVATIONS:
            raise self.fail(key, f"expected one of {list(ACTIVATIONS)}, got {value!r}")
        return value

    def choice_list(self, key: str, kind: type, check: Any = lambda v: True,
                    default: Any = ...) -> tuple[Any, ...]:
        value = self.get(key, default)
        ok = isinstance(value, list) and value and all(
            isinstance(v, kind) and not (kind is not bool and isinstance(v, bool)) and check(v)
            for v in value)
        if not ok:
            kind_name = getattr(kind, "__name__", "number")
            raise self.fail(key, f"expected a non-empty list of valid {kind_name} values, "
                                 f"got {value!r}")
        if len(set(value)) != len(value):
            raise self.fail(key, f"duplicate choices in {value!r}")
        return tuple(value)


def _block(r: _Reader) -> BlockSpec:
    try:
        return BlockSpec(kernel=r.positive_int("kernel"),
                         expansion=float(r.get("expansion", 1)),
                         out_channels=r.positive_int("channels"),
                         stride=r.positive_int("stride", 1),
                         se=bool(r.get("se", False)),
                         activation=r.activation("activation", "relu"))
    except (TypeError, ValueError, ArchError) as exc:
        raise SpaceError(f"{r.path}: key '{r.where.rstrip('.')}': {exc}") from exc


def load_space(path: str | Path = DEFAULT_SPACE) -> SearchSpace:
    """Read and validate a space file; any problem raises `SpaceError` naming the key."""
    path = Path(path)
    root = _Reader(path, _read_mapping(path))
    choices = root.sub("choices")
    default_depths = choices.choice_list("depth", int, lambda v: v >= 1)
    stage_list = root.get("stages")
    if not isinstance(stage_list, list) or not stage_list:
        raise root.fail("stages", "expected a non-empty list of stages")
    stages = []
    for i, raw in enumerate(stage_list):
        s = _Reader(path, raw, f"stages[{i}].")
        stride = s.stride("stride")
        depths = s.choice_list("depth", int, lambda v: v >= 1) if "depth" in (raw or {}) \
            else default_depths
        stages.append(Stage(channels=s.positive_int("channels"), stride=stride,
                            depths=tuple(depths)))
    fixed = root.get("fixed_blocks", [])
    if not isinstance(fixed, list):
        raise root.fail("fixed_blocks", "expected a list of blocks")
    stem, head = root.sub("stem"), root.sub("head")
    stem_strides = stem.strides("stride", 2)
    space = SearchSpace(
        name=str(root.get("name")),
        resolution=root.positive_int("resolution"),
        stem=Stem(channels=stem.positive_int("channels"),
                  activation=stem.activation("activation", "hswish"),
                  stride=stem_strides[0]),
        fixed_blocks=tuple(_block(_Reader(path, b, f"fixed_blocks[{i}]."))
                           for i, b in enumerate(fixed)),
        stages=tuple(stages),
        kernels=choices.choice_list("kernel", int, lambda v: v >= 1 and v % 2 == 1),
        expansions=tuple(float(v) for v in choices.choice_list(
            "expansion", (int, float),  # type: ignore[arg-type]
            lambda v: math.isfinite(v) and v >= 1)),
        se=choices.choice_list("se", bool),
        activations=choices.choice_list("activation", str, lambda v: v in ACTIVATIONS),
        head=Head(channels=head.positive_int("channels"), features=head.positive_int("features"),
                  activation=head.activation("activation", "hswish")),
        widths=tuple(float(v) for v in choices.choice_list(
            "width", (int, float),  # type: ignore[arg-type]
            lambda v: v > 0 and all(math.isfinite(s.channels * v) for s in stages),
            default=[1.0])),
        stem_strides=stem_strides,
    )
    if len(stem_strides) > 1 and 2 not in (s.stride for s in stages):
        raise stem.fail("stride", "a choice of stem strides needs a stage of stride 2, whose "
                                  "halving the stride-2 stem takes over; give one")
    return space


class RandomSuggester:
    """Uniform choices from a seeded `random.Random`: sampling without Optuna (for profiling)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self.rng.choice(list(choices))


def random_archs(space: SearchSpace, count: int, seed: int,
                 exclude: Collection[Arch] = ()) -> list[Arch]:
    """``count`` uniformly sampled architectures, the same for the same seed.

    With ``exclude`` (say, the networks a calibration was fitted on), samples in it are skipped,
    so the result is held out from them.
    """
    if exclude and len(set(exclude)) >= space.size():
        raise SpaceError(f"space {space.name!r} holds {space.size()} architecture(s), all "
                         "excluded: none is left to hold out; give it more choices")
    suggester = RandomSuggester(random.Random(seed))
    result: list[Arch] = []
    while len(result) < count:
        arch = space.sample(suggester)
        if arch not in exclude:
            result.append(arch)
    return result
