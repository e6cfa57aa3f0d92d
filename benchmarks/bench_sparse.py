"""Benchmark of sparse momentum's overhead, measured against its dense peer in the same run.

Targets (issue): a sparse-momentum training step at most 1.15x a dense step of the same net, and the
epoch-end redistribution (prune, redistribute, regrow) at most 5 % of an epoch.

    python benchmarks/bench_sparse.py [--model lenet300] [--density 0.05] [--threads 1]

Dense and sparse steps are timed in interleaved blocks (`book.core.timing.interleaved`: A B, B A, ...) on the
same MNIST batches (held as tensors), so that a shared, noisy CPU affects both alike; the ratio is the
geometric mean of the paired block ratios with its 95 % interval (`book.core.timing.paired_ratio_interval`).
The dense side is a bare loop: the same net dense, plain `optimizer.step()`, no wrapper.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from book.chapters import sparse as sp
from book.core.timing import interleaved, paired_ratio_interval


def make(model_name: str, density: float, seed: int = 0):
    torch.manual_seed(seed)
    model = sp.MODELS[model_name]()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return model, opt, sp.SparseMomentum(model, opt, density, epochs=100, seed=seed)


def block(model, opt, stepper, x, y, batches, batch_size=100) -> float:
    """Seconds per training step over `batches` steps (forward, backward, optimizer + masks)."""
    start = time.perf_counter()
    for b in range(batches):
        xb, yb = x[b * batch_size:(b + 1) * batch_size], y[b * batch_size:(b + 1) * batch_size]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        stepper()
    return (time.perf_counter() - start) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet300", choices=sorted(sp.MODELS))
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--blocks", type=int, default=20, help="interleaved pairs of timed blocks")
    parser.add_argument("--batches", type=int, default=60, help="steps per timed block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = sp.MnistData.load()
    x, y = data.x_train, data.y_train

    # the bare dense loop: the same net dense, plain optimizer.step(), no wrapper at all
    dense_model, dense_opt, _ = make(args.model, 1.0)
    sparse_model, sparse_opt, wrapper = make(args.model, args.density)
    trials = interleaved({"dense": lambda: block(dense_model, dense_opt, dense_opt.step, x, y, args.batches),
                          "sparse": lambda: block(sparse_model, sparse_opt, wrapper.step, x, y, args.batches)},
                         rounds=args.blocks, warmup=1)
    # interleaved() times whole blocks: per step = block time / steps in a block
    dense_times = [t / args.batches for t in trials["dense"]]
    sparse_times = [t / args.batches for t in trials["sparse"]]
    dense_step, sparse_step = statistics.median(dense_times), statistics.median(sparse_times)
    ratio, ratio_lo, ratio_hi = paired_ratio_interval(dense_times, sparse_times)

    steps_per_epoch = len(x) // 100
    redistribution = []
    for _ in range(3):   # each cycle on fresh momentum, as at the end of an epoch
        block(sparse_model, sparse_opt, wrapper.step, x, y, 5)
        start = time.perf_counter()
        wrapper.prune_and_regrow(0.5)
        redistribution.append(time.perf_counter() - start)
    cycle = statistics.median(redistribution)
    epoch = sparse_step * steps_per_epoch

    share = cycle / epoch
    print(f"model {args.model}, density {args.density}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"dense step  {dense_step * 1e3:.3f} ms (median of {args.blocks} blocks of {args.batches})")
    print(f"sparse step {sparse_step * 1e3:.3f} ms")
    verdict = "OK" if ratio_hi <= 1.15 else ("MISSED" if ratio_lo > 1.15 else "UNDECIDED (interval straddles 1.15)")
    print(f"sparse/bare-dense step ratio: {ratio:.3f}, 95 % interval [{ratio_lo:.3f}, {ratio_hi:.3f}] over "
          f"{args.blocks} interleaved pairs of blocks (target <= 1.15) {verdict}")
    print(f"redistribution {cycle * 1e3:.2f} ms = {share * 100:.2f} % of a {steps_per_epoch}-step epoch "
          f"({epoch:.2f} s)  (target <= 5 %) {'OK' if share <= 0.05 else 'MISSED'}")


if __name__ == "__main__":
    main()
