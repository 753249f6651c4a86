"""The layers of an architecture as the latency table sees them: stem, blocks, head.

A layer's key is its compact-string token plus its input shape, e.g.
``ir_k5_e4_c40_s2_re_se@56x56x24`` or ``head_c960_f1280_hs@7x7x160>10`` (10 classes): readable,
greppable, and built by the same code that builds the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nas.arch import (Arch, ArchError, BlockSpec, Head, LayerSpec, Stem, conv_output_size,
                      parse_token)
from nas.model import build_layer

_KINDS: dict[type, str] = {Stem: "stem", BlockSpec: "ir", Head: "head"}


@dataclass(frozen=True)
class Layer:
    spec: LayerSpec
    in_channels: int
    in_size: int
    num_classes: int = 0  # head only

    @property
    def key(self) -> str:
        key = f"{self.spec.to_string()}@{self.in_size}x{self.in_size}x{self.in_channels}"
        return f"{key}>{self.num_classes}" if self.num_classes else key

    @property
    def group(self) -> str:
        """Layers that share a calibration factor: kind and input feature-map size."""
        kind = _KINDS[type(self.spec)]
        return f"ir@{self.in_size}" if kind == "ir" else kind

    @classmethod
    def from_key(cls, key: str) -> Layer:
        try:
            token, shape = key.split("@")
            shape, _, classes = shape.partition(">")
            size, _, channels = shape.split("x")
            return cls(parse_token(token), int(channels), int(size), int(classes) if classes else 0)
        except (ValueError, ArchError) as exc:
            raise ArchError(f"bad layer key {key!r} (expected e.g. "
                            "'ir_k3_e4_c24_s2_re@112x112x16')") from exc

    def build(self) -> nn.Module:
        """The module of this layer, in eval mode, as the network holds it."""
        return build_layer(self.spec, self.in_channels, self.num_classes).eval()


def arch_layers(arch: Arch, input_size: int, in_channels: int, num_classes: int) -> list[Layer]:
    """The architecture's layers with their input feature-map sizes, one `Layer` each."""
    layers, size = [], input_size
    for spec, channels in arch.layer_inputs(in_channels):
        if isinstance(spec, Head):
            layers.append(Layer(spec, channels, size, num_classes))
        else:
            layers.append(Layer(spec, channels, size))
            size = conv_output_size(size, spec.stride)
    return layers
