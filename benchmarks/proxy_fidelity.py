"""Which proxy ranks networks as the final training does, per second of training (issue 28).

The reference ("ground truth") is the final recipe (`nas.config.FinalConfig.recipe`: all 60,000
training images, test accuracy), shortened to ``--final-epochs`` epochs, ``--final-seeds`` seeds
(their mean), on ``--archs`` networks of ``--space`` (default: the wide space, whose networks
differ in width and stem stride), spread evenly over 200 uniform samples by the latency that
``--lut``'s table predicts, else by MACs (`spread_indices`). Each candidate proxy,
``--proxy NAME=FIELD:VALUE,...`` (fields of `nas.config.TrainConfig`, plus ``train_samples``, a
count or ``all``; repeatable; default `DEFAULT_PROXIES`), trains every network under ``--seeds``
seeds through the search's own evaluator (`nas.evaluator.TrainEvaluator`, validation accuracy),
so the proxy measured is the one a search would run. All trainings run in this process, one at
a time: the final ones first (every proxy is scored against them), then each proxy with all
its seeds in turn; a final training's folder (weights, checkpoint, curve) stays under ``--work``.

Per proxy (`fidelity`): the seed std pooled over the networks (`nas.stats.pooled_seed_std`), the std
between the networks' mean accuracies, their ratio (goal: at least 3), Spearman and Kendall tau
of the mean proxy accuracy against the final accuracy over all networks (goal: Spearman at least
0.8) and the mean Spearman within ``--bands`` latency bands (equal-count groups by predicted
latency, as the search's promotion splits a rung: `latency_bands`; by MACs without a table), and
the median seconds of one training (one network, one seed). Then the proxy of best
``--choose-by`` fidelity whose median seconds are at most ``--max-seconds`` (`choose_proxy`),
and the proxies worth their cost (`cost_frontier`: none cheaper ranks as well).

Appends to ``benchmarks/results/proxy_fidelity.jsonl`` the plan (networks, proxies, settings),
one line per training as it finishes, one summary line per proxy and the choice, all tagged with
the run printed at the start; ``--resume RUN`` continues that run as planned, training only what
it lacks (and prints the figures again when nothing is); ``--resume RUN --proxy ...`` adds
proxies to it, scored against the final trainings it has (a new plan line). ``--plan`` prints
the networks and the trainings a run would make (with ``--resume``, those it still lacks, and
the figures so far, written nowhere) and trains nothing; without
``--lut`` it counts the MACs of all 200 samples (fvcore: about 4 minutes on 2 cores).
Earlier runs of this file (its ``noise``/``long`` modes, before issue 28) are not continued:
this version replaces them, the default proxy with seeds being the seed-noise measurement and
the final recipe the long training.

Run: ``.venv/bin/python benchmarks/proxy_fidelity.py [--plan] [--lut TABLE.json]
[--proxy NAME=FIELD:VALUE,...] [--archs 12] [--seeds 2] [--final-epochs 4] [--max-seconds S]
[--resume RUN]``; it prints each training's accuracy and seconds, then per proxy its seed noise,
rank fidelity and cost, and the proxy chosen.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from changes import parse_changes
from nas.arch import Arch
from nas.config import DataConfig, FinalConfig, TrainConfig
from nas.data import Dataset, load_dataset
from nas.evaluator import TrainEvaluator
from nas.final import Training, all_training_images, train_final
from nas.halving import RungResult
from nas.halving import latency_bands as _halving_bands
from nas.latency.predict import LatencyModel
from nas.latency.table import LatencyTable
from nas.latency.target import cpu_model
from nas.model import MobileNet, ModelConfig, complexity
from nas.run import BestNetwork, RunDir
from nas.space import load_space, random_archs, resolve_space
from nas.stats import pooled_seed_std, spearman
from nas.train import resolve_device, use_threads
from rank_stats import kendall_tau
from record import ROOT, append, read, run_id

BENCHMARK = "proxy_fidelity"
DEFAULT_SPACE = "mobilenetv3-28px-wide"  # width and stem stride vary: accuracies differ
POOL = 200  # uniform samples the networks are spread over
# Today's proxy (EcoNAS's "more images, fewer epochs", chosen by this file); the proxy before it;
# the final recipe (its crops) in short.
DEFAULT_PROXIES = ("default=", "two-epochs=epochs:2,train_samples:10000",
                   "final-short=epochs:1,crop_padding:2,train_samples:55000")
RANKED_BY = ("spearman", "band_spearman", "kendall_tau")  # what `choose_proxy` may maximise
GOAL_RATIO, GOAL_SPEARMAN = 3.0, 0.8  # issue 28, item 4
DEFAULT_PROXY_PASSES = TrainConfig().epochs * DataConfig().train_samples  # the unit of cost


# -- pure parts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Proxy:
    """A candidate proxy: the search's `TrainConfig` with ``changes``, on ``train_samples``
    training images (None: all that the validation split leaves)."""

    name: str
    changes: Mapping[str, Any]  # TrainConfig field -> value, typed as the field
    train_samples: int | None = DataConfig().train_samples

    def config(self, device: str) -> TrainConfig:
        return replace(TrainConfig(), train_device=device, **self.changes)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "changes": dict(self.changes),
                "train_samples": self.train_samples}


def parse_proxy(text: str) -> Proxy:
    """``NAME=FIELD:VALUE,...`` as a `Proxy`: fields of `TrainConfig` (`changes.parse_changes`),
    and ``train_samples``, a count or ``all``. A missing name, an unknown field or a bad value
    is a ValueError that names it."""
    name, parsed, extras = parse_changes(text, "--proxy", extra=("train_samples",))
    train_samples: int | None = DataConfig().train_samples
    if "train_samples" in extras:
        value = extras["train_samples"]
        try:
            train_samples = None if value == "all" else int(value)
            if train_samples is not None and train_samples < 1:
                raise ValueError("not positive")
        except ValueError as exc:
            raise ValueError(f"--proxy {text!r}: train_samples:{value} ({exc})") from None
    return Proxy(name, parsed, train_samples)


def spread_indices(values: Sequence[float], count: int) -> list[int]:
    """Indices of ``count`` of ``values`` evenly spaced in their order (the lowest and the
    highest among them), by increasing value; ties in value go by index."""
    if not 1 <= count <= len(values):
        raise ValueError(f"{count} of {len(values)} values: choose between 1 and all")
    order = sorted(range(len(values)), key=lambda i: (values[i], i))
    step = (len(order) - 1) / max(1, count - 1)
    return [order[round(i * step)] for i in range(count)]


def latency_bands(latencies: Sequence[float], bands: int) -> list[list[int]]:
    """Indices of ``latencies`` in ``bands`` equal-count groups by increasing latency, split
    as the search's promotion splits a rung (`nas.halving.latency_bands`)."""
    if not 1 <= bands <= len(latencies):
        raise ValueError(f"{bands} band(s) of {len(latencies)} network(s): between 1 and one "
                         "network a band")
    rows = [RungResult(i, 0, None, ms) for i, ms in enumerate(latencies)]
    return [[r.number for r in band] for band in _halving_bands(rows, bands)]


