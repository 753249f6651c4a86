"""Hand-designed reference networks: MobileNetV3-Large and -Small, from the paper's tables, and
their results in a run.

Howard et al. 2019, "Searching for MobileNetV3", Tables 1 and 2, written in this package's
architecture strings. Expansions are ratios of a block's input width (``e2.3`` on 80 channels
gives 184, ``e3.67`` on 24 gives 88). With 1000 classes and 3 input channels they have the
parameter counts of the reference implementation (5,483,032 and 2,542,856).

A run adapts them to its resolution the way a space's stride plan is made (`adapt`): the
paper's strides are kept, in order, while the map they produce is at least as large as the
space's smallest map; later strides become 1 (at 28 px: 28 -> 14 -> 7 -> 4, then 4x4 to the
head, as in the 28 px space). A search trains them with its own proxy and predicts their latency
from its own table (`ReferenceResult`, in the run's ``references.json``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nas.arch import Arch, conv_output_size
from nas.atomic import write_text
from nas.config import REFERENCE_NAMES
from nas.errors import UserError
from nas.space import SearchSpace

MOBILENETV3_LARGE = Arch.from_string("-".join([
    "stem_c16_hs",
    "ir_k3_e1_c16_s1_re",
    "ir_k3_e4_c24_s2_re", "ir_k3_e3_c24_s1_re",
    "ir_k5_e3_c40_s2_re_se", "ir_k5_e3_c40_s1_re_se", "ir_k5_e3_c40_s1_re_se",
    "ir_k3_e6_c80_s2_hs", "ir_k3_e2.5_c80_s1_hs", "ir_k3_e2.3_c80_s1_hs", "ir_k3_e2.3_c80_s1_hs",
    "ir_k3_e6_c112_s1_hs_se", "ir_k3_e6_c112_s1_hs_se",
    "ir_k5_e6_c160_s2_hs_se", "ir_k5_e6_c160_s1_hs_se", "ir_k5_e6_c160_s1_hs_se",
    "head_c960_f1280_hs",
]))

MOBILENETV3_SMALL = Arch.from_string("-".join([
    "stem_c16_hs",
    "ir_k3_e1_c16_s2_re_se",
    "ir_k3_e4.5_c24_s2_re", "ir_k3_e3.67_c24_s1_re",
    "ir_k5_e4_c40_s2_hs_se", "ir_k5_e6_c40_s1_hs_se", "ir_k5_e6_c40_s1_hs_se",
    "ir_k5_e3_c48_s1_hs_se", "ir_k5_e3_c48_s1_hs_se",
    "ir_k5_e6_c96_s2_hs_se", "ir_k5_e6_c96_s1_hs_se", "ir_k5_e6_c96_s1_hs_se",
    "head_c576_f1024_hs",
]))

REFERENCES = dict(zip(REFERENCE_NAMES, (MOBILENETV3_LARGE, MOBILENETV3_SMALL), strict=True))


def adapt(arch: Arch, space: SearchSpace, resolution: int) -> Arch:
    """``arch`` with the space's stem stride, and a stride of 2 turned into 1 wherever it would
    shrink the map below the space's smallest at ``resolution``."""
    smallest = space.stage_input_sizes(resolution)[-1][1]
    stem = replace(arch.stem, stride=space.stem.stride)
    size = conv_output_size(resolution, stem.stride)
    blocks = []
    for block in arch.blocks:
        stride = block.stride if conv_output_size(size, block.stride) >= smallest else 1
        size = conv_output_size(size, stride)
        blocks.append(replace(block, stride=stride))
    return replace(arch, stem=stem, blocks=tuple(blocks))


@dataclass(frozen=True)
class ReferenceResult:
    """A reference network as a run trained (its proxy, its seed) and predicted it."""

    name: str
    arch: str  # adapted to the run's resolution
    accuracy: float  # validation, in [0, 1]
    latency_ms: float  # predicted by the run's table
    latency_err_ms: float
    epochs: float
    train_seconds: float


class ReferencesError(UserError):
    """A run's references.json that cannot be read."""


def save_references(path: Path, results: list[ReferenceResult]) -> None:
    write_text(path, json.dumps([asdict(r) for r in results], indent=2))


def load_references(path: Path) -> list[ReferenceResult]:
    """The references a run trained; none when it has not."""
    if not path.is_file():
        return []
    try:
        return [ReferenceResult(**r) for r in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as exc:
        raise ReferencesError(f"{path}: damaged ({exc.__class__.__name__}); delete it, the next "
                              "search run trains the references again") from exc
