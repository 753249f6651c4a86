"""Reference networks adapted to a run's resolution from the space's stride plan."""

from __future__ import annotations

import pytest

from nas.arch import conv_output_size
from nas.references import REFERENCES, adapt
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