def _rank_or_nan(statistic: Any, a: Sequence[float], b: Sequence[float]) -> float:
    try:
        return statistic(a, b)
    except (statistics.StatisticsError, ZeroDivisionError):  # a constant side: no ranking
        return math.nan


def band_spearman(proxy: Sequence[float], final: Sequence[float], latencies: Sequence[float],
                  bands: int) -> float:
    """The mean over latency bands (`latency_bands`) of Spearman's correlation between the
    proxy's and the final accuracies of a band's networks: how well the proxy ranks networks
    that promotion compares. A band whose accuracies are all equal on one side has no
    correlation (NaN, and so is the mean); fewer than 3 networks a band is a ValueError."""
    if not len(proxy) == len(final) == len(latencies):
        raise ValueError("proxy, final and latencies: one value per network each")
    groups = latency_bands(latencies, bands)
    if min(len(g) for g in groups) < 3:
        raise ValueError(f"{len(latencies)} networks in {bands} bands: fewer than 3 in a band, "
                         "too few to rank")
    return statistics.mean(_rank_or_nan(spearman, [proxy[i] for i in g], [final[i] for i in g])
                           for g in groups)


@dataclass(frozen=True)
class Fidelity:
    """One proxy measured against the final recipe (accuracies in points)."""

    proxy: str
    networks: int  # those with both a proxy and a final accuracy
    seed_std: float  # std over seeds pooled across the networks; NaN without 2 seeds anywhere
    seed_dof: int  # its degrees of freedom
    between_std: float  # std of the networks' mean proxy accuracies
    ratio: float  # between_std / seed_std (goal: at least `GOAL_RATIO`)
    spearman: float  # of the mean proxy accuracy against the final one, all networks
    kendall_tau: float
    band_spearman: float  # mean within latency bands; NaN when a band holds fewer than 3
    bands: int
    median_seconds: float  # of one training (one network, one seed)


