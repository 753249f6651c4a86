"""Run search processes side by side for a fixed wall time, as a user's SIGTERM would end them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEARCH = [sys.executable, str(ROOT / "run_search.py")]


def run_for(commands: list[list[str]], seconds: float) -> float:
    """Start every command at once, SIGTERM those still running after ``seconds``, wait for all;
    each must end done (0) or stopped by the SIGTERM (143). Returns the wall seconds."""
    start = time.monotonic()
    procs = [subprocess.Popen(c, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for c in commands]
    while time.monotonic() - start < seconds and any(p.poll() is None for p in procs):
        time.sleep(1)
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for command, p in zip(commands, procs):
        err = p.communicate(timeout=600)[1]
        if p.returncode not in (0, 143):
            raise SystemExit(f"{' '.join(command)} ended with {p.returncode}: {err[-2000:]}")
    return time.monotonic() - start
