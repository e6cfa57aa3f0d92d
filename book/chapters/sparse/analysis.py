"""What the chapter measures on trained nets: FLOPs of sparse kernels against dense kernels with
empty units dropped (and the shrunk dense net), class specialization of hidden units, 2:4
structured sparsity, the algorithm's cycle invariants, and the figures."""
from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


from book.core import sparsity24
from book.chapters.sparse.algorithm import PRUNABLE_TYPES, SparseMomentum, prunable_layers


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


_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
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
    class (a general feature); s = 1: it fires for one class only. Units never active are left out.

    A ReLU that follows a max-pooling (LeNet-5-Caffe pools first, for speed: `training.lenet5_caffe`)
    is measured at the pooling's input, as ReLU(map) before pooling, so that both orders of the same
    net give the same numbers."""
    relus = [i for i, m in enumerate(model) if isinstance(m, nn.ReLU)]
    sums = {i: None for i in relus}
    counts = torch.bincount(y, minlength=classes).to(torch.float64)
    model.eval()
    for start in range(0, len(x), batch):
        h = x[start:start + batch]
        yb = y[start:start + batch]
        onehot = F.one_hot(yb, classes).to(torch.float64)
        unpooled = None
        for i, m in enumerate(model):
            if isinstance(m, _POOLS) and i + 1 in sums:
                unpooled = F.relu(h)   # what the ReLU after this pooling is measured on
            h = m(h)
            if i in sums:
                measured = h if unpooled is None else unpooled
                unpooled = None
                act = measured.flatten(2).mean(2) if measured.dim() > 2 else measured
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
# 2:4 structured sparsity of a whole net (the pattern, its check and storage: book.core.sparsity24)
# ----------------------------------------------------------------------------------------------
@torch.no_grad()
def prune_2_4(model: nn.Module) -> dict[str, torch.Tensor]:
    """Apply a 2:4 magnitude mask to every prunable layer whose input size allows it; returns masks
    (layers that cannot take 2:4, e.g. a 25-input conv, keep a full mask)."""
    masks = {}
    for name, w in prunable_layers(model).items():
        try:
            masks[name] = sparsity24.mask(w)
        except ValueError:
            masks[name] = torch.ones_like(w, dtype=torch.bool)
        w.mul_(masks[name])
    return masks


def time_2_4_matmul(device: torch.device, n: int = 8192, repeats: int = 20) -> dict[str, float]:
    """Seconds of an n×n fp16 matmul, dense against 2:4 semi-structured sparse (a GPU with
    compute capability 8.0 or later: Ampere and newer)."""
    from torch.sparse import to_sparse_semi_structured

    a = torch.randn(n, n, device=device, dtype=torch.float16)
    a = sparsity24.prune(a)
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
    ax.legend(title="layer", fontsize=9, title_fontsize=9, ncols=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.2))   # below the axes: the lines fill the plot


def specialization_summary(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean class specialization per hidden layer, and over the conv channels (layers 1 and 2) of LeNet-5."""
    s = class_specialization(model, x, y)
    out = {layer: float(v.mean()) for layer, v in s.items()}
    conv = [s[k] for k in ("layer1", "layer2") if k in s]
    if conv:
        out["conv_mean"] = float(np.concatenate(conv).mean())
    return out


def specialization_runs(densities: list[float], seeds: list[int], epochs: int, data, *, model: str = "lenet5",
                        bar=None, **config: Any) -> list[dict[str, Any]]:
    """Train `model` at each density and seed (the paper's MNIST setup) and measure the class
    specialization of its units on the test images it is evaluated on: one row per run."""
    from book.chapters.sparse.training import RunConfig, train

    rows = []
    for seed in seeds:
        for density in densities:
            cfg = RunConfig(model=model, density=float(density), epochs=epochs, seed=seed, **config)
            run = train(cfg, data)
            n = cfg.test_subset or len(data.x_test)
            rows.append({"model": model, "density": cfg.density, "seed": seed, "epochs": epochs,
                         "train_images": cfg.train_subset or len(data.x_train), "test_images": n,
                         "test_error": run.test_error,
                         **specialization_summary(run.model, data.x_test[:n], data.y_test[:n])})
            if bar is not None:
                bar.update(1)
    return rows


def plot_error_vs_density(axes, runs_by_net: dict[str, list[dict[str, Any]]],
                          published_sm: dict[str, list], methods: dict[str, list],
                          titles: dict[str, str]) -> None:
    """One panel per net: this book's runs (each seed a point, the seed mean a line, dense a
    horizontal line), the paper's published sparse-momentum curve (mean ± SE) and the published
    compression methods, test error (%) against density (% of weights, log axis). A run that
    diverged (`budget.diverged`) is a triangle at the panel's top edge, labelled with its error, and
    stays out of the mean line (its error would set the scale)."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    from book.chapters.sparse.budget import diverged

    for ax, (net, all_runs) in zip(axes, runs_by_net.items()):
        runs = [r for r in all_runs if not diverged(r)]
        failed = [r for r in all_runs if diverged(r)]
        sparse = [r for r in runs if r["density"] < 1]
        dense = [100 * r["test_error"] for r in runs if r["density"] >= 1]
        epochs = "/".join(map(str, sorted({r["epochs"] for r in all_runs}))) or "no"
        label = "this book"
        if sparse:
            ax.plot([100 * r["density"] for r in sparse], [100 * r["test_error"] for r in sparse],
                    "o", ms=4, color="C0", alpha=0.8, label=f"{label}: each seed")
            ds = sorted({r["density"] for r in sparse})
            means = [100 * float(np.mean([r["test_error"] for r in sparse if r["density"] == d]))
                     for d in ds]
            ax.plot([100 * d for d in ds], means, "-", lw=1.2, color="C0")
        if dense:
            ax.axhline(float(np.mean(dense)), color="C0", ls="--", lw=1.2,
                       label=f"{label}: dense (mean)")
        pub = published_sm.get(net, [])
        if pub:
            ax.errorbar([p.density for p in pub], [p.error for p in pub],
                        yerr=[p.se or 0 for p in pub], fmt="s-", ms=3.5, lw=1, capsize=2,
                        color="C1", label="paper: sparse momentum")
        other = methods.get(net, [])
        if other:
            ax.plot([m.density for m in other], [m.error for m in other], "x", ms=5, color="0.35",
                    label="paper's table: compression methods")
        if failed:
            top = ax.get_ylim()[1]
            ax.plot([100 * r["density"] for r in failed], [top] * len(failed), "^", ms=6, color="C3",
                    clip_on=False, label="this book: a diverged run (at the top edge)")
            for r in failed:
                ax.annotate(f"{100 * r['test_error']:.0f} %", (100 * r["density"], top), fontsize=8,
                            color="C3", xytext=(5, -10), textcoords="offset points")
            ax.set_ylim(top=top)
        ax.set_xscale("log")
        ticks = [0.5, 1, 2, 5, 10, 20, 100]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.set_xlabel("density (% of weights)")
        ax.set_title(f"{titles.get(net, net)}\n(this book: {len(all_runs)} runs of {epochs} epochs)",
                     fontsize=10)
        ax.tick_params(labelsize=9)
    axes[0].set_ylabel("test error (%)")