def fidelity(proxy: str, accuracies: Mapping[str, Sequence[float]],
             final: Mapping[str, float], latencies: Mapping[str, float],
             seconds: Sequence[float], bands: int) -> Fidelity:
    """A proxy's seed noise, rank fidelity and cost, from its accuracies over seeds (network ->
    points), the final accuracies (network -> points), the networks' latencies (or MACs: any
    key that orders them as promotion does) and the seconds of its trainings. The networks
    compared are those in both ``accuracies`` and ``final``; at least 3 are needed."""
    names = [n for n in accuracies if accuracies[n] and n in final]
    if len(names) < 3:
        raise ValueError(f"{len(names)} network(s) with both accuracies: at least 3 to rank")
    if not seconds:
        raise ValueError("no training seconds")
    means = [statistics.mean(accuracies[n]) for n in names]
    finals = [final[n] for n in names]
    try:
        seed_std, dof = pooled_seed_std({n: accuracies[n] for n in names})
    except ValueError:
        seed_std, dof = math.nan, 0
    between = statistics.stdev(means)
    try:
        in_bands = band_spearman(means, finals, [latencies[n] for n in names], bands)
    except ValueError:
        in_bands = math.nan
    return Fidelity(proxy, len(names), seed_std, dof, between,
                    between / seed_std if seed_std > 0 else math.nan,
                    _rank_or_nan(spearman, means, finals),
                    _rank_or_nan(kendall_tau, means, finals), in_bands, bands,
                    statistics.median(seconds))


def _check_by(by: str) -> None:
    if by not in RANKED_BY:
        raise ValueError(f"by={by!r}: one of {', '.join(RANKED_BY)}")


def choose_proxy(fidelities: Sequence[Fidelity], max_seconds: float | None = None, *,
                 by: str = "spearman") -> Fidelity | None:
    """The proxy of highest ``by`` (a `RANKED_BY` field) among those whose median seconds
    are at most ``max_seconds`` (None: no limit); a tie goes to the cheaper, then the first
    given. NaN is never chosen; None when no proxy qualifies."""
    _check_by(by)
    fit = [(i, f) for i, f in enumerate(fidelities) if not math.isnan(getattr(f, by))
           and (max_seconds is None or f.median_seconds <= max_seconds)]
    if not fit:
        return None
    return min(fit, key=lambda x: (-getattr(x[1], by), x[1].median_seconds, x[0]))[1]


def cost_frontier(fidelities: Sequence[Fidelity], *, by: str = "spearman") -> list[Fidelity]:
    """The proxies worth their cost, cheapest first: each ranks strictly better (``by``) than
    every cheaper one; the best choice at any time budget is among them. NaN ones are not."""
    _check_by(by)
    frontier: list[Fidelity] = []
    for f in sorted((f for f in fidelities if not math.isnan(getattr(f, by))),
                    key=lambda f: (f.median_seconds, -getattr(f, by))):
        if not frontier or getattr(f, by) > getattr(frontier[-1], by):
            frontier.append(f)
    return frontier


# -- the plan ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Network:
    arch: Arch
    macs: int
    predicted_ms: float | None  # by --lut's table; None without one

    @property
    def order_key(self) -> float:
        """What the networks are spread and banded by: predicted latency, else MACs."""
        return self.macs if self.predicted_ms is None else self.predicted_ms


def _macs(arch: Arch, model: ModelConfig, resolution: int) -> int:
    return complexity(MobileNet(arch, model), resolution).macs


def choose_networks(space_path: Path, count: int, seed: int, model: ModelConfig,
                    latency: LatencyModel | None) -> list[Network]:
    """``count`` networks spread over `POOL` uniform samples by predicted latency (MACs without
    a table), by increasing latency."""
    space = load_space(space_path)
    pool = random_archs(space, POOL, seed)
    if latency is None:
        macs = [_macs(a, model, space.resolution) for a in pool]
        return [Network(pool[i], macs[i], None) for i in spread_indices(macs, count)]
    ms = [latency.predict(a).latency_ms for a in pool]
    return [Network(pool[i], _macs(pool[i], model, space.resolution), ms[i])
            for i in spread_indices(ms, count)]


