"""Sparse momentum: training sparse networks from scratch (Dettmers & Zettlemoyer, 2019).

Written from the paper's and the post's description of the algorithm:

- every prunable layer (the weights of linear and conv layers; biases and norms stay dense) starts
  with a uniform random mask at the target density; masked weights are exactly zero after every
  optimizer step;
- at the end of every epoch but the last, each layer
  1. gets an importance: the mean momentum magnitude of its active weights, normalised over layers;
  2. removes the `prune_rate` fraction of its active weights with the smallest magnitude;
  3. the removed total is regrown across layers in proportion to importance (capped by the room a
     layer has), and within a layer at the missing positions with the largest momentum magnitude;
  so the total number of weights stays exactly at the target;
- the prune rate starts at 0.5 and decays with a cosine schedule to a small floor.

Using it on any torch model takes a few lines::

    sparse = SparseMomentum(model, optimizer, density=0.05, epochs=epochs)
    for epoch in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            sparse.step()            # instead of optimizer.step(): steps, then re-applies the masks
        sparse.end_epoch()           # prune, redistribute, regrow

Also here: the LeNet-300-100 and LeNet-5-Caffe nets, a training loop with the paper's MNIST setup,
the FLOP accounting for sparse kernels against dropping empty units with dense kernels (and the
shrunken dense net itself), class specialization of hidden units, and 2:4 structured pruning.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
GROWTH_MODES = ("momentum", "random")
REDISTRIBUTION_MODES = ("momentum", "none")


# ----------------------------------------------------------------------------------------------
# The prune-rate schedule
# ----------------------------------------------------------------------------------------------
def cosine_prune_rate(epoch: int, epochs: int, initial: float = 0.5, floor: float = 0.005) -> float:
    """Prune rate used at the end of `epoch` (0-based) of `epochs`: cosine decay from `initial`
    at epoch 0 to `floor` at the last epoch."""
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    if not 0 <= epoch < epochs:
        raise ValueError(f"epoch must be in [0, {epochs}), not {epoch}")
    if not 0 <= floor <= initial <= 1:
        raise ValueError(f"need 0 <= floor <= initial <= 1, got floor={floor}, initial={initial}")
    progress = epoch / max(1, epochs - 1)
    return floor + 0.5 * (initial - floor) * (1 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------
# Sparse momentum
# ----------------------------------------------------------------------------------------------
def prunable_layers(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> weight of every linear/conv layer of `model` (the weights sparse momentum masks)."""
    return {f"{name}.weight" if name else "weight": module.weight
            for name, module in model.named_modules() if isinstance(module, PRUNABLE_TYPES)}


def _momentum_source(optimizer: torch.optim.Optimizer, group: dict) -> str:
    """Which optimizer-state entry holds the momentum of a param group; errors when there is none."""
    if "momentum" in group:
        if not group["momentum"] > 0:
            raise ValueError(f"{type(optimizer).__name__} has momentum={group['momentum']}: sparse momentum "
                             "needs an optimizer with momentum (e.g. SGD(..., momentum=0.9))")
        return "momentum_buffer"
    if "betas" in group:
        if not group["betas"][0] > 0:
            raise ValueError(f"{type(optimizer).__name__} has beta1={group['betas'][0]}: sparse momentum "
                             "needs a first-moment (momentum) estimate")
        return "exp_avg"
    raise ValueError(f"{type(optimizer).__name__} keeps no momentum; sparse momentum needs SGD with "
                     "momentum > 0 or an Adam-type optimizer")


def _largest_remainder(targets: np.ndarray, total: int, caps: np.ndarray) -> np.ndarray:
    """Integers that sum to `total`, close to the real `targets`, never above `caps`."""
    counts = np.minimum(np.floor(targets).astype(np.int64), caps)
    short = total - int(counts.sum())
    order = np.argsort(-(targets - np.floor(targets)), kind="stable")
    while short > 0:
        progressed = False
        for i in order:
            if short == 0:
                break
            if counts[i] < caps[i]:
                counts[i] += 1
                short -= 1
                progressed = True
        if not progressed:
            raise RuntimeError("not enough room to regrow the pruned weights")
    return counts


def allocate_regrowth(importance: np.ndarray, total: int, room: np.ndarray) -> np.ndarray:
    """Split `total` new weights across layers in proportion to `importance`, never giving a layer
    more than its `room`; what a full layer cannot take goes to the others by importance."""
    importance = np.asarray(importance, dtype=np.float64)
    room = np.asarray(room, dtype=np.int64)
    if total > room.sum():
        raise ValueError(f"cannot regrow {total} weights into {room.sum()} free positions")
    targets = np.zeros(len(room))
    open_ = room > 0
    left = float(total)
    while left > 1e-9 and open_.any():
        weights = np.where(open_, importance, 0.0)
        if weights.sum() <= 0:  # no momentum anywhere open: spread by room instead
            weights = np.where(open_, room - targets, 0.0).astype(np.float64)
        share = left * weights / weights.sum()
        proposal = targets + share
        over = open_ & (proposal >= room)
        if not over.any():
            targets = proposal
            break
        left -= float((room[over] - targets[over]).sum())
        targets[over] = room[over]
        open_ &= ~over
    return _largest_remainder(targets, total, room)


