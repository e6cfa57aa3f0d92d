"""What the parallel chapters time, each measured as repeated, interleaved trials.

On a machine shared with other jobs a single timing decides nothing: every function here times the
things it compares in alternation, round after round (so load that comes and goes hits both), and
returns every round's time; the chapter judges the paired ratios with a confidence interval
(`book.core.timing.paired_ratio_interval`, `Ledger.check_interval`). Timings of a distributed step are
the slowest rank's (`book.core.timing.timed_step`).
"""
from __future__ import annotations

import math
import time
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from book.chapters.parallel.collectives import Worker
from book.core.timing import sync_device, timed_step
from book.chapters.parallel.models import FlatGradients, mlp, shard, split_mlp

def overlap_timing(w: Worker, widths: Sequence[int], per_worker_batch: int, reps: int,
                   bucket_mb: float) -> dict[str, list[float]]:
    """Step times (forward, backward, gradient average) without overlap — one all-reduce of the
    flat gradient after backward — and with overlap — torch's DistributedDataParallel, whose
    buckets of `bucket_mb` are all-reduced while backward goes on. The two steps alternate, one
    each per repetition, so both see the same background load. Returns every repetition's time."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    gen = torch.Generator().manual_seed(1234 + w.rank)
    x = torch.randn(per_worker_batch, widths[0], generator=gen).to(w.device)
    y = torch.randint(0, widths[-1], (per_worker_batch,), generator=gen).to(w.device)
    plain = mlp(widths, seed=0).to(w.device)
    grads = FlatGradients(plain)
    ddp = DDP(mlp(widths, seed=0).to(w.device), bucket_cap_mb=bucket_mb,
              device_ids=[w.device.index] if w.device.type == "cuda" else None)

    def off():
        grads.zero()
        (nn.functional.cross_entropy(plain(x), y) / w.world_size).backward()
        grads.average(divide=False)

    def on():
        ddp.zero_grad(set_to_none=False)
        nn.functional.cross_entropy(ddp(x), y).backward()

    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(reps + 2):
        for name, step in (("off", off), ("on", on)):
            elapsed = timed_step(step, w.device, w.barrier)
            if i >= 2:  # two warm-up rounds (DDP builds its buckets in the first iterations)
                times[name].append(elapsed)
    return times


def exchange_vs_bare(w: Worker, widths: Sequence[int], reps: int) -> dict[str, float]:
    """The data-parallel step's gradient exchange (`FlatGradients.average` as the step calls it:
    one all-reduce of the flat gradient, the 1/N folded into backward), the same with a separate
    division pass, and a bare dist.all_reduce of a tensor of the same bytes, alternating one of
    each per repetition; the best time of each, and the bytes."""
    model = mlp(widths, seed=0).to(w.device)
    grads = FlatGradients(model)
    bare = torch.ones_like(grads.flat)
    contenders = (("step_exchange", lambda: grads.average(divide=False)),
                  ("with_division", grads.average),
                  ("bare_allreduce", lambda: dist.all_reduce(bare)))
    times: dict[str, float] = {name: float("inf") for name, _ in contenders}
    for i in range(reps + 2):
        for name, fn in contenders:
            elapsed = timed_step(fn, w.device, w.barrier)
            if i >= 2:
                times[name] = min(times[name], elapsed)
    times["bytes"] = grads.flat.numel() * grads.flat.element_size()
    return times


def efficiency_trials(w: Worker, widths: Sequence[int], per_worker_batch: int, rounds: int
                      ) -> dict[str, Any]:
    """Weak scaling, round by round: the data-parallel step of an MLP (forward, backward, one
    all-reduce of the flat gradient, the 1/N folded into the loss) and the same step without the
    exchange — what every worker would take if communication were free — alternating, both on
    all workers at once and timed as the slowest rank. Their ratio compute/step is the step's
    parallel efficiency (1: the exchange costs nothing). Returns every round's seconds and the bytes."""
    gen = torch.Generator().manual_seed(1234 + w.rank)
    x = torch.randn(per_worker_batch, widths[0], generator=gen).to(w.device)
    y = torch.randint(0, widths[-1], (per_worker_batch,), generator=gen).to(w.device)
    model = mlp(widths, seed=0).to(w.device)
    grads = FlatGradients(model)

    def compute():
        grads.zero()
        (nn.functional.cross_entropy(model(x), y) / w.world_size).backward()

    def step():
        compute()
        grads.average(divide=False)

    times: dict[str, Any] = {"compute": [], "step": []}
    for i in range(rounds + 2):
        order = (("compute", compute), ("step", step)) if i % 2 == 0 else (("step", step), ("compute", compute))
        for name, fn in order:
            elapsed = timed_step(fn, w.device, w.barrier)
            if i >= 2:  # two warm-up rounds
                times[name].append(elapsed)
    times["bytes"] = grads.flat.numel() * grads.flat.element_size()
    return times


