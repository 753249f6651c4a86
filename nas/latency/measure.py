"""Timing modules on a target: warm-up, repeats, median and spread, round-robin.

Two things make timings on a shared CPU repeatable (figures from the development VM, README):

- A steady-state allocator (`steady_state_allocator`). By default glibc serves large blocks with
  fresh ``mmap`` pages and hands freed memory back to the kernel, so one forward pass of a 224 px
  network took about 1,700 minor page faults, and how many depended on the allocator's history:
  the same networks timed twice in one process differed by up to 32%, and the calibrated table
  predicted held-out networks with MAPE 8%. With freed memory kept for reuse there are no faults,
  two measurements agree within 5%, and the MAPE is under 2%. A serving process reaches the same
  steady state; the README says how to set it for a deployment.
- Round-robin order (`time_round_robin`): a whole set is timed in rounds, each round visiting
  every item for a few runs, and the median across rounds is kept, so a burst of load from
  another tenant touches every item alike instead of a few items entirely.

Backends are a dict of runner factories: each turns (module, input shape, threads) into a
no-argument callable that runs one inference. ``torch`` is PyTorch eager in eval mode under
``inference_mode``; ``onnxruntime`` exports the module to ONNX in memory and runs it on ORT's CPU
provider with the same thread count.
"""

from __future__ import annotations

import ctypes
import io
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

Runner = Callable[[], object]
RunnerFactory = Callable[[nn.Module, tuple[int, ...], int], Runner]


@dataclass(frozen=True)
class Timing:
    median_ms: float
    spread_ms: float  # interquartile range of the repeats
    count: int  # how many timed repeats

    def to_dict(self) -> dict[str, float | int]:
        return {"median_ms": self.median_ms, "spread_ms": self.spread_ms, "count": self.count}


def summarize(samples_ms: list[float]) -> Timing:
    """Median and interquartile range of repeated timings."""
    if len(samples_ms) < 2:
        raise ValueError("need at least two timings to summarize")
    q1, _, q3 = statistics.quantiles(samples_ms, n=4, method="inclusive")
    return Timing(statistics.median(samples_ms), q3 - q1, len(samples_ms))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the body with ``threads`` intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# glibc's mallopt parameters, from <malloc.h>.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_BYTES = 32 << 20  # blocks up to 32 MiB (glibc's ceiling on 64-bit) come from the heap
_TRIM_BYTES = 1 << 30  # up to 1 GiB of free heap is kept, not handed back


def steady_state_allocator() -> bool:
    """Make glibc keep freed memory for reuse, process-wide, so a forward pass never page-faults.

    Returns False where the C library has no ``mallopt`` (not glibc): timing then runs with the
    platform's allocator as it is.
    """
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_BYTES))


def _torch_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    """Eager eval-mode forward; time it inside ``torch_threads(threads)``."""
    module = module.eval()
    x = torch.randn(shape)

    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


def _onnxruntime_runner(module: nn.Module, shape: tuple[int, ...], threads: int) -> Runner:
    import numpy as np
    import onnxruntime as ort

    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (torch.randn(shape),), buffer, input_names=["x"],
                      dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    return lambda: session.run(None, {"x": x})


RUNNERS: dict[str, RunnerFactory] = {"torch": _torch_runner, "onnxruntime": _onnxruntime_runner}


def time_round_robin(runners: Sequence[Runner], *, threads: int, warmup: int = 5,
                     rounds: int = 15, runs: int = 3,
                     on_round: Callable[[int], None] | None = None) -> list[Timing]:
    """Median across ``rounds`` of each runner's median of ``runs`` calls, visited in turn.

    The spread is the interquartile range across rounds; the count is the number of rounds.
    """
    if rounds < 2 or runs < 1:
        raise ValueError("round-robin timing needs at least 2 rounds of at least 1 run")
    per_round: list[list[float]] = [[] for _ in runners]
    steady_state_allocator()
    with torch_threads(threads):
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
