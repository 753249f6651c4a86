"""How long a space's latency table takes to build on this machine (issue 28: a widened space's
table must build in at most 5 minutes), each space side by side in one run.

Runs ``python -m nas profile --space NAME --out TMP`` once per space (``--spaces``, default
today's default space and the widened one), each in a fresh process, one after the other, and
appends to ``benchmarks/results/table_build.jsonl`` per space the wall seconds, the layers the
table holds and the line ``nas profile`` printed (calibration and held-out check). Prints the
seconds per space and their ratio to the first.
Run: ``.venv/bin/python benchmarks/table_build.py [--spaces A,B]`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from record import ROOT, append, now

DEFAULT_SPACES = "mobilenetv3-28px-s1,mobilenetv3-28px-wide"


def build(space: str, out: Path) -> tuple[float, int, str]:
    """Wall seconds, layers and the last printed line of one ``nas profile`` of ``space``."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nas", "profile", "--space", space,
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"error: nas profile --space {space} failed: {done.stderr.strip()}")
    layers = len(json.loads(out.read_text())["entries"])
    return seconds, layers, done.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default=DEFAULT_SPACES, help="comma-separated space names")
    args = parser.parse_args()
    run, first = now(), None
    with tempfile.TemporaryDirectory() as tmp:
        for space in args.spaces.split(","):
            seconds, layers, said = build(space, Path(tmp) / f"{space}.json")
            first = first or seconds
            append("table_build", {"space": space, "seconds": seconds, "layers": layers,
                                   "printed": said}, threads=1, run=run)
            print(f"{space}: {layers} layers in {seconds:.0f} s ({seconds / first:.2f}x the "
                  "first)")


if __name__ == "__main__":
    main()