def dp_vs_mp_timing(w: Worker, widths_list: Sequence[int], depth: int, batches: Sequence[int],
                    reps: int) -> list[dict[str, Any]]:
    """For an MLP of `depth` square layers of each width and each (global) batch size: the elements
    sent per worker and `reps` alternating timed steps of data parallelism (batch split, gradient
    all-reduced) and of model parallelism (weights split by the first dimension, whole batch
    everywhere). `dp_times`/`mp_times` are the paired rounds; `dp_time`/`mp_time` their medians."""
    rows = []
    for batch in batches:
        for width in widths_list:
            widths = [width] * (depth + 1)
            gen = torch.Generator().manual_seed(7)
            x = torch.randn(batch, width, generator=gen).to(w.device)
            full = mlp(widths, seed=0, bias=False).to(w.device)
            part = shard(batch, w.rank, w.world_size)
            grads = FlatGradients(full)

            def dp_step():
                grads.zero()
                (full(x[part]).square().mean() / w.world_size).backward()  # the 1/N folded into the loss
                grads.average(w.traffic, divide=False)

            split = split_mlp(full, "first", w)

            def mp_step():
                split.zero_grad(set_to_none=False)
                split(x).square().mean().backward()

            row: dict[str, Any] = {"batch": batch, "width": width}
            steps = (("dp", dp_step), ("mp", mp_step))
            for name, step in steps:  # one counted step each (also the warm-up)
                w.traffic.reset()
                step()
                row[f"{name}_elements"] = w.traffic.total_elements()
                row[f"{name}_times"] = []
            w.traffic.enabled = False
            for r in range(reps):  # alternate the two so that both see the same background load
                for name, step in (steps if r % 2 == 0 else steps[::-1]):
                    row[f"{name}_times"].append(timed_step(step, w.device, w.barrier))
            w.traffic.enabled = True
            for name, _ in steps:
                row[f"{name}_time"] = float(np.median(row[f"{name}_times"]))
            rows.append(row)
    return rows


def _calibrate(fn, device: torch.device, at_least_s: float = 2e-3, limit: int = 2 ** 16) -> int:
    """How many calls of `fn` last at least `at_least_s` (timer resolution, kernel-launch overhead)."""
    k = 1
    while True:
        sync_device(device)
        t0 = time.perf_counter()
        for _ in range(k):
            fn()
        sync_device(device)
        if time.perf_counter() - t0 >= at_least_s or k >= limit:
            return k
        k *= 2


class _Threads:
    """Run on `n` CPU threads inside the block (one by default: on a shared machine, timings of
    several threads measure the other jobs as much as the code)."""

    def __init__(self, device: torch.device, n: int | None):
        self.n = n if device.type == "cpu" else None

    def __enter__(self):
        self.previous = torch.get_num_threads()
        if self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)


