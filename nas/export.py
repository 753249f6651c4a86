"""Export the best network under the budget: JSON, TorchScript, ONNX and a model card.

Every exported runtime is run on the same input as the PyTorch module and must agree.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import torch

from nas.arch import Arch
from nas.model import MobileNet, ModelConfig

TOLERANCE = 1e-4  # max |difference| of logits allowed between PyTorch and an exported runtime


class ExportError(RuntimeError):
    """An export whose outputs disagree with PyTorch, or a run with nothing to export."""


def _torchscript(model: MobileNet, x: torch.Tensor, out: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    path = out / "model.torchscript.pt"
    torch.jit.save(torch.jit.trace(model, x), str(path))
    loaded = torch.jit.load(str(path))
    return lambda t: loaded(t)


def _onnx(model: MobileNet, x: torch.Tensor, out: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    path = out / "model.onnx"
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, input_names=["images"], output_names=["logits"],
                      dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    path.write_bytes(buffer.getvalue())
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda t: torch.from_numpy(session.run(None, {"images": t.numpy()})[0])


EXPORTERS = {"torchscript": _torchscript, "onnx": _onnx}
FORMATS = ("json", *EXPORTERS)


def export_network(arch: Arch, config: ModelConfig, state_dict: dict[str, torch.Tensor],
                   input_size: int, formats: list[str], out: Path,
                   card: dict[str, object]) -> dict[str, float]:
    """Write the requested formats to ``out``; returns each runtime's max |logit difference|."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    model = MobileNet(arch, config)
    model.load_state_dict(state_dict)
    model.eval()
    x = torch.randn(2, config.in_channels, input_size, input_size,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
    torch.save(state_dict, out / "weights.pt")
    (out / "arch.json").write_text(arch.to_json())
    (out / "arch.txt").write_text(arch.to_string() + "\n")
    differences: dict[str, float] = {}
    for name in formats:
        if name in EXPORTERS:
            with torch.no_grad():
                diff = float((EXPORTERS[name](model, x, out)(x) - reference).abs().max())
            if diff > TOLERANCE:
                raise ExportError(f"{name} export disagrees with PyTorch (max |diff| {diff:.2e})")
            differences[name] = diff
    card = {**card, "arch": arch.to_string(), "formats": formats,
            "max_abs_diff_vs_pytorch": differences}
    (out / "model_card.json").write_text(json.dumps(card, indent=2))
    (out / "MODEL_CARD.md").write_text(
        "# Model card\n\n" + "\n".join(f"- **{k}**: {v}" for k, v in card.items()) + "\n")
    return differences
