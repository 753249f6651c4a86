"""The latency target: where and how a network runs, and the fingerprint that names its table."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nas.flags import flag, positive_int
from nas.bundle_timer import (ONNXRUNTIME_PROVIDERS, TORCH_MODE, backend_version, core_list,
                              cores_text, environment, onnxruntime_options, usable_cores)

# The runtimes a target may time on; `nas.latency.measure.build_runner` has a runner for each.
BACKENDS = ("torchscript", "torch", "onnxruntime")

# Each allocator setting as the glibc mallopt parameters it sets (numbers from <malloc.h>), each
# with the environment variable glibc reads at start-up for the same parameter. 'steady' keeps
# freed memory for reuse, process-wide, so a forward pass never page-faults: blocks up to 32 MiB
# (glibc's ceiling on 64-bit) come from the heap, not fresh mmap pages, and up to 1 GiB of free
# heap is kept instead of being handed back to the kernel. 'system' leaves the C library as it is.
MALLOPT: dict[str, tuple[dict[str, Any], ...]] = {
    "steady": ({"parameter": "M_MMAP_THRESHOLD", "number": -3, "value": 32 << 20,
                "environment": "MALLOC_MMAP_THRESHOLD_"},
               {"parameter": "M_TRIM_THRESHOLD", "number": -1, "value": 1 << 30,
                "environment": "MALLOC_TRIM_THRESHOLD_"}),
    "system": (),
}
ALLOCATORS = tuple(MALLOPT)

MEMORY_FORMAT = "contiguous (NCHW)"  # the input as timed: not channels-last


def cpu_model() -> str:
    """The CPU's marketing name (Linux), else what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_cores(threads: int) -> tuple[int, ...]:
    """The cores a target of ``threads`` threads is pinned to unless told: the first ``threads``
    this process may use (none where the platform cannot pin)."""
    return usable_cores()[:threads]


@dataclass(frozen=True)
class Target:
    """Every setting that changes a timing: device, backend and its version, threads, the cores
    they are pinned to, batch, input size, dtype and the allocator. Its fingerprint names the
    table measured under it."""

    backend: str = field(default="torchscript", metadata=flag(
        "latency target runtime: the exported TorchScript program, PyTorch eager (both in eval "
        "mode), or ONNX Runtime's CPU provider", choices=BACKENDS))
    threads: int = field(default=1, metadata=flag(
        "latency target's intra-op threads", type=positive_int))
    batch: int = 1  # single-image latency, as deployed on a device
    input_size: int = field(default=224, metadata=flag(
        "latency target resolution (default: the space's)", name="--latency-input-size",
        aliases=("--input-size",), type=positive_int))
    dtype: str = "float32"
    allocator: str = field(default="steady", metadata=flag(
        "memory allocator while timing: 'steady' keeps freed memory for reuse (glibc mallopt, "
        "as a serving process reaches), 'system' leaves the C library's defaults",
        choices=ALLOCATORS))
    # () is unpinned: tables built before cores were a setting, or a platform that cannot pin
    cores: tuple[int, ...] = field(default=(), metadata=flag(
        "CPU cores the latency target runs on, e.g. 0 or 0,1: timing pins the process to them "
        "and the exported time_model.py does the same, since one machine's cores can differ in "
        "speed (default: the first --threads cores this process may use)",
        name="--latency-cores", type=core_list))
    device: str = field(default_factory=cpu_model)
    software: str = ""  # backend version; filled in by `Target.here`

    def __post_init__(self) -> None:
        object.__setattr__(self, "cores", tuple(int(c) for c in self.cores))  # JSON gives lists
        if any(c < 0 for c in self.cores) or len(set(self.cores)) != len(self.cores):
            raise ValueError(f"cores must be distinct core numbers >= 0, got {self.cores}")
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.threads < 1 or self.batch < 1 or self.input_size < 8:
            raise ValueError("threads and batch must be >= 1 and the input size >= 8")
        if self.dtype != "float32":
            raise ValueError(f"only float32 is supported, got {self.dtype!r}")
        if self.allocator not in ALLOCATORS:
            raise ValueError(f"unknown allocator {self.allocator!r}; choose one of "
                             f"{list(ALLOCATORS)}")

    @classmethod
    def here(cls, backend: str = "torchscript", threads: int = 1, batch: int = 1,
             input_size: int = 224, allocator: str = "steady",
             cores: tuple[int, ...] | None = None) -> Target:
        """The target of this machine with the installed backend, on ``cores`` (default:
        `default_cores`)."""
        return cls(backend=backend, threads=threads, batch=batch, input_size=input_size,
                   allocator=allocator, software=backend_version(backend),
                   cores=default_cores(threads) if cores is None else cores)

    def on_this_machine(self) -> bool:
        """Whether this machine, with its installed backend, is the target and this process
        may use its cores."""
        here = Target.here(self.backend, self.threads, self.batch, self.input_size,
                           self.allocator, self.cores)
        return (here.fingerprint() == self.fingerprint()
                and set(self.cores) <= set(usable_cores()))

    def fingerprint(self) -> str:
        """12 hex digits of the SHA-256 of every field: equal targets, equal fingerprints. An
        unpinned target leaves ``cores`` out, so tables built before it was a field keep theirs."""
        fields = asdict(self)
        if not self.cores:
            del fields["cores"]
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def runtime_settings(self, in_channels: int) -> dict[str, object]:
        """Every setting a network of ``in_channels`` is timed under on this target
        (`nas.latency.measure.build_runner`), as plain data: what a model card records and the
        exported ``time_model.py`` applies. The allocator's mallopt parameters come with the
        environment variables that set the same in a process of one's own."""
        mallopt = [dict(s) for s in MALLOPT[self.allocator]]
        backend: dict[str, object] = (
            {"torch_mode": TORCH_MODE} if self.backend != "onnxruntime" else
            {"onnxruntime_session": onnxruntime_options(self.threads),
             "onnxruntime_providers": list(ONNXRUNTIME_PROVIDERS)})
        return {"backend": self.backend, "software": self.software, "device": self.device,
                "threads": self.threads, "cores": list(self.cores), "batch": self.batch,
                "input_size": self.input_size,
                "input_shape": [self.batch, in_channels, self.input_size, self.input_size],
                "dtype": self.dtype, "memory_format": MEMORY_FORMAT, **backend,
                "allocator": {"name": self.allocator, "mallopt": mallopt,
                              "environment": environment(mallopt)}}

    def describe(self) -> str:
        pinning = f"on core(s) {cores_text(self.cores)}" if self.cores else "unpinned"
        return (f"{self.device}, {self.software or self.backend}, {self.threads} thread(s) "
                f"{pinning}, batch {self.batch}, {self.input_size}x{self.input_size}, "
                f"{self.dtype}, {self.allocator} allocator")
