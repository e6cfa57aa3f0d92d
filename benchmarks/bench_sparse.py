"""Benchmark of sparse momentum's overhead, measured against its dense peer in the same run.

Targets (issue): a sparse-momentum training step at most 1.15x a dense step of the same net, and the
epoch-end redistribution (prune, redistribute, regrow) at most 5 % of an epoch.

    python benchmarks/bench_sparse.py [--model lenet300] [--density 0.05] [--threads 1]

Dense and sparse steps are timed in alternating blocks on the same MNIST batches (held as tensors)
so that a shared, noisy CPU affects both alike; the medians of the blocks are compared.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from book import sparse as sp


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
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--batches", type=int, default=60, help="steps per timed block")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = sp.MnistData.load()
    x, y = data.x_train, data.y_train

    dense_model, dense_opt, _ = make(args.model, 1.0)
    sparse_model, sparse_opt, wrapper = make(args.model, args.density)
    dense_times, sparse_times = [], []
    block(dense_model, dense_opt, dense_opt.step, x, y, 5)   # warm-up
    block(sparse_model, sparse_opt, wrapper.step, x, y, 5)
    for _ in range(args.blocks):
        dense_times.append(block(dense_model, dense_opt, dense_opt.step, x, y, args.batches))
        sparse_times.append(block(sparse_model, sparse_opt, wrapper.step, x, y, args.batches))
    dense_step, sparse_step = statistics.median(dense_times), statistics.median(sparse_times)

    steps_per_epoch = len(x) // 100
    redistribution = []
    for _ in range(3):   # each cycle on fresh momentum, as at the end of an epoch
        block(sparse_model, sparse_opt, wrapper.step, x, y, 5)
        start = time.perf_counter()
        wrapper.prune_and_regrow(0.5)
        redistribution.append(time.perf_counter() - start)
    cycle = statistics.median(redistribution)
    epoch = sparse_step * steps_per_epoch

    step_ratio = sparse_step / dense_step
    share = cycle / epoch
    print(f"model {args.model}, density {args.density}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"dense step  {dense_step * 1e3:.3f} ms (median of {args.blocks} blocks of {args.batches})")
    print(f"sparse step {sparse_step * 1e3:.3f} ms")
    print(f"sparse/dense step ratio: {step_ratio:.3f}  (target <= 1.15) {'OK' if step_ratio <= 1.15 else 'MISSED'}")
    print(f"redistribution {cycle * 1e3:.2f} ms = {share * 100:.2f} % of a {steps_per_epoch}-step epoch "
          f"({epoch:.2f} s)  (target <= 5 %) {'OK' if share <= 0.05 else 'MISSED'}")


if __name__ == "__main__":
    main()
