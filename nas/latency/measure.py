"""Timing modules on a target: warm-up, repeats, median and spread, round-robin.

Three things make timings on a shared CPU repeatable (figures: docs/measurements.md):

- A steady-state allocator (`nas.latency.target.MALLOPT`). By default glibc serves large blocks
  with fresh ``mmap`` pages and hands freed memory back to the kernel, so one forward pass of a
  224 px network took about 1,700 minor page faults, and how many depended on the allocator's
  history: the same networks timed twice in one process differed by up to 32%, and the calibrated
  table predicted held-out networks with MAPE 8%. With freed memory kept for reuse there are no
  faults, two measurements agree within 5%, and the MAPE is under 2%. A serving process reaches
  the same steady state; docs/how-it-works.md says how to set it for a deployment.
- Pinned cores (`pinned`). The cores of one machine need not run at one speed (a phone's big and
  little cores; on the development VM one network took 3.0 ms pinned to core 0 and 4.4 ms pinned
  to core 1, three times each, alternating), so an unpinned process times whichever core the
  scheduler gives it. Timing pins the whole process to the target's cores (and gives it back its
  cores after), as benchmarking tools on phones pin to one core class. On a shared VM a core's
  own speed also drifts over minutes (docs/measurements.md), which pinning cannot undo.
- Round-robin order (`time_round_robin`): a whole set is timed in rounds, each round visiting
  every item for a few runs, and the median across rounds is kept, so a burst of load from
  another tenant touches every item alike instead of a few items entirely.

`build_runner` is the one place a module becomes a timed callable on a target: it applies the
target's allocator setting to the process (once), then ``torchscript`` traces the module to
TorchScript in memory, as the export ships it, ``torch`` runs PyTorch eager, both in eval mode
under ``inference_mode``, and ``onnxruntime`` exports the module to ONNX in memory and runs it
on ORT's CPU provider with the target's thread count. The code that applies the allocator's
settings and both runners come from `nas.bundle_timer`, the script an export ships beside the
model, so a bundle is timed the way its table was (`Target.runtime_settings` describes them for
the model card).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from nas.errors import UserError
from nas.latency.target import MALLOPT, Target
from nas.onnx_io import load_torchscript, to_onnx, to_torchscript
from nas.bundle_timer import (apply_mallopt, cores_text, median_and_iqr, onnxruntime_runner,
                              pin_process, torch_runner, usable_cores)

Runner = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    median_ms: float
    spread_ms: float  # interquartile range of the repeats
    count: int  # how many rounds the median is taken across

    def to_dict(self) -> dict[str, float | int]:
        return {"median_ms": self.median_ms, "spread_ms": self.spread_ms, "count": self.count}


def summarize(samples_ms: list[float]) -> Timing:
    """Median and interquartile range of repeated timings."""
    median, spread = median_and_iqr(samples_ms)
    return Timing(median, spread, len(samples_ms))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the body with ``threads`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def pinned(cores: Sequence[int]) -> Iterator[None]:
    """Run the body with the whole process on ``cores`` (as it is when there are none), then
    give it back the cores it had."""
    if not cores:
        yield
        return
    usable = usable_cores()
    if not set(cores) <= set(usable):
        raise UserError(f"the latency target runs on core(s) {cores_text(cores)}, but this "
                        f"process may use only {cores_text(usable) or 'unpinned cores'}; pass "
                        "--latency-cores with some of those (a table of its own)")
    pin_process(cores)
    try:
        yield
    finally:
        pin_process(usable)


_allocator_in_use: str | None = None


def use_allocator(setting: str) -> None:
    """Apply the target's allocator setting to this process; once, since it cannot be undone."""
    global _allocator_in_use
    if setting == _allocator_in_use:
        return
    if _allocator_in_use is not None:
        raise UserError(f"this process already times with the {_allocator_in_use!r} allocator; "
                        f"time the {setting!r} target in a process of its own")
    if MALLOPT[setting] and not apply_mallopt(MALLOPT[setting]):
        raise UserError("this C library has no mallopt, so the steady allocator cannot be set; "
                        "use --allocator system")
    _allocator_in_use = setting


def _torch_runner(module: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    """Eager eval-mode forward; time it inside ``torch_threads(threads)``."""
    return torch_runner(module, x)


def _torchscript_runner(module: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    """The module as `nas export` ships it (traced, saved, loaded back), run as eager is."""
    return torch_runner(load_torchscript(to_torchscript(module, x)), x)


def _onnxruntime_runner(module: nn.Module, x: torch.Tensor, threads: int) -> Runner:
    return onnxruntime_runner(to_onnx(module, x), x, threads)


# One runner for each of `nas.latency.target.BACKENDS`.
_RUNNERS = {"torchscript": _torchscript_runner, "torch": _torch_runner,
            "onnxruntime": _onnxruntime_runner}


def build_runner(target: Target, module: nn.Module, in_channels: int, size: int) -> Runner:
    """A callable that runs one inference of ``module`` on a batch of the target's size."""
    use_allocator(target.allocator)
    x = torch.randn(target.batch, in_channels, size, size,
                    generator=torch.Generator().manual_seed(0))
    return _RUNNERS[target.backend](module, x, target.threads)


def time_round_robin(runners: Sequence[Runner], *, threads: int, cores: Sequence[int] = (),
                     warmup: int = 5, rounds: int = 15, runs: int = 3,
                     on_round: Callable[[int], None] | None = None) -> list[Timing]:
    """Median across ``rounds`` of each runner's median of ``runs`` calls, visited in turn, on
    ``threads`` threads pinned to ``cores`` (none: unpinned).

    The spread is the interquartile range across rounds; the count is the number of rounds.
    """
    if rounds < 2 or runs < 1:
        raise ValueError("round-robin timing needs at least 2 rounds of at least 1 run")
    per_round: list[list[float]] = [[] for _ in runners]
    with torch_threads(threads), pinned(cores):
        for run in runners:
            for _ in range(warmup):
                run()
        for r in range(rounds):
            for samples, run in zip(per_round, runners, strict=True):
                run()  # one untimed call: the previous item evicted this one's caches
                times = []
                for _ in range(runs):
                    t0 = time.perf_counter()
                    run()
                    times.append((time.perf_counter() - t0) * 1e3)
                samples.append(statistics.median(times))
            if on_round is not None:
                on_round(r)
    return [summarize(samples) for samples in per_round]
