"""Several run_search.py workers on one study: on one SQLite run folder, started by hand or by
one command (``--workers``), and on a real PostgreSQL server (scripts/postgres.sh) with a run
folder each, as on two machines."""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, search_command
from nas.budget import BudgetRule
from nas.run import RunDir, RunRecord, load_best
from nas.search import PROMOTED_FROM, RUNG, STATUS, Status, best_under_budget, open_study
from nas.storage import WORKER, open_storage
from nas.workers import AUTO_MAX, Helpers, plan, worker_count

TRIALS, WORKERS = 6, 2


def _run_at_once(commands: list[list[str]]) -> list[str]:
    """Start every command at once; each must succeed. Returns their stderr."""
    procs = [subprocess.Popen([sys.executable, *c], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for c in commands]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    for p, err in zip(procs, errs):
        assert p.returncode == 0, err[-3000:]
    return errs


def _check_the_study(storage: str, name: str, top_rung: int = 0) -> list:
    """No trial lost or left running, none trained twice at any rung (a promotion taken once),
    the top-rung count overshot by at most workers - 1, and every worker trained some."""
    trials = open_study(storage, name).trials
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state.is_finished() for t in trials)
    trained = [t for t in trials if t.user_attrs.get(STATUS) == Status.TRAINED]
    top = [t for t in trained if t.user_attrs[RUNG] == top_rung]
    assert TRIALS <= len(top) <= TRIALS + WORKERS - 1
    promoted = [t.user_attrs[PROMOTED_FROM] for t in trained if PROMOTED_FROM in t.user_attrs]
    assert len(promoted) == len(set(promoted)) == (len(top) if top_rung else 0)
    assert len({t.system_attrs[WORKER]["pid"] for t in trained}) == WORKERS
    return trials


def _check_the_folder(run: RunDir, trials: list, top_rung: int = 0) -> None:
    """The report lists every trial, and best/ and the summary name the study's best."""
    report = pd.read_csv(run.trials_csv())
    assert sorted(report["number"]) == [t.number for t in trials]
    best = best_under_budget(trials, BudgetRule(1000), top_rung)
    assert load_best(run)[0].trial == best.number
    assert f"- trial {best.number}: validation accuracy" in run.summary().read_text()


# Successive halving (rungs of 0.5 and 1 epoch, 1 in 2 promoted) and a reference network.
HALVING = ("--rung-epochs", "0.5", "--eta", "2", "--references", "mobilenetv3-small")


def _one_coordinator(run: RunDir, errs: list[str]) -> None:
    """One process trained the reference and verified the front; the reference appears once."""
    assert sum("reference mobilenetv3-small: training" in err for err in errs) == 1
    assert sum("verifying on the target" in err for err in errs) == 1
    assert [r["name"] for r in json.loads(run.references.read_text())] == ["mobilenetv3-small"]
    assert sum("trains candidates only" in err for err in errs) == len(errs) - 1


def test_two_workers_share_one_run_folder(tmp_path, tiny_space, tiny_data):
    command = search_command(tiny_space, tiny_data, tmp_path, "run", TRIALS, *HALVING)
    errs = _run_at_once([command] * WORKERS)
    # The table did not exist: one worker built it while the other waited, then used it.
    timed = [int(m) for err in errs for m in re.findall(r"(\d+) still to time", err)]
    assert len(timed) == WORKERS and sorted(timed)[0] == 0 < sorted(timed)[1]
    assert len(list((tmp_path / "luts").glob("*.json"))) == 1
    run = RunDir(tmp_path / "run")
    _check_the_folder(run, _check_the_study(RunRecord.load(run).storage, "run", 1), 1)
    _one_coordinator(run, errs)


