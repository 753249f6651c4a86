import argparse
import json
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import ROOT, search_command
from nas.arch import Arch
from nas.budget import BudgetRule
from nas.cli import main
from nas.config import DEFAULT_REFERENCES
from nas.data import load_dataset
from nas.flags import budget_ms
from nas.model import MobileNet, ModelConfig
from nas.train import top1_accuracy


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("0.02s", 20.0), ("20", 20.0),
                                      ("12.5 ms", 12.5), ("1S", 1000.0)])
def test_budget_forms(text, ms):
    assert budget_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["abc", "-5ms", "0", "0s", "20 fortnights", "", "1e400ms",
                                  "inf", "nan"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="budget|expected"):
        budget_ms(text)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run_search.py"), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


@pytest.mark.parametrize("budget", ["abc", "-5ms", "0", "1e400ms"])
def test_bad_budget_exits_2_with_one_line(budget):
    r = _run("--latency-budget", budget)
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "latency-budget" in r.stderr
    assert "Traceback" not in r.stderr


def test_missing_data_dir_and_corrupt_idx_exit_2_naming_the_path(tmp_path, idx_dir):
    r = _run("--latency-budget", "20ms", "--data-dir", str(tmp_path / "nope"))
    assert r.returncode == 2 and str(tmp_path / "nope") in r.stderr and "Traceback" not in r.stderr
    bad = idx_dir / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    r = _run("--latency-budget", "20ms", "--data-dir", str(idx_dir))
    assert r.returncode == 2 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_tiny_end_to_end_search_resume_report_and_export(tmp_path, idx_dir, capsys):
    results = tmp_path / "results"
    common = ["search", "--latency-budget", "1000ms", "--data-dir", str(idx_dir),
              "--val-samples", "100", "--epochs", "1",
              "--results-dir", str(results), "--run-name", "tiny", "--sampler", "random",
              "--rung-epochs", "none", "--backend", "torch"]  # eager: a table in seconds
    assert main([*common, "--trials", "2"]) == 0
    run = results / "tiny"
    for name in ("trials.csv", "pareto.csv", "pareto.html", "summary.md", "best/arch.json",
                 "best/weights.pt", "study.db", "run.json"):
        assert (run / name).is_file(), name
    trials = pd.read_csv(run / "trials.csv")
    assert {"number", "state", "accuracy", "latency_ms", "macs", "params", "train_seconds",
            "arch"} <= set(trials.columns)
    assert (trials["status"] == "trained").sum() == 2
    html = (run / "pareto.html").read_text()
    assert "plotly.js" in html.lower() or "Plotly" in html  # inlined, readable offline
    assert "budget 1000 ms" in html
    assert list((results / "luts").glob("mobilenetv3-28px-wide-torch-*.json"))  # the default space
    summary = (run / "summary.md").read_text()
    assert "- resolution: 28x28 px for training, validation, latency and export" in summary
    # The references, adapted to 28 px, trained by the same proxy and predicted by the same
    # table (their layers timed into it), drawn and compared in the summary.
    references = json.loads((run / "references.json").read_text())
    assert [r["name"] for r in references] == list(DEFAULT_REFERENCES)
    assert all(r["latency_ms"] > 0 and 0 <= r["accuracy"] <= 1 and r["epochs"] == 1
               for r in references)
    assert "## Reference networks" in summary
    assert re.search(r"^- mobilenetv3-small-0.5: (not )?beaten", summary, re.MULTILINE)
    assert "reference networks (same proxy, same table)" in html
    # Two members of each family by default: a curve per family.
    assert "mobilenetv3-small family (width 0.5, 0.75)" in html
    assert "mobilenetv3-large family (width 0.5, 0.75)" in html

    assert main([*common, "--trials", "3"]) == 0  # resumes: one more trained candidate
    assert (pd.read_csv(run / "trials.csv")["status"] == "trained").sum() == 3

    out = tmp_path / "export"
    assert main(["export", str(run), "--format", "json,torchscript,onnx", "--out", str(out)]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["max_abs_diff_vs_pytorch"]["onnx"] < 1e-4
    assert card["lut_hash"] and card["target"]
    # This machine is the run's target, so the export times the network: the table's
    # prediction and the measurement are both in the card.
    assert card["measured_latency_ms"] > 0 and card["predicted_latency_ms"] > 0
    # Accuracy on the test split (never seen by the search), with the run's normalisation.
    data = load_dataset("fashion-mnist", idx_dir, val_samples=100, seed=0, resolution=28)
    model = MobileNet(Arch.from_json((out / "arch.json").read_text()), ModelConfig(1, 10))
    model.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    assert card["test_accuracy"] == top1_accuracy(model, data.test, data)
    made = (run / "run.json").read_text()
    meta = json.loads(made)
    meta["target"]["device"] = "some other board"  # as if exported off the target
    (run / "run.json").write_text(json.dumps(meta))
    assert main(["export", str(run), "--format", "json", "--out", str(out),
                 "--data-dir", str(tmp_path / "moved")]) == 0
    card = json.loads((out / "model_card.json").read_text())
    assert card["measured_latency_ms"] is None and "not measured" in card["measured_latency_note"]
    assert card["test_accuracy"] is None and "pass --data-dir" in capsys.readouterr().out
    for name in ("arch.json", "model.onnx", "model.torchscript.pt", "MODEL_CARD.md"):
        assert (out / name).is_file()
    with pytest.raises(SystemExit) as exited:
        main(["export", str(run), "--format", "tflite"])
    assert exited.value.code == 2 and "choose from json" in capsys.readouterr().err
    (run / "run.json").write_text(made)  # nas report checks run.json against the study

    lut = next((results / "luts").glob("*.json"))
    best_before = (run / "best" / "weights.pt").read_bytes()
    assert main(["report", str(run), "--lut", str(lut), "--latency-budget", "0.5ms"]) == 0
    assert main(["report", str(run), "--latency-budget", "0.5ms"]) == 0
    assert (run / "summary-0.5ms.md").is_file() and list(run.glob("summary-*-0.5ms.md"))
    assert (run / "best" / "weights.pt").read_bytes() == best_before  # re-scoring leaves best/
    assert main(["export", str(run), "--format", "onnx", "--out", str(out)]) == 0
    exported = json.loads((out / "arch.json").read_text())
    assert exported["class_names"][:2] == ["T-shirt/top", "Trouser"]
    assert exported["input_size"] == 28


@pytest.mark.parametrize("flags", [["--trials", "abc"], ["--sampler", "grid"], ["--trials", "0"]])
def test_bad_flags_exit_2_in_one_line(flags):
    r = _run("--latency-budget", "20ms", *flags)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--help" in r.stderr


def test_front_info_counts_and_best_by_hand():
    from nas.report import front_info

    frame = pd.DataFrame({
        "status": ["trained", "trained", "trained", "over_budget", "failed", "trained"],
        "accuracy": [0.80, 0.85, 0.83, None, None, 0.90],
        "latency_ms": [10.0, 12.0, 15.0, 25.0, 11.0, 21.0],
        "number": [0, 1, 2, 3, 4, 5], "rung": [0] * 6,
        "train_seconds": [10.0, 20.0, 30.0, None, 5.0, 40.0]})
    info = front_info(frame, BudgetRule(20.0), seed_std=1.0)  # margin 2 x sqrt(2) = 2.83 points
    assert (info.trained, info.within_budget, info.over_budget, info.failed) == (4, 3, 1, 1)
    assert info.rung_seconds == (25.0,)  # the median over the trained ones
    assert list(info.within_noise["number"]) == [1, 2]  # 85% and 83%; 80% is 5 points off
    assert list(info.front["number"]) == [0, 1]
    assert int(info.best["number"]) == 1
    assert info.hypervolume == pytest.approx(0.80 * 10 + 0.05 * 8)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.slow
def test_ctrl_c_or_sigterm_keeps_results_and_rerun_resumes(tmp_path, tiny_space, tiny_data,
                                                           tiny_lut, signum, code):
    def command(trials: int) -> list[str]:
        return [sys.executable, *search_command(tiny_space, tiny_data, tmp_path, "r", trials,
                                                "--lut", str(tiny_lut))]

    # A shell that starts jobs in the background ignores SIGINT for them; undo that here.
    proc = subprocess.Popen(command(1000), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    trials_csv = tmp_path / "r" / "trials.csv"
    deadline = time.monotonic() + 120
    while not trials_csv.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert trials_csv.exists(), "no trial finished in time"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code and "rerun the same command to resume" in err
    assert "Traceback" not in err
    trials = pd.read_csv(trials_csv)
    done = (trials["status"] == "trained").sum()
    assert done >= 1 and "RUNNING" not in set(trials["state"])
    rerun = subprocess.run(command(done + 1), cwd=ROOT, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert "existing study" not in rerun.stderr and "] A new study" not in err  # Optuna's INFO
    trials = pd.read_csv(trials_csv)
    assert (trials["status"] == "trained").sum() == done + 1
    interrupted = trials[trials["status"] == "interrupted"]
    assert len(interrupted) <= 1 and set(interrupted["reason"]) <= {"KeyboardInterrupt",
                                                                    "Terminated"}


@pytest.mark.parametrize("command", ["search", "profile", "report", "train", "export"])
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0 and "--help" in capsys.readouterr().out


@pytest.mark.parametrize("cores, message", [
    ("0,0", "expected distinct core numbers"), ("one", "expected distinct core numbers")])
def test_bad_latency_cores_exit_2_in_one_line(cores, message, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["profile", "--latency-cores", cores])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and err.strip().count("\n") == 0


def test_fewer_latency_cores_than_threads_is_one_line(tmp_path, capsys):
    assert main(["profile", "--latency-cores", "0", "--threads", "2",
                 "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "give at least one core per thread" in err and err.strip().count("\n") == 0


def test_a_stop_just_after_tell_exits_130_without_a_traceback(tmp_path, tiny_space, tiny_data,
                                                              tiny_lut, monkeypatch, capsys):
    """Ctrl-C landing once the trial was told: the search unwinds to exit 130, says how to
    resume, and keeps the told trial."""
    import optuna

    tell = optuna.Study.tell

    def tell_then_stop(self, *args, **kwargs):
        tell(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(optuna.Study, "tell", tell_then_stop)
    command = search_command(tiny_space, tiny_data, tmp_path, "run", 2, "--lut", str(tiny_lut))
    assert main(["search", *command[1:]]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "interrupted: results so far are saved" in err
    monkeypatch.undo()
    [trial] = optuna.load_study(study_name="run",
                                storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}").trials
    assert trial.state == optuna.trial.TrialState.COMPLETE


def test_a_missing_lut_file_is_one_line(tmp_path, tiny_space, tiny_data, capsys):
    command = search_command(tiny_space, tiny_data, tmp_path, "run", 1, "--lut",
                             str(tmp_path / "missing.json"))
    assert main(["search", *command[1:]]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == [
        f"error: cannot read latency table {tmp_path / 'missing.json'}: No such file or directory"]
