"""Timing that can be trusted on a shared machine: repeated, interleaved trials and an interval.

A single timing on a loaded 2-core CPU flips verdicts from run to run. The chapters instead time the
things they compare in alternation (A B, B A, A B, ...), so load that comes and goes hits both, and
judge the paired ratios with a confidence interval: a timed claim is decided only when the interval
excludes the other outcome (see `Ledger.check_interval`)."""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

import numpy as np


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, warmup: int = 1,
                sync: Callable[[], Any] | None = None, progress: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each function, `rounds` times, in an order that alternates every round.
    `sync` (e.g. torch.cuda.synchronize) runs before each clock reading."""
    if rounds < 2:
        raise ValueError("need at least 2 rounds for an interval")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    rng = range(rounds)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc="timing", leave=False)
    for r in rng:
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            if sync:
                sync()
            start = time.perf_counter()
            fns[name]()
            if sync:
                sync()
            times[name].append(time.perf_counter() - start)
    return times


def mean_interval(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and its Student-t confidence interval."""
    from scipy import stats

    x = np.asarray(samples, dtype=float)
    if x.size < 2:
        raise ValueError("need at least 2 samples for an interval")
    mean = float(x.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def paired_ratio_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95
                          ) -> tuple[float, float, float]:
    """The ratio b/a (e.g. time with a feature over time without) from paired trials: the geometric
    mean of the per-round ratios and its t-interval, computed on log ratios (ratios are skewed)."""
    a_, b_ = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_.shape != b_.shape:
        raise ValueError("paired trials need as many samples of a as of b")
    if (a_ <= 0).any() or (b_ <= 0).any():
        raise ValueError("times must be positive")
    mean, lo, hi = mean_interval(np.log(b_ / a_), confidence)
    return math.exp(mean), math.exp(lo), math.exp(hi)


# -- timing on devices and across worker processes -----------------------------------------------
def sync_device(device: Any) -> None:
    """Wait for the device's queued work (a CUDA device; nothing to wait for on a CPU)."""
    if getattr(device, "type", str(device).split(":")[0]) == "cuda":
        import torch

        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], Any], device: Any, reps: int, warmup: int = 2) -> float:
    """Fastest of `reps` timed calls after `warmup`: on a machine shared with other jobs the
    minimum is the least disturbed estimate of what the code itself costs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        sync_device(device)
        start = time.perf_counter()
        fn()
        sync_device(device)
        best = min(best, time.perf_counter() - start)
    return best


def slowest_rank(value: float) -> float:
    """The largest of every worker process's value (a distributed step is as slow as its slowest
    rank); the value itself outside torch.distributed or with one process."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    on_gpu = dist.get_backend() == "nccl"  # nccl reduces GPU tensors only
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if on_gpu else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def timed_step(fn: Callable[[], Any], device: Any, barrier: Callable[[], Any] | None = None) -> float:
    """Seconds one call of `fn` takes on every worker, started together after `barrier`: the
    slowest rank's time (`slowest_rank`)."""
    if barrier is not None:
        barrier()
    sync_device(device)
    start = time.perf_counter()
    fn()
    sync_device(device)
    return slowest_rank(time.perf_counter() - start)


__all__ = ["interleaved", "mean_interval", "paired_ratio_interval", "sync_device", "best_time",
           "slowest_rank", "timed_step"]
