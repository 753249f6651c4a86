"""Candidates per hour: N search workers x 1 training thread vs 1 worker x N threads.

Builds the latency table first (outside the timed windows), then, for each layout, starts the
workers (``run_search.py`` with one shared SQLite run folder, ``--train-threads``), stops them
with SIGTERM after the same wall time, and counts the candidates they trained in it. The window
starts when the processes start, so both layouts pay their start-up (imports, data) in it, and
the candidate each worker has in flight at the end is lost (one per worker: this favours one
worker in short windows), so it also prints the steady rate, workers / median training seconds.
Prints one line per layout and the machine's load average, since a shared machine's other work
moves the figures, and appends each layout and the ratio to ``benchmarks/results/workers.jsonl``.
Run: ``.venv/bin/python benchmarks/workers.py [--minutes 3] [--data-dir DIR]``; other flags
(``--epochs 1``, ``--train-samples 2000``) go to every worker.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from nas.run import RunDir, RunRecord
from nas.search import SECONDS, STATUS, Status, open_study
from record import append, load
from timed_runs import ROOT, SEARCH, run_for


def _layout(workers: int, threads: int, seconds: float, flags: list[str],
            results: Path) -> dict[str, float]:
    """Run ``workers`` workers of ``threads`` threads for ``seconds``; what they trained."""
    name = f"{workers}x{threads}"
    command = [*SEARCH, *flags, "--results-dir",
               str(results), "--run-name", name, "--trials", "1000000", "--train-threads",
               str(threads)]
    wall = run_for([command] * workers, seconds)
    run = RunDir(results / name)
    trials = open_study(RunRecord.load(run).storage, name).trials
    trained = [t for t in trials if t.user_attrs.get(STATUS) == Status.TRAINED]
    median = (statistics.median(t.user_attrs[SECONDS] for t in trained) if trained
              else float("nan"))
    return {"workers": workers, "train_threads": threads, "wall_s": wall,
            "trained": len(trained), "per_hour": 3600 * len(trained) / wall,
            "median_train_s": median, "steady_per_hour": 3600 * workers / median}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="wall time of each layout")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 1,
                        help="N: workers of the first layout, threads of the second")
    parser.add_argument("--budget", default="20ms")
    args, flags = parser.parse_known_args()
    # One fidelity: every candidate is one whole proxy training (2 epochs by default).
    # No reference networks: a search trains them before its candidates.
    flags = ["--latency-budget", args.budget, "--rung-epochs", "none", "--references", "none",
             *flags]
    with tempfile.TemporaryDirectory(prefix="nas-workers-") as folder:
        results = Path(folder)
        print(f"building the latency table (not timed); load average {load()[0]:.2f}",
              flush=True)
        subprocess.run([sys.executable, "-m", "nas", "profile", "--results-dir", str(results)],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = []
        for workers, threads in ((args.cores, 1), (1, args.cores)):
            before = load()[0]
            row = _layout(workers, threads, 60 * args.minutes, flags, results)
            rows.append(row)
            after = load()[0]
            print(f"{workers} worker(s) x {threads} training thread(s): {row['trained']} "
                  f"candidates in {row['wall_s']:.0f} s = {row['per_hour']:.0f} per hour "
                  f"(median training {row['median_train_s']:.1f} s a candidate, steady "
                  f"{row['steady_per_hour']:.0f} per hour; load average "
                  f"{before:.2f} before, {after:.2f} after)", flush=True)
            append("workers", {"record": "layout", **row, "minutes": args.minutes,
                               "flags": flags, "load_before": before}, threads=threads)
    if rows[1]["per_hour"]:
        window = rows[0]["per_hour"] / rows[1]["per_hour"]
        steady = rows[0]["steady_per_hour"] / rows[1]["steady_per_hour"]
        print(f"{rows[0]['workers']} x 1 trains {window:.2f}x the candidates per hour of "
              f"1 x {rows[1]['train_threads']} in the window, {steady:.2f}x steady")
        layouts = [f"{r['workers']}x{r['train_threads']}" for r in rows]
        append("workers", {"record": "ratio", "layouts": layouts, "per_hour_ratio": window,
                           "steady_ratio": steady, "minutes": args.minutes}, threads=args.cores)


if __name__ == "__main__":
    main()
