"""Benchmark: the chapter's matmul measurement (`book.chapters.gpu.measure_matmul`) against a bare fp32
`torch.matmul` loop at 2048², both measured in this run, interleaved so that both see the same
machine load (the order alternates every round). Target: the chapter reports within 10 % of the
bare loop — judged on the 95 % interval of the paired per-round ratios (`book.core.timing`), so a noisy
machine says "undecided" instead of a coin flip.

    python benchmarks/bench_gpu.py [--n 2048] [--rounds 9] [--device auto]

On a shared machine the timings are noisy; the paired ratios of interleaved rounds are what count,
not the absolute GFLOP/s.
"""
from __future__ import annotations

import argparse
import time

import torch

from book.chapters import gpu as G
from book.core.device import describe, pick_device
from book.core.timing import paired_ratio_interval


def bare_loop_gflops(n: int, device: torch.device, iters: int) -> float:
    """What anyone would write: two random matrices, a warm-up, then a timed loop of torch.matmul."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.matmul(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        torch.matmul(a, b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=9)  # noisy shared CPUs need several
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(describe(device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # both sides: plain fp32
    else:
        print(G.describe_cpu_peak(G.cpu_peak()))
    iters = 3 if device.type == "cpu" else 50
    chapter, bare = [], []
    for r in range(args.rounds):
        order = ("chapter", "bare") if r % 2 == 0 else ("bare", "chapter")
        for which in order:
            if which == "chapter":
                chapter.append(G.measure_matmul(args.n, torch.float32, device, repeats=3, warmup=1)["gflops"])
            else:
                bare.append(bare_loop_gflops(args.n, device, iters))
        print(f"round {r}: chapter {chapter[-1]:8.1f} GFLOP/s   bare loop {bare[-1]:8.1f} GFLOP/s")
    ratio, lo, hi = paired_ratio_interval(bare, chapter)  # chapter / bare, per round
    verdict = ("within" if 0.9 <= lo and hi <= 1.1 else "OUTSIDE" if hi < 0.9 or lo > 1.1 else "undecided on")
    print(f"chapter / bare torch.matmul loop: {ratio:.3f} [{lo:.3f}, {hi:.3f}] (95 % interval): {verdict} the 10 % target")

if __name__ == "__main__":
    main()
