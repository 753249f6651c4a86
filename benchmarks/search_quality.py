"""Does successive halving pay? TPE with a cheap rung (``--rung-epochs 0.125``; the default
search until 2026-11-30, single fidelity since) against random search with one fidelity, at the
same wall time, over several seeds. Lines before that date call the halving arm ``default``.

For each seed, the two arms run side by side (one training thread each, so they share the
machine alike, and a slower moment of a shared machine hits both) for ``--minutes``, and are
then stopped with SIGTERM as a user would stop them (without reference networks, which a search
trains first). Each arm's front is read from its study:
candidates trained at its top rung (the default proxy) within the budget. Prints,
per arm, the hypervolume of that front (reference: accuracy ``--ref-accuracy``, latency the
budget), how many candidates it evaluated (trainings at any rung) and sampled, and the best
accuracy; then the mean and std per arm and the exact Mann-Whitney U p-value of the
hypervolumes. The budget is the median predicted latency of 500 uniform samples of the space
on the table built first (untimed), so about half the space is over it, unless ``--budget``.

Each seed's results are appended to ``benchmarks/results/search_quality.jsonl`` as it finishes,
tagged with the run (printed at the start), then the run's figures; ``--resume RUN`` continues an
interrupted run with its budget, running only the seeds it lacks.
Run: ``.venv/bin/python benchmarks/search_quality.py [--minutes 6 --seeds 5] [--resume RUN]``;
other flags (``--train-samples 5000``) go to both arms.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from nas.budget import BudgetRule
from nas.latency.predict import LatencyModel
from nas.latency.table import LatencyTable
from nas.latency.target import cpu_model
from nas.pareto import hypervolume
from nas.report import front_info, trials_frame
from nas.run import RunDir, RunRecord
from nas.search import open_study
from nas.space import DEFAULT_SPACE, load_space, random_archs
from rank_stats import mann_whitney_u
from record import append, read, run_id
from timed_runs import ROOT, SEARCH, run_for

ARMS = {"halving": ["--rung-epochs", "0.125"],  # TPE, a cheap rung of 5,000 images
        "random": ["--sampler", "random", "--rung-epochs", "none"]}


def median_budget(table_path: Path, samples: int = 500) -> float:
    """The median predicted latency of ``samples`` uniform architectures of the default space."""
    space = load_space(DEFAULT_SPACE)
    model = LatencyModel(LatencyTable.load(table_path, space=space.name), 1, 10)
    return statistics.median(model.predict(a).latency_ms for a in random_archs(space, samples, 0))


def arm_result(run: RunDir, name: str, budget_ms: float, ref_accuracy: float) -> dict:
    """What one arm reached: its top-rung front's hypervolume, its counts, its best."""
    record = RunRecord.load(run)
    frame = trials_frame(open_study(record.storage, name).trials)
    info = front_info(frame, BudgetRule(budget_ms), seed_std=0.0,
                      rungs=record.search.rungs(record.train.epochs))
    points = list(zip(info.front["accuracy"], info.front["latency_ms"]))
    return {"hypervolume": hypervolume(points, ref_accuracy, budget_ms),
            "evaluated": sum(info.per_rung), "top_rung": info.trained,
            "within_budget": info.within_budget, "sampled": info.sampled,
            "best": None if info.best is None else float(info.best["accuracy"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="wall time of each pair")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=None, help="ms; default: the median")
    parser.add_argument("--ref-accuracy", type=float, default=0.80,
                        help="hypervolume reference accuracy (a floor every arm clears)")
    parser.add_argument("--resume", metavar="RUN", help="continue this run (its first line's "
                        "'run' field) instead of starting a new one")
    args, flags = parser.parse_known_args()
    run = args.resume or run_id()
    done = [r for r in read("search_quality", run=run) if r.get("record") == "seed"]
    if args.resume and not done:
        raise SystemExit(f"error: no seed of run {run} in benchmarks/results/")
    with tempfile.TemporaryDirectory(prefix="nas-quality-") as folder:
        results = Path(folder)
        table = results / "table.json"
        subprocess.run([sys.executable, "-m", "nas", "profile", "--out", str(table)], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        budget = args.budget or (done[0]["budget_ms"] if done else median_budget(table))
        print(f"{cpu_model()}, {os.cpu_count()} cores, {platform.python_version()}; budget "
              f"{budget:.2f} ms, {args.minutes:g} min per pair, one training thread per arm, "
              f"flags {flags or 'default'}; run {run}", flush=True)
        for seed in range(args.seeds):
            if any(row["seed"] == seed for row in done):
                continue
            commands = [[*SEARCH, "--latency-budget", f"{budget}ms", "--lut", str(table),
                         "--trials", "1000000", "--train-threads", "1", "--seed", str(seed),
                         "--results-dir", str(results), "--run-name", f"{arm}-{seed}",
                         "--references", "none", *extra, *flags] for arm, extra in ARMS.items()]
            wall = run_for(commands, 60 * args.minutes)
            row = append("search_quality", {
                "record": "seed", "seed": seed, "budget_ms": budget, "minutes": args.minutes,
                "wall_s": wall, "flags": flags,
                **{arm: arm_result(RunDir(results / f"{arm}-{seed}"), f"{arm}-{seed}", budget,
                                   args.ref_accuracy) for arm in ARMS}}, threads=1, run=run)
            done.append(row)
            print(f"seed {seed}: " + "; ".join(
                f"{arm} hypervolume {row[arm]['hypervolume']:.4f}, {row[arm]['evaluated']} "
                f"evaluated" for arm in ARMS), flush=True)
    summary: dict[str, object] = {"record": "summary", "seeds": len(done), "budget_ms": budget,
                                  "minutes": args.minutes, "flags": flags}
    for arm in ARMS:
        hv = [row[arm]["hypervolume"] for row in done]
        evaluated = [row[arm]["evaluated"] for row in done]
        best = [100 * row[arm]["best"] for row in done if row[arm]["best"] is not None]
        spread = statistics.stdev(hv) if len(hv) > 1 else 0.0
        print(f"{arm}: hypervolume {statistics.mean(hv):.4f} +- {spread:.4f} "
              f"over {len(hv)} seeds; evaluated {statistics.mean(evaluated):.1f} candidates a "
              f"run, {statistics.mean(row[arm]['top_rung'] for row in done):.1f} at the top "
              f"rung; best {statistics.mean(best) if best else float('nan'):.2f}%")
        summary[arm] = {"hypervolume_mean": statistics.mean(hv), "hypervolume_std": spread,
                        "evaluated_mean": statistics.mean(evaluated),
                        "best_mean": statistics.mean(best) / 100 if best else None}
    u, p = mann_whitney_u([row["halving"]["hypervolume"] for row in done],
                          [row["random"]["hypervolume"] for row in done])
    ratio = statistics.mean(row["halving"]["evaluated"] / max(1, row["random"]["evaluated"])
                            for row in done)
    print(f"Mann-Whitney U (halving vs random hypervolume) = {u:g}, two-sided exact p = {p:.3f};"
          f" halving evaluates {ratio:.2f}x the candidates of random at the same wall time")
    append("search_quality", {**summary, "mann_whitney_u": u, "p_two_sided": p,
                              "evaluated_ratio": ratio}, threads=1, run=run)


if __name__ == "__main__":
    main()
