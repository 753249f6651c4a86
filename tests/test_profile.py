"""`python -m nas profile` on a device with only torch installed.

The torch wheel does not require numpy: torch imports it where it is installed and runs without
it where it is not (with a warning), so numpy is blocked here as on such a device.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nas.latency.table import LatencyTable

ROOT = Path(__file__).resolve().parent.parent
BLOCKER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'optuna', 'pandas', 'plotly', 'yaml', 'tqdm', 'fvcore',
                                  'numpy', 'PIL'}:
            raise ModuleNotFoundError(f'{name} is not installed on this device', name=name)
sys.meta_path.insert(0, Block())
from nas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _profile(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCKER, "profile", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_profile_runs_with_only_torch_and_resumes(tmp_path):
    out = tmp_path / "lut.json"
    # Eager: 363 layers traced to TorchScript (the default backend, which needs only torch as
    # well; the tiny tables of other tests are built with it) would take minutes in CI.
    args = ["--space", str(_json_space(tmp_path)), "--input-size", "32", "--rounds", "2",
            "--calibration-networks", "3", "--out", str(out), "--backend", "torch"]
    first = _profile(*args)
    assert first.returncode == 0, first.stderr
    assert "363 layer configurations" in first.stderr and "363 still to time" in first.stderr
    table = LatencyTable.load(out, space="mobilenetv3-large")
    assert len(table.entries) == 363 and table.calibration is not None
    # Scored on 10 networks timed with the calibration ones but not fitted on.
    assert table.validation is not None and table.validation.count == 10
    assert "held-out networks" in first.stdout
    assert table.target.input_size == 32 and table.target.threads == 1
    assert table.speed_probe is not None and table.speed_probe.count == 7  # the networks' rounds
    again = _profile(*args)  # resumes: nothing left to time, the file is reused
    assert again.returncode == 0 and "0 still to time" in again.stderr
    # ... and the probe is timed again, against the table's, in one line
    assert re.search(rf"speed probe: [0-9.]+ ms now, {table.speed_probe.median_ms:.3f} ms when "
                     rf"{re.escape(str(out))} was timed: this machine runs "
                     r"(as fast as|[0-9.]+x (faster|slower) than) then", again.stderr)
    assert LatencyTable.load(out).entries == table.entries


def test_yaml_space_without_pyyaml_says_what_to_do(tmp_path):
    r = _profile("--input-size", "32", "--out", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "install pyyaml or give the space as JSON" in r.stderr


@pytest.mark.slow
def test_profile_refuses_a_table_of_another_target(tmp_path):
    out = tmp_path / "lut.json"
    eager = ("--backend", "torch")  # a table in seconds; the backend is not what is tested
    assert _profile("--space", str(_json_space(tmp_path)), "--input-size", "32", "--rounds", "2",
                    "--calibration-networks", "2", "--out", str(out), *eager).returncode == 0
    r = _profile("--space", str(_json_space(tmp_path)), "--input-size", "40", "--out", str(out),
                 *eager)
    assert r.returncode == 2 and "another target" in r.stderr


def _json_space(tmp_path: Path) -> Path:
    """The default space as JSON (JSON is YAML, and needs no PyYAML to read)."""
    path = tmp_path / "space.json"
    path.write_text(json.dumps(yaml.safe_load(
        (ROOT / "search_spaces" / "mobilenetv3.yaml").read_text())))
    return path
