"""Fuzzed parsers: whatever the input, only the project's own error escapes (a `UserError`, or
for a flag argparse's `ArgumentTypeError`), and the command line turns it into one line."""

import argparse
import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.arch import Arch, ArchError
from nas.flags import budget_ms
from nas.latency.calibrate import Calibration
from nas.latency.measure import Timing
from nas.latency.table import LatencyTable, TableError
from nas.latency.target import Target
from nas.latency.validate import Agreement
from nas.references import MOBILENETV3_SMALL
from nas.space import DEFAULT_SPACE, RandomSuggester, SpaceError, load_space, resolve_space

ROOT = Path(__file__).resolve().parent.parent
FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])

# Characters the formats are made of, and a few they are not.
ALPHABET = st.sampled_from(list("0123456789._-:@x>ekcfsirhmtdpanb{}[],\"' \n") +
                           ["1e400", "9" * 5000, "nan", "inf", "-", "\u00e9", "\x00", "2001-13-45"])
# Values that break naive parsers: non-finite, negative, too long to convert, the wrong type.
# `dumps` writes the last two as JSON numbers: one too long to convert, one that overflows.
SPECIAL = st.sampled_from([float("inf"), float("-inf"), float("nan"), -1, 0, "", "1e400", None,
                           True, [], {}, "@huge@", "@1e400@"])
JSON = st.recursive(
    SPECIAL | st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@st.composite
def edited(draw, text: str) -> str:
    """``text`` with a few slices replaced by short runs of ``ALPHABET``."""
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        text = text[:i] + "".join(draw(st.lists(ALPHABET, max_size=4))) + text[j:]
    return text


def dumps(data) -> str:
    return json.dumps(data).replace('"@huge@"', "9" * 5000).replace('"@1e400@"', "1e400")


def _paths(data, prefix=()):
    """Every node of a nested JSON-like value, as a path of keys and indices."""
    yield prefix
    items = data.items() if isinstance(data, dict) else enumerate(data) \
        if isinstance(data, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _replaced(data, path, value, delete):
    if not path:
        return value
    copy = dict(data) if isinstance(data, dict) else list(data)
    if len(path) == 1 and delete and isinstance(copy, dict):
        del copy[path[0]]
    else:
        copy[path[0]] = _replaced(data[path[0]], path[1:], value, delete)
    return copy


@st.composite
def mutated(draw, data):
    """A nested JSON-like ``data`` with one to three nodes replaced (by a `SPECIAL` value, most
    often, or random JSON) or deleted; leaves are drawn most often, each as likely as another."""
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(data))
        leaves = [p for p in paths if not _container(data, p)]
        path = draw(st.sampled_from(leaves if leaves and draw(st.integers(0, 3)) else paths))
        value = draw(st.one_of(SPECIAL, SPECIAL, JSON))
        data = _replaced(data, path, value, delete=draw(st.integers(0, 4)) == 0)
    return data


def _container(data, path) -> bool:
    for key in path:
        data = data[key]
    return isinstance(data, (dict, list))


# --- architecture strings -----------------------------------------------------------------

NUMBER = st.one_of(st.integers(0, 400).map(str), st.from_regex(r"[0-9]{1,5000}", fullmatch=True),
                   st.from_regex(r"[0-9.]{1,8}", fullmatch=True))
GRAMMAR = st.builds("stem_c{}_hs-ir_k{}_e{}_c{}_s{}_re_se-head_c{}_f{}_hs".format,
                    *[NUMBER] * 7)


@FUZZ
@given(st.one_of(st.text(), edited(MOBILENETV3_SMALL.to_string()), GRAMMAR,
                 st.lists(ALPHABET, max_size=20).map("".join)))
def test_arch_strings_parse_or_raise_arch_error(text):
    try:
        arch = Arch.from_string(text)
    except ArchError as exc:
        assert "\n" not in str(exc).replace(repr(text), "")
        return
    assert Arch.from_string(arch.to_string()) == arch


# --- space files --------------------------------------------------------------------------

SPACE_TEXT = DEFAULT_SPACE.read_text()
SPACE = yaml.safe_load(SPACE_TEXT)
WIDE_TEXT = resolve_space("mobilenetv3-28px-wide").read_text()  # width and stem choices
WIDE = yaml.safe_load(WIDE_TEXT)


@FUZZ
@given(st.one_of(edited(SPACE_TEXT), mutated(SPACE).map(dumps),
                 mutated(SPACE).map(lambda d: yaml.safe_dump(d)), st.text(), edited(WIDE_TEXT),
                 mutated(WIDE).map(dumps)))
def test_space_files_load_or_raise_space_error(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    try:
        space = load_space(path)
    except SpaceError:
        return
    assert all(math.isfinite(e) and e >= 1 for e in space.expansions)
    arch = space.sample(RandomSuggester(random.Random(0)))  # a space that loads, builds
    assert Arch.from_string(arch.to_string()) == arch


# --- latency tables -----------------------------------------------------------------------

TABLE = LatencyTable(
    target=Target.here(input_size=16), space="tiny",
    entries={"stem_c8_hs@16x16x1": Timing(0.01, 0.001, 15),
             "ir_k3_e3_c16_s2_re_se@8x8x8": Timing(0.05, 0.002, 15),
             "head_c48_f64_hs@2x2x16>10": Timing(0.02, 0.001, 15)},
    calibration=Calibration(0.3, {"ir@8": 1.1, "stem": 0.9}, 0.02, 20),
    validation=Agreement(10, 1.0, 1.0, 0.01, 0.02, 0.98)).to_dict()


@FUZZ
@given(st.one_of(mutated(TABLE).map(dumps), edited(json.dumps(TABLE, indent=1)),
                 JSON.map(dumps)))
def test_latency_tables_load_or_raise_table_error(tmp_path, text):
    path = tmp_path / "table.json"
    path.write_text(text)
    try:
        table = LatencyTable.load(path, space="tiny")
    except TableError:
        return
    assert all(math.isfinite(t.median_ms) and t.median_ms >= 0 for t in table.entries.values())


# --- budgets ------------------------------------------------------------------------------

NUMBERS = st.from_regex(r"\s*[0-9]{0,400}\.?[0-9]{1,400}(e[-+]?[0-9]{1,4})?\s*(ms|s|MS|S)?\s*",
                        fullmatch=True)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), NUMBERS))