@dataclass(frozen=True)
class Plan:
    space: str
    networks: tuple[Network, ...]
    proxies: tuple[Proxy, ...]
    seeds: int
    final_epochs: int
    final_seeds: int
    bands: int

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "networks": [
            {"arch": n.arch.to_string(), "macs": n.macs, "predicted_ms": n.predicted_ms}
            for n in self.networks], "proxies": [p.to_dict() for p in self.proxies],
            "seeds": self.seeds, "final_epochs": self.final_epochs,
            "final_seeds": self.final_seeds, "bands": self.bands}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        return cls(d["space"], tuple(Network(Arch.from_string(n["arch"]), n["macs"],
                                             n["predicted_ms"]) for n in d["networks"]),
                   tuple(Proxy(p["name"], p["changes"], p["train_samples"])
                         for p in d["proxies"]), d["seeds"], d["final_epochs"],
                   d["final_seeds"], d["bands"])

    def with_proxies(self, proxies: Sequence[Proxy]) -> Plan:
        """This plan with ``proxies`` added after its own: the same networks and final
        trainings, so a resumed run scores new proxies against the trainings it has. A name
        already planned is a ValueError."""
        names = [p.name for p in (*self.proxies, *proxies)]
        if len(set(names)) < len(names) or "final" in names:
            raise ValueError(f"--proxy names must differ from the run's, and not be 'final': "
                             f"{names}")
        return replace(self, proxies=(*self.proxies, *proxies))

    def jobs(self) -> list[tuple[str, str, int, int]]:
        """(kind, proxy name or "final", network index, seed): the final trainings first, then
        each proxy with all its seeds before the next, so that a run cut short has whole
        figures (seed noise included) for the proxies it reached."""
        jobs = [("final", "final", i, s) for s in range(self.final_seeds)
                for i in range(len(self.networks))]
        return jobs + [("proxy", p.name, i, s) for p in self.proxies for s in range(self.seeds)
                       for i in range(len(self.networks))]


def _key(kind: str, name: str, arch: str, seed: int) -> str:
    return f"{kind}/{name}/{arch}/{seed}"


def print_plan(plan: Plan, done: Mapping[str, Any], proxy_images: Mapping[str, int],
               final_images: int) -> None:
    by = "MACs" if plan.networks[0].predicted_ms is None else "predicted latency"
    print(f"{len(plan.networks)} networks of {plan.space}, spread over {POOL} samples by {by}:")
    bands = latency_bands([n.order_key for n in plan.networks], plan.bands)
    band_of = {i: b for b, group in enumerate(bands, 1) for i in group}
    for i, n in enumerate(plan.networks):
        ms = "" if n.predicted_ms is None else f", {n.predicted_ms:.3f} ms"
        print(f"  {i:2} band {band_of[i]}: {n.macs / 1e6:5.1f} M MACs{ms}  {n.arch.to_string()}")
    print(f"bands by {by}: {plan.bands}" + ("" if by != "MACs" else
                                           " (give --lut for the search's latency bands)"))
    left = [j for j in plan.jobs() if _key(j[0], j[1], plan.networks[j[2]].arch.to_string(),
                                          j[3]) not in done]
    passes = 0.0
    rows = [("final", f"final recipe, {plan.final_epochs} epochs on {final_images} images, "
                      "test accuracy", plan.final_seeds, plan.final_epochs * final_images)]
    rows += [(p.name, f"{p.config('auto').epochs:g} epochs on {proxy_images[p.name]} images"
                      + "".join(f", {k} {v}" for k, v in p.changes.items() if k != "epochs"),
              plan.seeds, p.config("auto").epochs * proxy_images[p.name]) for p in plan.proxies]
    print("trainings (one per network and seed):")
    for name, what, seeds, per in rows:
        count = sum(j[1] == name for j in left)
        passes += count * per
        print(f"  {name}: {what}; {len(plan.networks)} networks x {seeds} seed(s), {count} to "
              f"train, {per / DEFAULT_PROXY_PASSES:.1f}x the default proxy's images each")
    print(f"{len(left)} of {len(plan.jobs())} trainings to train, {passes:,.0f} image passes: "
          f"{passes / DEFAULT_PROXY_PASSES:.0f}x one default-proxy training (2 epochs on 10,000 "
          "images; multiply by its seconds per network here)")


