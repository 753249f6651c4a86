"""Command line: ``search`` (also ``run_search.py``), ``profile``, ``report``, ``export``.

Every error a user can cause ends in one line on stderr and exit code 2; Ctrl-C keeps what was
done (the study and the report) and exits 130.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_RESULTS = Path("results")
EXIT_USAGE, EXIT_INTERRUPTED = 2, 130


class UsageError(ValueError):
    """A bad flag value; the message says what is accepted."""


def parse_budget(text: str) -> float:
    """``20ms``, ``0.02s`` or ``20`` (ms) to milliseconds; refuses non-positive or unparsable."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)\s*(ms|s)?\s*", text, re.IGNORECASE)
    if m is None:
        raise UsageError(f"--latency-budget {text!r}: expected a positive time such as 20ms, "
                         "0.02s or 20 (ms)")
    value = float(m[1]) * (1000.0 if (m[2] or "ms").lower() == "s" else 1.0)
    if value <= 0:
        raise UsageError(f"--latency-budget {text!r}: the budget must be greater than zero")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                   help="latency target runtime (default: PyTorch eager, eval mode)")
    p.add_argument("--threads", type=_positive_int, default=1,
                   help="latency target threads (default 1)")
    p.add_argument("--latency-input-size", "--input-size", dest="input_size", type=_positive_int,
                   default=None, help="latency target resolution (default: the space's, 224)")
    p.add_argument("--space", default=None, help="search space file (default: MobileNetV3)")
    p.add_argument("--dataset", default="fashion-mnist", help="fashion-mnist or mnist")
    p.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search for accurate networks under a latency budget")
    s.add_argument("--latency-budget", required=True, help="e.g. 20ms, 0.02s or 20 (ms)")
    s.add_argument("--trials", type=_positive_int, default=30, help="trained candidates")
    s.add_argument("--epochs", type=_positive_int, default=2)
    s.add_argument("--train-samples", type=_positive_int, default=10_000)
    s.add_argument("--val-samples", type=_positive_int, default=5_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sampler", default="tpe", choices=["tpe", "nsga2", "random"])
    s.add_argument("--data-dir", default=None, help="folder of IDX files (default: Debian's)")
    s.add_argument("--run-name", default=None, help="default: derived from budget and seed")
    s.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in run)")
    s.add_argument("--lut", type=Path, default=None,
                   help="latency table built elsewhere (python -m nas profile)")
    _target_args(s)

    p = sub.add_parser("profile", help="build the latency table of a space on this machine")
    p.add_argument("--out", type=Path, default=None, help="table file (default: results/luts/)")
    p.add_argument("--rounds", type=_positive_int, default=15,
                   help="round-robin rounds over all layers (median across rounds is kept)")
    p.add_argument("--calibration-networks", type=_positive_int, default=20)
    p.add_argument("--in-channels", type=_positive_int, default=1)
    p.add_argument("--num-classes", type=_positive_int, default=10)
    _target_args(p)

    r = sub.add_parser("report", help="rewrite a run's report, or re-score it for another table")
    r.add_argument("run", type=Path)
    r.add_argument("--lut", type=Path, default=None, help="re-score with this table")
    r.add_argument("--latency-budget", default=None)

    e = sub.add_parser("export", help="export the best network under the budget")
    e.add_argument("run", type=Path)
    e.add_argument("--format", default="json,torchscript,onnx")
    e.add_argument("--out", type=Path, default=None, help="default: <run>/export")
    e.add_argument("--data-dir", default=None,
                   help="where the run's data set is now, for the test accuracy")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from nas.commands import COMMANDS, USER_ERRORS

    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted: results so far are saved; rerun the same command to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def search_main(argv: list[str] | None = None) -> int:
    """``run_search.py``: the ``search`` subcommand."""
    return main(["search", *(sys.argv[1:] if argv is None else argv)])


