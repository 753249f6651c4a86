"""The one way a module becomes an ONNX model: for timing on ONNX Runtime and for export."""

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