# -- trainings --------------------------------------------------------------------------------

def _load(data_config: DataConfig, resolution: int, train_samples: int | None) -> Dataset:
    c = data_config
    return load_dataset(c.dataset, c.data_dir, val_samples=c.val_samples,
                        train_samples=train_samples, seed=c.seed, resolution=resolution)


class _Data:
    """The data sets the plan trains on, each loaded once."""

    def __init__(self, config: DataConfig, resolution: int) -> None:
        self.config, self.resolution = config, resolution
        self._sets: dict[int | None, Dataset] = {}

    def proxy(self, train_samples: int | None) -> Dataset:
        if train_samples not in self._sets:
            self._sets[train_samples] = _load(self.config, self.resolution, train_samples)
        return self._sets[train_samples]

    def final(self) -> Dataset:
        whole = self.proxy(None)
        return all_training_images(whole, whole.mean, whole.std)


def _train(kind: str, proxy: Proxy | None, network: Network, index: int, seed: int,
           plan: Plan, data: _Data, device: str, work: Path) -> dict[str, Any]:
    """One training; its line's fields."""
    start = time.perf_counter()
    if proxy is None:  # the final recipe
        dataset = data.final()
        config = FinalConfig(epochs=plan.final_epochs, train_device=device).recipe()
        config = replace(config, train_device=str(resolve_device(config.train_device)))
        out = RunDir(work / f"{index:02d}-seed{seed}")
        best = BestNetwork(-1, network.arch, math.nan, network.predicted_ms or math.nan)
        result = train_final(out, best, dataset, ModelConfig(dataset.in_channels,
                                                             dataset.num_classes),
                             Training(network.arch, seed, config))
        accuracy, train_seconds = result.test_accuracy, result.train_seconds
        extra = {"epochs": result.epochs, "split": "test", "folder": str(out.root)}
    else:
        dataset = data.proxy(proxy.train_samples)
        config = proxy.config(device)
        evaluator = TrainEvaluator(dataset, ModelConfig(dataset.in_channels,
                                                        dataset.num_classes), config)
        result = evaluator(network.arch, seed)
        accuracy, train_seconds = result.accuracy, result.train_seconds
        extra = {"epochs": config.epochs, "split": "validation",
                   "changes": dict(proxy.changes)}
    return {"record": "training", "kind": kind, "proxy": "final" if proxy is None else proxy.name,
            "arch_index": index, "arch": network.arch.to_string(), "seed": seed,
            "accuracy": accuracy, "seconds": time.perf_counter() - start,
            "train_seconds": train_seconds, "macs": network.macs,
            "predicted_ms": network.predicted_ms, "train_images": len(dataset.train),
            "device": str(resolve_device(config.train_device)), **extra}


