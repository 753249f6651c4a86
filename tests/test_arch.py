import pytest

from nas.arch import Arch, BlockSpec, Head, Stem, make_divisible
from nas.space import load_space, random_archs

MOBILENETV3_SMALL = (  # Howard et al. 2019, Table 2, expanded widths as ratios of the input
    "stem_c16_hs-ir_k3_e1_c16_s2_re_se-ir_k3_e4.5_c24_s2_re-ir_k3_e3.67_c24_s1_re"
    "-ir_k5_e4_c40_s2_hs_se-ir_k5_e6_c40_s1_hs_se-ir_k5_e6_c40_s1_hs_se"
    "-ir_k5_e3_c48_s1_hs_se-ir_k5_e3_c48_s1_hs_se-ir_k5_e6_c96_s2_hs_se"
    "-ir_k5_e6_c96_s1_hs_se-ir_k5_e6_c96_s1_hs_se-head_c576_f1024_hs")


def test_string_and_json_round_trip_exactly_for_sampled_and_covering_archs():
    space = load_space()
    for arch in random_archs(space, 50, seed=3) + space.covering_archs():
        assert Arch.from_string(arch.to_string()) == arch
        assert Arch.from_json(arch.to_json()) == arch


def test_mobilenetv3_small_is_expressible_with_the_papers_expanded_widths():
    arch = Arch.from_string(MOBILENETV3_SMALL)
    assert arch.to_string() == MOBILENETV3_SMALL
    widths, cin = [], arch.stem.channels
    for block in arch.blocks:
        widths.append(block.expanded_channels(cin))
        cin = block.out_channels
    assert widths == [16, 72, 88, 96, 240, 240, 120, 144, 288, 576, 576]


@pytest.mark.parametrize("text", ["", "stem_c16_hs", "stem_c16_hs-ir_k3_e4_c24_s2_xx-head_c1_f1_hs",
                                  "stem_c16_hs-ir_k4_e4_c24_s2_re-head_c960_f1280_hs",
                                  "stem_c16_hs-ir_k3_e4_c24_s3_re-head_c960_f1280_hs"])
def test_bad_strings_are_refused(text):
    with pytest.raises(ValueError):
        Arch.from_string(text)


def test_invalid_choices_are_refused_by_the_dataclasses():
    with pytest.raises(ValueError, match="activation"):
        BlockSpec(3, 4, 24, 1, False, "gelu")
    with pytest.raises(ValueError, match="expansion"):
        BlockSpec(3, 0.5, 24, 1, False, "relu")
    with pytest.raises(ValueError):
        Arch(Stem(), (), Head())


def test_make_divisible_matches_the_reference_rule():
    assert [make_divisible(v) for v in (16 * 4.5, 24 * 3.67, 80 * 2.3, 7, 100)] == [72, 88, 184, 8, 104]
