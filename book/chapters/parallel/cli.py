"""`torchrun --nproc-per-node=N -m book.chapters.parallel {gradients,split,allreduce}`: the chapters' checks
on processes that torchrun started (on one machine or several) instead of a `Pool`."""
from __future__ import annotations

import os
from typing import Sequence

import torch
import torch.distributed as dist

from book.chapters.parallel.collectives import Worker, allreduce_sweep
from book.chapters.parallel.models import dp_train, split_identities, train_single

def _torchrun_worker() -> Worker:
    backend = os.environ.get("BOOK_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend)  # env:// — torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return Worker(rank, world, device)


def main(argv: Sequence[str] | None = None) -> None:
    """`torchrun --nproc-per-node=N -m book.chapters.parallel {gradients,split,allreduce}`: the chapter's
    checks on processes that torchrun started (on one machine or several)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m book.chapters.parallel")
    parser.add_argument("what", choices=["gradients", "split", "allreduce"])
    parser.add_argument("--batch", type=int, default=128)
    opts = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run me under torchrun, e.g. torchrun --nproc-per-node=2 -m book.chapters.parallel gradients")
    w = _torchrun_worker()
    try:
        if opts.what == "gradients":
            gen = torch.Generator().manual_seed(0)
            x, y = torch.randn(opts.batch, 784, generator=gen), torch.randint(0, 10, (opts.batch,), generator=gen)
            got = dp_train(w, x, y, [784, 256, 10], opts.batch, 1, 0.1, 0)["first_grad"]
            ref = train_single(x, y, [784, 256, 10], batch_size=opts.batch, steps=1, lr=0.1, seed=0)["first_grad"]
            msg = f"max |averaged gradient - single-process gradient| = {(got - ref).abs().max().item():.2e}"
        elif opts.what == "split":
            r = split_identities(w, opts.batch, 1000, 500, 0)
            msg = "; ".join(f"{k}: forward err {v['forward_err']:.1e}, backward err {v['backward_err']:.1e}"
                            for k, v in r.items() if k != "data")
        else:
            sizes = [2 ** k for k in range(10, 27, 2)]
            times = allreduce_sweep(w, sizes, 10)
            msg = "\n".join(f"{s / 2**20:10.3f} MiB  {t * 1e3:8.3f} ms  {s / t / 1e9:6.2f} GB/s"
                            for s, t in zip(sizes, times))
        if w.rank == 0:
            print(f"{w.world_size} workers, {dist.get_backend()}:\n{msg}")
    finally:
        dist.destroy_process_group()
