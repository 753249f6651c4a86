"""Final training (``nas train``): resumes after an interruption to the weights of an
uninterrupted run, refuses another training's files, and export prefers its weights."""

import json
import shutil
from dataclasses import replace

import pandas as pd
import pytest
import torch

import nas.config
import nas.final
from nas.arch import Arch
from nas.cli import main
from nas.config import FinalConfig, TrainConfig
from nas.run import RunDir, RunRecord, load_best
from nas.commands.common import run_data
from nas.final import all_training_images
from nas.model import MobileNet
from nas.train import resolve_device, top1_accuracy


@pytest.fixture(scope="module")
def searched(tmp_path_factory, tiny_space, tiny_lut, tiny_data):
    """A tiny run folder (one candidate trained for one epoch), copied by each test."""
    results = tmp_path_factory.mktemp("results")
    assert main(["search", "--latency-budget", "1000ms", "--space", str(tiny_space), "--lut",
                 str(tiny_lut), "--data-dir", str(tiny_data), "--val-samples", "100",
                 "--epochs", "1", "--rung-epochs", "none", "--references", "none",
                 "--sampler", "random",
                 "--train-threads", "1", "--results-dir", str(results), "--run-name", "tiny",
                 "--trials", "1"]) == 0
    return results / "tiny"


@pytest.fixture
def run(searched, tmp_path):
    return shutil.copytree(searched, tmp_path / "run")


def _train(run, *flags):
    return main(["train", str(run), "--epochs", "3", "--train-threads", "1", *flags])


def _weights(path):
    return torch.load(path, weights_only=True)


def _stop_after_first_checkpoint(monkeypatch):
    """Make the next ``nas train`` stop as Ctrl-C would right after epoch 1's checkpoint."""
    save = nas.final.save_checkpoint

    def save_then_stop(run, checkpoint):
        save(run, checkpoint)
        raise KeyboardInterrupt

    monkeypatch.setattr(nas.final, "save_checkpoint", save_then_stop)


def test_recipe_is_the_proxy_s_with_crops_for_long_training():
    assert FinalConfig().recipe() == replace(TrainConfig(), epochs=12.0, crop_padding=2)
    assert FinalConfig(train_device="cpu", precision="bf16").recipe() == replace(
        TrainConfig(), epochs=12.0, crop_padding=2, train_device="cpu", precision="bf16")


# The shipped recipe, and one with the recipe changes of issue 27 switched on (a triangular
# schedule and an average of the weights): each resumes bit-exactly.
RECIPES = {"shipped": {}, "triangle+ema": {"schedule": "triangle", "ema": 0.9}}


@pytest.mark.slow
@pytest.mark.parametrize("changes", RECIPES.values(), ids=RECIPES.keys())
def test_interrupted_training_resumes_to_the_uninterrupted_weights(searched, tmp_path,
                                                                   monkeypatch, capsys, changes):
    monkeypatch.setattr(nas.config, "FINAL_RECIPE", replace(nas.config.FINAL_RECIPE, **changes))
    whole, broken = (RunDir(shutil.copytree(searched, tmp_path / name))
                     for name in ("whole", "broken"))
    assert _train(whole.root) == 0
    record = json.loads(whole.final_record.read_text())
    assert record["epochs"] == 3 and record["seed"] == 0 and record["config"]["crop_padding"] == 2
    assert record["trial"] == load_best(whole)[0].trial
    assert not whole.final_checkpoint.exists()  # removed once complete

    saved = nas.final.save_checkpoint
    _stop_after_first_checkpoint(monkeypatch)
    assert _train(broken.root) == 130
    assert broken.final_checkpoint.is_file() and not broken.final_record.exists()
    checkpoint = torch.load(broken.final_checkpoint, weights_only=True)
    assert ("average" in checkpoint) == bool(changes.get("ema"))
    monkeypatch.setattr(nas.final, "save_checkpoint", saved)  # the recipe stays patched
    capsys.readouterr()
    assert _train(broken.root) == 0
    assert "resuming after epoch 1 of 3" in capsys.readouterr().out

    expected, got = _weights(whole.final_weights), _weights(broken.final_weights)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    curves = [pd.read_csv(r.final_curve).drop(columns="seconds") for r in (whole, broken)]
    assert list(curves[0]["epoch"]) == [1, 2, 3]
    pd.testing.assert_frame_equal(*curves)
    again = json.loads(broken.final_record.read_text())
    assert again["test_accuracy"] == record["test_accuracy"] == curves[0]["test_accuracy"].iloc[-1]

    # What weights.pt holds (the average, with an average) scores the final test accuracy.
    made = RunRecord.load(whole)
    data = all_training_images(run_data(made, None, train_samples=None), made.data_info.mean,
                               made.data_info.std)  # as nas train reads it
    model = MobileNet(Arch.from_string(record["arch"]), made.model)
    model.load_state_dict(got)
    model.to(memory_format=torch.channels_last)
    assert top1_accuracy(model, data.test, data) == record["test_accuracy"]

    assert _train(broken.root) == 0  # complete: nothing to do
    assert "already complete" in capsys.readouterr().out
    assert _train(broken.root, "--seed", "1") == 2  # another training's final/: refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed 0 (asked: 1)" in err and "delete" in err