# -- the figures ------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 2) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def report(plan: Plan, done: Mapping[str, dict[str, Any]], max_seconds: float | None, by: str,
           run: str, threads: int, write: bool = True) -> None:
    """Print one summary line per proxy with enough networks, and the choice; append them to
    the results when ``write`` (a finished run), else only print (figures so far)."""
    rows = list(done.values())
    order = {n.arch.to_string(): n.order_key for n in plan.networks}
    final_by: dict[str, list[float]] = {}
    for r in rows:
        if r["kind"] == "final":
            final_by.setdefault(r["arch"], []).append(100 * r["accuracy"])
    final = {a: statistics.mean(v) for a, v in final_by.items()}
    if final:
        secs = [r["seconds"] for r in rows if r["kind"] == "final"]
        print(f"final recipe ({plan.final_epochs} epochs): {len(final)} networks, "
              f"{min(final.values()):.2f}-{max(final.values()):.2f}% test accuracy, std "
              f"{statistics.stdev(final.values()) if len(final) > 1 else math.nan:.2f} points; "
              f"median {statistics.median(secs):.0f} s a training")
    measured = []
    for p in plan.proxies:
        mine = [r for r in rows if r["kind"] == "proxy" and r["proxy"] == p.name]
        accuracies: dict[str, list[float]] = {}
        for r in mine:
            accuracies.setdefault(r["arch"], []).append(100 * r["accuracy"])
        try:
            f = fidelity(p.name, accuracies, final, order, [r["seconds"] for r in mine],
                         plan.bands)
        except ValueError as exc:
            print(f"{p.name}: no figures yet ({exc})")
            continue
        measured.append(f)
        goals = (f"ratio {'met' if f.ratio >= GOAL_RATIO else 'missed'}, Spearman "
                 f"{'met' if f.spearman >= GOAL_SPEARMAN else 'missed'}")
        print(f"{p.name}: {f.networks} networks; seed std {_fmt(f.seed_std)} ({f.seed_dof} dof), "
              f"between networks {_fmt(f.between_std)}, ratio {_fmt(f.ratio)}; Spearman "
              f"{_fmt(f.spearman, 3)}, Kendall tau {_fmt(f.kendall_tau, 3)}, in {f.bands} bands "
              f"{_fmt(f.band_spearman, 3)}; median {f.median_seconds:.0f} s a training "
              f"({goals}: >= {GOAL_RATIO:g}, >= {GOAL_SPEARMAN:g})")
        if write:
            append(BENCHMARK, {"record": "summary", "space": plan.space, **asdict(f),
                               **p.to_dict(), "final_epochs": plan.final_epochs,
                               "final_networks": len(final)}, threads=threads, run=run)
    if not measured:
        return
    chosen = choose_proxy(measured, max_seconds, by=by)
    frontier = cost_frontier(measured, by=by)
    limit = "no time limit" if max_seconds is None else f"at most {max_seconds:g} s a training"
    print(f"chosen by {by}, {limit}: " + ("none qualifies" if chosen is None else
                                          f"{chosen.proxy} ({_fmt(getattr(chosen, by), 3)}, "
                                          f"{chosen.median_seconds:.0f} s)"))
    print("worth their cost (none cheaper ranks as well): " + ", ".join(
        f"{f.proxy} {_fmt(getattr(f, by), 3)} at {f.median_seconds:.0f} s" for f in frontier))
    if not write:
        return
    append(BENCHMARK, {"record": "choice", "space": plan.space, "by": by,
                       "max_seconds": max_seconds,
                       "chosen": None if chosen is None else chosen.proxy,
                       "frontier": [f.proxy for f in frontier]}, threads=threads, run=run)


# -- the command ------------------------------------------------------------------------------

PLAN_FLAGS = ("space", "archs", "proxy", "seeds", "final_epochs", "final_seeds", "bands", "lut",
              "sample_seed")  # what makes a plan: a resumed run keeps its own


def _add_proxies(plan: Plan, texts: Sequence[str]) -> Plan:
    """``plan`` with the proxies ``texts`` give; a bad or repeated one ends in one line."""
    try:
        return plan.with_proxies(tuple(parse_proxy(t) for t in texts))
    except ValueError as exc:
        raise SystemExit(f"error: {exc}")


