"""Does the search beat MobileNetV3 after final training (issue 28)? Three front members against
the MobileNetV3 family members nearest them in latency, all trained by ``nas train``'s recipe.

After a default search (``results/<run>``): the three members of the run's front (the report's:
top rung, within the budget) spread over its latency range (`spread_members`: the fastest, the
slowest, the one nearest the middle) and, for each, the member of the family
(`nas.config.REFERENCE_MEMBERS`, adapted to the run's space and resolution by
`nas.references.adapt` as a search does) nearest in latency predicted by the run's table among
those no faster (`nearest_by_latency`: the baseline gets at least the searched network's
latency). Family members whose layers the table lacks are timed into it first, by
the search coordinator's own code (`nas.coordinate.references_to_train`), when this machine is
the target; elsewhere they are left out, and said so.

Every network trains with ``nas train``'s recipe (`nas.config.FinalConfig.recipe`), the same
epochs (``--epochs``) and seeds (``--seeds``, at least 2) for all, each training in a process of
its own, ``--jobs`` side by side with ``--threads`` each, on all 60,000 training images; each
training's folder stays under ``RUN/front-vs-family/<benchmark start>/``. Then, when this machine
is the run's target, all of them are timed end to end side by side in one process
(`nas.latency.profile.time_networks`); elsewhere the verdicts use predicted latencies.

Appends to ``benchmarks/results/front_vs_family.jsonl`` one line per training and one per
latency point, and prints per point the accuracy difference (mean over seeds, searched minus
family) with its seed noise and the verdict (`point_verdict`). The seed noise is measured from
the seeds themselves: the std over seeds, pooled across the networks (`nas.stats.pooled_seed_std`). The
plot goes beside the trainings, ``RUN/front-vs-family/<start>/front_vs_family.html``.

Run: ``.venv/bin/python benchmarks/front_vs_family.py results/<run> [--plan] [--seeds 0,1]
[--epochs N] [--points 3] [--jobs 2] [--threads 1] [--resume START]``; ``--plan`` lists the
networks and trains nothing; ``--resume`` continues a run cut short (or re-planned), training
only the networks and seeds it lacks at these epochs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from nas.arch import Arch
from nas.commands.common import run_data
from nas.config import REFERENCE_NAMES, FinalConfig, ProfileConfig
from nas.coordinate import references_to_train
from nas.final import Training, all_training_images, train_final
from nas.latency.predict import LatencyModel
from nas.latency.profile import time_networks
from nas.latency.table import LatencyTable
from nas.pareto import means_margin
from nas.references import REFERENCES, adapt, load_references
from nas.report import front_info, trials_frame
from nas.run import BestNetwork, RunDir, RunRecord
from nas.search import open_study
from nas.space import load_space
from nas.stats import pooled_seed_std
from nas.storage import open_storage
from nas.train import resolve_device, use_threads
from nas.verify import run_choice
from record import append, now, read

BENCHMARK = "front_vs_family"
FOLDER = "front-vs-family"  # under the search run's folder
LATENCY_RATIO = 0.7  # "as accurate at no more than 0.7x the latency" (issue 28's goal)
POINTS = 3  # latency points, when the front has that many members
GOAL_POINTS = 2  # of the three latency points, won by the searched network (issue 28's goal)


# -- pure parts -------------------------------------------------------------------------------

def spread_members(latencies_ms: Sequence[float], count: int = 3) -> list[int]:
    """Indices of ``count`` distinct members spread over the latency range, by increasing
    latency: the fastest, the slowest and those nearest evenly spaced latencies between them
    (for 3, the one nearest the middle of the range). Ties go to the faster, then the first."""
    if count < 2:
        raise ValueError(f"count {count}: at least 2 (the fastest and the slowest)")
    if len(latencies_ms) < count:
        raise ValueError(f"{len(latencies_ms)} member(s) on the front, {count} needed")
    low, high = min(latencies_ms), max(latencies_ms)
    targets = [low + i * (high - low) / (count - 1) for i in range(count)]
    chosen: list[int] = []
    for target in [targets[0], targets[-1], *targets[1:-1]]:  # the two ends first
        left = [i for i in range(len(latencies_ms)) if i not in chosen]
        chosen.append(min(left, key=lambda i: (abs(latencies_ms[i] - target), latencies_ms[i],
                                               i)))
    return sorted(chosen, key=lambda i: (latencies_ms[i], i))


def nearest_by_latency(latency_ms: float, candidates_ms: Mapping[str, float]) -> str:
    """The name in ``candidates_ms`` (name -> predicted latency) nearest ``latency_ms`` among
    those no faster, so that the family member is given at least the searched network's
    latency; when all are faster, the slowest. A tie goes to the first given."""
    if not candidates_ms:
        raise ValueError("no candidates to compare with")
    order = {name: i for i, name in enumerate(candidates_ms)}
    slower = [n for n in candidates_ms if candidates_ms[n] >= latency_ms]
    if not slower:
        return max(candidates_ms, key=lambda n: (candidates_ms[n], -order[n]))
    return min(slower, key=lambda n: (candidates_ms[n], order[n]))


VERDICTS = {
    "more accurate": "searched more accurate beyond noise, at no more latency",
    "more accurate, slower": "searched more accurate beyond noise but slower: not a win",
    "as accurate, faster": f"searched as accurate at <= {LATENCY_RATIO:g}x the latency",
    "neither": "neither",
}


WINS = ("more accurate", "as accurate, faster")  # the verdicts that count for the goal


@dataclass(frozen=True)
class PointVerdict:
    """One latency point: the searched network against its family member."""

    difference: float  # mean accuracy over seeds, searched minus family, in points
    margin: float  # beyond noise when |difference| exceeds it, in points
    latency_ratio: float  # searched latency / family latency
    verdict: str  # a `VERDICTS` key


def point_verdict(searched: Sequence[float], family: Sequence[float], searched_ms: float,
                  family_ms: float, seed_std: float) -> PointVerdict:
    """The verdict at one point from the accuracies over seeds (in points) and latencies.

    The difference of two means of n1 and n2 seeds has std seed_std * sqrt(1/n1 + 1/n2);
    beyond noise is more than 2 of those (`nas.pareto.means_margin`). "more accurate": the
    searched network's mean is ahead beyond noise at no more latency ("more accurate, slower"
    when it is slower: no win); "as accurate, faster": within noise (not behind beyond it) at
    no more than `LATENCY_RATIO` of the family member's latency; else "neither"."""
    if not searched or not family:
        raise ValueError("each network needs at least one accuracy")
    difference = statistics.mean(searched) - statistics.mean(family)
    margin = means_margin(seed_std, len(searched), len(family))
    ratio = searched_ms / family_ms
    verdict = ("more accurate" if difference > margin and ratio <= 1 else
               "more accurate, slower" if difference > margin else
               "as accurate, faster" if difference >= -margin and ratio <= LATENCY_RATIO else
               "neither")
    return PointVerdict(difference, margin, ratio, verdict)


