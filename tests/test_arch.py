import pytest

from conftest import LARGE_SPACE
from nas.arch import Arch, ArchError, BlockSpec, Head, Stem, make_divisible
from nas.references import MOBILENETV3_LARGE, MOBILENETV3_SMALL
from nas.space import load_space, random_archs, resolve_space


@pytest.mark.parametrize("space", [LARGE_SPACE, "mobilenetv3-28px-s1", "mobilenetv3-28px-wide"])
def test_string_and_json_round_trip_exactly_for_sampled_and_covering_archs(space):
    space = load_space(resolve_space(space))
    for arch in random_archs(space, 50, seed=3) + space.covering_archs():
        assert Arch.from_string(arch.to_string()) == arch
        assert Arch.from_json(arch.to_json()) == arch


def _expanded_widths(arch: Arch) -> list[int]:
    return [spec.expanded_channels(cin) for spec, cin in arch.layer_inputs(3)
            if isinstance(spec, BlockSpec)]


def test_references_have_the_papers_expanded_widths():
    # Howard et al. 2019, Table 2 (Small) and Table 1 (Large), column "exp size"
    assert _expanded_widths(MOBILENETV3_SMALL) == [16, 72, 88, 96, 240, 240, 120, 144, 288,
                                                   576, 576]
    assert _expanded_widths(MOBILENETV3_LARGE) == [16, 64, 72, 72, 120, 120, 240, 200, 184, 184,
                                                   480, 672, 672, 960, 960]
    for arch in (MOBILENETV3_SMALL, MOBILENETV3_LARGE):
        assert Arch.from_string(arch.to_string()) == arch


def test_the_stem_token_names_its_stride_only_when_it_is_1():
    assert Stem(16, "hswish").to_string() == "stem_c16_hs"  # as every stored token reads
    assert Stem(16, "relu", stride=1).to_string() == "stem_c16_s1_re"
    for stem in (Stem(16, "hswish"), Stem(24, "relu", stride=1)):
        assert Stem.from_string(stem.to_string()) == stem
    assert Stem.from_string("stem_c16_s2_hs") == Stem(16, "hswish")
    with pytest.raises(ArchError, match="stem stride must be 1 or 2"):
        Stem.from_string("stem_c16_s3_hs")


@pytest.mark.parametrize("text", ["", "stem_c16_hs", "stem_c16_hs-ir_k3_e4_c24_s2_xx-head_c1_f1_hs",
                                  "stem_c16_hs-ir_k4_e4_c24_s2_re-head_c960_f1280_hs",
                                  "stem_c16_hs-ir_k3_e4_c24_s3_re-head_c960_f1280_hs"])
def test_bad_strings_are_refused(text):
    with pytest.raises(ArchError):
        Arch.from_string(text)


def test_invalid_choices_are_refused_by_the_dataclasses():
    with pytest.raises(ArchError, match="activation"):
        BlockSpec(3, 4, 24, 1, False, "gelu")
    with pytest.raises(ArchError, match="expansion"):
        BlockSpec(3, 0.5, 24, 1, False, "relu")
    with pytest.raises(ArchError, match="expansion"):
        BlockSpec(3, float("inf"), 24, 1, False, "relu")
    with pytest.raises(ArchError):
        Arch(Stem(), (), Head())


def test_make_divisible_matches_the_reference_rule():
    values = (16 * 4.5, 24 * 3.67, 80 * 2.3, 7, 100)
    assert [make_divisible(v) for v in values] == [72, 88, 184, 8, 104]
