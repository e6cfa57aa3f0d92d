"""The compression baseline the post compares with, written here: Han et al.'s (2015) magnitude
pruning.

Han, Pool, Tran & Dally, "Learning both Weights and Connections for Efficient Neural Networks"
(NeurIPS 2015) in three steps, repeated:

1. train the dense net;
2. prune every connection whose weight is below a threshold; the threshold of a layer is a quality
   parameter times the standard deviation of that layer's (remaining) weights, one quality parameter
   for all layers — here chosen so that exactly `density` of the weights survive;
3. retrain the survivors with the pruned connections held at zero, at a lower learning rate;
   iterative pruning repeats 2-3 with a density that falls geometrically to the target.

Sparse momentum (`algorithm`) never trains the dense net; the post's point is that it still beats
such compression methods. `compare` trains both on MNIST with the same number of epochs.

Command line (the committed evidence `results/sparse/pruning.json`, about 5 minutes a seed on one
core)::

    python -m book.chapters.sparse.pruning --seeds 0 1
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn as nn

from book.chapters.sparse.algorithm import prunable_layers
from book.chapters.sparse.training import (MnistData, RunConfig, finetune_with_masks, test_error,
                                           train)


@torch.no_grad()
def magnitude_masks(model: nn.Module, density: float,
                    current: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Han et al.'s threshold rule at a total density: a weight survives when |w| >= q * std(layer),
    one q for every layer, chosen so that round(density * all weights) survive (weights already
    pruned stay pruned)."""
    if not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], not {density}")
    weights = prunable_layers(model)
    scores = {}
    for name, w in weights.items():
        alive = current[name] if current is not None else torch.ones_like(w, dtype=torch.bool)
        std = w[alive].std() if int(alive.sum()) > 1 else w.abs().max()
        score = w.abs() / (std if float(std) > 0 else 1.0)
        scores[name] = score.masked_fill(~alive, -1.0)   # a pruned weight never returns
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = int(round(density * flat.numel()))
    if current is not None:
        keep = min(keep, int(sum(int(m.sum()) for m in current.values())))
    order = torch.argsort(flat, descending=True, stable=True)[:keep]
    chosen = torch.zeros(flat.numel(), dtype=torch.bool)
    chosen[order] = True
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = chosen[start:start + s.numel()].view_as(s).to(s.device)
        start += s.numel()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    for name, w in prunable_layers(model).items():
        w.mul_(masks[name])


def density_schedule(target: float, rounds: int) -> list[float]:
    """Iterative pruning: densities falling geometrically from 1 to `target` in `rounds` steps."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, not {rounds}")
    return [target ** ((i + 1) / rounds) for i in range(rounds)]


@dataclass
class PruningConfig:
    model: str = "lenet300"
    density: float = 0.08
    dense_epochs: int = 50
    rounds: int = 3
    retrain_epochs: int = 10     # per round
    retrain_lr: float = 0.01     # a tenth of the dense run's 0.1
    seed: int = 0
    train_subset: int | None = None
    test_subset: int | None = None

    @property
    def epochs(self) -> int:
        """All epochs the method trains: the dense run and every retraining."""
        return self.dense_epochs + self.rounds * self.retrain_epochs


def han_pruning(cfg: PruningConfig, data: MnistData, *, device: torch.device | str = "cpu",
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train dense, then prune and retrain `rounds` times down to `cfg.density`."""
    start = time.perf_counter()
    dense = train(RunConfig(model=cfg.model, density=1.0, epochs=cfg.dense_epochs, seed=cfg.seed,
                            train_subset=cfg.train_subset, test_subset=cfg.test_subset),
                  data, device=device)
    model = dense.model
    n_test = cfg.test_subset or len(data.x_test)
    x_test, y_test = data.x_test[:n_test], data.y_test[:n_test]
    masks, one_shot, rounds = None, None, []
    for r, d in enumerate(density_schedule(cfg.density, cfg.rounds)):
        masks = magnitude_masks(model, d, masks)
        apply_masks(model, masks)
        pruned = test_error(model, x_test, y_test)
        if one_shot is None:
            one_shot = pruned
        finetune_with_masks(model, masks, data, epochs=cfg.retrain_epochs, lr=cfg.retrain_lr,
                            subset=cfg.train_subset, seed=cfg.seed + 1 + r)
        rounds.append({"density": d, "error_pruned": pruned,
                       "error_retrained": test_error(model, x_test, y_test)})
        if progress is not None:
            progress(f"round {r + 1}: density {d:.3f}")
    total = sum(int(m.numel()) for m in masks.values())
    kept = sum(int(m.sum()) for m in masks.values())
    return {"config": asdict(cfg), "epochs": cfg.epochs, "dense_error": dense.test_error,
            "one_shot_error": one_shot, "test_error": rounds[-1]["error_retrained"],
            "rounds": rounds, "density": kept / total,
            "layer_density": {n: float(m.float().mean()) for n, m in masks.items()},
            "model": model, "masks": masks, "seconds": time.perf_counter() - start}


