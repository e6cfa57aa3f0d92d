"""Benchmark of book.chapters.int8.quant.int8_matmul on 1024x4096 · 4096x4096.

Prints, all measured in this run:
1. the real int8 GEMM (torch._int_mm: int8 x int8 -> int32) against fp32 torch.matmul;
2. int8_matmul without and with the mixed-precision decomposition at 0.1 % outlier columns
   (4 of 4096), and the decomposition's overhead ratio (target <= 1.3x);
3. Int8Linear (LLM.int8(), what the chapter's MiniLM runs through) against nn.Linear on MiniLM's FFN
   shapes, timed interleaved with a 95 % interval of the ratio (the chapter's full mode spends most
   of its time there; target <= 1.5x on the CPU).

int8_matmul's default backend is torch._int_mm on CUDA and on a CPU where it is an exact, real int8
GEMM (oneDNN with VNNI/AMX: the benchmark lifts the numerics profile's oneDNN cap for it, as the chapter
does); `--backend exact-float` times the float emulation of the int32 accumulation instead.

    python benchmarks/bench_quant.py [--reps 5] [--int-mm-reps 1] [--backend auto|int_mm|exact-float]
"""
from __future__ import annotations

import argparse
import statistics
import time

import book  # noqa: F401  (the numerics profile, before torch loads)
from book.core import numerics

numerics.allow_full_isa_for_integer_kernels()   # as the chapter: VNNI/AMX for the int8 GEMM

import torch  # noqa: E402

from book.chapters.int8.quant import (  # noqa: E402
    Int8Linear, absmax_quantize, int8_matmul, int8_product, onednn_for_integer_gemms_only, planted_outliers)
from book.core.timing import interleaved, paired_ratio_interval  # noqa: E402

onednn_for_integer_gemms_only()   # float ops on ATen/MKL, as in the chapter


def timed(fn, reps: int, device: torch.device) -> float:
    """Median wall time of `reps` calls (after one warm-up call when reps > 1)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if reps > 1:
        fn(); sync()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(); sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--m", type=int, default=1024)
    parser.add_argument("--k", type=int, default=4096)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--int-mm-reps", type=int, default=3, help="reps of the bare torch._int_mm timing on CPU")
    parser.add_argument("--backend", default="auto", choices=["auto", "int_mm", "exact-float"])
    parser.add_argument("--outlier-fraction", type=float, default=0.001)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds for the Int8Linear timing")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    n_outliers = max(1, round(args.outlier_fraction * args.k))
    A, B, cols = planted_outliers(args.m, args.k, args.n, n_outliers, magnitude=20.0, seed=0)
    A, B = A.to(device), B.to(device)
    print(f"device {device}, {torch.get_num_threads()} threads; A {args.m}x{args.k} · B {args.k}x{args.n}; "
          f"{n_outliers} outlier columns ({n_outliers / args.k:.2%})")

    qa, _ = absmax_quantize(A, 8, dim=1)
    qb, _ = absmax_quantize(B, 8, dim=0)
    t_fp32 = timed(lambda: torch.matmul(A, B), args.reps, device)
    int_mm_reps = args.int_mm_reps if device.type == "cpu" else args.reps
    t_intmm = timed(lambda: int8_product(qa, qb, "int_mm"), int_mm_reps, device)
    print(f"fp32 torch.matmul           {t_fp32 * 1e3:10.1f} ms")
    print(f"int8 torch._int_mm (int32)  {t_intmm * 1e3:10.1f} ms   = {t_intmm / t_fp32:.2f}x fp32 time "
          f"({t_fp32 / t_intmm:.2f}x speed-up)")
    if device.type == "cuda":
        Ah, Bh = A.half(), B.half()
        t_fp16 = timed(lambda: Ah @ Bh, args.reps, device)
        print(f"fp16 torch.matmul           {t_fp16 * 1e3:10.1f} ms   int8/fp16 time {t_intmm / t_fp16:.2f}x")

    reps = args.reps if (args.backend != "int_mm" or device.type == "cuda") else args.int_mm_reps
    t_plain = timed(lambda: int8_matmul(A, B, backend=args.backend), reps, device)
    t_decomp = timed(lambda: int8_matmul(A, B, 6.0, backend=args.backend), reps, device)
    _, stats = int8_matmul(A, B, 6.0, backend=args.backend, return_stats=True)
    print(f"int8_matmul ({args.backend}) plain        {t_plain * 1e3:10.1f} ms   = {t_plain / t_fp32:.2f}x fp32")
    print(f"int8_matmul ({args.backend}) LLM.int8()   {t_decomp * 1e3:10.1f} ms   "
          f"({stats.outlier_columns.numel()} outlier columns, int8 fraction {stats.int8_fraction:.4f})")
    ratio = t_decomp / t_plain
    print(f"decomposition overhead over plain int8: {ratio:.3f}x (target <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    for k, m in ((384, 1536), (1536, 384)):      # MiniLM's FFN expansion and contraction, 4096 tokens
        linear = torch.nn.Linear(k, m).to(device)
        layer = Int8Linear(linear, "llm.int8", 6.0).to(device)
        x = torch.randn(4096, k, device=device)
        with torch.no_grad():
            times = interleaved({"fp32": lambda: linear(x), "int8": lambda: layer(x)}, args.rounds, sync=sync)
        est, lo, hi = paired_ratio_interval(times["fp32"], times["int8"])
        print(f"Int8Linear (LLM.int8()) / nn.Linear, {k}->{m}: {est:.2f}x [{lo:.2f}, {hi:.2f}] "
              f"(target <= 1.5x: {'met' if hi <= 1.5 else 'NOT met' if lo > 1.5 else 'undecided'})")


if __name__ == "__main__":
    main()
