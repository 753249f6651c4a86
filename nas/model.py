"""Build an ``nn.Module`` from an `Arch`: stem, inverted-residual blocks, head.

The layers follow MobileNetV3 (Howard et al. 2019): an inverted residual is a 1x1 expansion
(skipped when the expansion is 1), a depthwise kxk convolution, an optional squeeze-excite with a
hard-sigmoid gate, and a linear 1x1 projection; it adds its input when shapes match.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from nas.arch import Arch, BlockSpec, Head, LayerSpec, Stem, make_divisible
from nas.depthwise import DepthwiseConv2d
from nas.flags import flag, positive_int

ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "hswish": nn.Hardswish}


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                activation: str | None = None) -> nn.Sequential:
    """Convolution without bias, batch norm, then the activation (none for a linear layer)."""
    conv = (DepthwiseConv2d(cin, kernel, stride) if groups > 1 and groups == cin == cout else
            nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False))
    layers: list[nn.Module] = [conv, nn.BatchNorm2d(cout)]
    if activation is not None:
        layers.append(ACTIVATION_LAYERS[activation]())
    return nn.Sequential(*layers)


class SqueezeExcite(nn.Module):
    """Channel gate: pool, 1x1 reduce to a quarter (rounded to 8), ReLU, 1x1, hard sigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels / 4)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(scale))))


class InvertedResidual(nn.Module):
    def __init__(self, in_channels: int, spec: BlockSpec) -> None:
        super().__init__()
        hidden = spec.expanded_channels(in_channels)
        layers: list[nn.Module] = []
        if spec.expansion != 1:
            layers.append(conv_bn_act(in_channels, hidden, 1, activation=spec.activation))
        layers.append(conv_bn_act(hidden, hidden, spec.kernel, spec.stride, groups=hidden,
                                  activation=spec.activation))
        if spec.se:
            layers.append(SqueezeExcite(hidden))
        layers.append(conv_bn_act(hidden, spec.out_channels, 1))
        self.body = nn.Sequential(*layers)
        self.residual = spec.stride == 1 and in_channels == spec.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


class ClassifierHead(nn.Module):
    """1x1 conv + BN + act, global average pool, linear + act, dropout, classifier."""

    def __init__(self, in_channels: int, head: Head, num_classes: int, dropout: float) -> None:
        super().__init__()
        self.conv = conv_bn_act(in_channels, head.channels, 1, activation=head.activation)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.features = nn.Sequential(nn.Linear(head.channels, head.features),
                                      ACTIVATION_LAYERS[head.activation]())
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head.features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv(x)).flatten(1)
        return self.classifier(self.dropout(self.features(x)))


def build_stem(stem: Stem, in_channels: int) -> nn.Sequential:
    return conv_bn_act(in_channels, stem.channels, 3, stride=stem.stride,
                       activation=stem.activation)


@dataclass(frozen=True)
class ModelConfig:
    """What the data decides about a network, beside its architecture."""

    in_channels: int = field(default=1, metadata=flag(
        "input channels: 1 for grey images, 3 for RGB", type=positive_int))
    num_classes: int = field(default=10, metadata=flag("classes", type=positive_int))
    dropout: float = 0.2  # before the classifier, as in MobileNetV3


def build_layer(spec: LayerSpec, in_channels: int, num_classes: int,
                dropout: float = 0.0) -> nn.Module:
    """The module of one layer (stem, inverted residual or head) as a network holds it."""
    if isinstance(spec, Stem):
        return build_stem(spec, in_channels)
    if isinstance(spec, BlockSpec):
        return InvertedResidual(in_channels, spec)
    return ClassifierHead(in_channels, spec, num_classes, dropout)


class MobileNet(nn.Sequential):
    """stem, blocks, head; ``model[i]`` is the i-th layer, as the latency table times them."""

    def __init__(self, arch: Arch, config: ModelConfig = ModelConfig()) -> None:
        super().__init__(*(build_layer(spec, cin, config.num_classes, config.dropout)
                           for spec, cin in arch.layer_inputs(config.in_channels)))
        self.arch = arch
        self.config = config
        _init_weights(self)


def _init_weights(model: nn.Module) -> None:
    """MobileNetV3 reference initialisation (as in torchvision), residual branches start at zero.

    Zeroing the last batch-norm scale of every residual block makes each block the identity at
    the start ("zero-gamma", Goyal et al. 2017); measured here, it lifts the accuracy of a brief
    2-epoch proxy training by about 2.5 points.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, InvertedResidual) and m.residual:
            nn.init.zeros_(m.body[-1][1].weight)


@dataclass(frozen=True)
class Complexity:
    macs: int  # multiply-accumulates of one forward pass (fvcore's "flops")
    params: int


def complexity(model: nn.Module, input_size: int) -> Complexity:
    """MACs for one image of ``input_size`` px and the parameter count, from fvcore."""
    from fvcore.nn import FlopCountAnalysis

    in_channels = next(m for m in model.modules() if isinstance(m, nn.Conv2d)).in_channels
    was_training = model.training
    model.eval()
    analysis = FlopCountAnalysis(model, torch.zeros(1, in_channels, input_size, input_size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    macs = int(analysis.total())
    model.train(was_training)
    return Complexity(macs=macs, params=sum(p.numel() for p in model.parameters()))