def matmul_trials(batches: Sequence[int], n: int = 1000, *, device: str | torch.device = "cpu",
                  rounds: int = 20, dtype=torch.float32, cpu_threads: int | None = 1) -> list[list[float]]:
    """Seconds per (batch × n) · (n × n) product for each batch size, `rounds` times: every round
    sweeps all sizes (in alternating order), so a burst of load hits every size alike. Each sample
    repeats the product until it lasts ≥ 2 ms. Returns [round][batch index]."""
    device = torch.device(device)
    if any(not isinstance(b, int) or isinstance(b, bool) or b < 1 for b in batches):
        raise ValueError(f"batch sizes must be positive ints, not {list(batches)!r}")
    if rounds < 2:
        raise ValueError("need at least 2 rounds for an interval")
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(n, n, generator=gen, dtype=dtype).to(device)
    with _Threads(device, cpu_threads):
        inputs = [torch.randn(b, n, generator=gen, dtype=dtype).to(device) for b in batches]
        inner = [_calibrate(lambda x=x: x @ weight, device) for x in inputs]
        out = []
        for r in range(rounds):
            row = [0.0] * len(batches)
            order = range(len(batches)) if r % 2 == 0 else reversed(range(len(batches)))
            for i in order:
                x, k = inputs[i], inner[i]
                sync_device(device)
                t0 = time.perf_counter()
                for _ in range(k):
                    x @ weight
                sync_device(device)
                row[i] = (time.perf_counter() - t0) / k
            out.append(row)
    return out


def matmul_throughput(batches: Sequence[int], n: int = 1000, *, device: str | torch.device = "cpu",
                      reps: int = 20, dtype=torch.float32, cpu_threads: int | None = 1) -> list[float]:
    """Best-of-`reps` GFLOP/s of (batch × n) · (n × n) for each batch size (see `matmul_trials`)."""
    trials = np.array(matmul_trials(batches, n, device=device, rounds=reps, dtype=dtype, cpu_threads=cpu_threads))
    return [2 * b * n * n / t / 1e9 for b, t in zip(batches, trials.min(axis=0))]


def group_ratio_interval(trials: Sequence[Sequence[float]], batches: Sequence[int], group: Sequence[int],
                         reference: Sequence[int], confidence: float = 0.95) -> tuple[float, float, float]:
    """Throughput of the batch sizes in `group` relative to those in `reference`, from the rounds of
    `matmul_trials`: per round the ratio of the geometric-mean throughputs (throughput = b / time,
    per example), then the geometric mean over rounds and its t-interval (estimate, lo, hi)."""
    from book.core.timing import mean_interval

    index = {b: i for i, b in enumerate(batches)}
    if not group or not reference or any(b not in index for b in [*group, *reference]):
        raise ValueError("group and reference must be non-empty subsets of the batch sizes")
    t = np.asarray(trials, dtype=float)
    log_thr = np.log(np.asarray(batches, dtype=float)) - np.log(t)  # per-example throughput, log
    logs = log_thr[:, [index[b] for b in group]].mean(axis=1) - log_thr[:, [index[b] for b in reference]].mean(axis=1)
    mean, lo, hi = mean_interval(logs, confidence)
    return math.exp(mean), math.exp(lo), math.exp(hi)


def forward_backward_trials(batch: int = 100, n_in: int = 1000, n_out: int = 1000, *,
                            device: str | torch.device = "cpu", rounds: int = 20,
                            cpu_threads: int | None = 1, seed: int = 0) -> dict[str, list[float]]:
    """Seconds of one layer's forward product (batch × n_in)·(n_in × n_out) and of its backward
    pass (autograd: the deltas for the layer below, δ·Wᵀ, and the weight gradient, Xᵀ·δ),
    alternating round by round (`book.core.timing.interleaved`); each sample repeats the operation
    until it lasts ≥ 2 ms (calibrated on the forward, the same count for the backward)."""
    from book.core.timing import interleaved

    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_in, generator=gen).to(device).requires_grad_(True)
    weight = torch.randn(n_in, n_out, generator=gen).to(device).requires_grad_(True)
    delta = torch.randn(batch, n_out, generator=gen).to(device)
    with _Threads(device, cpu_threads):
        with torch.no_grad():
            k = _calibrate(lambda: x @ weight, device)
        y = x @ weight  # the graph the backward passes go through (kept for every round)

        def forward():
            with torch.no_grad():
                for _ in range(k):
                    x @ weight

        def backward():
            for _ in range(k):
                torch.autograd.grad(y, (x, weight), delta, retain_graph=True)

        times = interleaved({"forward": forward, "backward": backward}, rounds, warmup=1,
                            sync=(lambda: sync_device(device)))
    return {name: [t / k for t in ts] for name, ts in times.items()}


