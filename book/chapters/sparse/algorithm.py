"""Sparse momentum itself: the prune-rate schedule, the mask-keeping optimizer wrapper with its
prune/redistribute/regrow cycle, and checkpoints of its state."""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
GROWTH_MODES = ("momentum", "random")
REDISTRIBUTION_MODES = ("momentum", "none")
# What a regrown weight's momentum starts from: "kept" (the post and the paper's code: the momentum it
# gathered while missing, which is why it was chosen) or "zero" (the divergence study's variant).
REGROWN_MOMENTUM_MODES = ("kept", "zero")


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
                 masks: dict[str, torch.Tensor] | None = None, regrown_momentum: str = "kept"):
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
        if regrown_momentum not in REGROWN_MOMENTUM_MODES:
            raise ValueError(f"regrown_momentum must be one of {REGROWN_MOMENTUM_MODES}, not {regrown_momentum!r}")
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
        self.growth, self.redistribution, self.regrown_momentum = growth, redistribution, regrown_momentum
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self._float_masks: dict[str, tuple] = {}
        self.masks = self._initial_masks(masks)
        self.apply_masks()

    # -- masks ------------------------------------------------------------------------------
    def _initial_masks(self, given: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
        masks = {}
        for name, w in self.weights.items():
            if given is not None and name in given:
                mask = given[name].to(device=w.device, dtype=torch.bool).contiguous()
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

    def _float_mask(self, name: str) -> torch.Tensor:
        """The bool mask of `name` as 0/1 in its weight's dtype and memory layout, remade only when
        the mask tensor was replaced or changed in place (its version counter moved): multiplying by
        it gives the same bits as multiplying by the bool mask, without converting the bool mask
        to floats and its layout to the weight's on every step (measured: `benchmarks/bench_sparse.py`)."""
        mask, w = self.masks[name], self.weights[name]
        key = (mask._version, w.dtype, w.device)
        cached = self._float_masks.get(name)
        if cached is None or cached[0] is not mask or cached[1] != key:
            cached = self._float_masks[name] = (mask, key, torch.empty_like(w).copy_(mask))
        return cached[2]

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero every masked weight (after each optimizer step and after each regrowth)."""
        for name, w in self.weights.items():
            w.mul_(self._float_mask(name))

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
        was_active = {n: self.masks[n].clone().view(-1) for n in names}
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
        grown_min, missing_max, in_place = {}, {}, {}
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
            # A weight missing before this cycle starts at zero. One pruned and regrown in the same
            # cycle keeps its value: its mask went off and on again, as in the paper's code (which
            # never zeroes it), so a layer that is full prunes and regrows without losing weights.
            new = torch.zeros(self.masks[n].numel(), dtype=torch.bool, device=grow.device)
            new[grow] = True
            in_place[n] = int((new & was_active[n]).sum())
            new &= ~was_active[n]
            self.weights[n].masked_fill_(new.view_as(self.masks[n]), 0.0)   # masked_fill: any layout
            if self.regrown_momentum == "zero":
                self.momentum(n).masked_fill_(new.view_as(self.masks[n]), 0.0)
            still_free = ~self.masks[n].view(-1)
            grown_min[n] = float(moms[n].flatten()[grow].min())
            missing_max[n] = float(moms[n].flatten()[still_free].max()) if still_free.any() else 0.0
        self.apply_masks()
        after = self.active_counts()
        record = {
            "prune_rate": rate, "importance": dict(zip(names, importance.tolist())),
            "removed": removed, "regrown": dict(zip(names, regrow.tolist())), "regrown_in_place": in_place,
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
                "redistribution": self.redistribution, "regrown_momentum": self.regrown_momentum,
                "generator": self.generator.get_state(),
                "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        masks = state["masks"]
        if set(masks) != set(self.weights):
            raise ValueError(f"checkpoint masks cover {sorted(masks)}, this model has {sorted(self.weights)}")
        for n, m in masks.items():
            if m.shape != self.weights[n].shape:
                raise ValueError(f"checkpoint mask {n} has shape {tuple(m.shape)}, weight {tuple(self.weights[n].shape)}")
            self.masks[n] = m.to(device=self.weights[n].device, dtype=torch.bool).clone(
                memory_format=torch.contiguous_format)
        for key in ("epoch", "density", "epochs", "prune_rate", "prune_rate_floor", "growth", "redistribution"):
            setattr(self, key, state[key])
        self.regrown_momentum = state.get("regrown_momentum", "kept")
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
