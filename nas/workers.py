"""Several workers from one command: ``nas search --workers N`` starts N - 1 helper processes.

A helper is the same command with ``--helper``: it trains candidates of the same study (the run
folder's SQLite file or the ``--storage`` server) and writes reports like any worker, but leaves
the latency table, the references, the verification on the target and the summary to the
process that started it, which does them while no helper runs, since a helper's training would
disturb the timing. Each helper writes its output to ``<run>/worker-<k>.log``.

On a small CPU, processes beat threads: on the development VM two single-thread workers trained
1.31x the candidates per hour of one two-thread worker (``benchmarks/results/workers.jsonl``), since
the small maps of a 28 px network give a second thread little to share.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from nas.bundle_timer import usable_cores

AUTO_MAX = 8  # `--workers auto` starts at most this many: each holds torch and the data
STOP_WAIT_S = 60.0  # how long a stopped helper may take to close its trial before it is killed


def worker_count(text: str) -> int | None:
    """``auto`` (None) or a positive number of worker processes (a flag's type)."""
    if text == "auto":
        return None
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive number of workers, "
                                         f"got {text!r}")
    return count


def plan(workers: int | None, train_threads: int | None, cores: int) -> tuple[int, int | None]:
    """(worker processes, training threads each) on ``cores`` cores: ``auto`` (None) is one
    worker per ``train_threads`` cores (default 1) up to `AUTO_MAX`; unset threads are the
    workers' share of the cores, or torch's default (one per core) for a single worker."""
    cores = max(1, cores)
    if workers is None:
        workers = min(AUTO_MAX, max(1, cores // (train_threads or 1)))
    if train_threads is None and workers > 1:
        train_threads = max(1, cores // workers)
    return workers, train_threads


def usable_core_count() -> int:
    """The cores this process may run on (all of the machine's where it cannot tell)."""
    return len(usable_cores()) or os.cpu_count() or 1


@dataclass
class Helper:
    number: int  # 2, 3, ...: worker 1 is the process that started them
    process: subprocess.Popen[bytes]
    log: Path


class Helpers:
    """The helper processes of one search: started together, waited for or stopped together."""

    def __init__(self, helpers: list[Helper]) -> None:
        self.helpers = helpers

    @classmethod
    def start(cls, argv: list[str], count: int, log_dir: Path) -> Helpers:
        """Start ``count`` helpers running ``python -m nas <argv> --helper``."""
        helpers = []
        for number in range(2, count + 2):
            log = log_dir / f"worker-{number}.log"
            with log.open("wb") as out:
                process = subprocess.Popen([sys.executable, "-m", "nas", *argv, "--helper"],
                                           stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT)
            helpers.append(Helper(number, process, log))
        return cls(helpers)

    def wait(self) -> list[str]:
        """Wait for every helper to end; one line for each that failed."""
        problems = []
        for helper in self.helpers:
            code = helper.process.wait()
            if code != 0:
                problems.append(f"worker {helper.number} stopped with exit status {code}: "
                                f"{_last_line(helper.log)} (log: {helper.log})")
        return problems

    def stop(self) -> None:
        """Ask every helper still running to stop (SIGTERM: it closes its trial as interrupted),
        and kill the ones that have not after `STOP_WAIT_S`."""
        running = [h.process for h in self.helpers if h.process.poll() is None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _last_line(log: Path) -> str:
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except OSError:
        return "(no log)"
    return next((line for line in reversed(lines) if line), "(empty log)")
