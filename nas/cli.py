"""Command line: ``search`` (or ``run_search.py``), ``profile``, ``report``, ``train``, ``export``.

Every error a user can cause (a `nas.errors.UserError`, or a bad flag) ends in one line on
stderr and exit code 2. Ctrl-C keeps what was done (the study and the report; the trial in
flight is closed as failed) and exits 130; SIGTERM does the same and exits 143.
Flags come from the config dataclasses (`nas.flags`), so their defaults and help live there.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import warnings
from pathlib import Path

from nas.config import DataConfig, FinalConfig, ProfileConfig, SearchConfig, TrainConfig
from nas.errors import UserError
from nas.export import FORMATS
from nas.flags import add_flags, budget_ms, comma_list
from nas.latency.target import Target
from nas.model import ModelConfig
from nas.workers import AUTO_MAX, worker_count

EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143
COMMANDS = ("search", "profile", "report", "train", "export")  # nas.commands.<name> runs each


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"error: {self.prog}: {message} (see --help)\n")


def _space_and_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default=None,
                   help="search space: a file, or the name of a shipped space (default: "
                        "mobilenetv3)")
    add_flags(p, Target, defaults={"input_size": None, "cores": None})
    p.add_argument("--results-dir", type=Path, default=Path("results"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    s = sub.add_parser("search", help="search for accurate networks under a latency budget")
    add_flags(s, SearchConfig)
    add_flags(s, TrainConfig)
    add_flags(s, DataConfig)
    s.add_argument("--run-name", default=None, help="default: derived from budget and seed")
    s.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in run)")
    s.add_argument("--lut", type=Path, default=None,
                   help="latency table built elsewhere (python -m nas profile)")
    s.add_argument("--workers", type=worker_count, default=1,
                   help="worker processes sharing the study, this one and helpers it starts "
                        "(logs in <run>/worker-K.log); 'auto': one per GPU when training on "
                        f"CUDA, else one per core (up to {AUTO_MAX}), or per --train-threads "
                        "cores. Training threads default to each worker's share of the cores; "
                        "with several GPUs the workers take one each in turn. With more than "
                        "one, the candidates depend on the order workers finish in (default: 1)")
    s.add_argument("--helper", action="store_true", help=argparse.SUPPRESS)  # nas.workers
    _space_and_target(s)

    p = sub.add_parser("profile", help="build the latency table of a space on this machine")
    p.add_argument("--out", type=Path, default=None, help="table file (default: results/luts/)")
    add_flags(p, ProfileConfig)
    add_flags(p, ModelConfig)
    _space_and_target(p)

    r = sub.add_parser("report", help="rewrite a run's report, or re-score it for another table "
                                      "or budget (written beside the run's own)")
    r.add_argument("run", type=Path)
    r.add_argument("--lut", type=Path, default=None, help="re-score with this table")
    r.add_argument("--latency-budget", type=budget_ms, default=None,
                   help="re-score for this budget")

    t = sub.add_parser("train", help="train a front member (default: the best under the budget) "
                                     "from scratch on all training images into <run>/final/; "
                                     "rerun to resume")
    t.add_argument("run", type=Path)
    add_flags(t, FinalConfig)
    t.add_argument("--data-dir", default=None, help="where the run's data set is now")

    e = sub.add_parser("export", help="export the best network under the budget, with its final "
                                      "weights when `train` made them")
    e.add_argument("run", type=Path)
    e.add_argument("--format", type=comma_list(FORMATS), default=FORMATS,
                   help=f"comma-separated, of {','.join(FORMATS)} (default: all)")
    e.add_argument("--out", type=Path, default=None, help="default: <run>/export")
    e.add_argument("--data-dir", default=None,
                   help="where the run's data set is now, for the test accuracy")
    return parser


def configure_process() -> None:
    """Process-wide logging and warning settings, once, for every command (by logger name and
    message, so ``profile`` still runs where only torch is installed)."""
    warnings.filterwarnings("ignore", message=r".*is an experimental feature")  # Optuna's
    # The search records trials' heartbeats itself (`nas.storage`), without Study.optimize.
    warnings.filterwarnings("ignore", message=r"Heartbeat of storage is supposed to be used")
    logging.getLogger("fvcore.nn.jit_handles").setLevel(logging.ERROR)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so it unwinds like Ctrl-C does."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # as given: helper workers (nas.workers) rerun it
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        configure_process()
        return importlib.import_module(f"nas.commands.{args.command}").run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, Terminated) as exc:
        print(f"\n{'terminated' if isinstance(exc, Terminated) else 'interrupted'}: results so "
              "far are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGTERM, previous)


def search_main(argv: list[str] | None = None) -> int:
    """``run_search.py``: the ``search`` subcommand."""
    return main(["search", *(sys.argv[1:] if argv is None else argv)])
