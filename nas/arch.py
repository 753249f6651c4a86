"""Architectures as data: frozen dataclasses of the raw choices, with exact JSON and string forms.

Compact string grammar (one token per layer, tokens joined by ``-``)::

    stem_c16_hs                   3x3 stride-2 conv to 16 channels, h-swish
    ir_k5_e4_c40_s2_re_se         inverted residual: kernel 5, expansion 4, 40 output channels,
                                  stride 2, ReLU, squeeze-excite (``_se`` absent: no SE)
    head_c960_f1280_hs            1x1 conv to 960, global pool, 1280 features, h-swish

The expansion is a ratio of the block's input channels (``e3.67`` on 24 channels gives 88, as in
MobileNetV3-Small); the expanded width is ``make_divisible(cin * e, 8)``. Derived quantities
(expanded width, input channels, feature-map size) are computed, never stored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from nas.errors import UserError

ACTIVATIONS = ("relu", "hswish")
_ACT_TOKEN = {"relu": "re", "hswish": "hs"}
_TOKEN_ACT = {v: k for k, v in _ACT_TOKEN.items()}
_BLOCK_RE = re.compile(r"ir_k(\d+)_e([0-9.]+)_c(\d+)_s(\d+)_(re|hs)(_se)?")
_STEM_RE = re.compile(r"stem_c(\d+)(?:_s(\d))?_(re|hs)")
_HEAD_RE = re.compile(r"head_c(\d+)_f(\d+)_(re|hs)")


class ArchError(UserError):
    """An architecture (string, JSON or choice) that is not valid; the message says which part."""


def _match(pattern: re.Pattern[str], token: str, example: str) -> re.Match[str]:
    m = pattern.fullmatch(token)
    if m is None:
        raise ArchError(f"bad token {token!r} (expected e.g. {example!r})")
    return m


def _numbers(m: re.Match[str], token: str, *groups: int) -> list[int]:
    """The integers in ``groups`` of a token's match (a number too long to convert is refused)."""
    try:
        return [int(m[g]) for g in groups]
    except ValueError:  # more digits than Python converts
        raise ArchError(f"bad number in token {token!r}") from None


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor``, never below 90% of it.

    The rule of the MobileNet papers' reference code (and torchvision's ``_make_divisible``).
    """
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def conv_output_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded convolution with an odd kernel."""
    return (size - 1) // stride + 1


def _fmt_number(x: float) -> str:
    """Shortest exact text for a float: ``6.0 -> '6'``, ``3.67 -> '3.67'``."""
    text = repr(float(x))
    return text[:-2] if text.endswith(".0") else text


