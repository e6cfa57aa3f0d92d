"""Collectives that count what they send, and timing that every rank agrees on.

- `Worker`: what a worker function gets (rank, world size, device, traffic counter);
- `Traffic`: every collective goes through `all_reduce` / `all_gather_cat` below, which count the
  elements each worker sends (ring algorithms: 2(N-1)/N·n for an all-reduce of n elements,
  (N-1)·n for an all-gather of n-element blocks; with two workers: exactly the tensor handed over);
- `allreduce_sweep`: a bare all-reduce timed against message size; a step is as slow as its slowest
  rank, so every timing is the maximum over ranks (`book.core.timing.slowest_rank`, `timed_step`).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
import torch.distributed as dist

from book.core.timing import best_time, slowest_rank

@dataclass
class Worker:
    """What a worker function gets: its rank, the world size, its device and a traffic counter."""
    rank: int
    world_size: int
    device: torch.device
    traffic: "Traffic" = field(default_factory=lambda: Traffic())

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


class Traffic:
    """Elements and bytes this worker sent, per kind of collective (ring-algorithm volumes)."""

    def __init__(self) -> None:
        self.elements: dict[str, float] = defaultdict(float)
        self.bytes: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.enabled = True

    def add(self, kind: str, elements: float, element_size: int) -> None:
        if self.enabled:
            self.elements[kind] += elements
            self.bytes[kind] += elements * element_size
            self.calls[kind] += 1

    def reset(self) -> None:
        self.elements.clear(), self.bytes.clear(), self.calls.clear()

    def total_elements(self) -> float:
        return sum(self.elements.values())

    def total_bytes(self) -> float:
        return sum(self.bytes.values())

    def summary(self) -> dict[str, Any]:
        return {"elements": dict(self.elements), "bytes": dict(self.bytes), "calls": dict(self.calls)}


def all_reduce(tensor: torch.Tensor, traffic: Traffic | None = None) -> torch.Tensor:
    """Sum `tensor` over all workers in place; counts 2(N-1)/N·numel sent elements."""
    n = dist.get_world_size() if dist.is_initialized() else 1
    if n > 1:
        dist.all_reduce(tensor)
    if traffic is not None:
        traffic.add("all_reduce", 2 * (n - 1) / n * tensor.numel(), tensor.element_size())
    return tensor


def all_gather_cat(block: torch.Tensor, dim: int, traffic: Traffic | None = None) -> torch.Tensor:
    """Stack every worker's `block` along `dim` in rank order; counts (N-1)·numel sent elements."""
    n = dist.get_world_size() if dist.is_initialized() else 1
    if traffic is not None:
        traffic.add("all_gather", (n - 1) * block.numel(), block.element_size())
    if n == 1:
        return block
    blocks = [torch.empty_like(block) for _ in range(n)]
    dist.all_gather(blocks, block.contiguous())
    return torch.cat(blocks, dim=dim)


# -- timing collectives (book.core.timing: best_time, slowest_rank) ---------------------------
def allreduce_sweep(w: Worker, sizes_bytes: Sequence[int], reps: int) -> list[float]:
    """Seconds (best of `reps`) of a bare dist.all_reduce of float32 tensors of each size
    (slowest rank)."""
    times = []
    for nbytes in sizes_bytes:
        t = torch.ones(max(1, nbytes // 4), device=w.device)
        w.barrier()
        times.append(slowest_rank(best_time(lambda: dist.all_reduce(t), w.device, reps)))
    return times
