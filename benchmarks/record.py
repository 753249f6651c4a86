"""Benchmark results as data: JSON lines under ``benchmarks/results/``, committed with the code.

Every benchmark appends what it measured with `append`, one JSON object a line, to
``benchmarks/results/<benchmark>.jsonl``. Each line carries where and when it was measured, so
a figure quoted in ``docs/measurements.md`` can be checked without rerunning anything:

- ``commit``: ``git rev-parse HEAD``, with ``-dirty`` when tracked files differ from it (changes
  under ``benchmarks/results/`` do not count: a benchmark appending its own lines would
  otherwise mark every line after its first dirty);
- ``cpu``: the CPU's model name (``/proc/cpuinfo``), ``cores``: the cores this process may use;
- ``threads``: the threads the measurement ran with, as the benchmark says;
- ``date``: ISO 8601, UTC; ``load``: ``os.getloadavg()`` (1, 5 and 15 minutes) when written;
- ``run``: the start of the benchmark's run, shared by all its lines (``--resume RUN`` in the
  benchmarks that resume continues that run).

Lines transcribed from an older README carry ``source`` instead of coming from `append`.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from nas.latency.target import cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
PROVENANCE = ("commit", "cpu", "cores", "threads", "date", "load", "run")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                             check=True)
    except (OSError, subprocess.CalledProcessError):
        return ""
    return out.stdout.strip()


@cache
def commit() -> str:
    """This checkout's commit, ``-dirty`` when tracked files outside the results differ from it;
    ``not recorded`` outside a git checkout. Read once a process."""
    head = _git("rev-parse", "HEAD")
    if not head:
        return "not recorded"
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 ":(exclude)benchmarks/results")
    return head + ("-dirty" if dirty else "")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@cache
def run_id() -> str:
    """This process's run: the time it first asked, shared by every line it writes."""
    return now()


def load() -> list[float]:
    """The load average over 1, 5 and 15 minutes: how busy a shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def provenance(threads: int, run: str | None = None) -> dict[str, Any]:
    """Where and when: the fields every line starts with."""
    return {"commit": commit(), "cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "threads": threads, "date": now(), "load": load(), "run": run or run_id()}


def path_of(benchmark: str) -> Path:
    return RESULTS / f"{benchmark}.jsonl"


def append(benchmark: str, row: dict[str, Any], *, threads: int, run: str | None = None,
           path: Path | None = None) -> dict[str, Any]:
    """Append ``row`` with its provenance to ``benchmarks/results/<benchmark>.jsonl`` (or
    ``path``) and return the line written. ``threads``: the threads the figures ran with."""
    clash = set(row) & set(PROVENANCE)
    if clash:
        raise ValueError(f"row fields {sorted(clash)} are provenance fields")
    line = {**provenance(threads, run), "benchmark": benchmark, **row}
    out = path or path_of(benchmark)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(line) + "\n")
    return line


def read(benchmark: str, *, run: str | None = None, path: Path | None = None
         ) -> list[dict[str, Any]]:
    """The lines of ``benchmarks/results/<benchmark>.jsonl`` (or ``path``), those of ``run``
    only when given."""
    source = path or path_of(benchmark)
    if not source.is_file():
        return []
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    return [r for r in rows if run is None or r.get("run") == run]
