"""A run is one experiment: a start whose settings change what a trial's numbers mean is refused
in one line, before anything is written; what only changes how fast it goes may change."""

import hashlib
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.config import DataConfig, SearchConfig, TrainConfig
from nas.identity import MAY_CHANGE, IdentityError, check, first_difference, identity
from nas.run import RunDir, RunRecord, read_checkpoint, run_name
from nas.search import made_identity, open_study
from nas.space import load_space
from nas.storage import open_storage
from test_own_data import write_npz

pytestmark = pytest.mark.slow


def _made(**changes):
    args = {"space_sha256": "aaa", "space_name": "s", "data": DataConfig(),
            "data_shape": {"channels": 1, "classes": ["a", "b"]}, "train": TrainConfig(),
            "search": SearchConfig(budget_ms=20.0), "target": "t", "lut": "l", **changes}
    return identity(**args)


def test_the_first_difference_is_named_by_its_flag():
    made = _made()
    assert first_difference(made, _made()) is None
    assert first_difference(made, _made(train=TrainConfig(epochs=3.0))) == (
        f"--epochs: the run was made with {TrainConfig().epochs}, this start gives 3.0")
    assert first_difference(made, _made(data_shape={"channels": 3, "classes": ["a", "b"]})) == (
        "the data's channels: the run was made with 1, this start gives 3")
    # what may change on resume is not part of the identity
    assert first_difference(made, _made(search=SearchConfig(budget_ms=20.0, trials=50,
                                                            latency_margin=0.1, seed_std=1.0,
                                                            references=()),
                                        train=TrainConfig(train_threads=4),
                                        data=DataConfig(data_dir="/elsewhere"))) is None
    assert {"trials", "train_threads", "references"} <= MAY_CHANGE
    # a setting newer than the run agrees at its default (the older version's behaviour)
    older = {k: v for k, v in made.items() if k != "--precision"}
    assert first_difference(older, made) is None
    assert first_difference(older, _made(train=TrainConfig(precision="bf16"))) == (
        "--precision: the run was made with nothing, this start gives bf16")
    with pytest.raises(IdentityError, match=r"^results/r is another experiment \(--seed: .*"
                                            r"pass --run-name NAME"):
        check(made, _made(search=SearchConfig(budget_ms=20.0, seed=1)), "results/r")


def test_the_default_run_name_holds_the_data_set():
    assert run_name("fashion-mnist", "mobilenetv3-28px-s1", 20.0, 0) == (
        "fashion-mnist-mobilenetv3-28px-s1-20ms-seed0")
    assert run_name("npz:/data/rgb.npz", "s", 12.5, 3) == "rgb-s-12.5ms-seed3"
    assert run_name("folder:/data/pets/", "s", 20.0, 0) == "pets-s-20ms-seed0"


def _digest(run: Path) -> dict[str, str]:
    """Every file of the run folder but the lock files, by content."""
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def made_run(tmp_path_factory, tiny_space, tiny_data, tiny_lut):
    """One tiny run, and the flags it was made with."""
    results = tmp_path_factory.mktemp("identity")
    flags = ["search", "--latency-budget", "1000ms", "--space", str(tiny_space), "--data-dir",
             str(tiny_data), "--val-samples", "100", "--epochs", "1", "--rung-epochs", "none",
             "--references", "none", "--sampler", "random", "--train-threads", "1",
             "--results-dir", str(results), "--run-name", "r", "--lut", str(tiny_lut),
             "--trials", "1", "--seed", "3", "--train-samples", "400"]
    assert main(flags) == 0
    return results / "r", flags


def _changed_space(tiny_space: Path, tmp: Path) -> Path:
    """The same space (same name) with one choice fewer; a comment alone changes nothing."""
    text = tiny_space.read_text()
    commented = tmp / "commented.yaml"
    commented.write_text(text + "\n# edited\n")
    assert load_space(commented).fingerprint() == load_space(tiny_space).fingerprint()
    changed = tmp / "tiny.yaml"
    changed.write_text(text.replace("kernel: [3, 5]", "kernel: [3]"))
    assert load_space(changed).fingerprint() != load_space(tiny_space).fingerprint()
    return changed


@pytest.mark.parametrize("change, label", [
    (["--epochs", "2"], "--epochs"),
    (["--train-samples", "300"], "--train-samples"),
    (["--val-samples", "50"], "--val-samples"),
    (["--seed", "4"], "--seed"),
    (["--sampler", "tpe"], "--sampler"),
    (["--rung-epochs", "0.5"], "--rung-epochs"),
    (["--latency-budget", "900ms"], "--latency-budget"),
    (["--resolution", "20"], "--resolution"),
    ("space", "the space's choices"),
    ("npz", "--dataset"),
    ("lut", "the latency table"),
])
def test_each_identity_setting_changed_alone_is_refused(made_run, change, label, tmp_path,
                                                        tiny_space, tiny_lut, capsys):
    run, flags = made_run
    before = _digest(run)
    storage = open_storage(f"sqlite:///{run / 'study.db'}")
    trials = len(open_study(storage, "r").trials)
    if change == "space":
        change = ["--space", str(_changed_space(tiny_space, tmp_path))]
    elif change == "npz":  # the reproduction of issue 25: 32 px RGB images, 3 classes
        at = flags.index("--data-dir")
        flags = flags[:at] + flags[at + 2:]  # an npz file names its data itself
        change = ["--dataset", f"npz:{write_npz(tmp_path / 'rgb.npz')}"]
    elif change == "lut":  # the same target, rebuilt: another fit
        other = tmp_path / "lut.json"
        text = tiny_lut.read_text().replace('"rel_rmse": ', '"rel_rmse": 1', 1)
        other.write_text(text)
        change = ["--lut", str(other)]
    capsys.readouterr()
    assert main([*flags, *change]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(f"error: {run} is another experiment ({label}")
    assert "pass --run-name NAME to start a new run" in err
    assert _digest(run) == before  # run.json, summary.md, best/, the study: all unchanged
    assert len(open_study(storage, "r").trials) == trials


def test_a_resume_may_change_trials_threads_and_margin(made_run, capsys):
    run, flags = made_run
    assert main([*flags, "--trials", "2", "--train-threads", "2", "--latency-margin", "5%",
                 "--seed-std", "1.0"]) == 0
    storage = open_storage(f"sqlite:///{run / 'study.db'}")
    assert made_identity(storage, "r") == RunRecord.load(RunDir(run)).identity()
    trained = [t for t in open_study(storage, "r").trials if t.user_attrs.get("status")
               == "trained"]
    assert len(trained) == 2


def test_export_refuses_weights_of_another_network_in_one_line(made_run, tmp_path, capsys):
    run, _ = made_run
    best, state = read_checkpoint(RunDir(run))
    first = next(k for k, v in state.items() if v.dim() == 4)
    wrong = {**state, first: torch.zeros(state[first].shape[0], 3, *state[first].shape[2:])}
    saved = torch.load(RunDir(run).best_checkpoint, weights_only=True)
    original = RunDir(run).best_checkpoint.read_bytes()
    try:
        torch.save({**saved, "state_dict": wrong}, RunDir(run).best_checkpoint)
        capsys.readouterr()
        assert main(["export", str(run), "--format", "json", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "these weights do not fit the run's network" in err
        assert f"size mismatch for {first}" in err
    finally:
        RunDir(run).best_checkpoint.write_bytes(original)
