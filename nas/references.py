"""Hand-designed reference networks: MobileNetV3-Large and -Small, from the paper's tables, and
their results in a run.

Howard et al. 2019, "Searching for MobileNetV3", Tables 1 and 2, written in this package's
architecture strings. Expansions are ratios of a block's input width (``e2.3`` on 80 channels
gives 184, ``e3.67`` on 24 gives 88). With 1000 classes and 3 input channels they have the
parameter counts of the reference implementation (5,483,032 and 2,542,856).

The family a user scales instead of searching (`scale_width`, `REFERENCES`) follows torchvision's
``_mobilenet_v3_conf``: the stem's and every block's channels, and every expanded width, become
``make_divisible(c * m, 8)``. Expanded widths stay ratios in the strings (``e2.7`` on 24
channels gives 64 = make_divisible(88 * 0.75)). The head's last feature width (1024 or 1280)
stays for m <= 1 and scales above, as the paper's reference code (TF-Slim's fine-grained
classification mode), Keras and timm do; torchvision scales it at every multiplier. With 1000
classes the parameter counts come within 2% of timm's (Small 0.5 / 0.75: 1.58 / 2.02 M against
1.59 / 2.04 M; Large 0.75: 3.93 M against 3.99 M; timm rounds expanded and squeeze widths
its own way).

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

from nas.arch import Arch, BlockSpec, conv_output_size, make_divisible
from nas.atomic import write_text
from nas.config import REFERENCE_MEMBERS
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



def _ratio(block: BlockSpec, in_channels: int, expanded: int) -> float:
    """The expansion that gives ``expanded`` channels on ``in_channels``: the block's own when it
    still does, else the shortest decimal that does."""
    exact = expanded / in_channels
    for ratio in (block.expansion, *(round(exact, digits) for digits in range(4)), exact):
        if ratio >= 1 and replace(block, expansion=ratio).expanded_channels(in_channels) \
                == expanded:
            return ratio
    raise ValueError(f"no expansion gives {expanded} channels on {in_channels}")


def scale_width(arch: Arch, multiplier: float) -> Arch:
    """``arch`` at a width multiplier, by MobileNetV3's rule (see the module's docstring)."""
    def scaled(channels: int) -> int:
        return make_divisible(channels * multiplier)

    stem = replace(arch.stem, channels=scaled(arch.stem.channels))
    blocks: list[BlockSpec] = []
    cin, new_cin = arch.stem.channels, stem.channels  # each block's input, as given and scaled
    for block in arch.blocks:
        expanded = scaled(block.expanded_channels(cin))
        blocks.append(replace(block, out_channels=scaled(block.out_channels),
                              expansion=_ratio(block, new_cin, expanded)))
        cin, new_cin = block.out_channels, blocks[-1].out_channels
    head = replace(arch.head, channels=scaled(arch.head.channels),
                   features=arch.head.features if multiplier <= 1 else
                   scaled(arch.head.features))
    return Arch(stem=stem, blocks=tuple(blocks), head=head)


_FAMILIES = {"mobilenetv3-large": MOBILENETV3_LARGE, "mobilenetv3-small": MOBILENETV3_SMALL}
# Every family member by name (`nas.config.REFERENCE_MEMBERS`); width 1 is the paper's network.
REFERENCES = {name: scale_width(_FAMILIES[family], width)
              for name, (family, width) in REFERENCE_MEMBERS.items()}


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
