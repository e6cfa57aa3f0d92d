"""Benchmark: the gradient exchange of book.chapters.parallel's data-parallel step against a bare
torch.distributed.all_reduce of the same bytes, in the same run, on the same worker processes.

The exchange is `FlatGradients.average` as the data-parallel step calls it: every .grad is a view
into one flat buffer, so it is one all-reduce with no packing copies, and the 1/N of the average is
folded into the loss before backward. The variant with a separate division pass over the buffer is
shown too. Target: exchange time / bare all-reduce time ≤ 1.2.

    python benchmarks/bench_parallel.py [--workers 2] [--reps 30]
"""
from __future__ import annotations

import argparse

from book.chapters import parallel

# MLPs whose gradients are about 1, 4 and 16 MB
MODELS = {"1 MB": [784, 320, 10], "4 MB": [784, 1024, 160, 10], "16 MB": [784, 2048, 1024, 10]}
TARGET = 1.2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--device", default="cpu")
    opts = ap.parse_args()
    parallel.check_world_size(opts.workers)
    if opts.workers < 2:
        raise SystemExit("--workers must be at least 2 (one worker exchanges nothing)")
    ratios = []
    with parallel.Pool(opts.workers, device=opts.device) as pool:
        print(f"{opts.workers} worker processes ({pool.backend}), best of {opts.reps} alternating repetitions")
        print(f"{'gradient':>9} {'bytes':>11} {'step exchange':>14} {'bare all_reduce':>16} {'GB/s step':>10} "
              f"{'GB/s bare':>10} {'ratio':>6} {'ratio, separate division':>25}")
        for name, widths in MODELS.items():
            r = pool.run(parallel.exchange_vs_bare, widths, opts.reps)[0]
            ratio = r["step_exchange"] / r["bare_allreduce"]
            ratios.append(ratio)
            print(f"{name:>9} {r['bytes']:>11,} {r['step_exchange'] * 1e3:>11.2f} ms {r['bare_allreduce'] * 1e3:>13.2f} ms "
                  f"{r['bytes'] / r['step_exchange'] / 1e9:>10.2f} {r['bytes'] / r['bare_allreduce'] / 1e9:>10.2f} {ratio:>6.3f} "
                  f"{r['with_division'] / r['bare_allreduce']:>25.3f}")
    worst = max(ratios)
    print(f"overhead of the data-parallel exchange over bare all_reduce: worst ratio {worst:.3f} "
          f"(target ≤ {TARGET}): {'OK' if worst <= TARGET else 'ABOVE TARGET'}")


if __name__ == "__main__":
    main()
