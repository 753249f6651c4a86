from pathlib import Path

import optuna
import pytest

from conftest import LARGE_SPACE
from nas.space import (SHIPPED_SPACES, BlockChoice, SpaceError, Stage, StageChoice, load_space,
                       random_archs, resolve_space)

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
    (("  depth: [2, 3, 4]", "  width: [0, 1.0]\n  depth: [2, 3, 4]"), "choices.width"),
    (("  depth: [2, 3, 4]", "  width: [1.0, 1.0]\n  depth: [2, 3, 4]"), "choices.width"),
    (("stem: {channels: 16,", "stem: {channels: 16, stride: [1, 3],"), "stem.stride"),
    (("stem: {channels: 16,", "stem: {channels: 16, stride: [],"), "stem.stride"),
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


# --- width and stem-stride choices (mobilenetv3-28px-wide) -----------------------------------

WIDE = "mobilenetv3-28px-wide"


class _Recorder:
    """A suggester that takes the first choice and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: dict[str, list] = {}

    def suggest_categorical(self, name, choices):
        self.asked[name] = list(choices)
        return choices[0]


def test_widths_round_as_mobilenetv3_rounds_and_1_keeps_the_files_channels():
    space = load_space(resolve_space(WIDE))
    assert space.widths == (0.75, 1.0, 1.25, 1.5) and space.stem_strides == (1, 2)
    assert space.stem.stride == 1  # the finest stem, the one the stage strides are planned for
    # make_divisible(c * m, 8): nearest multiple of 8, never below 90% (24 * 0.75 = 18 -> 24)
    assert [[s.width(m) for m in space.widths] for s in space.stages] == [
        [24, 24, 32, 40], [32, 40, 48, 64], [40, 48, 64, 72], [72, 96, 120, 144]]
    assert Stage(channels=20, stride=1, depths=(2,)).width(1.0) == 20


def test_one_space_holds_both_28px_spaces():
    wide = load_space(resolve_space(WIDE))
    for name, stem_stride in (("mobilenetv3-28px-s1", 1), ("mobilenetv3-28px", 2)):
        old = load_space(resolve_space(name))
        assert wide.stage_strides(stem_stride) == tuple(s.stride for s in old.stages)
        assert wide.stage_input_sizes(28, stem_stride) == old.stage_input_sizes(28)
        for arch in random_archs(old, 20, seed=1):
            searched = arch.blocks[len(old.fixed_blocks):]
            stages, start = [], 0
            for stage in old.stages:  # the shipped spaces' stages are told apart by width
                depth = sum(b.out_channels == stage.channels for b in searched)
                stages.append(StageChoice(1.0, tuple(
                    BlockChoice(b.kernel, b.expansion, b.se, b.activation)
                    for b in searched[start:start + depth])))
                start += depth
            assert wide.build(stages, stem_stride) == arch


def test_every_stem_ends_at_the_same_map_and_keeps_every_kernel_visible():
    wide = load_space(resolve_space(WIDE))
    assert wide.stage_input_sizes(28, 1)[-1] == wide.stage_input_sizes(28, 2)[-1] == (4, 4)
    assert wide.invisible_kernels(28) == wide.invisible_kernels(32) == []
    problems = wide.invisible_kernels(24)  # 3x3 maps at the end: each stem's line names it
    assert "stage 4 sees 3x3 maps at 24px with a stride-1 stem: kernel 7 computes what kernel 5 " \
           "does" in problems
    assert "stage 2 sees 3x3 maps at 24px with a stride-2 stem: kernel 7 computes what kernel 5 " \
           "does" in problems


def test_width_and_stem_are_sampled_once_per_stage_and_only_where_searched():
    wide, old = load_space(resolve_space(WIDE)), load_space(resolve_space("mobilenetv3-28px-s1"))
    recorder = _Recorder()
    wide.sample(recorder)
    assert recorder.asked["stem_stride"] == [1, 2]
    assert [recorder.asked[f"s{i}_width"] for i in range(4)] == [[0.75, 1.0, 1.25, 1.5]] * 4
    recorder = _Recorder()
    old.sample(recorder)
    assert not [name for name in recorder.asked if "width" in name or "stem" in name]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(10):
        trial = study.ask()
        arch = wide.sample(trial)
        assert arch.stem.stride == trial.params["stem_stride"]
        searched = arch.blocks[len(wide.fixed_blocks):]
        assert searched[0].out_channels == wide.stages[0].width(trial.params["s0_width"])
        assert sum(b.stride == 2 for b in searched) == 4 - trial.params["stem_stride"]


def test_covering_archs_hold_every_pair_of_neighbouring_widths_under_every_stem():
    wide = load_space(resolve_space(WIDE))
    archs = wide.covering_archs()
    assert len(archs) == 2 * 4 ** 2 * len(wide.choices())
    seen = {(a.stem.stride, cin, spec.out_channels, spec.stride)
            for a in archs for spec, cin in a.layer_inputs(1)[2:-1]}
    for stem in (1, 2):
        strides = wide.stage_strides(stem)
        for i in range(1, 4):
            for before in wide.widths:
                for width in wide.widths:
                    assert (stem, wide.stages[i - 1].width(before), wide.stages[i].width(width),
                            strides[i]) in seen


def test_size_counts_stems_and_the_widths_that_round_apart():
    wide = load_space(resolve_space(WIDE))
    old = load_space(resolve_space("mobilenetv3-28px-s1"))
    # stage 1's 0.75 rounds to its 1.0 (24 channels): 3 widths there, 4 elsewhere
    assert wide.size() == 2 * 3 * 4 ** 3 * old.size()


def test_a_stem_choice_without_a_stage_to_hand_its_halving_to_is_refused(tmp_path):
    text = GOOD.read_text().replace("stride: 2}", "stride: 1}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("stem: {channels: 16,", "stem: {channels: 16, stride: [1, 2],"))
    with pytest.raises(SpaceError, match="key 'stem.stride': a choice of stem strides needs a "
                                         "stage of stride 2"):
        load_space(bad)


@pytest.mark.parametrize("name, fingerprint", [("mobilenetv3", "82da2467be8a"),
                                               ("mobilenetv3-28px", "e07e8590f0cd"),
                                               ("mobilenetv3-28px-s1", "abf455b05b71")])
def test_spaces_that_search_no_width_or_stem_keep_their_runs_fingerprints(name, fingerprint,
                                                                          tmp_path):
    """The fingerprints from before width and stem strides were choices: runs keep their
    identity (`nas.identity`)."""
    path = resolve_space(name)
    assert load_space(path).fingerprint() == fingerprint
    text = path.read_text()
    explicit = tmp_path / "explicit.yaml"  # the defaults written out change nothing
    explicit.write_text(text.replace("  depth: [2, 3, 4]", "  width: [1]\n  depth: [2, 3, 4]"))
    assert load_space(explicit).fingerprint() == fingerprint
    wider = tmp_path / "wider.yaml"
    wider.write_text(text.replace("  depth: [2, 3, 4]", "  width: [1, 1.5]\n  depth: [2, 3, 4]"))
    assert load_space(wider).fingerprint() != fingerprint
