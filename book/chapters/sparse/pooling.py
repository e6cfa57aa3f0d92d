"""LeNet-5-Caffe's 2×2 max-pooling and the ReLU after it as one compiled CPU kernel (issue 22: the
epoch's speed), bit for bit what ATen computes.

ATen makes five passes over the maps for this pair (pool and ReLU; backward ReLU, a 4.6 MB zero-fill
and the scatter) and a layout copy at the flatten, about 4 ms of a 33 ms step at the chapter's
shapes; `pool_relu.c` does each direction in one pass (timed side by side: `benchmarks/bench_sparse.py`).
Its outputs and gradients have the same bits as `relu(max_pool2d(x, 2))` on any input, NaN, ±inf and
signed zeros included (`tests/test_sparse_pooling.py`), so runs trained with it and without it are
identical and none of the committed runs changes.

The kernel is plain C, built and loaded by `native`. Where there is no compiler, or the input is not a
channels-last float32 CPU map with even sides and at most 64 channels, ATen's two ops run instead:
slower, the same bits. `status()` says which one a process uses.
"""
from __future__ import annotations

import ctypes

import torch
import torch.nn as nn
import torch.nn.functional as F

from book.chapters.sparse import native

NAME = "pool_relu"
MAX_CHANNELS = 64   # MAX_C in pool_relu.c
SIGNATURES = {fn: [native.POINTER] * 3 + [native.SIZE] * 4 + [native.FLAG]
              for fn in ("pool_relu_forward", "pool_relu_backward")}
_CL = torch.channels_last


KERNEL = native.Kernel(NAME, SIGNATURES)
library, status, describe = KERNEL.library, KERNEL.status, KERNEL.describe   # this process's build, which runs


def kernel_applies(x: torch.Tensor) -> bool:
    """Whether the compiled kernel takes this input (else ATen's ops run, with the same bits)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and x.dim() == 4 and x.numel() > 0
            and 1 <= x.shape[1] <= MAX_CHANNELS and x.shape[2] % 2 == 0 and x.shape[3] % 2 == 0
            and x.is_contiguous(memory_format=_CL) and library() is not None)


def forward(lib: ctypes.CDLL, x: torch.Tensor, channel_major: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel's forward on a map it applies to: the output, and per output value its window's
    argmax (0-3) or 4 where the ReLU zeroed it."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h // 2, w // 2), memory_format=torch.contiguous_format if channel_major else _CL)
    code = torch.empty((n, h // 2, w // 2, c), dtype=torch.int32)
    if lib.pool_relu_forward(x.data_ptr(), out.data_ptr(), code.data_ptr(), n, h, w, c, int(channel_major)):
        raise RuntimeError(f"pool_relu_forward refused a map of shape {tuple(x.shape)}")
    return out, code


def backward(lib: ctypes.CDLL, grad: torch.Tensor, code: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """The kernel's backward: the input's gradient (channels-last) from the output's (either layout)."""
    n, c, h, w = shape
    if grad.is_contiguous(memory_format=_CL):
        channel_major = 0
    elif grad.is_contiguous():
        channel_major = 1
    else:
        grad, channel_major = grad.contiguous(memory_format=_CL), 0
    grad_in = torch.empty((n, c, h, w), memory_format=_CL)
    if lib.pool_relu_backward(grad.data_ptr(), code.data_ptr(), grad_in.data_ptr(), n, h, w, c, channel_major):
        raise RuntimeError(f"pool_relu_backward refused a map of shape {tuple(shape)}")
    return grad_in


class _PoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, channel_major: bool) -> torch.Tensor:
        out, code = forward(library(), x, channel_major)
        ctx.save_for_backward(code)
        ctx.shape = tuple(x.shape)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (code,) = ctx.saved_tensors
        return backward(library(), grad, code, ctx.shape), None


def max_pool2_relu(x: torch.Tensor, channel_major: bool = False) -> torch.Tensor:
    """relu(max_pool2d(x, 2)), the same bits, in one pass where the kernel applies. The result is
    channels-last, or with `channel_major` contiguous in the usual NCHW order (so a flatten after it
    is a view)."""
    if kernel_applies(x):
        return _PoolReLU.apply(x, channel_major)
    out = F.relu(F.max_pool2d(x, 2))
    return out.contiguous() if channel_major else out


class MaxPool2ReLU(nn.Module):
    """`max_pool2_relu` as a module: the stage `training.LeNet5Caffe` runs in place of its
    MaxPool2d(2) and the ReLU after it (it holds no parameters and is not one of the net's layers)."""

    def __init__(self, channel_major: bool = False):
        super().__init__()
        self.channel_major = channel_major

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2_relu(x, self.channel_major)

    def extra_repr(self) -> str:
        return f"channel_major={self.channel_major}"