def _new_plan(args: argparse.Namespace, model: ModelConfig) -> Plan:
    space_path = resolve_space(args.space or DEFAULT_SPACE)
    space = load_space(space_path)
    latency = None
    if args.lut:
        table = LatencyTable.load(Path(args.lut), space=space.name)
        latency = LatencyModel(table, model.in_channels, model.num_classes)
    archs, bands, seeds, final_epochs, final_seeds = (
        default if given is None else given for given, default in
        ((args.archs, 12), (args.bands, 3), (args.seeds, 2), (args.final_epochs, 4),
         (args.final_seeds, 1)))
    if min(archs, bands, seeds, final_epochs, final_seeds) < 1:
        raise SystemExit("error: --archs, --bands, --seeds, --final-epochs and --final-seeds "
                         "must be positive")
    if archs < 3 * bands:
        raise SystemExit(f"error: --archs {archs} in --bands {bands}: at least 3 networks a band")
    networks = choose_networks(space_path, archs,
                               0 if args.sample_seed is None else args.sample_seed, model,
                               latency)
    return _add_proxies(Plan(space.name, tuple(networks), (), seeds, final_epochs, final_seeds,
                             bands), args.proxy or DEFAULT_PROXIES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", help=f"space name or YAML (default: {DEFAULT_SPACE})")
    parser.add_argument("--archs", type=int, help="networks (default 12)")
    parser.add_argument("--proxy", action="append", help="NAME=FIELD:VALUE,... (repeatable; "
                        f"default: {' '.join(DEFAULT_PROXIES)})")
    parser.add_argument("--seeds", type=int, help="seeds of every proxy training (default 2)")
    parser.add_argument("--final-epochs", type=int, help="epochs of the final recipe (default 4)")
    parser.add_argument("--final-seeds", type=int, help="seeds of the final recipe (default 1)")
    parser.add_argument("--bands", type=int, help="latency bands (default 3, the search's)")
    parser.add_argument("--lut", help="the space's latency table: spread and band the networks "
                        "by predicted latency (default: by MACs)")
    parser.add_argument("--sample-seed", type=int, help="seed of the 200 samples (default 0)")
    parser.add_argument("--max-seconds", type=float, help="median seconds a training of the "
                        "chosen proxy may take (default: no limit)")
    parser.add_argument("--choose-by", default="spearman", choices=RANKED_BY)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--device", default="auto", help="where to train (as nas's --device)")
    parser.add_argument("--threads", type=int, help="training threads (default: torch's)")
    parser.add_argument("--work", type=Path, help="folder of the final trainings (default: "
                        "results/proxy-fidelity/RUN)")
    parser.add_argument("--plan", action="store_true",
                        help="print the networks and the trainings to make; train nothing")
    parser.add_argument("--resume", metavar="RUN", help="continue this run (its lines' 'run' "
                        "field) as it was planned, training only what it lacks; with --proxy, "
                        "add those proxies to it")
    args = parser.parse_args()
    data_config = DataConfig(data_dir=args.data_dir)
    run = args.resume or run_id()
    lines = read(BENCHMARK, run=run) if args.resume else []
    if args.resume:
        given = [f"--{f.replace('_', '-')}" for f in PLAN_FLAGS
                 if f != "proxy" and getattr(args, f) is not None]
        if given:
            raise SystemExit(f"error: --resume continues run {run} as planned; drop {given}")
        planned = [r for r in lines if r.get("record") == "plan"]
        if not planned:
            raise SystemExit(f"error: run {run} has no plan line in benchmarks/results/ (none, "
                             "or written by this file's noise/long modes before issue 28, which "
                             "this version does not continue)")
        plan = Plan.from_dict(planned[-1]["plan"])  # the last: --proxy may have extended it
        if args.proxy:
            plan = _add_proxies(plan, args.proxy)
    else:
        plan = _new_plan(args, ModelConfig())
    done = {_key(r["kind"], r["proxy"], r["arch"], r["seed"]): r for r in lines
            if r.get("record") == "training"}
    data = _Data(data_config, load_space(resolve_space(plan.space)).resolution)
    proxy_images = {p.name: len(data.proxy(p.train_samples).train) for p in plan.proxies}
    final_images = len(data.final().train)
    threads = use_threads(args.threads)
    print(f"{cpu_model()}, {threads} threads, torch {torch.__version__}, "
          f"{platform.python_version()}; run {run}", flush=True)
    print_plan(plan, done, proxy_images, final_images)
    if args.plan:
        print("--plan: nothing trained")
        if args.resume:
            print("figures so far (not written to the results):")
            report(plan, done, args.max_seconds, args.choose_by, run, threads, write=False)
        return
    if not args.resume or args.proxy:
        append(BENCHMARK, {"record": "plan", "plan": plan.to_dict()}, threads=threads, run=run)
    work = args.work or ROOT / "results" / "proxy-fidelity" / run
    proxies = {p.name: p for p in plan.proxies}
    for kind, name, i, seed in plan.jobs():
        network = plan.networks[i]
        key = _key(kind, name, network.arch.to_string(), seed)
        if key in done:
            continue
        row = _train(kind, proxies.get(name), network, i, seed, plan, data, args.device, work)
        done[key] = append(BENCHMARK, {"space": plan.space, **row}, threads=threads, run=run)
        print(f"{name} network {i} seed {seed}: {100 * row['accuracy']:.2f}% in "
              f"{row['seconds']:.0f} s ({network.macs / 1e6:.1f} M MACs)", flush=True)
    report(plan, done, args.max_seconds, args.choose_by, run, threads)


if __name__ == "__main__":
    main()
