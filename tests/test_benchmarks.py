"""The benchmarks' shared pieces: rank statistics and results written as data."""

import ast
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _load(name: str) -> ModuleType:
    """A helper module of benchmarks/, which the scripts import as a top-level module (their
    folder is first on their path); loaded from its file, leaving sys.path alone."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rank_stats, record = _load("rank_stats"), _load("record")

HELPERS = {"record.py", "rank_stats.py", "timed_runs.py"}  # modules, not benchmarks


def test_kendall_tau_by_hand():
    assert rank_stats.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # pairs: (1,2)+ (1,3)+ (1,4)+ (2,3)- (2,4)+ (3,4)+ -> (5 - 1) / 6
    assert rank_stats.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    with pytest.raises(ValueError):
        rank_stats.kendall_tau([1], [1])


def test_mann_whitney_exact_p_values_by_hand():
    u = rank_stats.mann_whitney_u
    # 3 vs 3 wholly separated: 2 of the C(6, 3) = 20 splits are that extreme (either way).
    assert u([1, 2, 3], [4, 5, 6]) == (0.0, pytest.approx(0.1))
    assert u([6, 5, 4], [1, 2, 3]) == (9.0, pytest.approx(0.1))
    # 5 seeds each, separated: 2 / C(10, 5) = 2 / 252, scipy's exact two-sided p.
    assert u([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])[1] == pytest.approx(2 / 252)
    # 1.5 beats 1 and ties 1.5 (half): U = 1 + 0.5; identical samples are no evidence at all.
    assert u([1.5], [1, 1.5, 2])[0] == 1.5
    assert u([1, 1], [1, 1]) == (2.0, 1.0)


def test_a_line_carries_where_and_when_it_was_measured(tmp_path):
    out = tmp_path / "x.jsonl"
    written = record.append("x", {"speedup": 1.4}, threads=2, path=out)
    record.append("x", {"speedup": 1.5}, threads=2, path=out, run="earlier")
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0] == written and len(lines) == 2
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?|not recorded", written["commit"])
    assert written["cpu"] and written["cores"] >= 1 and written["threads"] == 2
    assert written["date"].endswith("+00:00") and len(written["load"]) == 3
    assert written["benchmark"] == "x" and written["speedup"] == 1.4
    assert [r["speedup"] for r in record.read("x", path=out, run="earlier")] == [1.5]
    assert len(record.read("x", path=out)) == 2 and record.read("x", path=tmp_path / "no") == []


def test_a_row_cannot_overwrite_the_provenance(tmp_path):
    with pytest.raises(ValueError, match="commit"):
        record.append("x", {"commit": "mine"}, threads=1, path=tmp_path / "x.jsonl")


def test_the_results_are_committed_where_the_benchmarks_write_them():
    assert record.RESULTS == BENCHMARKS / "results"
    assert "benchmarks/results" not in (ROOT / ".gitignore").read_text()


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")
                                          if p.name not in HELPERS))
def test_every_benchmark_records_through_the_one_module(script):
    source = (BENCHMARKS / script).read_text()
    tree = ast.parse(source)
    imports = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "record" in imports, f"{script} does not write through benchmarks/record.py"
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef)) and ast.get_docstring(node)}
    code_strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                    and isinstance(node.value, str) and id(node) not in docstrings]
    assert not [s for s in code_strings if ".jsonl" in s]  # the file is record's to name
    assert "getloadavg" not in source and "rev-parse" not in source  # no copies of record's


def test_the_rank_tests_left_the_package():
    import nas.stats

    assert not hasattr(nas.stats, "kendall_tau") and not hasattr(nas.stats, "mann_whitney_u")
