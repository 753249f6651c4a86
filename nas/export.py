"""Export the best network under the budget: JSON, TorchScript, ONNX and a model card.

Every exported runtime is run on the same input as the PyTorch module and must agree. Beside a
runtime format goes ``time_model.py`` (`nas.bundle_timer`, copied unchanged), which times the
model in a fresh process under the card's ``runtime_settings``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path

import torch

from nas.arch import Arch
from nas.atomic import atomic_path, write_text
from nas.errors import UserError
from nas.model import MobileNet, ModelConfig
from nas.onnx_io import INPUT, to_onnx, to_torchscript
from nas.bundle_timer import describe

TOLERANCE = 1e-4  # max |difference| of logits allowed between PyTorch and an exported runtime


class ExportError(UserError):
    """An exported runtime whose outputs disagree with PyTorch."""


def _torchscript(model: MobileNet, x: torch.Tensor,
                 out: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    path = out / "model.torchscript.pt"
    with atomic_path(path) as tmp:
        tmp.write_bytes(to_torchscript(model, x))
    loaded = torch.jit.load(str(path))
    return lambda t: loaded(t)


def _onnx(model: MobileNet, x: torch.Tensor, out: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    import onnxruntime as ort

    path = out / "model.onnx"
    with atomic_path(path) as tmp:
        tmp.write_bytes(to_onnx(model, x, dynamic_batch=True))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda t: torch.from_numpy(session.run(None, {INPUT: t.numpy()})[0])


EXPORTERS = {"torchscript": _torchscript, "onnx": _onnx}
FORMATS = ("json", *EXPORTERS)
TIMER = "time_model.py"  # `nas.bundle_timer`, shipped beside a runtime format


def model_card_markdown(card: Mapping[str, object]) -> str:
    """MODEL_CARD.md: the card's plain entries, then each nested one (the final training, the
    runtime settings) as a section of its own."""
    lines = ["# Model card", ""]
    lines += [f"- **{k}**: {v}" for k, v in card.items() if not isinstance(v, Mapping)]
    final = card.get("final_training")
    if isinstance(final, Mapping):
        lines += ["", "## Final training", ""]
        lines += [f"- **{k}**: {v}" for k, v in final.items()]
    settings = card.get("runtime_settings")
    if isinstance(settings, Mapping):
        lines += ["", "## Runtime settings the latency was measured under", ""]
        lines += [f"- {line}" for line in describe(settings)]
        lines += ["", f"`python {TIMER}` times the model in a fresh process under these settings "
                      "(`--plain` leaves the allocator as the C library sets it)."]
    return "\n".join(lines) + "\n"


def export_network(arch: Arch, config: ModelConfig, state_dict: dict[str, torch.Tensor],
                   input_size: int, formats: tuple[str, ...], out: Path,
                   card: dict[str, object],
                   class_names: tuple[str, ...] = ()) -> dict[str, float]:
    """Write the requested formats (of `FORMATS`) to ``out``; returns each runtime's max
    |logit difference| from PyTorch. ``arch.json`` carries the class names in label order."""
    out.mkdir(parents=True, exist_ok=True)
    model = MobileNet(arch, config)
    model.load_state_dict(state_dict)
    model.eval()
    x = torch.randn(2, config.in_channels, input_size, input_size,
                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(x)
    with atomic_path(out / "weights.pt") as tmp:
        torch.save(state_dict, tmp)
    write_text(out / "arch.json", json.dumps({**arch.to_dict(), "input_size": input_size,
                                              "class_names": list(class_names)}, indent=2))
    write_text(out / "arch.txt", arch.to_string() + "\n")
    differences: dict[str, float] = {}
    for name in formats:
        if name in EXPORTERS:
            with torch.no_grad():
                diff = float((EXPORTERS[name](model, x, out)(x) - reference).abs().max())
            if diff > TOLERANCE:
                raise ExportError(f"{name} export disagrees with PyTorch (max |diff| {diff:.2e})")
            differences[name] = diff
    if differences:
        write_text(out / TIMER, resources.files("nas").joinpath("bundle_timer.py").read_text())
    card = {**card, "arch": arch.to_string(), "formats": list(formats),
            "max_abs_diff_vs_pytorch": differences}
    write_text(out / "model_card.json", json.dumps(card, indent=2))
    write_text(out / "MODEL_CARD.md", model_card_markdown(card))
    return differences
