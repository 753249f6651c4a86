"""The one way a module becomes an ONNX model or a TorchScript program: for timing on ONNX
Runtime or TorchScript, and for export, so a table times what the export ships."""

from __future__ import annotations

import io

import torch
from torch import nn

INPUT, OUTPUT = "images", "logits"


def to_onnx(module: nn.Module, example: torch.Tensor, *, dynamic_batch: bool = False) -> bytes:
    """The module in eval mode as ONNX bytes (TorchScript-based exporter), input ``images``,
    output ``logits``; with ``dynamic_batch`` the batch size is left free."""
    axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (example,), buffer, input_names=[INPUT],
                      output_names=[OUTPUT], dynamic_axes=axes, dynamo=False)
    return buffer.getvalue()


def to_torchscript(module: nn.Module, example: torch.Tensor) -> bytes:
    """The module in eval mode traced to TorchScript, as the bytes of a saved program."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.trace(module.eval(), example), buffer)
    return buffer.getvalue()


def load_torchscript(program: bytes) -> torch.jit.ScriptModule:
    return torch.jit.load(io.BytesIO(program))
