"""SIGKILL at any moment of a search, then the same command again: the asked number of trained
candidates, no trial left RUNNING, and a best network whose weights are its own."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from optuna.trial import TrialState

from conftest import ROOT, search_command
from nas.arch import Arch
from nas.budget import BudgetRule
from nas.cli import main
from nas.data import load_dataset
from nas.model import MobileNet, ModelConfig
from nas.run import RunDir, RunRecord, load_best
from nas.search import LATENCY, REASON, STATUS, Status, best_under_budget, open_study
from nas.train import top1_accuracy

pytestmark = pytest.mark.slow  # searches in subprocesses, killed

TRIALS = 3


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    """The in-process reruns set one training thread; give the rest of the session its own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _kill_at(moment: str, count: int, command: list[str], tmp_path: Path) -> None:
    """Run the search until the ``count``-th ``moment`` (tests/paused_search.py), SIGKILL it."""
    marker = tmp_path / f"{moment}.paused"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "paused_search.py"), moment,
                             str(count), str(marker), *command[1:]], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker.exists(), f"never reached {moment} #{count}: {proc.stderr.read()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()


@pytest.mark.parametrize("moment, count", [
    ("train", 2),  # the second candidate's training
    ("report", 2),  # the report after the second candidate, half written
    ("weights", 1),  # the first best network's weights, half written: it must be retrained
    ("arch", 1)])  # best/ half replaced: new weights, no arch.json yet
def test_sigkill_at_any_moment_then_rerun_finishes_consistent(tmp_path, tiny_space, tiny_data,
                                                             tiny_lut, moment, count):
    command = search_command(tiny_space, tiny_data, tmp_path, "run", TRIALS, "--lut",
                             str(tiny_lut))
    _kill_at(moment, count, command, tmp_path)
    run = RunDir(tmp_path / "run")
    study = open_study(RunRecord.load(run).storage, "run")
    if moment == "train":
        assert [t.number for t in study.trials if t.state == TrialState.RUNNING] == [1]

    assert main(["search", *command[1:]]) == 0  # the same command again, here

    trials = study.trials
    assert not [t for t in trials if not t.state.is_finished()]
    assert sum(t.user_attrs.get(STATUS) == Status.TRAINED for t in trials) == TRIALS
    if moment == "train":
        assert trials[1].state == TrialState.FAIL
        assert trials[1].user_attrs[REASON].startswith("stale: its worker stopped")
    report = pd.read_csv(run.trials_csv())
    assert (report["status"] == "trained").sum() == TRIALS and len(report) == len(trials)

    best = best_under_budget(trials, BudgetRule(1000))
    held, _ = load_best(run)
    assert held.trial == best.number and held.latency_ms == best.user_attrs[LATENCY]
    out = tmp_path / "export"
    assert main(["export", str(run.root), "--format", "json", "--out", str(out)]) == 0
    # The exported weights are the trial's own: they score its validation accuracy again.
    data = load_dataset("fashion-mnist", tiny_data, val_samples=100, seed=0, resolution=16)
    model = MobileNet(Arch.from_json((out / "arch.json").read_text()), ModelConfig(1, 10))
    model.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    assert top1_accuracy(model, data.val, data) == best.values[0] == held.accuracy
