"""Opening storage URLs, and closing the trials of workers that died."""

import subprocess
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nas.storage
from nas.search import REASON, STATUS, Status, close_stale_trials, open_study
from nas.storage import WORKER, StorageError, Worker, open_storage

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("url, message", [
    ("foo://bar", "unknown database 'foo'"),
    ("not a url", "not a database URL"),
    ("mysql://someone@127.0.0.1:1/db", r"driver \(MySQLdb\) is not installed"),
    ("postgresql://someone:secret@127.0.0.1:1/db", "cannot open the database"),
    ("sqlite:////nonexistent/folder/study.db", "cannot open the database")])
def test_storage_urls_that_cannot_be_opened_say_why_in_one_line(url, message):
    with pytest.raises(StorageError, match=message) as caught:
        open_storage(url)
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


def test_the_command_line_says_it_in_one_line_and_exits_2(tmp_path, idx_dir):
    r = subprocess.run([sys.executable, str(ROOT / "run_search.py"), "--latency-budget", "20ms",
                        "--data-dir", str(idx_dir), "--val-samples", "100",
                        "--results-dir", str(tmp_path),
                        "--storage", "postgresql://nas@127.0.0.1:1/nas"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "cannot open the database" in r.stderr


_DIE_IN_A_TRIAL = """
import os, sys
from nas.search import open_study
from nas.storage import open_storage
study = open_study(open_storage(sys.argv[1]), "s")
study.ask()
os._exit(0)  # as if killed: the trial is never told
"""


def _study(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'study.db'}")
    return storage, open_study(storage, "s")


def _running(study):
    return [t.number for t in study.get_trials(states=(TrialState.RUNNING,))]


def test_a_trial_whose_local_worker_died_is_closed_and_a_live_ones_is_not(tmp_path):
    storage, study = _study(tmp_path)
    mine = study.ask()
    assert study.trials[0].system_attrs[WORKER] == asdict(Worker.this())
    subprocess.run([sys.executable, "-c", _DIE_IN_A_TRIAL, f"sqlite:///{tmp_path / 'study.db'}"],
                   check=True, cwd=ROOT, timeout=120)
    assert _running(study) == [0, 1]
    assert close_stale_trials(study, storage) == [1]
    dead = study.trials[1]
    assert dead.state == TrialState.FAIL and dead.user_attrs[STATUS] == Status.INTERRUPTED
    assert dead.user_attrs[REASON].startswith("stale: its worker stopped")
    assert close_stale_trials(study, storage) == [] and _running(study) == [mine.number]


def test_heartbeats_keep_a_remote_workers_trial_alive_until_they_stop(tmp_path, monkeypatch):
    monkeypatch.setattr(nas.storage, "HEARTBEAT_S", 1)
    monkeypatch.setattr(nas.storage, "GRACE_S", 2)
    storage, study = _study(tmp_path)
    mine = study.ask()  # alive here and beating
    remote = study.ask()  # as if run on another machine: tagged there, beats once
    elsewhere = replace(Worker.this(), boot="another machine")
    storage.set_trial_system_attr(remote._trial_id, WORKER, asdict(elsewhere))
    with storage._guard:
        storage._running.discard(remote._trial_id)  # that machine then goes silent
    untagged = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}")
    old = untagged.create_new_trial(study._study_id)  # an earlier version's: no tag, no beat
    assert close_stale_trials(study, storage) == []  # all within the grace period
    time.sleep(3.5)
    assert sorted(close_stale_trials(study, storage)) == [remote.number, 2]
    assert untagged.get_trial(old).state == TrialState.FAIL
    assert _running(study) == [mine.number]  # its beats kept it fresh