def _rmsprop(p: torch.Tensor, grad: torch.Tensor, square: torch.Tensor, lr: float,
             alpha: float = 0.99, eps: float = 1e-8) -> None:
    """One RMSProp update of `p` in place (the running mean of squared gradients in `square`)."""
    square.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
    p.addcdiv_(grad, square.sqrt().add_(eps), value=-lr)


def rmsprop_overlap_trials(w: Worker, widths: Sequence[int], per_worker_batch: int, rounds: int,
                           lr: float = 1e-3) -> dict[str, Any]:
    """The post's own overlap: after the backward pass, while one layer's gradient is all-reduced
    the RMSProp update of the layer before it already computes. Two copies of the same MLP take
    alternating data-parallel RMSProp steps (the 1/N folded into the loss): `sequential` all-reduces
    every gradient, then updates; `overlapped` starts every all-reduce at once (async, last layer
    first) and updates each layer as soon as its gradient has arrived. Returns every round's
    seconds (slowest rank) and the largest difference between the two copies' weights after the
    same steps (the overlap may not change a bit)."""
    gen = torch.Generator().manual_seed(1234 + w.rank)
    x = torch.randn(per_worker_batch, widths[0], generator=gen).to(w.device)
    y = torch.randint(0, widths[-1], (per_worker_batch,), generator=gen).to(w.device)
    models = {name: mlp(widths, seed=0).to(w.device) for name in ("sequential", "overlapped")}
    squares = {name: [torch.zeros_like(p) for p in m.parameters()] for name, m in models.items()}

    def backward(model: nn.Module) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=False)
        (nn.functional.cross_entropy(model(x), y) / w.world_size).backward()
        return list(model.parameters())

    def sequential() -> None:
        params = backward(models["sequential"])
        for p in params:
            dist.all_reduce(p.grad)
        for p, square in zip(params, squares["sequential"]):
            _rmsprop(p.data, p.grad, square, lr)

    def overlapped() -> None:
        params = backward(models["overlapped"])
        order = list(reversed(range(len(params))))  # the order backward finishes them
        handles = {i: dist.all_reduce(params[i].grad, async_op=True) for i in order}
        for i in order:
            handles[i].wait()
            _rmsprop(params[i].data, params[i].grad, squares["overlapped"][i], lr)

    times: dict[str, Any] = {"sequential": [], "overlapped": []}
    steps = (("sequential", sequential), ("overlapped", overlapped))
    for i in range(rounds + 2):
        for name, fn in (steps if i % 2 == 0 else steps[::-1]):
            elapsed = timed_step(fn, w.device, w.barrier)
            if i >= 2:  # two warm-up rounds
                times[name].append(elapsed)
    times["weight_difference"] = max(
        (a - b).abs().max().item()
        for a, b in zip(models["sequential"].parameters(), models["overlapped"].parameters()))
    return times


