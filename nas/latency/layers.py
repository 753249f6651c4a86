"""The layers of an architecture as the latency table sees them: stem, blocks, head.

A layer's key is its compact-string token plus its input shape, e.g.
``ir_k5_e4_c40_s2_re_se@56x56x24`` or ``head_c960_f1280_hs@7x7x160>10`` (10 classes): readable,
greppable, and built by the same code that builds the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nas.arch import Arch, BlockSpec, Head, Stem
from nas.model import ClassifierHead, InvertedResidual, build_stem


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded convolution with an odd kernel."""
    return (size - 1) // stride + 1


@dataclass(frozen=True)
class Layer:
    token: str  # the architecture token of this layer
    in_channels: int
    in_size: int
    num_classes: int = 0  # head only

    @property
    def key(self) -> str:
        key = f"{self.token}@{self.in_size}x{self.in_size}x{self.in_channels}"
        return f"{key}>{self.num_classes}" if self.num_classes else key

    @property
    def group(self) -> str:
        """Layers that share a calibration factor: kind and input feature-map size."""
        kind = self.token.split("_", 1)[0]
        return kind if kind != "ir" else f"ir@{self.in_size}"

    @classmethod
    def from_key(cls, key: str) -> Layer:
        try:
            token, shape = key.split("@")
            shape, _, classes = shape.partition(">")
            size, _, channels = shape.split("x")
            return cls(token, int(channels), int(size), int(classes) if classes else 0)
        except ValueError as exc:
            raise ValueError(f"bad layer key {key!r} (expected e.g. "
                             "'ir_k3_e4_c24_s2_re@112x112x16')") from exc

    def build(self) -> nn.Module:
        """The module of this layer, in eval mode, as the network holds it."""
        kind = self.token.split("_", 1)[0]
        if kind == "stem":
            module: nn.Module = build_stem(Stem.from_string(self.token), self.in_channels)
        elif kind == "ir":
            module = InvertedResidual(self.in_channels, BlockSpec.from_string(self.token))
        elif kind == "head":
            module = ClassifierHead(self.in_channels, Head.from_string(self.token),
                                    self.num_classes, dropout=0.0)
        else:
            raise ValueError(f"unknown layer kind in {self.token!r}")
        return module.eval()


def arch_layers(arch: Arch, input_size: int, in_channels: int, num_classes: int) -> list[Layer]:
    """Walk the architecture, tracking channels and feature-map size, one `Layer` each."""
    layers = [Layer(arch.stem.to_string(), in_channels, input_size)]
    size, channels = conv_output_size(input_size, 2), arch.stem.channels
    for block in arch.blocks:
        layers.append(Layer(block.to_string(), channels, size))
        size, channels = conv_output_size(size, block.stride), block.out_channels
    layers.append(Layer(arch.head.to_string(), channels, size, num_classes))
    return layers