def compare(cfg: PruningConfig, data: MnistData, *,
            device: torch.device | str = "cpu") -> dict[str, Any]:
    """Han et al.'s pruning and sparse momentum at the same density, seed and number of epochs."""
    pruned = han_pruning(cfg, data, device=device)
    start = time.perf_counter()
    momentum = train(RunConfig(model=cfg.model, density=cfg.density, epochs=cfg.epochs,
                               seed=cfg.seed, train_subset=cfg.train_subset,
                               test_subset=cfg.test_subset), data, device=device)
    row = {k: v for k, v in pruned.items() if k not in ("model", "masks")}
    row.update({"sparse_momentum_error": momentum.test_error,
                "sparse_momentum_density": momentum.sparse.total_density(),
                "sparse_momentum_seconds": time.perf_counter() - start})
    return row


FULL = dict(dense_epochs=50, rounds=3, retrain_epochs=10)            # 80 epochs a method
QUICK = dict(dense_epochs=3, rounds=2, retrain_epochs=1, train_subset=10_000)


def _main(argv: list[str] | None = None) -> None:
    import argparse

    from book.core import evidence

    parser = argparse.ArgumentParser(prog="python -m book.chapters.sparse.pruning",
                                     description="Han et al.'s pruning beside sparse momentum on "
                                                 "MNIST (LeNet-300-100, 8 %); writes "
                                                 "results/sparse/pruning.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--density", type=float, default=0.08)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = MnistData.load("cpu")
    rows, start = [], time.perf_counter()
    for seed in args.seeds:
        rows.append(compare(PruningConfig(density=args.density, seed=seed, **FULL), data))
        print(f"seed {seed}: pruning {rows[-1]['test_error']:.4f}, sparse momentum "
              f"{rows[-1]['sparse_momentum_error']:.4f}", flush=True)
    description = (f"LeNet-300-100 at density {args.density:g}, seeds {args.seeds}: Han et al.'s "
                   f"pruning ({FULL['dense_epochs']} dense epochs, {FULL['rounds']} prune/retrain "
                   f"rounds of {FULL['retrain_epochs']} epochs at lr 0.01) and sparse momentum "
                   f"trained for the same {PruningConfig(**FULL).epochs} epochs, all 60,000 MNIST "
                   f"images, 1 torch thread")
    seeds = " ".join(map(str, args.seeds))
    path = evidence.save("sparse", "pruning", {"description": description, "rows": rows},
                         command=f"python -m book.chapters.sparse.pruning --seeds {seeds} "
                                 f"--density {args.density:g}",
                         wall_s=time.perf_counter() - start)
    print(f"wrote {path}")


if __name__ == "__main__":   # `python -m` imports the package `book` (the numerics profile) first
    _main()