@dataclass(frozen=True)
class Network:
    """A network of the comparison: a front member (``trial-N``) or a family member."""

    name: str
    kind: str  # "searched" or "family"
    trial: int | None  # the study's trial, for a front member
    arch: Arch
    predicted_ms: float
    predicted_err_ms: float
    proxy_accuracy: float | None  # validation accuracy the search's proxy gave, in [0, 1]


@dataclass(frozen=True)
class Plan:
    """The three latency points, each (searched, family), and what the family could not be."""

    points: tuple[tuple[Network, Network], ...]
    family_ms: dict[str, float]  # every family member the table predicts
    left_out: tuple[str, ...]  # family members whose layers the table lacks

    @property
    def networks(self) -> list[Network]:
        """Each distinct network once (two points may share a family member)."""
        return list({n.name: n for pair in self.points for n in pair}.values())


# -- the run's front and the family -----------------------------------------------------------

def make_plan(run: Path, *, time_missing: bool, points: int = POINTS
               ) -> tuple[RunRecord, Plan]:
    """The run's front and family, predicted by its table; the family's missing layers are
    timed into the table when ``time_missing`` and this machine is the target. A front of
    fewer than ``points`` members (at least 2) gives one point per member, said so."""
    run_dir = RunDir(run)
    record = RunRecord.load(run_dir)
    space = load_space(record.space)
    lut_path = Path(record.lut.path)
    latency = LatencyModel(LatencyTable.load(lut_path, space=record.space_name),
                           record.model.in_channels, record.model.num_classes)
    family = {name: adapt(REFERENCES[name], space, record.data_info.image_size)
              for name in REFERENCE_NAMES}
    lacking = [n for n, a in family.items() if latency.table.missing(latency.layers(a))]
    if lacking:
        print(f"the latency table {lut_path} lacks layers of {len(lacking)} family member(s): "
              f"{', '.join(lacking)}", file=sys.stderr)
        if not time_missing:
            print("  --plan times nothing: they are left out of this plan, and a full run times "
                  "them into the table first" + ("" if record.target.on_this_machine() else
                                                  " (not on this machine: it is not the target)"),
                  file=sys.stderr)
        else:  # the coordinator's code: times them here when this is the target, else says so
            references_to_train(run_dir, replace(record, search=replace(
                record.search, references=tuple(lacking))), space, latency, lut_path)
            lacking = [n for n in lacking if latency.table.missing(latency.layers(family[n]))]
    proxy = {r.name: r.accuracy for r in load_references(run_dir.references)}
    members = {}
    for name, arch in family.items():
        if name not in lacking:
            p = latency.predict(arch)
            members[name] = Network(name, "family", None, arch, p.latency_ms, p.error_ms,
                                    proxy.get(name))
    if not members:
        raise SystemExit("no family member can be predicted by the run's table")
    choice = run_choice(run_dir, record)
    study = open_study(open_storage(record.storage), record.name)
    front = front_info(trials_frame(study.trials, choice.measured_ms), choice,
                       record.search.seed_std, record.search.rungs(record.train.epochs)).front
    searched = []
    for _, row in front.iterrows():
        arch = Arch.from_string(row["arch"])
        p = latency.predict(arch)
        searched.append(Network(f"trial-{int(row['number'])}", "searched", int(row["number"]),
                                arch, p.latency_ms, p.error_ms, float(row["accuracy"])))
    if 2 <= len(searched) < points:
        print(f"the front has {len(searched)} members: {len(searched)} latency points, not "
              f"{points}", file=sys.stderr)
        points = len(searched)
    try:
        picked = spread_members([n.predicted_ms for n in searched], points)
    except ValueError as exc:
        front_text = ", ".join(f"{n.name} {n.predicted_ms:.2f} ms" for n in searched)
        raise SystemExit(f"{run}: {exc} ({front_text}); a longer search (--trials) gives a "
                         "longer front")
    family_ms = {n: m.predicted_ms for n, m in members.items()}
    points = tuple((searched[i], members[nearest_by_latency(searched[i].predicted_ms,
                                                            family_ms)]) for i in picked)
    return record, Plan(points, family_ms, tuple(lacking))