def hybrid_vs_dp_trials(w: Worker, batch: int, rounds: int, seed: int = 0,
                        dense: Sequence[int] = (1024, 1024)) -> dict[str, Any]:
    """One training step of `mnist_convnet` on MNIST-shaped inputs by data parallelism (batch split,
    every gradient all-reduced) and by the hybrid (convolutions data-parallel, dense layers split
    by their first dimension), alternating round by round; the elements each worker sent in one
    step of each (the collectives' counters) and every round's seconds (slowest rank)."""
    from book.chapters.parallel.models import HybridNet, mnist_convnet

    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 1, 28, 28, generator=gen).to(w.device)
    y = torch.randint(0, 10, (batch,), generator=gen).to(w.device)
    part = shard(batch, w.rank, w.world_size)
    conv, head = mnist_convnet(seed, dense)
    data_net = nn.Sequential(conv, head).to(w.device)
    grads = FlatGradients(data_net)
    hybrid = HybridNet(*mnist_convnet(seed, dense), "first", w)

    def data_step() -> None:
        grads.zero()
        (nn.functional.cross_entropy(data_net(x[part]), y[part]) / w.world_size).backward()
        grads.average(w.traffic, divide=False)

    def hybrid_step() -> None:
        hybrid.zero_grad(set_to_none=False)
        nn.functional.cross_entropy(hybrid(x[part]), y).backward()
        hybrid.average_conv_gradients()

    out: dict[str, Any] = {"data": [], "hybrid": []}
    steps = (("data", data_step), ("hybrid", hybrid_step))
    for name, step in steps:  # one counted step each (also a warm-up)
        w.traffic.reset()
        step()
        out[f"{name}_elements"] = w.traffic.total_elements()
    w.traffic.enabled = False
    for i in range(rounds + 1):
        for name, step in (steps if i % 2 == 0 else steps[::-1]):
            elapsed = timed_step(step, w.device, w.barrier)
            if i >= 1:
                out[name].append(elapsed)
    w.traffic.enabled = True
    return out


def mp_overlap_trials(w: Worker, width: int, depth: int, batch: int, chunks: int, rounds: int,
                      seed: int = 0) -> dict[str, Any]:
    """A trick that hides model parallelism's synchronisation: the forward pass of `depth` layers
    split by their first dimension (each worker's partial products added by an all-reduce), once
    `blocking` (every layer waits for its all-reduce) and once `pipelined` over `chunks`
    micro-batches (the all-reduce of one micro-batch runs, async, while the next micro-batch's
    partial product computes; a micro-batch goes on to the next layer once its sum has arrived).
    Returns the largest difference of the outputs in float64 (the trick must not change the
    result) and every round's seconds of both in float32 (slowest rank)."""
    block = batch // chunks
    if block * chunks != batch:
        raise ValueError("the batch must split into equal micro-batches")
    cols = slice(w.rank * width // w.world_size, (w.rank + 1) * width // w.world_size)

    def setup(dtype):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, width, generator=gen, dtype=dtype)
        weights = [torch.randn(width, width, generator=gen, dtype=dtype) / width ** 0.5
                   for _ in range(depth)]
        return x.to(w.device), [wt[cols].contiguous().to(w.device) for wt in weights]

    def blocking(x, weights):
        h = x
        for wt in weights:
            h = h[:, cols] @ wt
            dist.all_reduce(h)
            h = torch.relu(h)
        return h

    def pipelined(x, weights):
        hs = list(x.split(block))
        for wt in weights:
            pending = []
            for j in range(chunks):
                partial = hs[j][:, cols] @ wt
                pending.append((partial, dist.all_reduce(partial, async_op=True)))
            hs = []
            for partial, handle in pending:
                handle.wait()
                hs.append(torch.relu(partial))
        return torch.cat(hs)

    x64, w64 = setup(torch.float64)
    difference = (blocking(x64, w64) - pipelined(x64, w64)).abs().max().item()
    x32, w32 = setup(torch.float32)
    out: dict[str, Any] = {"difference": difference, "blocking": [], "pipelined": []}
    runs = (("blocking", lambda: blocking(x32, w32)), ("pipelined", lambda: pipelined(x32, w32)))
    for i in range(rounds + 2):
        for name, fn in (runs if i % 2 == 0 else runs[::-1]):
            elapsed = timed_step(fn, w.device, w.barrier)
            if i >= 2:
                out[name].append(elapsed)
    return out
