"""Why a run of the paper's setup diverged (sparse-13): its first epochs traced step by step, as the
post's algorithm trains it and with one change, the momentum of regrown weights reset to zero.

A weight that is regrown was chosen because its momentum, gathered while it was missing, is among the
largest; in the post's algorithm (and the paper's code) it keeps that momentum. The trace records the
loss of every step and the test error after every epoch of both variants, from the same seed, so a
reader can see whether the loss jumps right after each prune/regrow cycle and whether resetting the
regrown momentum removes the jump. The variant is a diagnosis, not the paper's algorithm: no verdict
reads its errors.

    python -m book.chapters.sparse.divergence            # LeNet-5-Caffe, 5 %, seed 0, 5 epochs
                                                          # (about 4 minutes on one core)

writes results/sparse/divergence.json.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from book.core.numerics import float_text as ft
from book.chapters.sparse.reading import Reading
from book.chapters.sparse.training import MnistData, RunConfig, train

VARIANTS = {"as published": "kept", "regrown momentum reset": "zero"}
WINDOW = 50   # steps per loss average


def trace(cfg: RunConfig, data: MnistData, epochs: int, regrown_momentum: str) -> dict[str, Any]:
    """The first `epochs` epochs of run `cfg` (its full schedule, cut short): loss averaged over each
    window of WINDOW steps (fewer in a shorter epoch), the largest single-step loss and the test error
    after the epoch and its cycle, per epoch."""
    losses: list[float] = []
    errors: list[float] = []
    result = train(cfg, data, epochs_run=epochs, step_losses=losses, epoch_errors=errors,
                   regrown_momentum=regrown_momentum)
    steps = len(losses) // epochs
    window = min(WINDOW, steps)
    per_epoch = np.asarray(losses).reshape(epochs, steps)
    return {"regrown_momentum": regrown_momentum, "epochs": epochs, "steps_per_epoch": steps, "window": window,
            "test_error": errors, "max_step_loss": [float(v) for v in per_epoch.max(1)],
            "loss_windows": [[round(float(v), 4) for v in e[:steps - steps % window].reshape(-1, window).mean(1)]
                             for e in per_epoch],
            "layer_density": result.layer_density}


def first_window_loss(t: dict[str, Any]) -> list[float]:
    """The mean loss of each epoch's first window of steps: right after a cycle (epoch 0: from scratch)."""
    return [w[0] for w in t["loss_windows"]]


@dataclass(kw_only=True)
class Traced(Reading):
    traces: dict[str, dict[str, Any]]   # variant name -> `trace`
    evidence: Any


def committed() -> Traced:
    """The committed study (results/sparse/divergence.json): per variant, the test error after each
    epoch, the mean loss of the first steps after each cycle and the largest step loss."""
    from book.core import evidence

    ev = evidence.load("sparse", "divergence")
    traces = ev.data["traces"]
    lines = [f"evidence {ev.label}: {ev.data['description']}"]
    for name, t in traces.items():
        lines += [f"{name}: test error after each epoch " + ", ".join(ft(e, ".2%") for e in t["test_error"]),
                  f"  mean loss of each epoch's first {t['window']} steps "
                  + ", ".join(ft(v, ".3f") for v in first_window_loss(t))
                  + "; largest step loss " + ", ".join(ft(v, ".3g") for v in t["max_step_loss"])]
    return Traced(lines=lines, traces=traces, evidence=ev)


def _main(argv: list[str] | None = None) -> None:
    from book.core import evidence

    parser = argparse.ArgumentParser(prog="python -m book.chapters.sparse.divergence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the 100-epoch schedule to trace")
    args = parser.parse_args(argv)
    cfg = RunConfig(model=args.model, density=args.density, seed=args.seed, epochs=100)
    data = MnistData.load("cpu")
    start, traces = time.perf_counter(), {}
    for name, mode in VARIANTS.items():
        traces[name] = trace(cfg, data, args.epochs, mode)
        print(f"{name}: test error by epoch {traces[name]['test_error']}, first {WINDOW} steps' loss "
              f"{first_window_loss(traces[name])}", flush=True)
    description = (f"{cfg.model} at density {cfg.density:g}, seed {cfg.seed}: the first {args.epochs} "
                   f"epochs of its 100-epoch run at the paper's setup, as published and with the momentum "
                   f"of regrown weights reset to zero; loss per {WINDOW} steps and test error per epoch")
    path = evidence.save("sparse", "divergence", {"description": description, "config": vars(args),
                                                 "traces": traces},
                         command=f"python -m book.chapters.sparse.divergence --model {args.model} "
                                 f"--density {args.density:g} --seed {args.seed} --epochs {args.epochs}",
                         wall_s=time.perf_counter() - start)
    print(f"wrote {path}")


if __name__ == "__main__":   # `python -m` imports the package `book` (the numerics profile) first
    _main()