def print_plan(plan: Plan) -> None:
    print("family members as the run's table predicts them: " + ", ".join(
        f"{n} {ms:.2f} ms" for n, ms in sorted(plan.family_ms.items(), key=lambda x: x[1])))
    if plan.left_out:
        print(f"left out (their layers are not in the table): {', '.join(plan.left_out)}")
    for i, pair in enumerate(plan.points, 1):
        print(f"point {i}:")
        for n in pair:
            proxy = "" if n.proxy_accuracy is None else f", proxy {100 * n.proxy_accuracy:.2f}%"
            print(f"  {n.kind:8} {n.name}: predicted {n.predicted_ms:.2f} +- "
                  f"{n.predicted_err_ms:.2f} ms{proxy}\n    {n.arch.to_string()}")
    shared = 2 * len(plan.points) - len(plan.networks)
    if shared:
        print(f"{len(plan.networks)} distinct networks: {shared} family member(s) nearest to "
              "two points, trained once and compared at both")


# -- trainings --------------------------------------------------------------------------------

def train_one(args: argparse.Namespace) -> None:
    """One training (the child process): ``nas train``'s recipe, one network, one seed."""
    record = RunRecord.load(RunDir(args.run))
    arch = Arch.from_string(args.arch)
    config = FinalConfig(epochs=args.epochs, train_device=args.device).recipe()
    config = replace(config, train_device=str(resolve_device(config.train_device)))
    data = all_training_images(run_data(record, None, train_samples=None),
                               record.data_info.mean, record.data_info.std)
    threads = use_threads(args.threads)
    seed = args.seed[0]
    out = RunDir(args.run / FOLDER / args.bench_run / f"{args.name}-seed{seed}")
    trial = -1 if args.trial is None else args.trial  # -1: a family member, not a trial
    network = BestNetwork(trial, arch, float("nan"), args.predicted_ms)
    result = train_final(out, network, data, record.model, Training(arch, seed, config))
    append(BENCHMARK, {"record": "training", "name": args.name, "kind": args.kind,
                       "trial": args.trial, "seed": seed, "arch": arch.to_string(),
                       "predicted_ms": args.predicted_ms, "epochs": result.epochs,
                       "device": config.train_device,
                       "test_accuracy": result.test_accuracy,
                       "test_accuracy_mirror": result.test_accuracy_mirror,
                       "train_seconds": result.train_seconds, "folder": str(out.root),
                       "search_run": str(args.run)}, threads=threads, run=args.bench_run)


