"""Which final-training recipe reaches the anchors soonest (issue 27): one network trained by
`nas train`'s code with several recipes and seeds, its test accuracy after every epoch.

Each recipe is `nas.config.FINAL_RECIPE` with changes (``--recipe NAME=FIELD:VALUE,...``, fields
of `nas.config.TrainConfig`, ``epochs`` among them); by default the recipe before issue 27, the
shipped one, the shipped one without its crops, and the CIFAR-10 speed runs' changes against the
shipped recipe at 8 epochs (`DEFAULT_RECIPES`). Every training runs in a process of its own, ``--jobs``
at a time side by side with ``--threads`` each, on all 60,000 training images of the run's data
(its normalisation), from the run's best network (or ``--arch``); each training's folder
(weights, curve) stays under ``RUN/final-recipe/<benchmark start>/``. Appends one line per epoch and
one per training to ``benchmarks/results/final_recipe.jsonl`` and prints, per recipe, the final
test accuracy (mean and spread over seeds) and the training seconds to reach ``--target``.
Run: ``.venv/bin/python benchmarks/final_recipe.py results/<run> [--seeds 0,1] [--jobs 2]``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from changes import parse_changes
from nas.arch import Arch
from nas.commands.common import run_data
from nas.config import FINAL_RECIPE, FINAL_SEED_STD, FinalConfig
from nas.final import Training, all_training_images, train_final
from nas.pareto import means_margin
from nas.run import RunDir, RunRecord, load_best
from nas.train import use_threads
from record import append, now, read

# The recipe before issue 27 (30 epochs), the shipped one, the shipped one with each of its
# changes left out (the crops: the proxy's recipe at the shipped length) and the CIFAR-10 speed
# runs' changes on top of it, shortened to 8 epochs as they were first measured.
SPEED_RUN = "epochs:8,schedule:triangle,warmup_fraction:0.2,lr:0.2,weight_decay:5e-4,ema:0.999"
DEFAULT_RECIPES = ["old=epochs:30", f"shipped=epochs:{FinalConfig().epochs}",
                   f"shipped-without-crops=epochs:{FinalConfig().epochs},crop_padding:0",
                   "shipped-8=epochs:8", f"speed-run-8={SPEED_RUN}"]


def parse_recipe(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME=FIELD:VALUE,...`` as a name and `TrainConfig` changes (`changes.parse_changes`);
    a bad one exits with its one-line error."""
    try:
        name, parsed, _ = parse_changes(text, "--recipe")
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    return name, parsed


def seconds_to(curve: list[dict[str, float]], target: float) -> float | None:
    """Training seconds until the first epoch at or above ``target`` test accuracy."""
    spent = 0.0
    for point in curve:
        spent += point["seconds"]
        if point["test_accuracy"] >= target:
            return spent
    return None


def train_one(args: argparse.Namespace) -> None:
    """One training (the child process): the recipe, the seed, the curve appended."""
    name, changes = parse_recipe(args.recipe[0])
    record = RunRecord.load(RunDir(args.run))
    best = load_best(RunDir(args.run))[0]
    arch = Arch.from_string(args.arch) if args.arch else best.arch
    config = replace(FINAL_RECIPE, train_device="cpu", **changes)
    data = all_training_images(run_data(record, None, train_samples=None),
                               record.data_info.mean, record.data_info.std)
    threads = use_threads(args.threads)
    out = RunDir(args.run / "final-recipe" / args.bench_run / f"{name}-seed{args.seed[0]}")
    result = train_final(out, replace(best, arch=arch), data, record.model,
                         Training(arch, args.seed[0], config))
    curve = _curve(out)
    common = {"recipe": name, "changes": changes, "seed": args.seed[0],
              "arch": arch.to_string(), "search_run": str(args.run)}
    for point in curve:
        append("final_recipe", {**common, "record": "epoch", **point}, threads=threads,
               run=args.bench_run)
    append("final_recipe", {**common, "record": "training", "epochs": result.epochs,
                            "test_accuracy": result.test_accuracy,
                            "test_accuracy_mirror": result.test_accuracy_mirror,
                            "train_seconds": result.train_seconds,
                            "seconds_to_target": seconds_to(curve, args.target),
                            "target": args.target}, threads=threads, run=args.bench_run)