class SparseMomentum:
    """Keeps the linear/conv weights of `model` sparse at `density` and moves them by momentum.

    Call `step()` instead of `optimizer.step()` and `end_epoch()` after each epoch. `density=1`
    is the dense baseline (all masks full, `end_epoch` does nothing), so the same loop trains both.

    growth: "momentum" (the paper) or "random" (ablation); redistribution: "momentum" (the paper)
    or "none" (ablation: each layer regrows what it pruned). `masks` fixes a starting mask per
    layer name (e.g. a 2:4 pattern); without `end_epoch` calls it stays fixed.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, density: float, *,
                 epochs: int = 1, prune_rate: float = 0.5, prune_rate_floor: float = 0.005,
                 growth: str = "momentum", redistribution: str = "momentum", seed: int = 0,
                 masks: dict[str, torch.Tensor] | None = None):
        if isinstance(density, bool) or not isinstance(density, (int, float)):
            raise TypeError(f"density must be a number in (0, 1], not {density!r}")
        if not (0 < density <= 1) or math.isnan(density):
            raise ValueError(f"density must be in (0, 1], not {density}")
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be a positive int, not {epochs!r}")
        if not 0 <= prune_rate_floor <= prune_rate <= 1:
            raise ValueError(f"need 0 <= prune_rate_floor <= prune_rate <= 1, got {prune_rate_floor}, {prune_rate}")
        if growth not in GROWTH_MODES:
            raise ValueError(f"growth must be one of {GROWTH_MODES}, not {growth!r}")
        if redistribution not in REDISTRIBUTION_MODES:
            raise ValueError(f"redistribution must be one of {REDISTRIBUTION_MODES}, not {redistribution!r}")
        self.weights = prunable_layers(model)
        if not self.weights:
            raise ValueError(f"{type(model).__name__} has no prunable layer (no nn.Linear or nn.Conv*d): "
                             "nothing to make sparse")
        owner = {id(p): (g, group) for g, group in enumerate(optimizer.param_groups) for p in group["params"]}
        missing = [n for n, w in self.weights.items() if id(w) not in owner]
        if missing:
            raise ValueError(f"the optimizer does not train these prunable weights: {', '.join(missing)}")
        self._state_key = {n: _momentum_source(optimizer, owner[id(w)][1]) for n, w in self.weights.items()}
        self.model, self.optimizer = model, optimizer
        self.density, self.epochs = float(density), epochs
        self.prune_rate, self.prune_rate_floor = prune_rate, prune_rate_floor
        self.growth, self.redistribution = growth, redistribution
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.masks = self._initial_masks(masks)
        self.apply_masks()

    # -- masks ------------------------------------------------------------------------------
    def _initial_masks(self, given: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        masks = {}
        for name, w in self.weights.items():
            if given is not None and name in given:
                mask = given[name].to(device=w.device, dtype=torch.bool)
                if mask.shape != w.shape:
                    raise ValueError(f"mask for {name} has shape {tuple(mask.shape)}, weight {tuple(w.shape)}")
            elif self.density >= 1:
                mask = torch.ones_like(w, dtype=torch.bool)
            else:  # uniform random: exactly round(density * n) weights, at least one, per layer
                n = w.numel()
                keep = max(1, int(round(self.density * n)))
                idx = torch.randperm(n, generator=self.generator)[:keep]
                mask = torch.zeros(n, dtype=torch.bool)
                mask[idx] = True
                mask = mask.view_as(w).to(w.device)
            masks[name] = mask
        return masks

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero every masked weight (after each optimizer step and after each regrowth)."""
        for name, w in self.weights.items():
            w.mul_(self.masks[name])

    def step(self, closure: Callable | None = None) -> Any:
        """The optimizer's step, then the masks: masked weights stay exactly zero."""
        out = self.optimizer.step(closure) if closure is not None else self.optimizer.step()
        self.apply_masks()
        return out

    # -- bookkeeping ------------------------------------------------------------------------
    def active_counts(self) -> dict[str, int]:
        return {n: int(m.sum()) for n, m in self.masks.items()}

    def layer_densities(self) -> dict[str, float]:
        return {n: int(m.sum()) / m.numel() for n, m in self.masks.items()}

    def total_density(self) -> float:
        return sum(int(m.sum()) for m in self.masks.values()) / sum(m.numel() for m in self.masks.values())

    def momentum(self, name: str) -> torch.Tensor:
        state = self.optimizer.state.get(self.weights[name], {})
        buf = state.get(self._state_key[name])
        if buf is None:
            raise RuntimeError(f"no momentum for {name} yet: take at least one optimizer step before end_epoch()")
        return buf

    # -- the algorithm ----------------------------------------------------------------------
    def end_epoch(self) -> dict[str, Any] | None:
        """Prune, redistribute and regrow (every epoch but the last); returns that cycle's record."""
        record = None
        if self.density < 1 and self.epoch < self.epochs - 1:
            rate = cosine_prune_rate(self.epoch, self.epochs, self.prune_rate, self.prune_rate_floor)
            record = self.prune_and_regrow(rate)
            record["epoch"] = self.epoch
        self.epoch += 1
        return record

    @torch.no_grad()
    def prune_and_regrow(self, rate: float) -> dict[str, Any]:
        """One cycle of sparse momentum at prune rate `rate`; the total weight count is unchanged."""
        start = time.perf_counter()
        names = list(self.weights)
        before = self.active_counts()
        moms = {n: self.momentum(n).abs() for n in names}
        # (1) layer importance: mean momentum magnitude of the active weights, normalised
        means = np.array([float(moms[n][self.masks[n]].mean()) if before[n] else 0.0 for n in names])
        importance = means / means.sum() if means.sum() > 0 else np.full(len(names), 1 / len(names))
        # (2) prune the smallest-magnitude `rate` fraction of each layer's active weights
        removed = {}
        for n in names:
            k = int(round(rate * before[n]))
            removed[n] = k
            if k:
                score = self.weights[n].abs().masked_fill(~self.masks[n], float("inf")).flatten()
                drop = torch.topk(score, k, largest=False).indices
                self.masks[n].view(-1)[drop] = False
        total = sum(removed.values())
        room = np.array([self.masks[n].numel() - int(self.masks[n].sum()) for n in names])
        # (3) redistribute the removed total by importance (or give each layer back its own)
        if self.redistribution == "momentum":
            regrow = allocate_regrowth(importance, total, room)
        else:
            regrow = np.array([removed[n] for n in names])
        grown_min, missing_max = {}, {}
        for i, n in enumerate(names):
            g = int(regrow[i])
            if not g:
                continue
            free = ~self.masks[n].view(-1)
            if self.growth == "momentum":
                score = moms[n].flatten().masked_fill(~free, -1.0)
                grow = torch.topk(score, g).indices
            else:
                candidates = free.nonzero().flatten()
                pick = torch.randperm(len(candidates), generator=self.generator)[:g]
                grow = candidates[pick.to(candidates.device)]
            self.masks[n].view(-1)[grow] = True
            self.weights[n].view(-1)[grow] = 0.0  # new weights start at zero
            still_free = ~self.masks[n].view(-1)
            grown_min[n] = float(moms[n].flatten()[grow].min())
            missing_max[n] = float(moms[n].flatten()[still_free].max()) if still_free.any() else 0.0
        self.apply_masks()
        after = self.active_counts()
        record = {
            "prune_rate": rate, "importance": dict(zip(names, importance.tolist())),
            "removed": removed, "regrown": dict(zip(names, regrow.tolist())),
            "active_before": before, "active_after": after,
            "layer_density": self.layer_densities(),
            "grown_min_momentum": grown_min, "missing_max_momentum": missing_max,
            "seconds": time.perf_counter() - start,
        }
        self.history.append(record)
        return record

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"masks": {n: m.cpu().clone() for n, m in self.masks.items()}, "epoch": self.epoch,
                "density": self.density, "epochs": self.epochs, "prune_rate": self.prune_rate,
                "prune_rate_floor": self.prune_rate_floor, "growth": self.growth,
                "redistribution": self.redistribution, "generator": self.generator.get_state(),
                "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        masks = state["masks"]
        if set(masks) != set(self.weights):
            raise ValueError(f"checkpoint masks cover {sorted(masks)}, this model has {sorted(self.weights)}")
        for n, m in masks.items():
            if m.shape != self.weights[n].shape:
                raise ValueError(f"checkpoint mask {n} has shape {tuple(m.shape)}, weight {tuple(self.weights[n].shape)}")
            self.masks[n] = m.to(device=self.weights[n].device, dtype=torch.bool).clone()
        for key in ("epoch", "density", "epochs", "prune_rate", "prune_rate_floor", "growth", "redistribution"):
            setattr(self, key, state[key])
        self.generator.set_state(state["generator"])
        self.history = list(state.get("history", []))
        self.apply_masks()


