"""The study as optuna-dashboard serves it: named objectives, and candidates rejected before
training without a made-up accuracy."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from test_search import BlockCountLatency, FakeEvaluator
from nas.config import SearchConfig
from nas.search import METRICS, make_sampler, open_study, search
from nas.space import load_space
from nas.storage import open_storage

pytestmark = pytest.mark.dashboard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, deadline: float) -> dict:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_the_dashboard_shows_named_objectives_and_no_accuracy_for_rejected_ones(tmp_path,
                                                                             tiny_space):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = open_study(open_storage(url), "s", make_sampler("random", 0))
    # 2 to 4 blocks, 1 ms each: a 3 ms budget rejects about a quarter
    search(study, load_space(tiny_space), BlockCountLatency(), FakeEvaluator(),
           SearchConfig(budget_ms=3, trials=4), (1.0,))
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", "import sys, optuna_dashboard; "
         "optuna_dashboard.run_server(sys.argv[1], host='127.0.0.1', port=int(sys.argv[2]))",
         url, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}/api/studies"
        deadline = time.monotonic() + 60
        (summary,) = _get(base, deadline)["study_summaries"]
        shown = _get(f"{base}/{summary['study_id']}?after=0", deadline)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert shown["objective_names"] == list(METRICS)
    status = {t["number"]: {a["key"]: a["value"] for a in t["user_attrs"]}["status"]
              for t in shown["trials"]}
    rejected = [t for t in shown["trials"] if status[t["number"]] == "over_budget"]
    trained = [t for t in shown["trials"] if status[t["number"]] == "trained"]
    assert rejected and len(trained) == 4
    assert all(t["state"] == "Pruned" and "values" not in t for t in rejected)
    assert all(t["state"] == "Complete" and t["values"][0] > 0 for t in trained)
    assert {t["number"] for t in shown["best_trials"]} <= {t["number"] for t in trained}
