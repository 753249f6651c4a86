"""Several workers from one command: ``nas search --workers N`` starts N - 1 helper processes.

A helper is the same command with ``--helper``: it trains candidates of the same study (the run
folder's SQLite file or the ``--storage`` server) and writes reports like any worker, but leaves
the latency table, the references, the verification on the target and the summary to the
process that started it, which does them while no helper runs, since a helper's training would
disturb the timing. Each helper writes its output to ``<run>/worker-<k>.log``.

On a small CPU, processes beat threads: on the development VM two single-thread workers trained
1.31x the candidates per hour of one two-thread worker (``benchmarks/results/workers.jsonl``), since
the small maps of a 28 px network give a second thread little to share.

On a machine with several GPUs the workers take one each, in turn: helper k runs with
``CUDA_VISIBLE_DEVICES`` naming GPU k - 1 of the ones this process sees (`helper_gpus`), so its
``cuda`` is that GPU, and the starting process trains on the first. (A helper training on the
CPU ignores the variable.) `plan` makes ``--workers auto`` one worker per GPU there.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nas.bundle_timer import usable_cores
from nas.errors import UsageError

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


def plan(workers: int | None, train_threads: int | None, cores: int, *, device: str = "cpu",
         gpus: int = 0) -> tuple[int, int | None]:
    """(worker processes, training threads each) on ``cores`` cores and ``gpus`` CUDA devices,
    for ``--device`` ``device`` (as given, not resolved). ``auto`` (None) is, when training on
    CUDA, one worker per GPU the workers take in turn (``auto`` or ``cuda``: all ``gpus``;
    ``cuda:N``: that one), else one per ``train_threads`` cores (default 1) up to `AUTO_MAX`;
    unset threads are the workers' share of the cores, or torch's default (one per core) for a
    single worker. Several workers on one named GPU of several are refused in one line: the
    workers would take the GPUs in turn (`helper_gpus`)."""
    cores = max(1, cores)
    named = device.startswith("cuda:")
    on_gpus = gpus if device in ("auto", "cuda") else int(named and gpus > 0)
    if workers is None:
        workers = on_gpus or min(AUTO_MAX, max(1, cores // (train_threads or 1)))
    if named and workers > 1 and gpus > 1:
        raise UsageError(f"--device {device} with {workers} workers: on a machine with several "
                         "GPUs the workers take one each in turn; pass --device cuda, or "
                         "--workers 1, or keep them to one GPU with CUDA_VISIBLE_DEVICES")
    if train_threads is None and workers > 1:
        train_threads = max(1, cores // workers)
    return workers, train_threads


def helper_gpus(helpers: int, visible: Sequence[str]) -> list[str | None]:
    """The ``CUDA_VISIBLE_DEVICES`` of helper 2, 3, ... among the ``visible`` GPUs (as that
    variable names them): GPU k - 1 for helper k, in turn; None (inherit this process's) where
    there are fewer than two, whose one GPU every worker shares."""
    if len(visible) < 2:
        return [None] * helpers
    return [visible[k % len(visible)] for k in range(1, helpers + 1)]


def visible_gpus() -> tuple[str, ...]:
    """The CUDA devices this process sees, named as ``CUDA_VISIBLE_DEVICES`` names them (its
    entries when it is set, else their indices); none without CUDA."""
    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    names = ([name.strip() for name in listed.split(",")] if listed is not None
             else [str(i) for i in range(count)])
    return tuple(names[:count])


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
        """Start ``count`` helpers running ``python -m nas <argv> --helper``, each pinned to
        its GPU (`helper_gpus`) where this process sees several."""
        helpers = []
        for number, gpu in enumerate(helper_gpus(count, visible_gpus()), start=2):
            log = log_dir / f"worker-{number}.log"
            env = None if gpu is None else {**os.environ, "CUDA_VISIBLE_DEVICES": gpu}
            with log.open("wb") as out:
                process = subprocess.Popen([sys.executable, "-m", "nas", *argv, "--helper"],
                                           stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, env=env)
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