def _check_act(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ArchError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block, as chosen."""

    kernel: int  # depthwise kernel size (odd)
    expansion: float  # expanded width / input width; 1 skips the 1x1 expansion conv
    out_channels: int
    stride: int  # 1 or 2, on the depthwise conv
    se: bool  # squeeze-excite on the expanded features
    activation: str  # "relu" or "hswish"

    def __post_init__(self) -> None:
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ArchError(f"kernel must be a positive odd number, got {self.kernel}")
        if not (math.isfinite(self.expansion) and self.expansion >= 1):
            raise ArchError(f"expansion must be a finite number >= 1, got {self.expansion}")
        if self.out_channels < 1:
            raise ArchError(f"out_channels must be >= 1, got {self.out_channels}")
        if self.stride not in (1, 2):
            raise ArchError(f"stride must be 1 or 2, got {self.stride}")
        _check_act(self.activation)

    def expanded_channels(self, in_channels: int) -> int:
        return in_channels if self.expansion == 1 else make_divisible(in_channels * self.expansion)

    def to_string(self) -> str:
        text = (
            f"ir_k{self.kernel}_e{_fmt_number(self.expansion)}_c{self.out_channels}"
            f"_s{self.stride}_{_ACT_TOKEN[self.activation]}"
        )
        return text + "_se" if self.se else text

    @classmethod
    def from_string(cls, token: str) -> BlockSpec:
        m = _match(_BLOCK_RE, token, "ir_k3_e4_c24_s2_re_se")
        kernel, out_channels, stride = _numbers(m, token, 1, 3, 4)
        try:
            expansion = float(m[2])
        except ValueError:  # "1.2.3"
            raise ArchError(f"bad expansion in token {token!r}") from None
        return cls(kernel=kernel, expansion=expansion, out_channels=out_channels, stride=stride,
                   se=m[6] is not None, activation=_TOKEN_ACT[m[5]])


@dataclass(frozen=True)
class Stem:
    """3x3 convolution, batch norm, activation; stride 2 (every MobileNet stem halves the input)
    or 1 (small images, whose pixels are too few to halve at once). The token names the stride
    only when it is 1 (``stem_c16_s1_hs``), so stride-2 tokens read as they always have."""

    channels: int = 16
    activation: str = "hswish"
    stride: int = 2

    def __post_init__(self) -> None:
        if self.channels < 1:
            raise ArchError(f"stem channels must be >= 1, got {self.channels}")
        if self.stride not in (1, 2):
            raise ArchError(f"stem stride must be 1 or 2, got {self.stride}")
        _check_act(self.activation)

    def to_string(self) -> str:
        stride = "" if self.stride == 2 else f"_s{self.stride}"
        return f"stem_c{self.channels}{stride}_{_ACT_TOKEN[self.activation]}"

    @classmethod
    def from_string(cls, token: str) -> Stem:
        m = _match(_STEM_RE, token, "stem_c16_hs")
        (channels,) = _numbers(m, token, 1)
        return cls(channels, _TOKEN_ACT[m[3]], int(m[2]) if m[2] else 2)


@dataclass(frozen=True)
class Head:
    """1x1 conv to ``channels``, global average pool, linear to ``features``, classifier."""

    channels: int = 960
    features: int = 1280
    activation: str = "hswish"

    def __post_init__(self) -> None:
        if self.channels < 1 or self.features < 1:
            raise ArchError(f"head widths must be >= 1, got {self.channels}, {self.features}")
        _check_act(self.activation)

    def to_string(self) -> str:
        return f"head_c{self.channels}_f{self.features}_{_ACT_TOKEN[self.activation]}"

    @classmethod
    def from_string(cls, token: str) -> Head:
        m = _match(_HEAD_RE, token, "head_c960_f1280_hs")
        return cls(*_numbers(m, token, 1, 2), _TOKEN_ACT[m[3]])


@dataclass(frozen=True)
class Arch:
    """A whole network: stem, blocks in order, head. Hashable; equal iff the choices are."""

    stem: Stem
    blocks: tuple[BlockSpec, ...]
    head: Head

    def __post_init__(self) -> None:
        if not self.blocks:
            raise ArchError("an architecture needs at least one block")

    def to_string(self) -> str:
        return "-".join([self.stem.to_string(), *(b.to_string() for b in self.blocks),
                         self.head.to_string()])

    def layer_inputs(self, in_channels: int) -> list[tuple[LayerSpec, int]]:
        """Each layer (stem, blocks, head) with its input channels: the one channel walk that
        the model builder and the latency table's layer list share."""
        result: list[tuple[LayerSpec, int]] = [(self.stem, in_channels)]
        channels = self.stem.channels
        for block in self.blocks:
            result.append((block, channels))
            channels = block.out_channels
        result.append((self.head, channels))
        return result

    @classmethod
    def from_string(cls, text: str) -> Arch:
        tokens = text.strip().split("-")
        if len(tokens) < 3:
            raise ArchError(f"architecture string needs stem, blocks and head: {text!r}")
        return cls(stem=Stem.from_string(tokens[0]),
                   blocks=tuple(BlockSpec.from_string(t) for t in tokens[1:-1]),
                   head=Head.from_string(tokens[-1]))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arch:
        try:
            return cls(stem=Stem(**data["stem"]),
                       blocks=tuple(BlockSpec(**b) for b in data["blocks"]),
                       head=Head(**data["head"]))
        except (KeyError, TypeError) as exc:
            raise ArchError(f"not an architecture: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except ValueError as exc:  # JSONDecodeError, or a number too long to convert
            raise ArchError(f"not an architecture: invalid JSON ({exc})") from exc
        return cls.from_dict(data)


LayerSpec = Stem | BlockSpec | Head
_TOKEN_TYPES: dict[str, type[Stem] | type[BlockSpec] | type[Head]] = {
    "stem": Stem, "ir": BlockSpec, "head": Head}


def parse_token(token: str) -> LayerSpec:
    """One layer's token (``stem_...``, ``ir_...``, ``head_...``) back to its spec."""
    kind = token.split("_", 1)[0]
    if kind not in _TOKEN_TYPES:
        raise ArchError(f"unknown layer kind in {token!r} (expected stem_, ir_ or head_)")
    return _TOKEN_TYPES[kind].from_string(token)
