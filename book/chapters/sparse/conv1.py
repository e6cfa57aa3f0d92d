"""LeNet-5-Caffe's first convolution (1 → 20 channels, 5×5) as a compiled CPU kernel, forward and its
weight and bias gradients (issue 22: the epoch's speed), bit for bit oneDNN's.

oneDNN spends about 2 ms forward and 2 ms backward a step on this layer, a third of the core's peak:
its one input channel gives its kernels little to block. `conv1.c` keeps each output's and each
gradient's reduction in the order oneDNN's AVX2 kernels use (measured, written in the C) and
vectorizes across channels and taps instead, about twice as fast (timed side by side:
`benchmarks/bench_sparse.py`). The
outputs and gradients have oneDNN's bits (`tests/test_sparse_conv1.py`), so no committed run
changes; the layer's input needs no gradient (it is the image), so none is computed.

It runs where its bits were checked: x86-64 with torch's AVX2 kernels (the numerics profile), on float32
CPU images, for a Conv2d(1, 20, 5) with bias, stride 1, no padding, whose input needs no gradient.
Anything else is the layer itself (oneDNN).
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn as nn

from book.chapters.sparse import native

NAME = "conv1"
SIGNATURES = {fn: [native.POINTER] * 4 + [native.SIZE] * 3 for fn in ("conv1_forward", "conv1_backward")}
_CL = torch.channels_last


def library() -> ctypes.CDLL | None:
    """This process's build of conv1.c (None where there is no compiler)."""
    return native.library(NAME, SIGNATURES)


def status() -> str:
    library()
    return native.status(NAME)


def describe() -> str:
    library()
    return native.describe(NAME)


def layer_fits(conv: nn.Conv2d) -> bool:
    """Whether `conv` is the layer the kernel computes."""
    return (isinstance(conv, nn.Conv2d) and conv.in_channels == 1 and conv.out_channels == 20
            and conv.kernel_size == (5, 5) and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.bias is not None
            and conv.padding_mode == "zeros")


def kernel_applies(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    w = conv.weight
    return (layer_fits(conv) and x.dim() == 4 and x.shape[1] == 1 and x.shape[2] >= 5 and x.shape[3] >= 5
            and x.numel() > 0 and x.is_cpu and x.dtype == torch.float32 and not x.requires_grad
            and (x.is_contiguous() or x.is_contiguous(memory_format=_CL)) and w.is_cpu and w.dtype == torch.float32
            and conv.bias.dtype == torch.float32 and native.x86_avx2() and library() is not None)


def forward(lib: ctypes.CDLL, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The layer's output, channels-last as oneDNN's. One input channel: x's memory is [n][h][w] in
    either layout, and the weight's [oc][kh][kw]."""
    n, _, h, w = x.shape
    weight, bias = weight.detach().contiguous(), bias.detach().contiguous()
    out = torch.empty((n, 20, h - 4, w - 4), memory_format=_CL)
    if lib.conv1_forward(x.data_ptr(), weight.data_ptr(), bias.data_ptr(), out.data_ptr(), n, h, w):
        raise RuntimeError(f"conv1_forward refused an input of shape {tuple(x.shape)}")
    return out


def backward(lib: ctypes.CDLL, x: torch.Tensor, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weight's gradient (20, 1, 5, 5) and the bias's (20) from the output's gradient."""
    n, _, h, w = x.shape
    grad = grad.contiguous(memory_format=_CL)
    grad_weight, grad_bias = torch.empty(20, 1, 5, 5), torch.empty(20)
    if lib.conv1_backward(x.data_ptr(), grad.data_ptr(), grad_weight.data_ptr(), grad_bias.data_ptr(), n, h, w):
        raise RuntimeError(f"conv1_backward refused an input of shape {tuple(x.shape)}")
    return grad_weight, grad_bias


class _Conv1(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return forward(library(), x, weight, bias)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        grad_weight, grad_bias = backward(library(), x, grad)
        return None, grad_weight, grad_bias


class Conv1Stage(nn.Module):
    """The stage `training.LeNet5Caffe` runs for its first layer: the kernel where it applies, else the
    layer itself. Holds the layer (`conv`); it is not one of the net's layers."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if kernel_applies(self.conv, x):
            return _Conv1.apply(x, self.conv.weight, self.conv.bias)
        return self.conv(x)