def save_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer, sparse: SparseMomentum) -> None:
    """Model, optimizer (momentum included) and the sparse state (masks) in one file."""
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "sparse": sparse.state_dict()}, path)


def load_checkpoint(path, model: nn.Module, optimizer: torch.optim.Optimizer, sparse: SparseMomentum) -> None:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    sparse.load_state_dict(state["sparse"])


# ----------------------------------------------------------------------------------------------
# The MNIST nets and the paper's MNIST training setup
# ----------------------------------------------------------------------------------------------
def lenet_300_100() -> nn.Sequential:
    """LeNet-300-100: 784-300-100-10, ReLU."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


def lenet5_caffe() -> nn.Sequential:
    """LeNet-5-Caffe: conv 1→20 5×5, pool, conv 20→50 5×5, pool, fc 800→500, fc 500→10 (ReLU)."""
    return nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))


MODELS = {"lenet300": lenet_300_100, "lenet5": lenet5_caffe}
MODEL_TITLES = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5-Caffe"}
PAPER_ITERATIONS = 100 * 600   # the paper's MNIST run: 100 epochs of 600 batches of 100
PAPER_LR_DROP_EVERY = 25_000   # iterations between learning-rate drops (÷10)


@dataclass
class RunConfig:
    model: str = "lenet300"
    density: float = 0.05
    epochs: int = 100
    seed: int = 0
    growth: str = "momentum"
    redistribution: str = "momentum"
    batch_size: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    prune_rate: float = 0.5
    prune_rate_floor: float = 0.005
    train_subset: int | None = None   # first N training images (quick runs)
    test_subset: int | None = None    # first N test images (quick runs of the conv net)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, not {self.model!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, not {self.epochs!r}")


@dataclass
class RunResult:
    config: RunConfig
    test_error: float
    model: nn.Module
    sparse: SparseMomentum
    epoch_seconds: list[float] = field(default_factory=list)
    layer_density: list[dict[str, float]] = field(default_factory=list)  # after each epoch


@dataclass
class MnistData:
    """MNIST held as tensors on one device, so no epoch ever decodes a file again."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def load(cls, device: torch.device | str = "cpu") -> "MnistData":
        from .data import mnist_tensors

        x, y = mnist_tensors("train", device=device)
        xt, yt = mnist_tensors("test", device=device)
        return cls(x, y, xt, yt)


