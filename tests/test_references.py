"""Reference networks adapted to a run's resolution from the space's stride plan."""

from __future__ import annotations

import argparse
from dataclasses import fields

import pytest
import torch

from nas.arch import Arch, BlockSpec, conv_output_size, make_divisible
from nas.config import REFERENCE_NAMES, SearchConfig, reference_name
from nas.model import MobileNet, ModelConfig
from nas.references import MOBILENETV3_LARGE, MOBILENETV3_SMALL, REFERENCES, adapt
from nas.space import load_space, resolve_space

SHIPPED = ["mobilenetv3", "mobilenetv3-28px", "mobilenetv3-28px-s1"]


def _maps(arch, resolution):
    size = conv_output_size(resolution, arch.stem.stride)
    sizes = [size]
    for block in arch.blocks:
        size = conv_output_size(size, block.stride)
        sizes.append(size)
    return sizes


@pytest.mark.parametrize("space_name", SHIPPED)
@pytest.mark.parametrize("name", list(REFERENCES))
def test_references_shrink_to_the_spaces_smallest_map_and_no_further(space_name, name):
    space = load_space(resolve_space(space_name))
    smallest = space.stage_input_sizes(space.resolution)[-1][1]
    adapted = adapt(REFERENCES[name], space, space.resolution)
    maps = _maps(adapted, space.resolution)
    assert maps[-1] == smallest and min(maps) == smallest
    assert adapted.stem.stride == space.stem.stride
    # Only strides changed, and only from 2 to 1; the earliest strides are the ones kept.
    original = REFERENCES[name]
    assert [(b.kernel, b.expansion, b.out_channels, b.se, b.activation) for b in adapted.blocks] \
        == [(b.kernel, b.expansion, b.out_channels, b.se, b.activation) for b in original.blocks]
    kept = [i for i, b in enumerate(adapted.blocks) if b.stride == 2]
    strided = [i for i, b in enumerate(original.blocks) if b.stride == 2]
    assert kept == strided[:len(kept)]


def test_at_28_px_mobilenetv3_small_goes_28_14_7_4_like_the_28px_space():
    space = load_space(resolve_space("mobilenetv3-28px"))
    adapted = adapt(REFERENCES["mobilenetv3-small"], space, 28)
    assert sorted(set(_maps(adapted, 28)), reverse=True) == [14, 7, 4]
    # The paper's network at 224 px is left as it is.
    large = load_space(resolve_space("mobilenetv3"))
    assert adapt(REFERENCES["mobilenetv3-large"], large, 224) == REFERENCES["mobilenetv3-large"]


def test_with_a_stride_1_stem_mobilenetv3_small_keeps_28_px_through_its_stem():
    space = load_space(resolve_space("mobilenetv3-28px-s1"))
    adapted = adapt(REFERENCES["mobilenetv3-small"], space, 28)
    assert sorted(set(_maps(adapted, 28)), reverse=True) == [28, 14, 7, 4]
    assert adapted.to_string().startswith("stem_c16_s1_hs-")


# --- the MobileNetV3 family: width multipliers -------------------------------------------------

# torchvision's settings (input, expanded, output channels per block; Howard et al. 2019,
# Tables 1 and 2): a member at width m has make_divisible(c * m, 8) for each of them.
TORCHVISION = {
    "mobilenetv3-small": [(16, 16, 16), (16, 72, 24), (24, 88, 24), (24, 96, 40), (40, 240, 40),
                          (40, 240, 40), (40, 120, 48), (48, 144, 48), (48, 288, 96),
                          (96, 576, 96), (96, 576, 96)],
    "mobilenetv3-large": [(16, 16, 16), (16, 64, 24), (24, 72, 24), (24, 72, 40), (40, 120, 40),
                          (40, 120, 40), (40, 240, 80), (80, 200, 80), (80, 184, 80),
                          (80, 184, 80), (80, 480, 112), (112, 672, 112), (112, 672, 160),
                          (160, 960, 160), (160, 960, 160)],
}
HEADS = {"mobilenetv3-small": (576, 1024), "mobilenetv3-large": (960, 1280)}