def trainings(bench_run: str, epochs: int) -> list[dict[str, Any]]:
    """The lines of every training the benchmark run ``bench_run`` finished for ``epochs``
    epochs: what a resumed run skips and what the report reads."""
    return [r for r in read(BENCHMARK, run=bench_run)
            if r["record"] == "training" and r["epochs"] == epochs]


def _train_all(args: argparse.Namespace, plan: Plan, seeds: list[str], bench_run: str) -> None:
    done = {(r["name"], r["arch"], r["seed"]) for r in trainings(bench_run, args.epochs)}
    jobs = [[sys.executable, __file__, str(args.run), "--name", n.name, "--kind", n.kind,
             "--arch", n.arch.to_string(), "--predicted-ms", repr(n.predicted_ms),
             "--seed", seed, "--bench-run", bench_run, "--epochs", str(args.epochs),
             "--threads", str(args.threads), "--device", args.device,
             *([] if n.trial is None else ["--trial", str(n.trial)])]
            for n in plan.networks for seed in seeds
            if (n.name, n.arch.to_string(), int(seed)) not in done]
    if done:
        print(f"run {bench_run}: {len(done)} training(s) already done, {len(jobs)} to train")
    running: list[subprocess.Popen[bytes]] = []
    failed = 0
    for job in jobs:
        while len(running) >= args.jobs:
            failed += running.pop(0).wait() != 0
        running.append(subprocess.Popen(job))
    failed += sum(p.wait() != 0 for p in running)
    if failed:
        print(f"warning: {failed} of {len(jobs)} trainings failed (see above); the verdicts "
              "use those that finished", file=sys.stderr)


def _measure(run: Path, record: RunRecord, plan: Plan
             ) -> tuple[dict[str, float], float | None]:
    """Every network timed end to end on the target, side by side in one process; none when
    this machine is not the target."""
    if not record.target.on_this_machine():
        print(f"latencies not measured: this machine is not the target "
              f"({record.target.describe()}); the verdicts use the table's predictions")
        return {}, None
    networks = plan.networks
    with RunDir(run).timing_turn():  # no candidate of the run in training meanwhile
        timings, probe = time_networks([n.arch for n in networks], record.target, record.model,
                                       ProfileConfig())
    return {n.name: t.median_ms for n, t in zip(networks, timings, strict=True)}, probe.median_ms


# -- the answer -------------------------------------------------------------------------------

@dataclass(frozen=True)
class PointResult:
    """A latency point as measured: both networks' accuracies over seeds and latencies."""

    index: int  # from 1
    searched: Network
    family: Network
    searched_acc: tuple[float, ...]  # test accuracy over seeds, in points
    family_acc: tuple[float, ...]
    searched_ms: float  # measured on the target when it was, else predicted
    family_ms: float
    measured: bool
    verdict: PointVerdict