def test_plan_splits_the_cores_between_workers():
    assert plan(None, None, 2) == (2, 1)  # auto: one single-thread worker per core
    assert plan(None, None, 64) == (AUTO_MAX, 64 // AUTO_MAX)  # capped, threads share the rest
    assert plan(None, 2, 4) == (2, 2)  # auto with a thread count: one worker per 2 cores
    assert plan(None, 8, 4) == (1, 8)  # never none
    assert plan(3, None, 2) == (3, 1)  # more workers than cores: one thread each
    assert plan(2, 3, 4) == (2, 3)  # both given: as given
    assert plan(1, None, 4) == (1, None)  # one worker keeps torch's default
    assert worker_count("auto") is None and worker_count("3") == 3
    for bad in ("0", "-1", "two", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            worker_count(bad)


@pytest.mark.slow
def test_one_command_starts_helper_workers(tmp_path, tiny_space, tiny_data, tiny_lut):
    command = search_command(tiny_space, tiny_data, tmp_path, "run", TRIALS, "--workers",
                             str(WORKERS), "--lut", str(tiny_lut))
    _run_at_once([command])
    run = RunDir(tmp_path / "run")
    _check_the_folder(run, _check_the_study(RunRecord.load(run).storage, "run"))
    assert RunRecord.load(run).workers == WORKERS
    assert "2 workers x 1 training thread each" in run.summary().read_text()
    assert (tmp_path / "run" / "worker-2.log").is_file()


def test_a_helper_that_fails_is_said_in_one_line_with_its_log(tmp_path):
    # A helper given a flag of the wrong kind exits 2 with one line; waiting for it reports it.
    helpers = Helpers.start(["search", "--latency-budget", "fast"], 2, tmp_path)
    problems = helpers.wait()
    assert len(problems) == 2 and (tmp_path / "worker-3.log").is_file()
    assert problems[0].startswith("worker 2 stopped with exit status 2: error: nas search: "
                                  "argument --latency-budget")
    assert problems[0].endswith(f"(log: {tmp_path / 'worker-2.log'})")
    helpers.stop()  # nothing left to stop


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
@pytest.mark.slow
def test_sigterm_stops_the_helpers_and_a_rerun_resumes(tmp_path, tiny_space, tiny_data,
                                                       tiny_lut):
    command = search_command(tiny_space, tiny_data, tmp_path, "run", 1000, "--workers",
                             str(WORKERS), "--lut", str(tiny_lut))
    proc = subprocess.Popen([sys.executable, *command], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    storage = f"sqlite:///{(tmp_path / 'run' / 'study.db').resolve()}"
    deadline = time.monotonic() + 240
    trained = []
    while len({t.system_attrs[WORKER]["pid"] for t in trained}) < WORKERS:
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-2000:]
        time.sleep(0.5)
        if not (tmp_path / "run" / "study.db").exists():
            continue
        # as a worker opens it: taking turns with the search to create the file's tables
        trials = open_study(open_storage(storage), "run").trials
        trained = [t for t in trials if t.user_attrs.get(STATUS) == Status.TRAINED]
    helpers = _children(proc.pid)
    assert len(helpers) == WORKERS - 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    proc.stderr.close()
    for pid in helpers:  # stopped and reaped by the worker that started them
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    trials = open_study(storage, "run").trials
    assert all(t.state.is_finished() for t in trials)  # each closed its trial in flight
    done = len([t for t in trials if t.user_attrs.get(STATUS) == Status.TRAINED])
    rerun = search_command(tiny_space, tiny_data, tmp_path, "run", done + 1, "--workers", "1",
                           "--lut", str(tiny_lut))
    _run_at_once([rerun])
    trials = open_study(storage, "run").trials
    assert len([t for t in trials if t.user_attrs.get(STATUS) == Status.TRAINED]) == done + 1


@pytest.fixture(scope="module")
def postgres_url():
    """A throwaway PostgreSQL server (scripts/postgres.sh), or a skip that says why not."""
    folder = tempfile.mkdtemp(prefix="nas-pg-", dir="/tmp")  # short: it holds the socket
    script = ROOT / "scripts" / "postgres.sh"
    started = subprocess.run([str(script), "start", folder], capture_output=True, text=True,
                             timeout=600)
    if started.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server: scripts/postgres.sh start failed: "
                    f"{started.stderr.strip()[-500:]}")
    yield started.stdout.strip()
    subprocess.run([str(script), "stop", folder], check=True, timeout=120)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.postgres
def test_two_workers_on_postgresql_as_on_two_machines(tmp_path, tiny_space, tiny_data,
                                                       tiny_lut, postgres_url):
    commands = []
    for machine in ("a", "b"):  # each machine its own copy of the target's table
        lut = shutil.copy(tiny_lut, tmp_path / f"{machine}.json")
        commands.append(search_command(tiny_space, tiny_data, tmp_path / machine, "run", TRIALS,
                                       "--storage", postgres_url, "--lut", str(lut), *HALVING))
    errs = _run_at_once(commands)
    trials = _check_the_study(postgres_url, "run", 1)
    for machine, err in zip("ab", errs):  # each machine's folder: its own coordinator
        _one_coordinator(RunDir(tmp_path / machine / "run"), [err])
    # Each machine's best/ holds the best it trained; the study's best is in one of them.
    best = best_under_budget(trials, BudgetRule(1000), 1)
    assert best.number in {load_best(RunDir(tmp_path / m / "run"))[0].trial for m in "ab"}
    # The same command again on a machine brings its folder up to the whole study (best/
    # retrained there if the other machine trained it), and trains nothing more.
    _run_at_once(commands[:1])
    assert open_study(postgres_url, "run").trials == trials
    _check_the_folder(RunDir(tmp_path / "a" / "run"), trials, 1)