def _curve(run: RunDir) -> list[dict[str, float]]:
    with run.final_curve.open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished search's folder (its best network)")
    parser.add_argument("--arch", help="network to train (default: the run's best)")
    parser.add_argument("--recipe", action="append", help="NAME=FIELD:VALUE,... (repeatable)")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--seed", type=int, nargs=1, help=argparse.SUPPRESS)  # a child's
    parser.add_argument("--bench-run", help=argparse.SUPPRESS)
    parser.add_argument("--jobs", type=int, default=2, help="trainings side by side")
    parser.add_argument("--threads", type=int, default=1, help="threads of each training")
    parser.add_argument("--target", type=float, default=0.94, help="test accuracy to time")
    args = parser.parse_args()
    if args.seed is not None:
        train_one(args)
        return
    recipes = args.recipe or DEFAULT_RECIPES
    for text in recipes:
        parse_recipe(text)  # refuse a bad field before hours of training
    bench_run = now()
    jobs = [[sys.executable, __file__, str(args.run), "--recipe", text, "--seed", seed,
             "--bench-run", bench_run, "--threads", str(args.threads), "--target",
             str(args.target), *(["--arch", args.arch] if args.arch else [])]
            for text in recipes for seed in args.seeds.split(",")]
    running: list[subprocess.Popen[bytes]] = []
    for job in jobs:
        while len(running) >= args.jobs:
            running.pop(0).wait()
        running.append(subprocess.Popen(job))
    for process in running:
        process.wait()
    _report(bench_run, args.target)


def _report(bench_run: str, target: float) -> None:
    """Per recipe: test accuracy (single view; with the mirror image apart), its spread, the
    seconds to ``target``, and the difference to the shipped recipe against the seed noise of
    a final training (`nas.config.FINAL_SEED_STD`, `nas.pareto.means_margin`)."""
    done = [r for r in read("final_recipe", run=bench_run) if r["record"] == "training"]
    by_recipe = {name: [r for r in done if r["recipe"] == name]
                 for name in dict.fromkeys(r["recipe"] for r in done)}
    shipped = [100 * r["test_accuracy"] for r in by_recipe.get("shipped", [])]
    for name, rows in by_recipe.items():
        accuracy = [100 * r["test_accuracy"] for r in rows]
        mirror = [100 * r["test_accuracy_mirror"] for r in rows
                  if r.get("test_accuracy_mirror") is not None]
        reached = [r["seconds_to_target"] for r in rows if r["seconds_to_target"] is not None]
        spread = statistics.stdev(accuracy) if len(accuracy) > 1 else float("nan")
        line = (f"{name}: {statistics.mean(accuracy):.2f}% +- {spread:.2f} over {len(rows)} "
                f"seed(s)" + (f" ({statistics.mean(mirror):.2f}% scored with the mirror image "
                              "too)" if mirror else "")
                + f", {statistics.mean(r['train_seconds'] for r in rows):.0f} s; "
                f"{100 * target:.1f}% reached by {len(reached)} of {len(rows)}"
                + (f", after {statistics.mean(reached):.0f} s on average" if reached else ""))
        if shipped and name != "shipped":
            gap = statistics.mean(accuracy) - statistics.mean(shipped)
            margin = means_margin(FINAL_SEED_STD, len(accuracy), len(shipped))
            line += (f"; {gap:+.2f} points against the shipped recipe, "
                     f"{'beyond' if abs(gap) > margin else 'within'} seed noise "
                     f"({margin:.2f} points)")
        print(line)


if __name__ == "__main__":
    main()
