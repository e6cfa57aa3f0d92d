"""Benchmark of the sparse chapter's training loop, measured side by side with its peers in one run.

    python benchmarks/bench_sparse.py [--model lenet5] [--density 0.05] [--rounds 2] [--ghz 2.45] [--save]

Under the book's numerics profile (AVX2 kernels, one thread: `import book` first), it reports

1. the chapter's epoch: `training.train` on all 60,000 MNIST images, batch 100, the run's first epoch
   including its prune/redistribute/regrow cycle, against a **naive peer**: a bare dense LeNet-5
   epoch in plain torch (a textbook `nn.Module`, `F.max_pool2d`, SGD with the same settings, the same
   in-memory MNIST tensors, no DataLoader). Epochs are timed in ABBA order (`--rounds` pairs each)
   so a shared, drifting CPU load falls on both alike; the ratio is the geometric mean of the paired
   ratios (issue 22's goal: at most 0.45);
2. the same epoch against the FLOP limit of the CPU: the net's forward + backward FLOPs per image
   (conv1 needs no input gradient) times 60,000, at `--ghz` x 32 fp32 FLOP per cycle (AVX2 + FMA: two
   8-wide FMA units) on one core;
3. the sparse step against a dense step of the same net (same layout, plain `optimizer.step()`, no
   wrapper), in interleaved blocks (`book.core.timing.interleaved`; target at most 1.15), and the
   epoch-end cycle as a share of the epoch (target at most 5 %).

`--save` stores the figures with their provenance (CPU, commit, versions, the load average before
and after) as `results/sparse/benchmark.json`, which the chapter quotes; run it on a quiet machine
(no sweep running), since the targets are about one core of it.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import book  # noqa: F401  (the numerics profile, before torch)
import torch
import torch.nn as nn
import torch.nn.functional as F

from book.chapters import sparse as sp
from book.core import numerics
from book.core.timing import interleaved, paired_ratio_interval


# ----------------------------------------------------------------------------------------------
# The naive peer: LeNet-5-Caffe as anyone would write it in plain torch
# ----------------------------------------------------------------------------------------------
class PlainLeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def plain_epoch(x: torch.Tensor, y: torch.Tensor, seed: int = 0, batch: int = 100) -> float:
    """Seconds of one dense epoch of the plain loop."""
    torch.manual_seed(seed)
    model = PlainLeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    start = time.perf_counter()
    for idx in torch.randperm(len(x)).split(batch):
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return time.perf_counter() - start


class _FirstEpochDone(Exception):
    pass


def chapter_epoch(data: sp.MnistData, model: str, density: float, seed: int = 0) -> float:
    """Seconds of the first epoch of the chapter's own `train()` (a 100-epoch run, stopped after it;
    the epoch includes its prune/redistribute/regrow cycle)."""
    times = []

    def stop(epoch: int, seconds: float) -> None:
        times.append(seconds)
        raise _FirstEpochDone

    try:
        sp.train(sp.RunConfig(model=model, density=density, epochs=100, seed=seed), data, progress=stop)
    except _FirstEpochDone:
        pass
    return times[0]


def flops_per_image(model: nn.Sequential) -> float:
    """Forward + backward FLOPs of one image: forward 2 per weight per output position; backward
    twice that (input and weight gradients), less the input gradient of the first layer."""
    layer = sp.layer_flops(model)
    forward = sum(v["dense"] for v in layer.values())
    first = next(iter(layer.values()))["dense"]
    return 3 * forward - first


def cpu_ghz() -> float | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else None
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------
# Sparse step against dense step of the same net (interleaved blocks)
# ----------------------------------------------------------------------------------------------
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
    parser.add_argument("--model", default="lenet5", choices=sorted(sp.MODELS))
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA pairs of whole epochs (0: skip epochs)")
    parser.add_argument("--blocks", type=int, default=10, help="interleaved pairs of timed step blocks")
    parser.add_argument("--batches", type=int, default=30, help="steps per timed block")
    parser.add_argument("--ghz", type=float, default=None, help="core clock for the FLOP limit (default: /proc/cpuinfo)")
    parser.add_argument("--save", action="store_true", help="store the figures as results/sparse/benchmark.json")
    args = parser.parse_args()
    if args.save and (args.model != "lenet5" or not args.rounds):
        parser.error("--save records the LeNet-5 epoch benchmark: --model lenet5 and --rounds 1 or more")
    load_before, wall = os.getloadavg(), time.perf_counter()
    record: dict = {}
    data = sp.MnistData.load()
    x, y = data.x_train, data.y_train
    status = numerics.status()
    print(f"model {args.model}, density {args.density}, torch {torch.__version__}, numerics profile "
          f"{status['profile']} (in force: {status['in_force']}, {status.get('cpu_capability')}, "
          f"{status.get('threads')} thread)")

    if args.rounds and args.model == "lenet5":
        chapter, plain = [], []
        for r in range(args.rounds):   # A B B A: each side as often first as second
            order = ("plain", "chapter") if r % 2 == 0 else ("chapter", "plain")
            for side in order + order[::-1]:
                if side == "plain":
                    plain.append(plain_epoch(x, y, seed=r))
                else:
                    chapter.append(chapter_epoch(data, args.model, args.density, seed=r))
                print(f"  {side} epoch {(plain if side == 'plain' else chapter)[-1]:.1f} s", flush=True)
        ratios = [c / p for c, p in zip(chapter, plain)]
        ratio = math.exp(statistics.fmean(map(math.log, ratios)))
        ep_c, ep_p = statistics.median(chapter), statistics.median(plain)
        ghz = args.ghz or cpu_ghz() or 2.45
        flop = flops_per_image(sp.lenet5_caffe()) * len(x)
        limit = flop / (ghz * 1e9 * 32)
        print(f"chapter epoch ({args.density:g} density, train(), incl. its prune/regrow cycle): {ep_c:.1f} s "
              f"(median of {len(chapter)}) (target <= 20 s) {'OK' if ep_c <= 20 else 'MISSED'}")
        print(f"naive peer, bare dense LeNet-5 epoch in plain torch: {ep_p:.1f} s (median of {len(plain)})")
        print(f"chapter / naive peer: {ratio:.2f} (geometric mean of {len(ratios)} paired epochs, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}) (goal <= 0.45) {'OK' if ratio <= 0.45 else 'MISSED'}")
        print(f"FLOP limit: {flop / 1e12:.3f} TFLOP per epoch ({flop / len(x) / 1e6:.2f} MFLOP per image, "
              f"forward + backward) at {ghz:.2f} GHz x 32 FLOP/cycle = {ghz * 32:.0f} GFLOP/s: {limit:.1f} s; "
              f"chapter epoch / limit {ep_c / limit:.2f} ({limit / ep_c:.0%} of peak), naive / limit "
              f"{ep_p / limit:.2f}; the limit itself is {limit / ep_p:.2f} of the naive epoch")
        record.update(model=args.model, density=args.density, chapter_epochs_s=[round(t, 2) for t in chapter],
                      plain_epochs_s=[round(t, 2) for t in plain], chapter_epoch_s=round(ep_c, 2),
                      plain_epoch_s=round(ep_p, 2), chapter_over_plain=round(ratio, 3),
                      chapter_over_plain_range=[round(min(ratios), 3), round(max(ratios), 3)],
                      flop_per_image=flop / len(x), ghz=ghz, flop_limit_s=round(limit, 2),
                      chapter_over_limit=round(ep_c / limit, 3), limit_over_plain=round(limit / ep_p, 3),
                      targets={"chapter_epoch_s": 20, "chapter_over_plain": 0.45, "sparse_over_dense_step": 1.15,
                               "cycle_share": 0.05})

    dense_model, dense_opt, _ = make(args.model, 1.0)
    sparse_model, sparse_opt, wrapper = make(args.model, args.density)
    trials = interleaved({"dense": lambda: block(dense_model, dense_opt, dense_opt.step, x, y, args.batches),
                          "sparse": lambda: block(sparse_model, sparse_opt, wrapper.step, x, y, args.batches)},
                         rounds=args.blocks, warmup=1)
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
    share = cycle / (sparse_step * steps_per_epoch)
    print(f"dense step {dense_step * 1e3:.2f} ms, sparse step {sparse_step * 1e3:.2f} ms (medians of {args.blocks} "
          f"blocks of {args.batches} steps, the chapter's net and layout both)")
    verdict = "OK" if ratio_hi <= 1.15 else ("MISSED" if ratio_lo > 1.15 else "UNDECIDED (interval straddles 1.15)")
    print(f"sparse / dense step: {ratio:.3f}, 95 % interval [{ratio_lo:.3f}, {ratio_hi:.3f}] over {args.blocks} "
          f"interleaved pairs of blocks (target <= 1.15) {verdict}")
    print(f"epoch-end cycle {cycle * 1e3:.1f} ms = {share * 100:.2f} % of a {steps_per_epoch}-step epoch "
          f"(target <= 5 %) {'OK' if share <= 0.05 else 'MISSED'}")
    if args.save:
        from book.core import evidence

        record.update(dense_step_ms=round(dense_step * 1e3, 3), sparse_step_ms=round(sparse_step * 1e3, 3),
                      sparse_over_dense_step=[round(v, 3) for v in (ratio, ratio_lo, ratio_hi)],
                      cycle_ms=round(cycle * 1e3, 2), cycle_share=round(share, 4), numerics=status,
                      load_average_before=[round(v, 2) for v in load_before],
                      load_average_after=[round(v, 2) for v in os.getloadavg()])
        path = evidence.save("sparse", "benchmark", record, wall_s=time.perf_counter() - wall,
                             command="python benchmarks/bench_sparse.py " + " ".join(
                                 f"--{k} {v}" for k, v in (("density", args.density), ("rounds", args.rounds),
                                                           ("blocks", args.blocks), ("batches", args.batches))) + " --save",
                             note="seconds on one core of the CPU named here, one torch thread, under the "
                                  "numerics profile; ratios of epochs timed side by side in one process")
        print(f"saved {path}")


if __name__ == "__main__":
    main()