def test_budgets_parse_to_a_finite_positive_time_or_are_refused(text):
    try:
        value = budget_ms(text)
    except argparse.ArgumentTypeError:
        return
    assert math.isfinite(value) and value > 0


# --- the command line ---------------------------------------------------------------------

def _one_line_exit_2(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "nas", *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0
    return r.stderr


@pytest.mark.slow
def test_a_fuzzed_space_or_table_ends_in_one_line_and_exit_2(tmp_path, idx_dir):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE_TEXT.replace("resolution: 28", "resolution: 2001-13-45"))
    assert str(space) in _one_line_exit_2("search", "--latency-budget", "20ms", "--space",
                                          str(space))
    table = tmp_path / "table.json"
    table.write_text(json.dumps(TABLE).replace("15}", "1e400}", 1))
    assert str(table) in _one_line_exit_2(
        "search", "--latency-budget", "20ms", "--data-dir", str(idx_dir), "--val-samples", "100",
        "--results-dir", str(tmp_path), "--lut", str(table))


def test_a_damaged_architecture_in_a_run_ends_in_one_line_and_exit_2(tmp_path):
    import torch
    from test_run import make_record

    from nas.run import RunDir

    run = RunDir(tmp_path / "run")
    make_record(tmp_path).save(run)
    run.best.mkdir()
    torch.save({"trial": 1, "arch": "stem_c16_hs-ir_k4_e4_c24_s2_re-head_c1_f1_hs",
                "accuracy": 0.5, "latency_ms": 1.0, "state_dict": {}}, run.best_checkpoint)
    assert "damaged (ArchError)" in _one_line_exit_2("export", str(run.root))
