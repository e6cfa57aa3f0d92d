"""The paper's optimizer, SGD with Nesterov momentum and weight decay, with a CPU step that makes one
pass over each tensor (issue 22: the epoch's speed), bit for bit torch's.

torch's foreach SGD runs five elementwise kernels a tensor and allocates the weight-decayed gradient;
the compiled `sgd_step.c` reads and writes each tensor once, a few times faster on LeNet-5-Caffe's
431 k parameters (timed side by side: `benchmarks/bench_sparse.py`, results/sparse/benchmark.json). Its arithmetic is torch's, operation for operation and
rounding for rounding (the C says which), so parameters and momentum come out with the same bits
(`tests/test_sparse_fused_sgd.py`) and no committed run changes.

The compiled step runs where its bits were checked: x86-64 with torch's AVX2 (or AVX-512) kernels, on
CPU float32 tensors whose momentum exists (torch's first step makes it), with Nesterov, no dampening,
no maximize, a float learning rate and no closure. Anything else is torch's own step.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

from book.chapters.sparse import native

NAME = "sgd_step"
SIGNATURES = {"sgd_nesterov_step": [native.POINTER] * 3 + [native.SIZE] + [native.REAL] * 3}


KERNEL = native.Kernel(NAME, SIGNATURES)
library, status, describe = KERNEL.library, KERNEL.status, KERNEL.describe   # this process's build, which runs


def _torch_step(optimizer: torch.optim.SGD, closure: Callable | None) -> Any:
    """torch's SGD.step without running the step hooks a second time (torch wraps each optimizer class's
    step with its hooks once; `NesterovSGD.step` already ran them)."""
    step = torch.optim.SGD.step
    step = step.__wrapped__ if getattr(step, "hooked", False) else step
    return step(optimizer, closure)


def _same_dense_layout(*tensors: torch.Tensor) -> bool:
    """All dense (contiguous or channels-last), of one shape, with their elements in the same order in
    memory (strides of size-1 dimensions do not matter)."""
    first = tensors[0]
    if all(t.stride() == first.stride() for t in tensors[1:]) and first.is_contiguous():
        return all(t.shape == first.shape for t in tensors[1:])   # the common case, decided fast
    dense = first.is_contiguous() or (first.dim() == 4 and first.is_contiguous(memory_format=torch.channels_last))

    def order(t: torch.Tensor) -> list[int]:
        return [st for st, n in zip(t.stride(), t.shape) if n > 1]
    return dense and all(t.shape == first.shape and order(t) == order(first) for t in tensors)


class NesterovSGD(torch.optim.SGD):
    """`torch.optim.SGD(params, lr, momentum, nesterov=True, weight_decay, foreach=True)` whose CPU step
    is one compiled pass a tensor where it applies (see the module); the state, state_dict and
    schedulers are SGD's."""

    def __init__(self, params: Iterable[torch.Tensor], *, lr: float, momentum: float, weight_decay: float):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay, foreach=True)

    def _work(self) -> list[tuple[torch.Tensor, torch.Tensor, float, float, float]] | None:
        """(param, momentum, lr, weight decay, momentum factor) for every param with a gradient, when the
        compiled step applies to all of them; else None."""
        if not native.x86_avx2() or library() is None:
            return None
        work, f32, state = [], torch.float32, self.state
        for group in self.param_groups:
            if (not group["nesterov"] or group["dampening"] != 0 or group["maximize"] or group["differentiable"]
                    or not group["momentum"] or isinstance(group["lr"], torch.Tensor)):
                return None
            lr, wd, momentum = float(group["lr"]), float(group["weight_decay"]), float(group["momentum"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf, grad = state[p].get("momentum_buffer") if p in state else None, p.grad
                if (buf is None or grad.is_sparse or not p.is_cpu or p.dtype != f32 or grad.dtype != f32
                        or buf.dtype != f32 or not _same_dense_layout(p, grad, buf)):
                    return None
                work.append((p, buf, lr, wd, momentum))
        return work

    @torch.no_grad()
    def step(self, closure: Callable | None = None) -> Any:
        work = self._work() if closure is None else None
        if work is None:
            return _torch_step(self, closure)
        fn = library().sgd_nesterov_step
        for p, buf, lr, wd, momentum in work:
            fn(p.data_ptr(), p.grad.data_ptr(), buf.data_ptr(), p.numel(), lr, wd, momentum)
            # written through their memory: tell autograd, as torch's in-place ops do
            torch.autograd.graph.increment_version(p)
            torch.autograd.graph.increment_version(buf)
        return None