@pytest.mark.slow
def test_a_checkpoint_of_another_training_is_not_resumed(run, monkeypatch, capsys):
    _stop_after_first_checkpoint(monkeypatch)
    assert _train(run) == 130
    monkeypatch.undo()
    capsys.readouterr()
    assert _train(run, "--epochs", "4") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epochs 3 (asked: 4)" in err


def _saved_on(path):
    """Where each tensor of a torch.save file was when it was saved."""
    locations = set()
    torch.load(path, weights_only=True,
               map_location=lambda storage, location: locations.add(location) or storage)
    return locations


@pytest.mark.slow
def test_checkpoint_and_weights_are_saved_on_the_cpu_and_name_the_device(run, monkeypatch,
                                                                         capsys):
    run_dir, device = RunDir(run), str(resolve_device("auto"))
    _stop_after_first_checkpoint(monkeypatch)
    assert _train(run, "--device", "auto") == 130
    monkeypatch.undo()
    saved = torch.load(run_dir.final_checkpoint, weights_only=True)
    assert saved["config"]["train_device"] == device  # resolved
    assert ("cuda_rng" in saved) == device.startswith("cuda")
    assert _saved_on(run_dir.final_checkpoint) == {"cpu"}
    capsys.readouterr()
    assert _train(run, "--precision", "bf16") == 2  # precision changes the weights: refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "precision fp32 (asked: bf16)" in err
    assert _train(run) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 1 of 3" in out and "bit-identical" not in out
    assert f"threads on {device}, fp32" in out
    assert json.loads(run_dir.final_record.read_text())["config"]["train_device"] == device
    assert _saved_on(run_dir.final_weights) == {"cpu"}


@pytest.mark.slow
def test_export_prefers_final_weights(run, capsys):
    run_dir = RunDir(run)
    out = run / "out"
    assert main(["export", str(run), "--format", "json", "--out", str(out)]) == 0
    assert "using the search's proxy weights" in capsys.readouterr().out
    card = json.loads((out / "model_card.json").read_text())
    assert card["weights"] == "search proxy, 1 epochs"
    best = load_best(run_dir)[1]
    exported = _weights(out / "weights.pt")
    assert all(torch.equal(best[k], exported[k]) for k in best)

    assert _train(run) == 0
    final = json.loads(run_dir.final_record.read_text())
    assert 0 <= final["test_accuracy_mirror"] <= 1  # trained with flips: scored mirrored too
    assert (f"({100 * final['test_accuracy_mirror']:.2f}% when each image is also scored "
            "mirrored: 2 forward passes") in capsys.readouterr().out
    assert main(["export", str(run), "--format", "json", "--out", str(out)]) == 0
    assert (f"using final weights of trial {final['trial']}: 3 epochs, test accuracy "
            f"{100 * final['test_accuracy']:.2f}%") in capsys.readouterr().out
    card = json.loads((out / "model_card.json").read_text())
    assert card["weights"] == "final training, 3 epochs"
    assert card["test_accuracy"] == final["test_accuracy"]
    assert card["final_training"]["epochs"] == 3 and card["final_training"]["seed"] == 0
    assert card["final_training"]["train_seconds"] == round(final["train_seconds"], 1)
    assert card["final_training"]["test_accuracy_single_view"] == final["test_accuracy"]
    assert card["final_training"]["test_accuracy_mirror_tta"] == final["test_accuracy_mirror"]
    markdown = (out / "MODEL_CARD.md").read_text()
    assert "## Final training" in markdown and "2 forward passes" in markdown
    # What the test-time augmentation scored is not what is exported: the weights are the
    # final training's, untouched.
    weights, exported = _weights(run_dir.final_weights), _weights(out / "weights.pt")
    assert weights.keys() == exported.keys()
    assert all(torch.equal(weights[k], exported[k]) for k in weights)


@pytest.mark.parametrize("trial", ["7", "-1"])
@pytest.mark.slow
def test_a_trial_the_study_lacks_is_refused_in_one_line(run, capsys, trial):
    assert _train(run, "--trial", trial) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--trial {trial}" in err and "trials.csv" in err
    assert not (run / "final").exists()


@pytest.mark.slow
def test_trial_flag_trains_that_trial(run):
    assert _train(run, "--trial", "0", "--epochs", "1") == 0
    record = json.loads(RunDir(run).final_record.read_text())
    assert record["trial"] == 0 and record["epochs"] == 1
