from pathlib import Path

import optuna
import pytest

from conftest import LARGE_SPACE
from nas.space import SHIPPED_SPACES, SpaceError, load_space, random_archs, resolve_space

GOOD = Path(__file__).resolve().parent.parent / "search_spaces" / "mobilenetv3.yaml"


def test_default_space_follows_mobilenetv3_large():
    space = load_space(LARGE_SPACE)
    assert space.resolution == 224
    assert [(s.channels, s.stride) for s in space.stages] == [
        (24, 2), (40, 2), (80, 2), (112, 1), (160, 2)]
    assert all(s.depths == (2, 3, 4) for s in space.stages)
    assert (space.kernels, space.expansions) == ((3, 5, 7), (3.0, 4.0, 6.0))
    assert len(space.choices()) == 3 * 3 * 2 * 2
    assert space.size() == (36 ** 2 + 36 ** 3 + 36 ** 4) ** 5


def test_sampling_respects_depths_and_strides():
    space = load_space(LARGE_SPACE)
    for arch in random_archs(space, 30, seed=1):
        searchable = arch.blocks[len(space.fixed_blocks):]
        assert 10 <= len(searchable) <= 20
        assert sum(b.stride == 2 for b in searchable) == 4


def test_optuna_trials_sample_only_the_blocks_the_depth_keeps():
    space = load_space(LARGE_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    arch = space.sample(trial)
    depth0 = trial.params["s0_depth"]
    assert f"s0_b{depth0 - 1}_kernel" in trial.params
    assert f"s0_b{depth0}_kernel" not in trial.params
    assert len(arch.blocks) == 1 + sum(trial.params[f"s{i}_depth"] for i in range(5))


def test_same_seed_same_architectures():
    space = load_space(LARGE_SPACE)
    assert random_archs(space, 5, seed=7) == random_archs(space, 5, seed=7)
    assert random_archs(space, 5, seed=7) != random_archs(space, 5, seed=8)


def test_held_out_architectures_skip_the_excluded_ones():
    space = load_space(LARGE_SPACE)
    first = random_archs(space, 5, seed=7)
    held_out = random_archs(space, 5, seed=7, exclude=set(first[:3]))
    # The same stream with the first three skipped: the next samples take their places.
    assert held_out[:2] == first[3:] and len(held_out) == 5
    assert not set(held_out) & set(first[:3])


def test_holding_out_from_a_space_with_nothing_left_is_refused(tmp_path):
    one = tmp_path / "one.yaml"  # depth 2, a single block choice: one architecture
    text = GOOD.read_text()
    for key, values in (("depth", "[2, 3, 4]"), ("kernel", "[3, 5, 7]"),
                        ("expansion", "[3, 4, 6]"), ("se", "[false, true]"),
                        ("activation", "[relu, hswish]")):
        text = text.replace(f"{key}: {values}", f"{key}: [{values[1:-1].split(',')[0]}]")
    one.write_text(text)
    space = load_space(one)
    assert space.size() == 1
    with pytest.raises(SpaceError, match="none is left to hold out"):
        random_archs(space, 3, seed=0, exclude=set(random_archs(space, 1, seed=0)))


def test_covering_archs_contain_every_choice_at_every_position():
    space = load_space(LARGE_SPACE)
    archs = space.covering_archs()
    assert len(archs) == len(space.choices())
    assert {(b.kernel, b.expansion, b.se, b.activation) for a in archs for b in a.blocks[1:]} == {
        (c.kernel, c.expansion, c.se, c.activation) for c in space.choices()}


@pytest.mark.parametrize("edit, key", [
    (("stages:", "stagez:"), "stages"),
    (("{channels: 40, stride: 2}", "{channels: 40, stride: 3}"), "stages[1].stride"),
    (("{channels: 80, stride: 2}", "{channels: -80, stride: 2}"), "stages[2].channels"),
    (("kernel: [3, 5, 7]", "kernel: [3, 4]"), "choices.kernel"),
    (("activation: [relu, hswish]", "activation: [relu, gelu]"), "choices.activation"),
    (("resolution: 224", "resolution: big"), "resolution"),
    (("stem: {channels: 16,", "stem: {channels: 16, stride: 4,"), "stem.stride"),
    (("head: {channels: 960,", "head: {channelz: 960,"), "head.channels"),
])
def test_malformed_space_names_the_key(tmp_path, edit, key):
    text = GOOD.read_text()
    assert edit[0] in text
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(SpaceError, match=rf"key '{key.replace('[', '.').replace(']', '.')}'"):
        load_space(bad)


def test_unreadable_and_invalid_yaml_are_refused(tmp_path):
    with pytest.raises(SpaceError, match="cannot read"):
        load_space(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [\n")
    with pytest.raises(SpaceError, match="not valid YAML"):
        load_space(bad)


@pytest.mark.parametrize("path", sorted(SHIPPED_SPACES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_space_lets_training_see_every_kernel_choice(path):
    space = load_space(path)
    assert space.invisible_kernels(space.resolution) == []


def test_invisible_kernels_are_found_where_maps_are_too_small():
    large = load_space(LARGE_SPACE)  # the 224 px stride plan, trained at 28 px (as it once was)
    problems = large.invisible_kernels(28)
    assert any(p.startswith("stage 5 sees 1x1 maps") for p in problems)
    assert large.stage_input_sizes(28)[2] == (4, 2)
    small = load_space(resolve_space("mobilenetv3-28px"))  # stride-2 stem, for 28-32 px data
    assert small.stage_input_sizes(28) == [(14, 7), (7, 4), (4, 4), (4, 4)]
    assert small.invisible_kernels(32) == []
    # at 24 px the last stages see 3x3 maps: kernel 7 adds nothing to kernel 5 there
    assert small.invisible_kernels(24) == [
        f"stage {i} sees 3x3 maps at 24px: kernel 7 computes what kernel 5 does"
        for i in (2, 3, 4)]