def results(plan: Plan, accuracies: Mapping[str, Sequence[float]],
            measured_ms: Mapping[str, float], seed_std: float) -> list[PointResult]:
    """Each point whose two networks both finished a training, with its verdict."""
    out = []
    for i, (s, f) in enumerate(plan.points, 1):
        if not accuracies.get(s.name) or not accuracies.get(f.name):
            continue
        measured = s.name in measured_ms and f.name in measured_ms
        s_ms = measured_ms[s.name] if measured else s.predicted_ms
        f_ms = measured_ms[f.name] if measured else f.predicted_ms
        out.append(PointResult(i, s, f, tuple(accuracies[s.name]), tuple(accuracies[f.name]),
                               s_ms, f_ms, measured,
                               point_verdict(accuracies[s.name], accuracies[f.name], s_ms, f_ms,
                                             seed_std)))
    return out


def _report(args: argparse.Namespace, record: RunRecord, plan: Plan, seeds: list[str],
            bench_run: str, measured_ms: dict[str, float], probe_ms: float | None) -> None:
    wanted = {(n.name, n.arch.to_string(), int(seed)) for n in plan.networks for seed in seeds}
    done = [r for r in trainings(bench_run, args.epochs)
            if (r["name"], r["arch"], r["seed"]) in wanted]
    accuracies: dict[str, list[float]] = {}
    for r in done:
        accuracies.setdefault(r["name"], []).append(100 * r["test_accuracy"])
    try:
        seed_std, dof = pooled_seed_std(accuracies)
    except ValueError as exc:
        raise SystemExit(f"no verdict: {exc}")
    print(f"seed noise: {seed_std:.2f} points, the std of test accuracy over seeds pooled across "
          f"{len(accuracies)} networks (sqrt of the mean of their variances over seeds, weighted "
          f"by seeds - 1: {dof} degrees of freedom); a difference of two means of n1 and n2 "
          "seeds is beyond noise when more than 2 x sqrt(1/n1 + 1/n2) x that")
    for name, acc in accuracies.items():
        spread = statistics.stdev(acc) if len(acc) > 1 else float("nan")
        print(f"  {name}: {statistics.mean(acc):.2f}% +- {spread:.2f} over {len(acc)} seed(s)"
              + (f", {measured_ms[name]:.3f} ms measured" if name in measured_ms else ""))
    points = results(plan, accuracies, measured_ms, seed_std)
    for p in points:
        v = p.verdict
        how = "measured" if p.measured else "predicted"
        print(f"point {p.index}: {p.searched.name} {statistics.mean(p.searched_acc):.2f}% at "
              f"{p.searched_ms:.3f} ms vs {p.family.name} {statistics.mean(p.family_acc):.2f}% "
              f"at {p.family_ms:.3f} ms ({how}): {v.difference:+.2f} points (noise margin "
              f"{v.margin:.2f}), latency x{v.latency_ratio:.2f}: {VERDICTS[v.verdict]}")
        append(BENCHMARK, {
            "record": "point", "point": p.index, "searched": p.searched.name,
            "searched_arch": p.searched.arch.to_string(), "family": p.family.name,
            "family_arch": p.family.arch.to_string(),
            "searched_accuracy": list(p.searched_acc), "family_accuracy": list(p.family_acc),
            "searched_predicted_ms": p.searched.predicted_ms,
            "family_predicted_ms": p.family.predicted_ms,
            "searched_measured_ms": measured_ms.get(p.searched.name),
            "family_measured_ms": measured_ms.get(p.family.name), "speed_probe_ms": probe_ms,
            "difference_points": v.difference, "noise_margin_points": v.margin,
            "seed_std_points": seed_std, "seed_std_dof": dof, "latency_ratio": v.latency_ratio,
            "latency": "measured" if p.measured else "predicted", "verdict": v.verdict,
            "epochs": args.epochs, "seeds": args.seeds, "search_run": str(args.run),
            "target": record.target.describe()}, threads=args.threads, run=bench_run)
    won = sum(p.verdict.verdict in WINS for p in points)
    print(f"goal ({GOAL_POINTS} of {POINTS} points won by the searched network; "
          f"{len(plan.points)} points here): {'met' if won >= GOAL_POINTS else 'missed'}, "
          f"{won} won")
    out = args.run / FOLDER / bench_run / f"{BENCHMARK}.html"
    figure(points, seed_std, record.target.describe()).write_html(out, include_plotlyjs=True)
    print(f"plot: {out}")