def _widths(arch):
    """Per block: input, expanded and output channels, as the model builds them."""
    return [(cin, spec.expanded_channels(cin), spec.out_channels)
            for spec, cin in arch.layer_inputs(3) if isinstance(spec, BlockSpec)]


def test_the_family_has_both_networks_at_four_widths_and_width_1_is_the_papers():
    assert REFERENCE_NAMES == tuple(f"mobilenetv3-{size}{suffix}" for size in ("large", "small")
                                    for suffix in ("-0.5", "-0.75", "", "-1.25"))
    assert list(REFERENCES) == list(REFERENCE_NAMES)
    assert REFERENCES["mobilenetv3-large"] == MOBILENETV3_LARGE
    assert REFERENCES["mobilenetv3-small"] == MOBILENETV3_SMALL
    # each search trains its references: by default two members of each family, for a curve each
    assert SearchConfig(budget_ms=20).references == (
        "mobilenetv3-large-0.5", "mobilenetv3-large-0.75", "mobilenetv3-small-0.5",
        "mobilenetv3-small-0.75")


@pytest.mark.parametrize("family", sorted(TORCHVISION))
@pytest.mark.parametrize("width", [0.5, 0.75, 1.0, 1.25])
def test_family_members_have_the_multipliers_channels(family, width):
    arch = REFERENCES[reference_name(family, width)]
    assert _widths(arch) == [tuple(make_divisible(c * width) for c in row)
                             for row in TORCHVISION[family]]
    assert arch.stem.channels == make_divisible(16 * width)
    channels, features = HEADS[family]
    # the last feature width stays at width <= 1 (TF-Slim, Keras), scales above
    assert (arch.head.channels, arch.head.features) == (
        make_divisible(channels * width),
        features if width <= 1 else make_divisible(features * width))
    assert Arch.from_string(arch.to_string()) == arch and Arch.from_json(arch.to_json()) == arch


def test_mobilenetv3_small_at_0_75_and_0_5_by_torchvisions_rule():
    """The numbers written out: torchvision's `_make_divisible` of Table 2's widths."""
    small_075 = REFERENCES["mobilenetv3-small-0.75"]
    assert [out for _, _, out in _widths(small_075)] == [16, 24, 24, 32, 32, 32, 40, 40, 72, 72,
                                                         72]
    assert [exp for _, exp, _ in _widths(small_075)] == [16, 56, 64, 72, 184, 184, 88, 112, 216,
                                                         432, 432]
    small_05 = REFERENCES["mobilenetv3-small-0.5"]
    assert small_05.stem.channels == 8
    assert [out for _, _, out in _widths(small_05)] == [8, 16, 16, 24, 24, 24, 24, 24, 48, 48, 48]
    assert [exp for _, exp, _ in _widths(small_05)] == [8, 40, 48, 48, 120, 120, 64, 72, 144,
                                                        288, 288]
    # expansions stay ratios: the paper's where it still gives the width (4.5 x 8 = 36 -> 40),
    # else the shortest decimal that does (88 x 0.5 = 44 -> 48 = 3 x 16)
    assert small_05.to_string().split("-")[1:4] == [
        "ir_k3_e1_c8_s2_re_se", "ir_k3_e4.5_c16_s2_re", "ir_k3_e3_c16_s1_re"]


def test_references_flag_takes_family_members_and_names_the_choices():
    parse = next(f for f in fields(SearchConfig) if f.name == "references").metadata["flag"].type
    assert parse("mobilenetv3-small-0.75, mobilenetv3-large") == (
        "mobilenetv3-small-0.75", "mobilenetv3-large")
    with pytest.raises(argparse.ArgumentTypeError, match="choose from mobilenetv3-large-0.5, "):
        parse("mobilenetv3-small-0.6")


@pytest.mark.parametrize("name", ["mobilenetv3-small-0.5", "mobilenetv3-large-1.25"])
def test_family_members_adapt_to_28px_and_run(name):
    space = load_space(resolve_space("mobilenetv3-28px-wide"))
    adapted = adapt(REFERENCES[name], space, 28)
    assert _maps(adapted, 28)[-1] == 4 and adapted.stem.stride == 1
    out = MobileNet(adapted, ModelConfig(in_channels=1, num_classes=10)).eval()(
        torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
