"""The default run, as `make search` runs it, timed end to end and recorded as data.

Runs ``run_search.py --latency-budget 20ms --workers auto`` (``--budget`` for another; other
flags go to the search) into ``--results-dir`` and times it. Then appends to
``benchmarks/results/default_run.jsonl`` the wall time, the run folder, per rung the candidates
trained and their median training seconds (``trials.csv``), the best network under the budget
(``best/arch.json``), the front's latencies measured on the target (``verified.json``) and the
run's ``summary.md`` as written. With ``--train`` it then runs ``nas train`` on the run with its
defaults (``--train-threads``: the threads to train with), times it, and appends ``final.json``
and the curve to ``benchmarks/results/nas_train.jsonl``. The run folder is kept, so the Pareto
plot of the documentation can be drawn from it.
Run: ``.venv/bin/python benchmarks/default_run.py [--train] [--budget 20ms] [flags]``; it takes
the whole default run (and a final training: hours on two cores), so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from record import append, path_of
from timed_runs import ROOT, SEARCH


def _rungs(trials_csv: Path) -> list[dict[str, float]]:
    """Per rung: candidates trained and their median training seconds."""
    with trials_csv.open() as f:
        trained = [r for r in csv.DictReader(f) if r["status"] == "trained"]
    rungs = sorted({int(r["rung"]) for r in trained})
    return [{"rung": rung, "epochs": float(next(r["epochs"] for r in trained
                                                 if int(r["rung"]) == rung)),
             "trained": sum(int(r["rung"]) == rung for r in trained),
             "median_train_s": statistics.median(float(r["train_seconds"]) for r in trained
                                                 if int(r["rung"]) == rung)}
            for rung in rungs]


def _read_json(path: Path) -> object:
    return json.loads(path.read_text()) if path.is_file() else None


def _newest_run(results: Path, since: float) -> Path:
    """The run folder whose summary the search just wrote."""
    runs = [p.parent for p in results.glob("*/summary.md") if p.stat().st_mtime >= since]
    if not runs:
        raise SystemExit(f"error: the search wrote no summary under {results}")
    return max(runs, key=lambda run: (run / "summary.md").stat().st_mtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="20ms")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "results")
    parser.add_argument("--train", action="store_true", help="then nas train the best network")
    parser.add_argument("--train-threads", type=int, default=os.cpu_count() or 1,
                        help="threads of the final training (default: one per core)")
    args, flags = parser.parse_known_args()
    command = [*SEARCH, "--latency-budget", args.budget, "--workers", "auto",
               "--results-dir", str(args.results_dir), *flags]
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.time() - start
    run = _newest_run(args.results_dir, start)
    summary = (run / "summary.md").read_text()
    line = append("default_run", {
        "record": "search", "command": " ".join(["run_search.py", *command[2:]]),
        "run_folder": run.name, "wall_s": wall, "rungs": _rungs(run / "trials.csv"),
        "best": _read_json(run / "best" / "arch.json"),
        "verified": _read_json(run / "verified.json"), "summary_md": summary},
        threads=os.cpu_count() or 1)
    print(f"default run: {wall:.0f} s, {run}; recorded in {path_of('default_run')} "
          f"(run {line['run']})")
    if not args.train:
        return
    start = time.time()
    subprocess.run([sys.executable, "-m", "nas", "train", str(run), "--train-threads",
                    str(args.train_threads)], cwd=ROOT, check=True)
    final = json.loads((run / "final" / "final.json").read_text())
    with (run / "final" / "curve.csv").open() as f:
        curve = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    append("nas_train", {"record": "final_training", "run_folder": run.name,
                         "wall_s": time.time() - start, **final, "curve": curve},
           threads=args.train_threads, run=line["run"])
    print(f"final training: test accuracy {100 * final['test_accuracy']:.2f}% in "
          f"{final['train_seconds']:.0f} s; recorded in {path_of('nas_train')}")


if __name__ == "__main__":
    main()
