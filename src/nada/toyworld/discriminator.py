"""StyleGAN2 residual discriminator, used only to train the built-in base generator."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..generators.stylegan2 import EqualLinear, fused_leaky_relu, make_fir_kernel, upfirdn2d


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate, optional FIR blur + stride-2 down-sampling, optional bias+lrelu."""

    def __init__(self, in_channel: int, out_channel: int, kernel_size: int, downsample: bool = False,
                 activate: bool = True, bias: bool = True, blur_kernel: Sequence[int] = (1, 3, 3, 1)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channel)) if bias else None
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.downsample = downsample
        self.activate = activate
        if downsample:
            # blur before the strided conv so that down-sampling does not alias
            p = (len(blur_kernel) - 2) + (kernel_size - 1)
            self.register_buffer("blur_kernel", make_fir_kernel(blur_kernel))
            self.blur_pad = ((p + 1) // 2, p // 2)
            self.padding, self.stride = 0, 2
        else:
            self.padding, self.stride = kernel_size // 2, 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample:
            x = upfirdn2d(x, self.blur_kernel, pad=self.blur_pad)
        x = F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)
        if self.activate:
            return fused_leaky_relu(x, self.bias if self.bias is not None else x.new_zeros(x.shape[1]))
        if self.bias is not None:
            x = x + self.bias.view(1, -1, 1, 1)
        return x


class ResBlock(nn.Module):
    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        self.conv1 = EqualConv2d(in_channel, in_channel, 3)
        self.conv2 = EqualConv2d(in_channel, out_channel, 3, downsample=True)
        self.skip = EqualConv2d(in_channel, out_channel, 1, downsample=True, activate=False, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2)


class Discriminator(nn.Module):
    """Residual discriminator with a minibatch standard-deviation layer (StyleGAN2 config-e/f shape)."""

    def __init__(self, resolution: int, channels: dict[int, int], mbstd_group: int = 4):
        super().__init__()
        log_size = int(math.log2(resolution))
        self.from_rgb = EqualConv2d(3, channels[resolution], 1)
        self.blocks = nn.Sequential(*[ResBlock(channels[2**i], channels[2 ** (i - 1)]) for i in range(log_size, 2, -1)])
        self.mbstd_group = mbstd_group
        c4 = channels[4]
        self.final_conv = EqualConv2d(c4 + 1, c4, 3)
        self.final_linear = nn.Sequential(EqualLinear(c4 * 16, c4, activation=True), EqualLinear(c4, 1))

    def minibatch_stddev(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = min(n, self.mbstd_group)
        while n % g:
            g -= 1
        y = x.view(g, n // g, c, h, w)
        y = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean(dim=(1, 2, 3))  # (n // g,)
        y = y.view(1, n // g, 1, 1, 1).expand(g, -1, 1, h, w).reshape(n, 1, h, w)
        return torch.cat([x, y], dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.from_rgb(images))
        x = self.final_conv(self.minibatch_stddev(x))
        return self.final_linear(x.flatten(1)).squeeze(1)
