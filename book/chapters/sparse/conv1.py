"""LeNet-5-Caffe's first convolution (1 → 20 channels, 5×5) as a compiled CPU kernel, forward and its
weight and bias gradients (issue 22: the epoch's speed), bit for bit oneDNN's; and the same with
the 2×2 max-pooling and ReLU after it in one kernel (`pooling`'s windows), bit for bit the three layers.

oneDNN spends about 2 ms forward and 2 ms backward a step on this layer, a third of the core's peak:
its one input channel gives its kernels little to block. `conv1.c` keeps each output's and each
gradient's reduction in the order oneDNN's AVX2 kernels use (measured, written in the C) and
vectorizes across channels and taps instead, about twice as fast (timed side by side:
`benchmarks/bench_sparse.py`). The
outputs and gradients have oneDNN's bits (`tests/test_sparse_conv1.py`), so no committed run
changes; the layer's input needs no gradient (it is the image), so none is computed. With the pooling
(`Conv1PoolReLUStage`, what LeNet-5 runs) the conv's 4.6 MB output and its gradient are made and used
one image at a time in cache instead of going through memory.

It runs where its bits were checked: x86-64 with torch's AVX2 kernels (the numerics profile), on float32
CPU images, for a Conv2d(1, 20, 5) with bias, stride 1, no padding, whose input needs no gradient.
Anything else is the layer itself (oneDNN).
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn as nn

from book.chapters.sparse import native, pooling

NAME = "conv1"
SIGNATURES = {"conv1_forward": [native.POINTER] * 4 + [native.SIZE] * 3,
              "conv1_backward": [native.POINTER] * 4 + [native.SIZE] * 3,
              "conv1_pool_relu_forward": [native.POINTER] * 5 + [native.SIZE] * 3,
              "conv1_pool_relu_backward": [native.POINTER] * 5 + [native.SIZE] * 3}
MAX_SIDE = 64   # MAX_SIDE in conv1.c: the conv's output side, at most, for the kernel with the pooling
_CL = torch.channels_last


KERNEL = native.Kernel(NAME, SIGNATURES)
library, status, describe = KERNEL.library, KERNEL.status, KERNEL.describe   # this process's build, which runs


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


def pooled_applies(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether the kernel with the pooling and ReLU takes this input: the conv's kernel does and its
    output has even sides of at most MAX_SIDE."""
    return (kernel_applies(conv, x) and (x.shape[2] - 4) % 2 == 0 and (x.shape[3] - 4) % 2 == 0
            and x.shape[2] - 4 <= MAX_SIDE and x.shape[3] - 4 <= MAX_SIDE)


def pooled_forward(lib: ctypes.CDLL, x: torch.Tensor, weight: torch.Tensor,
                   bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """relu(max_pool2d(conv(x), 2)), channels-last, and the pooling's code (as `pooling.forward`'s)."""
    n, _, h, w = x.shape
    weight, bias = weight.detach().contiguous(), bias.detach().contiguous()
    out = torch.empty((n, 20, (h - 4) // 2, (w - 4) // 2), memory_format=_CL)
    code = torch.empty((n, (h - 4) // 2, (w - 4) // 2, 20), dtype=torch.int32)
    if lib.conv1_pool_relu_forward(x.data_ptr(), weight.data_ptr(), bias.data_ptr(), out.data_ptr(), code.data_ptr(),
                                   n, h, w):
        raise RuntimeError(f"conv1_pool_relu_forward refused an input of shape {tuple(x.shape)}")
    return out, code


def pooled_backward(lib: ctypes.CDLL, x: torch.Tensor, grad: torch.Tensor,
                    code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The conv's weight and bias gradients from the pooled output's gradient."""
    n, _, h, w = x.shape
    grad = grad.contiguous(memory_format=_CL)
    grad_weight, grad_bias = torch.empty(20, 1, 5, 5), torch.empty(20)
    if lib.conv1_pool_relu_backward(x.data_ptr(), grad.data_ptr(), code.data_ptr(), grad_weight.data_ptr(),
                                    grad_bias.data_ptr(), n, h, w):
        raise RuntimeError(f"conv1_pool_relu_backward refused an input of shape {tuple(x.shape)}")
    return grad_weight, grad_bias


class _Conv1PoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        out, code = pooled_forward(library(), x, weight, bias)
        ctx.save_for_backward(x, code)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x, code = ctx.saved_tensors
        grad_weight, grad_bias = pooled_backward(library(), x, grad, code)
        return None, grad_weight, grad_bias


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


class Conv1PoolReLUStage(nn.Module):
    """The stage `training.LeNet5Caffe` runs for its first conv, pooling and ReLU: one kernel where it
    applies (the conv's output and its gradient never leave the cache), else the conv (`Conv1Stage`)
    then `pooling.max_pool2_relu`. Holds the conv (`conv`); it is not one of the net's layers."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if pooled_applies(self.conv, x):
            return _Conv1PoolReLU.apply(x, self.conv.weight, self.conv.bias)
        return pooling.max_pool2_relu(Conv1Stage.forward(self, x))
