"""A depthwise convolution that trains fast on feature maps smaller than its kernel.

On this CPU, oneDNN's backward pass of a depthwise convolution whose kernel covers most of its
map is slow out of all proportion: a 7x7 kernel on 4x4 maps of 576 channels (batch 128) took
125-210 ms a step against 6-13 ms for a 3x3 one, and such layers took about half of a candidate's
training time in the default space, whose last stages run at 4x4 (`benchmarks/train_speed.py`).

On such a map the convolution is, per channel, a small dense matrix product: each output pixel is
a weighted sum of input pixels, the weight of input pixel i for output pixel o being the kernel
tap that covers i when the kernel is centred on o (zero if none does). `DepthwiseConv2d` builds
those matrices from the kernel with one matrix product (`tap_matrix`, the same for every channel)
and applies them with one batched matrix product; autograd differentiates both. It does so only
while training and only where the dense form has fewer multiply-adds than the kernel sweep (a map
of fewer pixels than the kernel has taps). In evaluation, tracing and export it is the plain
``nn.Conv2d`` it inherits from: same parameters, same state dict, same exported program; the two
forms agree to float rounding (a test checks outputs and both gradients).
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from nas.arch import conv_output_size


@lru_cache(maxsize=64)
def tap_matrix(height: int, width: int, kernel: int, stride: int) -> torch.Tensor:
    """(kernel * kernel, height * width * out_height * out_width) one-hot matrix for a
    'same'-padded odd kernel: column (i, o) holds a 1 in the row of the kernel tap that input
    pixel i meets when the kernel is applied at output pixel o, and no 1 when the pixel lies
    outside the kernel's window."""
    padding = kernel // 2
    iy = torch.arange(height).view(-1, 1, 1, 1)
    ix = torch.arange(width).view(1, -1, 1, 1)
    oy = torch.arange(conv_output_size(height, stride)).view(1, 1, -1, 1)
    ox = torch.arange(conv_output_size(width, stride)).view(1, 1, 1, -1)
    dy, dx = iy - oy * stride + padding, ix - ox * stride + padding
    inside = ((dy >= 0) & (dy < kernel) & (dx >= 0) & (dx < kernel)).reshape(-1)
    columns = torch.arange(inside.numel())[inside]
    taps = (dy * kernel + dx).reshape(-1)[inside]
    matrix = torch.zeros(kernel * kernel, inside.numel())
    matrix[taps, columns] = 1.0
    return matrix


def dense_depthwise(x: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """The 'same'-padded depthwise convolution of ``x`` (N, C, H, W) with ``weight``
    (C, 1, k, k), k odd, no bias, as per-channel matrix products; equal to ``F.conv2d(x,
    weight, None, stride, k // 2, groups=C)`` up to float rounding."""
    n, c, h, w = x.shape
    k = weight.shape[-1]
    out_h, out_w = conv_output_size(h, stride), conv_output_size(w, stride)
    taps = tap_matrix(h, w, k, stride).to(weight)  # its dtype and device
    per_channel = (weight.reshape(c, k * k) @ taps).view(c, h * w, out_h * out_w)
    out = torch.bmm(x.permute(1, 0, 2, 3).reshape(c, n, h * w), per_channel)
    return out.view(c, n, out_h, out_w).permute(1, 0, 2, 3)


class DepthwiseConv2d(nn.Conv2d):
    """``nn.Conv2d(channels, channels, kernel, stride, kernel // 2, groups=channels,
    bias=False)`` that trains with `dense_depthwise` on maps with fewer pixels than the kernel
    has taps."""

    def __init__(self, channels: int, kernel: int, stride: int = 1) -> None:
        super().__init__(channels, channels, kernel, stride, padding=kernel // 2,
                         groups=channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel_size[0]
        if (self.training and not torch.jit.is_tracing()
                and x.shape[-2] * x.shape[-1] < kernel * kernel):
            return dense_depthwise(x, self.weight, self.stride[0])
        return super().forward(x)