def lr_drop_every(epochs: int, steps_per_epoch: int) -> int:
    """Iterations between the ÷10 learning-rate drops: the paper's 25,000, whatever the run's length.
    A shorter run (quick mode) is the start of the paper's schedule, not a compressed copy of it
    (compressing it would spend most of a short run at a learning rate too small to learn)."""
    return PAPER_LR_DROP_EVERY


@torch.no_grad()
def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    model.eval()
    wrong = 0
    for i in range(0, len(x), batch):
        wrong += int((model(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum())
    model.train()
    return wrong / len(x)


def train(config: RunConfig, data: MnistData, *, device: torch.device | str = "cpu",
          progress: Callable[[int, float], None] | None = None) -> RunResult:
    """Train one net from scratch with sparse momentum (density 1: the dense baseline)."""
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = MODELS[config.model]().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                                weight_decay=config.weight_decay)
    sparse = SparseMomentum(model, optimizer, config.density, epochs=config.epochs,
                            prune_rate=config.prune_rate, prune_rate_floor=config.prune_rate_floor,
                            growth=config.growth, redistribution=config.redistribution, seed=config.seed)
    x, y = data.x_train, data.y_train
    if config.train_subset:
        x, y = x[:config.train_subset], y[:config.train_subset]
    steps = len(x) // config.batch_size
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, lr_drop_every(config.epochs, steps), gamma=0.1)
    order_gen = torch.Generator().manual_seed(config.seed)
    result = RunResult(config, float("nan"), model, sparse)
    for epoch in range(config.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=order_gen).to(x.device)
        for s in range(steps):
            idx = order[s * config.batch_size:(s + 1) * config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            sparse.step()
            scheduler.step()
        sparse.end_epoch()
        result.epoch_seconds.append(time.perf_counter() - start)
        result.layer_density.append(sparse.layer_densities())
        if progress is not None:
            progress(epoch, result.epoch_seconds[-1])
    n_test = config.test_subset or len(data.x_test)
    result.test_error = test_error(model, data.x_test[:n_test], data.y_test[:n_test])
    return result


def finetune_with_masks(model: nn.Module, masks: dict[str, torch.Tensor], data: MnistData, *, epochs: int = 1,
                        lr: float = 0.01, subset: int | None = None, seed: int = 0) -> SparseMomentum:
    """Retrain a pruned net with its masks held fixed (no prune/regrow cycles), e.g. after 2:4."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    wrapper = SparseMomentum(model, optimizer, 0.5, masks=masks)
    x, y = data.x_train[:subset], data.y_train[:subset]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(100):
            idx = idx.to(x.device)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            wrapper.step()
    return wrapper


def sweep(model: str, densities: Iterable[float], seeds: Iterable[int], epochs: int, data: MnistData, *,
          device: torch.device | str = "cpu", bar=None, keep: Callable[[RunConfig], bool] | None = None,
          **config: Any) -> tuple[list[dict[str, Any]], dict[tuple[float, int], RunResult]]:
    """Train every (density, seed); returns one row per run and the runs `keep` asks to keep."""
    rows, kept = [], {}
    for density in densities:
        for seed in seeds:
            cfg = RunConfig(model=model, density=float(density), epochs=epochs, seed=seed, **config)
            run = train(cfg, data, device=device)
            rows.append({"model": model, "density": cfg.density, "seed": seed, "epochs": epochs,
                         "growth": cfg.growth, "redistribution": cfg.redistribution,
                         "test_error": run.test_error})
            if keep is not None and keep(cfg):
                kept[(cfg.density, seed)] = run
            if bar is not None:
                bar.update(1)
    return rows, kept


def summarize(rows: list[dict[str, Any]]) -> "Any":
    """Mean test error and its standard error over seeds, per (model, density, variant)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    keys = [k for k in ("model", "growth", "redistribution", "density") if k in df]
    g = df.groupby(keys)["test_error"]
    out = g.agg(["mean", "count"]).rename(columns={"mean": "error", "count": "seeds"})
    out["se"] = g.std(ddof=1) / np.sqrt(out["seeds"])
    return out.reset_index()


# ----------------------------------------------------------------------------------------------
# Speedups: FLOPs of sparse kernels against dense kernels with empty units dropped
# ----------------------------------------------------------------------------------------------
def _positions(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """Output positions (spatial size) per prunable layer, from one forward pass."""
    sizes: dict[str, int] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, PRUNABLE_TYPES):
            def hook(mod, inp, out, name=name):
                sizes[f"{name}.weight"] = int(np.prod(out.shape[2:])) if out.dim() > 2 else 1
            hooks.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(torch.zeros((1, *input_shape), device=p.device, dtype=p.dtype))
    finally:
        for h in hooks:
            h.remove()
    return sizes


def layer_flops(model: nn.Module, input_shape: tuple[int, ...] = (1, 28, 28)) -> dict[str, dict[str, float]]:
    """Per prunable layer: dense multiply-add FLOPs (2 per weight per output position) and those
    of a sparse kernel that only touches the nonzero weights."""
    pos = _positions(model, input_shape)
    out = {}
    for name, w in prunable_layers(model).items():
        out[name] = {"dense": 2.0 * w.numel() * pos[name], "sparse": 2.0 * int((w != 0).sum()) * pos[name]}
    return out


_PASS_THROUGH = (nn.ReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Dropout, nn.Identity)


@torch.no_grad()
def drop_empty_units(model: nn.Sequential, input_shape: tuple[int, ...] = (1, 28, 28)) -> nn.Sequential:
    """A smaller dense copy of a sequential net that computes the same function: every hidden unit
    (channel or neuron) whose incoming weights are all zero, or whose outgoing weights are all zero,
    is removed. An input-dead unit outputs a constant f(bias), which is folded into the next layer's
    bias. Between two prunable layers only ReLU, max-pooling, flatten and dropout may sit."""
    if not isinstance(model, nn.Sequential):
        raise TypeError("drop_empty_units works on nn.Sequential nets")
    layers = [copy.deepcopy(m) for m in model]
    idx = [i for i, m in enumerate(layers) if isinstance(m, PRUNABLE_TYPES)]
    for a, b in zip(idx, idx[1:]):
        between = layers[a + 1:b]
        bad = [type(m).__name__ for m in between if not isinstance(m, _PASS_THROUGH)]
        if bad:
            raise ValueError(f"cannot drop units across {', '.join(bad)}")
        first, nxt = layers[a], layers[b]
        units = first.weight.shape[0]
        incoming = first.weight.reshape(units, -1)
        # inputs of the next layer that belong to each unit of this one (flatten: a block per channel)
        n_in = nxt.weight.shape[1]
        if n_in % units:
            raise ValueError(f"layer {b} takes {n_in} inputs, not a multiple of {units} units")
        per = n_in // units
        w_next = nxt.weight.reshape(nxt.weight.shape[0], units, per, -1)  # out, unit, block, kernel
        dead_in = (incoming == 0).all(1)
        dead_out = (w_next == 0).reshape(w_next.shape[0], units, -1).all(2).all(0)
        bias = first.bias if first.bias is not None else torch.zeros(units, device=incoming.device)
        const = bias.clone()
        for m in between:
            if isinstance(m, nn.ReLU):
                const = const.clamp_min(0)
        fold = dead_in & ~dead_out
        if fold.any() and not isinstance(nxt, nn.Linear) and any(nxt.padding if isinstance(nxt.padding, tuple) else [1]):
            raise ValueError("folding a constant unit into a padded convolution is not exact")
        if fold.any() and nxt.bias is None:
            raise ValueError("a dead unit with a nonzero constant output needs a bias in the next layer")
        if fold.any():  # the unit's constant output enters every position of the next layer alike
            contrib = (w_next[:, fold] * const[fold].view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
            nxt.bias.add_(contrib)
        keep = ~(dead_in | dead_out)
        keep_idx = keep.nonzero().flatten()
        first.weight = nn.Parameter(first.weight[keep_idx].clone())
        if first.bias is not None:
            first.bias = nn.Parameter(first.bias[keep_idx].clone())
        kept_next = w_next[:, keep_idx].reshape(nxt.weight.shape[0], len(keep_idx) * per, *nxt.weight.shape[2:])
        nxt.weight = nn.Parameter(kept_next.clone())
        _resize(first, out=len(keep_idx))
        _resize(nxt, inp=len(keep_idx) * per)
    return nn.Sequential(*layers)


def _resize(layer: nn.Module, *, out: int | None = None, inp: int | None = None) -> None:
    if isinstance(layer, nn.Linear):
        if out is not None:
            layer.out_features = out
        if inp is not None:
            layer.in_features = inp
    else:
        if out is not None:
            layer.out_channels = out
        if inp is not None:
            layer.in_channels = inp


def speedup_report(model: nn.Sequential, input_shape: tuple[int, ...] = (1, 28, 28)) -> dict[str, Any]:
    """FLOP speedups of a trained sparse net against its dense FLOPs: a sparse kernel (only nonzero
    weights) against dense kernels after dropping empty units; plus the shrunken net itself."""
    full = layer_flops(model, input_shape)
    small = drop_empty_units(model, input_shape)
    shrunk = layer_flops(small, input_shape)
    dense = sum(v["dense"] for v in full.values())
    # a sparse kernel touches only nonzeros; it would skip the units that feed nothing as well, so
    # count the nonzeros left after dropping empty units (never more work than either alone)
    sparse = sum(v["sparse"] for v in shrunk.values())
    channel = sum(v["dense"] for v in shrunk.values())
    units = {n: (tuple(w.shape)[0], tuple(ws.shape)[0]) for (n, w), ws in
             zip(prunable_layers(model).items(), prunable_layers(small).values())}
    return {"dense_flops": dense, "sparse_kernel_flops": sparse, "dropped_units_flops": channel,
            "sparse_kernel_speedup": dense / sparse, "dropped_units_speedup": dense / channel,
            "units": units, "shrunk_model": small}


def time_forward(model: nn.Module, x: torch.Tensor, repeats: int = 5) -> float:
    """Best-of-`repeats` seconds of one forward pass over `x` (synchronised on a GPU)."""
    best = float("inf")
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            if x.is_cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            model(x)
            if x.is_cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
    return best


# ----------------------------------------------------------------------------------------------
# Class specialization of hidden units
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def class_specialization(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, classes: int = 10,
                         batch: int = 1000) -> dict[str, np.ndarray]:
    """Per hidden layer (the ReLU outputs), one number per unit in [0, 1]:

    s = 1 − H(p) / log(classes), where p_c is the unit's mean activation on class c divided by its
    sum over classes (conv channels: spatially averaged). s = 0: the unit is equally active for every
    class (a general feature); s = 1: it fires for one class only. Units never active are left out."""
    relus = [i for i, m in enumerate(model) if isinstance(m, nn.ReLU)]
    sums = {i: None for i in relus}
    counts = torch.bincount(y, minlength=classes).to(torch.float64)
    model.eval()
    for start in range(0, len(x), batch):
        h = x[start:start + batch]
        yb = y[start:start + batch]
        onehot = F.one_hot(yb, classes).to(torch.float64)
        for i, m in enumerate(model):
            h = m(h)
            if i in sums:
                act = h.flatten(2).mean(2) if h.dim() > 2 else h
                part = onehot.T @ act.to(torch.float64)  # classes × units
                sums[i] = part if sums[i] is None else sums[i] + part
    model.train()
    out = {}
    for n, i in enumerate(relus):
        mean = (sums[i] / counts[:, None]).cpu().numpy()   # classes × units
        total = mean.sum(0)
        alive = total > 0
        p = mean[:, alive] / total[alive]
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(p > 0, p * np.log(p), 0.0).sum(0)
        out[f"layer{n + 1}"] = 1 - ent / np.log(classes)
    return out


# ----------------------------------------------------------------------------------------------
# 2:4 structured sparsity
# ----------------------------------------------------------------------------------------------
def mask_2_4(weight: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest-magnitude weights of every 4 consecutive inputs (rows of the flattened
    weight), the pattern sparse tensor cores run."""
    w = weight.reshape(weight.shape[0], -1)
    if w.shape[1] % 4:
        raise ValueError(f"2:4 needs the input size to be a multiple of 4, got {w.shape[1]}")
    groups = w.abs().reshape(w.shape[0], -1, 4)
    top = groups.topk(2, dim=2).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, top, True)
    return mask.reshape(weight.shape)


def is_2_4(weight: torch.Tensor) -> bool:
    """True when every group of 4 consecutive inputs holds at most 2 nonzeros."""
    w = weight.reshape(weight.shape[0], -1)
    if w.shape[1] % 4:
        return False
    return bool(((w != 0).reshape(w.shape[0], -1, 4).sum(2) <= 2).all())


def stored_bytes_2_4(weight: torch.Tensor, bits: int = 16) -> dict[str, float]:
    """Storage of a dense matrix against its 2:4 compressed form: half the values, plus 2 bits of
    position metadata per kept value."""
    n = weight.numel()
    dense = n * bits / 8
    values = n / 2 * bits / 8
    meta = n / 2 * 2 / 8
    return {"dense": dense, "values": values, "metadata": meta,
            "values_ratio": values / dense, "with_metadata_ratio": (values + meta) / dense}


@torch.no_grad()
def prune_2_4(model: nn.Module) -> dict[str, torch.Tensor]:
    """Apply a 2:4 magnitude mask to every prunable layer whose input size allows it; returns masks
    (layers that cannot take 2:4, e.g. a 25-input conv, keep a full mask)."""
    masks = {}
    for name, w in prunable_layers(model).items():
        try:
            masks[name] = mask_2_4(w)
        except ValueError:
            masks[name] = torch.ones_like(w, dtype=torch.bool)
        w.mul_(masks[name])
    return masks


def time_2_4_matmul(device: torch.device, n: int = 8192, repeats: int = 20) -> dict[str, float]:
    """Seconds of an n×n fp16 matmul, dense against 2:4 semi-structured sparse (a GPU with
    compute capability 8.0 or later: Ampere and newer)."""
    from torch.sparse import to_sparse_semi_structured

    a = torch.randn(n, n, device=device, dtype=torch.float16)
    a = a * mask_2_4(a)
    b = torch.randn(n, n, device=device, dtype=torch.float16)
    a_sparse = to_sparse_semi_structured(a)
    err = float((torch.mm(a_sparse, b) - torch.mm(a, b)).abs().max())

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeats):
            fn()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) / 1000 / repeats

    dense = timed(lambda: torch.mm(a, b))
    sparse = timed(lambda: torch.mm(a_sparse, b))
    return {"dense_s": dense, "sparse_s": sparse, "speedup": dense / sparse, "max_abs_diff": err}


# ----------------------------------------------------------------------------------------------
# What the chapter reads off the runs: cycle invariants, the committed full-mode file, figures
# ----------------------------------------------------------------------------------------------
def cycle_checks(sparse: SparseMomentum) -> dict[str, Any]:
    """The algorithm's invariants over every prune/regrow cycle a run went through:
    total count unchanged; each layer removed round(rate · active); regrowth took the largest
    momentum among missing weights; the layers that did not fill up regrew in proportion to their
    importance (`max_regrowth_deviation`: the largest miss, in weights; rounding allows 1)."""
    conserved, rate_ok, momentum_ok, share_err = True, True, True, 0.0
    for rec in sparse.history:
        conserved &= sum(rec["active_before"].values()) == sum(rec["active_after"].values())
        rate_ok &= all(rec["removed"][n] == int(round(rec["prune_rate"] * rec["active_before"][n]))
                       for n in rec["removed"])
        momentum_ok &= all(rec["grown_min_momentum"][n] >= rec["missing_max_momentum"][n]
                           for n in rec["grown_min_momentum"])
        if sparse.redistribution == "momentum":  # uncapped layers regrow in proportion to importance
            names = list(rec["regrown"])
            regrown = np.array([rec["regrown"][n] for n in names], dtype=float)
            imp = np.array([rec["importance"][n] for n in names])
            room = np.array([sparse.masks[n].numel() - rec["active_before"][n] + rec["removed"][n] for n in names])
            free = regrown < room
            if free.any() and imp[free].sum() > 0:
                scale = regrown[free].sum() / imp[free].sum()
                share_err = max(share_err, float(np.abs(regrown[free] - scale * imp[free]).max()))
    return {"cycles": len(sparse.history), "count_conserved": bool(conserved), "prune_rate_followed": bool(rate_ok),
            "largest_momentum_regrown": bool(momentum_ok), "max_regrowth_deviation": share_err}


FULL_RESULTS = "sparse_lenet300_full.json"


def load_full_results(name: str = FULL_RESULTS) -> dict[str, Any] | None:
    """The committed full-mode results (book/data_files), or None when absent."""
    import json
    from pathlib import Path

    path = Path(__file__).with_name("data_files") / name
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


LAYER_NAMES = {"1.weight": "fc 784→300", "3.weight": "fc 300→100", "5.weight": "fc 100→10"}
LAYER_NAMES_LENET5 = {"0.weight": "conv 1→20", "3.weight": "conv 20→50", "7.weight": "fc 800→500",
                      "9.weight": "fc 500→10"}


def plot_sweep(ax, table, title: str, label: str = "this run", marker: str = "o") -> None:
    """Test error (%) against density (log axis), mean ± standard error; dense as a dashed line."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    t = table[table.density < 1]
    bars = ax.errorbar(t.density * 100, t.error * 100, yerr=t.se.fillna(0) * 100, marker=marker, capsize=3,
                       label=f"{label}: sparse")
    d = table[table.density == 1]
    if len(d):
        ax.axhline(float(d.error.iloc[0]) * 100, ls="--", lw=1, color=bars[0].get_color(), label=f"{label}: dense")
    ax.set_xscale("log")
    ticks = sorted(set(np.round(t.density * 100, 3)) | {float(v) for v in getattr(ax, "_sparse_ticks", [])})
    ax._sparse_ticks = ticks
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.set_xlabel("density (% of weights)")
    ax.set_ylabel("test error (%)")
    ax.set_title(title)


def plot_layer_density(ax, densities: list[dict[str, float]], title: str, start: float | None = None,
                       names: dict[str, str] | None = None) -> None:
    """Per-layer density (%) after each epoch of one run (epoch 0: the uniform start, if given)."""
    rows = ([{n: start for n in densities[0]}] if start is not None else []) + list(densities)
    epochs = np.arange(len(rows)) if start is not None else np.arange(1, len(rows) + 1)
    for n in densities[0]:
        ax.plot(epochs, [100 * d[n] for d in rows], marker=".", label=(names or {}).get(n, n))
    ax.set_xlabel("epoch (0: random start)" if start is not None else "epoch")
    ax.set_ylabel("layer density (%)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.legend(title="layer", fontsize=8)


# ----------------------------------------------------------------------------------------------
# Full-mode sweep from the command line (results go to a JSON file, one row per finished run)
# ----------------------------------------------------------------------------------------------
def _main(argv: list[str] | None = None) -> None:
    import argparse
    import json
    import platform
    from pathlib import Path

    parser = argparse.ArgumentParser(prog="python -m book.sparse",
                                     description="Density sweep with the paper's MNIST setup; "
                                                 "appends one JSON row per finished run to --out.")
    parser.add_argument("--model", default="lenet300", choices=sorted(MODELS))
    parser.add_argument("--densities", type=float, nargs="+", default=[1.0, 0.2, 0.1, 0.05, 0.02, 0.01])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--growth", default="momentum", choices=GROWTH_MODES)
    parser.add_argument("--redistribution", default="momentum", choices=REDISTRIBUTION_MODES)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these small nets)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    doc = json.loads(out.read_text()) if out.exists() else {"runs": []}
    data = MnistData.load(args.device)
    for seed in args.seeds:
        for density in args.densities:
            cfg = RunConfig(model=args.model, density=density, epochs=args.epochs, seed=seed,
                            growth=args.growth, redistribution=args.redistribution)
            run = train(cfg, data, device=args.device)
            doc["runs"].append({
                "model": cfg.model, "density": cfg.density, "seed": seed, "epochs": cfg.epochs,
                "growth": cfg.growth, "redistribution": cfg.redistribution, "test_error": run.test_error,
                "final_layer_density": run.sparse.layer_densities(),
                "train_seconds": round(sum(run.epoch_seconds), 1),
                "torch": torch.__version__, "machine": f"{platform.machine()} {args.device}, {args.threads} thread(s)"})
            out.write_text(json.dumps(doc, indent=1) + "\n")
            print(f"{cfg.model} density {density} seed {seed}: test error {run.test_error:.4f}", flush=True)


def merge_full_results(parts: list[str], out: str, commands: list[str], planned: list[float], note: str = "") -> dict:
    """Merge the per-process JSON files of `python -m book.sparse` into one committed file that
    says what was run (epochs, seeds per density), what was planned but not finished, and how."""
    import json
    from pathlib import Path

    runs = [r for p in parts for r in json.loads(Path(p).read_text())["runs"]]
    runs.sort(key=lambda r: (-r["density"], r["seed"]))
    done = sorted({r["density"] for r in runs}, reverse=True)
    seeds = {d: sorted(r["seed"] for r in runs if r["density"] == d) for d in done}
    epochs = sorted({r["epochs"] for r in runs})
    missing = [d for d in planned if d not in done]
    description = (f"LeNet-300-100, paper's MNIST setup, {'/'.join(map(str, epochs))} epochs on all 60,000 images; "
                   + "; ".join(f"density {d:g}: seeds {seeds[d]}" for d in done)
                   + (f"; planned but not finished: densities {missing}" if missing else "")
                   + (f". {note}" if note else ""))
    doc = {"description": description, "commands": commands, "runs": runs}
    Path(out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


if __name__ == "__main__":
    _main()
