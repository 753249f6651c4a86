"""The benchmarks' shared pieces: rank statistics and results written as data."""

import ast
import importlib.util
import json
import math
import re
import statistics
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nas.stats import pooled_seed_std

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"


def _load(name: str) -> ModuleType:
    """A helper module of benchmarks/, which the scripts import as a top-level module (their
    folder is first on their path); loaded from its file, leaving sys.path alone."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


rank_stats, record, changes = _load("rank_stats"), _load("record"), _load("changes")

HELPERS = {"record.py", "rank_stats.py", "timed_runs.py", "changes.py"}  # modules, not benchmarks


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


@pytest.fixture(scope="module")
def front_vs_family() -> ModuleType:
    """benchmarks/front_vs_family.py, its ``from record import ...`` given record.py."""
    saved = sys.modules.get("record")
    sys.modules["record"] = record
    try:
        return _load("front_vs_family")
    finally:
        if saved is None:
            del sys.modules["record"]
        else:
            sys.modules["record"] = saved


def test_front_vs_family_spreads_three_members_over_the_latency_range(front_vs_family):
    spread = front_vs_family.spread_members
    # fastest 1.0, slowest 4.0, nearest the middle (2.5): 2.2; by increasing latency
    assert spread([3.0, 1.0, 2.2, 1.9, 4.0]) == [1, 2, 4]
    # 2.0 and 4.0 are as near the middle (3.0): the faster
    assert spread([1.0, 2.0, 4.0, 5.0]) == [0, 1, 3]
    assert spread([1.0, 1.0, 1.0]) == [0, 1, 2]  # distinct members, even at one latency
    assert spread([2.0, 1.0, 3.0]) == [1, 0, 2]
    assert spread([1.0, 2.0, 3.0, 4.0, 5.0], count=5) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="2 member"):
        spread([1.0, 2.0])


def test_front_vs_family_takes_the_nearest_family_member_no_faster(front_vs_family):
    nearest = front_vs_family.nearest_by_latency
    family = {"mobilenetv3-small-0.5": 1.0, "mobilenetv3-small": 2.0, "mobilenetv3-large": 3.5}
    assert nearest(2.9, family) == "mobilenetv3-large"
    assert nearest(0.2, family) == "mobilenetv3-small-0.5"
    assert nearest(2.0, family) == "mobilenetv3-small"  # as slow counts
    # 2.1 ms is nearer small's 2.0, but small is faster: the baseline gets at least 2.1 ms
    assert nearest(2.1, family) == "mobilenetv3-large"
    assert nearest(9.0, family) == "mobilenetv3-large"  # all faster: the slowest
    assert nearest(1.5, {"a": 2.0, "b": 2.0}) == "a"  # a tie: the first given
    with pytest.raises(ValueError):
        nearest(1.0, {})


def test_the_seed_noise_is_pooled_over_all_networks():
    # variances 2 and 0 with one degree of freedom each; one seed adds nothing
    assert pooled_seed_std({"a": [1.0, 3.0], "b": [2.0, 2.0], "c": [5.0]}) \
        == (pytest.approx(1.0), 2)
    with pytest.raises(ValueError, match="two seeds"):
        pooled_seed_std({"a": [1.0], "b": [2.0]})


def test_front_vs_family_verdict_at_a_latency_point(front_vs_family):
    from nas.pareto import noise_margin

    verdict = front_vs_family.point_verdict
    # 2 seeds each at seed std 0.5: a difference of means has std 0.5, beyond noise past 1.0
    ahead = verdict([91.0, 91.4], [90.0, 90.0], 10.0, 10.0, seed_std=0.5)
    assert ahead.verdict == "more accurate" and ahead.difference == pytest.approx(1.2)
    assert ahead.margin == pytest.approx(1.0) and ahead.latency_ratio == pytest.approx(1.0)
    # ahead but slower: not a win
    slower = verdict([91.0, 91.4], [90.0, 90.0], 11.0, 10.0, seed_std=0.5)
    assert slower.verdict == "more accurate, slower" and slower.verdict not in \
        front_vs_family.WINS and slower.latency_ratio == pytest.approx(1.1)
    # within noise: a win only at no more than 0.7x the latency, ahead or a little behind
    assert verdict([90.6, 90.6], [90.0, 90.0], 7.0, 10.0, 0.5).verdict == "as accurate, faster"
    assert verdict([89.5, 89.5], [90.0, 90.0], 5.0, 10.0, 0.5).verdict == "as accurate, faster"
    assert verdict([90.6, 90.6], [90.0, 90.0], 8.0, 10.0, 0.5).verdict == "neither"
    # behind beyond noise: no win however fast
    assert verdict([88.5, 88.5], [90.0, 90.0], 5.0, 10.0, 0.5).verdict == "neither"
    # one seed each: the search's own rule for two accuracies
    assert verdict([91.0], [90.0], 10.0, 10.0, 0.4).margin == pytest.approx(noise_margin(0.4))


@pytest.fixture(scope="module")
def proxy_fidelity() -> ModuleType:
    """benchmarks/proxy_fidelity.py, its imports of the helper modules given their loaded
    files."""
    given = {"record": record, "rank_stats": rank_stats, "changes": changes}
    saved = {name: sys.modules.get(name) for name in given}
    sys.modules.update(given)
    try:
        return _load("proxy_fidelity")
    finally:
        for name, module in saved.items():
            if module is None:
                del sys.modules[name]
            else:
                sys.modules[name] = module


def test_proxy_fidelity_reads_a_proxy_from_the_command_line(proxy_fidelity):
    parse = proxy_fidelity.parse_proxy
    assert parse("default=").changes == {} and parse("default=").train_samples == (
        proxy_fidelity.DataConfig().train_samples)
    more = parse("more=epochs:1,train_samples:40000,flip:false,crop_padding:2")
    assert more.changes == {"epochs": 1.0, "flip": False, "crop_padding": 2}
    assert more.train_samples == 40_000 and more.config("cpu").epochs == 1.0
    assert more.config("cpu").lr == proxy_fidelity.TrainConfig().lr  # the rest: the search's
    assert parse("all=train_samples:all").train_samples is None
    for bad, named in (("x=colour:red", "colour"), ("x=flip:yes", "flip"), ("epochs:1", "NAME"),
                       ("x=train_samples:0", "train_samples"), ("x=epochs:two", "epochs")):
        with pytest.raises(ValueError, match=named):
            parse(bad)


def test_proxy_fidelity_spreads_networks_and_bands_them_as_promotion_does(proxy_fidelity):
    spread = proxy_fidelity.spread_indices
    # by value: 1 (i1), 2 (i3), 3 (i4), 4 (i2), 5 (i0); every other one
    assert spread([5.0, 1.0, 4.0, 2.0, 3.0], 3) == [1, 4, 0]
    assert spread([5.0, 1.0, 4.0], 1) == [1] and spread([2.0, 2.0], 2) == [0, 1]
    with pytest.raises(ValueError):
        spread([1.0, 2.0], 3)
    bands = proxy_fidelity.latency_bands
    assert bands([3.0, 1.0, 2.0, 6.0, 5.0, 4.0], 3) == [[1, 2], [0, 5], [4, 3]]
    assert [len(b) for b in bands([float(x) for x in range(7)], 3)] == [2, 2, 3]  # halving's
    with pytest.raises(ValueError):
        bands([1.0, 2.0], 3)


def test_proxy_fidelity_ranks_within_latency_bands(proxy_fidelity):
    band_spearman = proxy_fidelity.band_spearman
    latency = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    final = [90.0, 91.0, 92.0, 80.0, 81.0, 82.0]
    proxy = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]  # right within each band, wrong across them
    assert band_spearman(proxy, final, latency, 2) == pytest.approx(1.0)
    assert proxy_fidelity.spearman(proxy, final) < 0.2
    reversed_in_one = [3.0, 2.0, 1.0, 4.0, 5.0, 6.0]
    assert band_spearman(reversed_in_one, final, latency, 2) == pytest.approx(0.0)
    assert math.isnan(band_spearman([1.0] * 6, final, latency, 2))  # a band ranks nothing
    with pytest.raises(ValueError, match="fewer than 3"):
        band_spearman(proxy, final, latency, 3)


def test_proxy_fidelity_measures_a_proxy_against_the_final_recipe(proxy_fidelity):
    accuracies = {"a": [84.0, 85.0], "b": [86.0, 87.0], "c": [88.0, 88.0], "d": [90.0],
                  "lost": [80.0, 80.0]}  # "lost" has no final training yet: left out
    final = {"a": 90.0, "b": 91.0, "c": 93.0, "d": 92.0}
    latency = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0, "lost": 5.0}
    f = proxy_fidelity.fidelity("p", accuracies, final, latency, [30.0, 10.0, 20.0], bands=1)
    # variances 0.5, 0.5, 0 over one degree of freedom each: pooled sqrt(1 / 3)
    assert f.networks == 4 and f.seed_dof == 3
    assert f.seed_std == pytest.approx(math.sqrt(1 / 3))
    means = [84.5, 86.5, 88.0, 90.0]
    assert f.between_std == pytest.approx(statistics.stdev(means))
    assert f.ratio == pytest.approx(f.between_std / f.seed_std)
    assert f.spearman == pytest.approx(0.8)  # ranks 1 2 3 4 against 1 2 4 3
    assert f.kendall_tau == pytest.approx(4 / 6) and f.band_spearman == pytest.approx(0.8)
    assert f.median_seconds == 20.0
    two_bands = proxy_fidelity.fidelity("p", accuracies, final, latency, [1.0], bands=2)
    assert math.isnan(two_bands.band_spearman)  # 2 networks a band: too few to rank
    one_seed = proxy_fidelity.fidelity("p", {k: v[:1] for k, v in accuracies.items()}, final,
                                       latency, [1.0], bands=1)
    assert math.isnan(one_seed.seed_std) and math.isnan(one_seed.ratio)
    with pytest.raises(ValueError, match="at least 3"):
        proxy_fidelity.fidelity("p", {"a": [1.0]}, final, latency, [1.0], bands=1)


def _fidelity(module: ModuleType, name: str, rho: float, seconds: float,
              band: float = math.nan):
    return module.Fidelity(name, 12, 0.4, 12, 1.2, 3.0, rho, rho, band, 3, seconds)


def test_proxy_fidelity_chooses_the_best_proxy_within_a_time_budget(proxy_fidelity):
    choose = proxy_fidelity.choose_proxy
    fast, slow, mid = (_fidelity(proxy_fidelity, "fast", 0.5, 30.0),
                       _fidelity(proxy_fidelity, "slow", 0.9, 200.0, band=0.2),
                       _fidelity(proxy_fidelity, "mid", 0.7, 90.0, band=0.6))
    both = [fast, slow, mid]
    assert choose(both).proxy == "slow"  # no limit: the best ranking
    assert choose(both, 100.0).proxy == "mid" and choose(both, 90.0).proxy == "mid"
    assert choose(both, 10.0) is None
    assert choose(both, by="band_spearman").proxy == "mid"  # NaN (fast's) is never chosen
    same = _fidelity(proxy_fidelity, "same-but-cheaper", 0.9, 100.0)
    assert choose([slow, same]).proxy == "same-but-cheaper"
    with pytest.raises(ValueError, match="by="):
        choose(both, by="accuracy")
    frontier = proxy_fidelity.cost_frontier
    assert [f.proxy for f in frontier([slow, fast, mid])] == ["fast", "mid", "slow"]
    worse_and_dearer = _fidelity(proxy_fidelity, "worse", 0.6, 150.0)
    assert [f.proxy for f in frontier([worse_and_dearer, fast, mid])] == ["fast", "mid"]


def test_proxy_fidelity_plan_round_trips_and_trains_the_reference_first(proxy_fidelity):
    from nas.space import load_space, random_archs, resolve_space

    space = load_space(resolve_space("mobilenetv3-28px-wide"))
    networks = tuple(proxy_fidelity.Network(a, 1_000_000 * i, None if i else 1.5)
                     for i, a in enumerate(random_archs(space, 3, 0)))
    proxies = tuple(proxy_fidelity.parse_proxy(t) for t in ("a=", "b=epochs:1,flip:false"))
    plan = proxy_fidelity.Plan(space.name, networks, proxies, seeds=2, final_epochs=4,
                               final_seeds=1, bands=1)
    assert proxy_fidelity.Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    jobs = plan.jobs()
    assert len(jobs) == 3 * 1 + 3 * 2 * 2
    assert jobs[:3] == [("final", "final", i, 0) for i in range(3)]
    assert jobs[3:6] == [("proxy", "a", i, 0) for i in range(3)]
    # each proxy with all its seeds before the next: a run cut short has its seed noise
    assert jobs[6:9] == [("proxy", "a", i, 1) for i in range(3)]
    assert jobs[9:] == [("proxy", "b", i, s) for s in (0, 1) for i in range(3)]
    # a resumed run takes more proxies: the same networks and final trainings, new jobs last
    more = plan.with_proxies((proxy_fidelity.parse_proxy("c=epochs:0.25"),))
    assert more.networks == plan.networks and more.jobs()[:len(jobs)] == jobs
    assert more.jobs()[len(jobs):] == [("proxy", "c", i, s) for s in (0, 1) for i in range(3)]
    with pytest.raises(ValueError, match="must differ"):
        more.with_proxies((proxy_fidelity.parse_proxy("a=epochs:1"),))


def test_proxy_fidelity_figures_so_far_are_printed_not_written(proxy_fidelity, monkeypatch,
                                                                 capsys, tmp_path):
    from nas.space import load_space, random_archs, resolve_space

    space = load_space(resolve_space("mobilenetv3-28px-wide"))
    networks = tuple(proxy_fidelity.Network(a, 1_000_000 * (i + 1), 1.0 + i)
                     for i, a in enumerate(random_archs(space, 3, 0)))
    plan = proxy_fidelity.Plan(space.name, networks, (proxy_fidelity.parse_proxy("a="),),
                               seeds=2, final_epochs=4, final_seeds=1, bands=1)
    done = {}
    for i, n in enumerate(networks):  # the proxy ranks the networks as the final recipe does
        arch = n.arch.to_string()
        done[f"final{i}"] = {"kind": "final", "proxy": "final", "arch": arch, "seed": 0,
                             "accuracy": 0.90 + i / 100, "seconds": 100.0}
        for seed in (0, 1):
            done[f"a{i}{seed}"] = {"kind": "proxy", "proxy": "a", "arch": arch, "seed": seed,
                                   "accuracy": 0.80 + i / 100 + seed / 1000, "seconds": 10.0}
    written: list[dict] = []
    monkeypatch.setattr(proxy_fidelity, "append",
                        lambda benchmark, row, **kw: written.append(row) or row)
    proxy_fidelity.report(plan, done, None, "spearman", "r", 1, write=False)
    printed = capsys.readouterr().out
    assert "a: 3 networks" in printed and "Spearman 1.000" in printed
    assert "chosen by spearman" in printed and written == []
    proxy_fidelity.report(plan, done, None, "spearman", "r", 1)
    assert [r["record"] for r in written] == ["summary", "choice"]
    assert written[0]["spearman"] == pytest.approx(1.0) and written[1]["chosen"] == "a"