def figure(points: Sequence[PointResult], seed_std: float, target: str) -> go.Figure:
    """Mean test accuracy (error bars: std over seeds) against latency, each point's pair
    joined by a dotted line."""
    fig = go.Figure()
    for kind, color, symbol in (("searched", "#d62728", "circle"), ("family", "#2ca02c", "star")):
        nets = [(p.searched, p.searched_acc, p.searched_ms) if kind == "searched" else
                (p.family, p.family_acc, p.family_ms) for p in points]
        fig.add_trace(go.Scatter(
            x=[ms for *_, ms in nets], y=[statistics.mean(a) for _, a, _ in nets],
            mode="markers+text", name="front members" if kind == "searched" else
            "MobileNetV3 family", text=[n.name for n, *_ in nets], textposition="top center",
            marker={"color": color, "size": 12, "symbol": symbol},
            error_y={"type": "data", "thickness": 1,
                     "array": [statistics.stdev(a) if len(a) > 1 else 0 for _, a, _ in nets]}))
    for p in points:
        fig.add_trace(go.Scatter(
            x=[p.searched_ms, p.family_ms],
            y=[statistics.mean(p.searched_acc), statistics.mean(p.family_acc)], mode="lines",
            line={"color": "#7f7f7f", "dash": "dot"}, showlegend=False, hoverinfo="skip"))
    measured = all(p.measured for p in points)
    xs = [ms for p in points for ms in (p.searched_ms, p.family_ms)]
    pad = 0.15 * (max(xs) - min(xs)) if xs else 0.0  # room for the names at the edges
    fig.update_xaxes(range=[min(xs) - pad, max(xs) + pad] if xs else None)
    fig.update_layout(
        title=f"front members vs the MobileNetV3 family after final training<br><sub>{target}; "
              f"seed noise {seed_std:.2f} points (pooled std over seeds)</sub>",
        xaxis_title=f"latency (ms, {'measured' if measured else 'predicted'})",
        yaxis_title="test accuracy (%), mean over seeds", template="plotly_white")
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished default search's folder")
    parser.add_argument("--plan", action="store_true",
                        help="print the networks and their predicted latencies; train nothing")
    parser.add_argument("--points", type=int, default=POINTS,
                        help="latency points (front members spread over its latency range)")
    parser.add_argument("--seeds", default="0,1", help="training seeds, at least 2")
    parser.add_argument("--epochs", type=int, default=FinalConfig().epochs,
                        help="final-training epochs of every network")
    parser.add_argument("--resume", metavar="START", help="continue the benchmark run that "
                        "started at START (its lines' 'run'): train only what it lacks")
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    parser.add_argument("--threads", type=int, default=1, help="threads of each training")
    parser.add_argument("--device", default=FinalConfig().train_device,
                        help="where to train (as nas train's --device)")
    for hidden in ("--name", "--kind", "--arch", "--bench-run"):  # a child's
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--trial", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--predicted-ms", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed is not None:
        train_one(args)
        return
    seeds = list(dict.fromkeys(args.seeds.split(",")))
    if len(seeds) < 2 or not all(s.lstrip("-").isdigit() for s in seeds):
        raise SystemExit(f"--seeds {args.seeds}: at least 2 distinct integer seeds, to measure "
                         "the seed noise")
    record, plan = make_plan(args.run, time_missing=not args.plan, points=args.points)
    print_plan(plan)
    if args.plan:
        print(f"--plan: nothing trained; a full run trains {len(plan.networks)} networks x "
              f"{len(seeds)} seeds for {args.epochs} epochs each")
        return
    bench_run = args.resume or now()
    _train_all(args, plan, seeds, bench_run)
    measured_ms, probe_ms = _measure(args.run, record, plan)
    _report(args, record, plan, seeds, bench_run, measured_ms, probe_ms)


if __name__ == "__main__":
    main()
