"""The latency target: where and how a network runs, and the fingerprint that names its table."""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

BACKENDS = ("torch", "onnxruntime")


def cpu_model() -> str:
    """The CPU's marketing name (Linux), else what the platform module reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def backend_version(backend: str) -> str:
    if backend == "onnxruntime":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


@dataclass(frozen=True)
class Target:
    """Device, backend, threads, batch, input size and dtype: one row of the paper's setup."""

    backend: str = "torch"  # "torch": PyTorch eager in eval mode; "onnxruntime": ORT CPU
    threads: int = 1  # intra-op threads; 1 is the mobile-CPU convention
    batch: int = 1  # single-image latency, as deployed on a device
    input_size: int = 224  # deployment resolution (the space's default)
    dtype: str = "float32"
    device: str = field(default_factory=cpu_model)
    software: str = ""  # backend version; filled in by `Target.here`

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        if self.threads < 1 or self.batch < 1 or self.input_size < 8:
            raise ValueError("threads and batch must be >= 1 and the input size >= 8")
        if self.dtype != "float32":
            raise ValueError(f"only float32 is supported, got {self.dtype!r}")

    @classmethod
    def here(cls, backend: str = "torch", threads: int = 1, batch: int = 1,
             input_size: int = 224) -> Target:
        """The target of this machine with the installed backend."""
        return cls(backend=backend, threads=threads, batch=batch, input_size=input_size,
                   software=backend_version(backend))

    def fingerprint(self) -> str:
        """12 hex digits of the SHA-256 of every field: equal targets, equal fingerprints."""
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        return (f"{self.device}, {self.software or self.backend}, {self.threads} thread(s), "
                f"batch {self.batch}, {self.input_size}x{self.input_size}, {self.dtype}")
