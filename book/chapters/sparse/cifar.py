"""The post's headline result on CIFAR-10: VGG16-D and WRN-16-10 trained with sparse momentum at 5 %
of their weights reach the test error of their dense versions.

This needs CIFAR-10 (torchvision downloads it, 170 MB) and a GPU: each run is hours on a Colab T4 at
the budget below, WRN-16-10 several times VGG16-D (the progress callback gets the time left). On
Colab::

    from book.chapters.sparse import cifar
    data = cifar.load_cifar10("/content/cifar10", device="cuda")       # downloads once
    run = cifar.train_cifar(cifar.CifarConfig(net="VGG16-D", density=0.05), data, device="cuda")

Offline (CI), the same code runs on synthetic CIFAR-shaped data with tiny nets (`synthetic_cifar`,
`TINY_NETS`): a test of the plumbing, never a verdict.

The training budget is the book's choice where the post gives none: 250 epochs of batches of 128,
SGD with Nesterov momentum 0.9, learning rate 0.1 divided by 10 at 50 % and 75 % of training, weight
decay 5e-4, random crops (4 pixels of padding) and horizontal flips; sparse momentum with the
paper's prune rate 0.5 decaying to 0.005.

`speedup_estimate` applies the paper's own speed-up recipe to a trained net (each convolution's
forward FLOPs scaled by its weight density times the density of its input activations, after the
library's `SparseSpeedupBench`) beside the training-step count of `counting` (forward and input
gradient sparse, weight gradient dense as momentum growth reads it).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from book.core.numerics import float_text as ft
from book.chapters.sparse import budget, published
from book.chapters.sparse.algorithm import SparseMomentum, prunable_layers
from book.chapters.sparse.counting import AMORTIZED_DENSE_FRACTION, CIFAR_NETS, mask_flops, step_macs, wrn
from book.chapters.sparse.reading import Reading

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


class ResourceMissing(RuntimeError):
    """CIFAR-10 (or torchvision, or a download) is not available on this machine."""


@dataclass
class CifarData:
    x_train: torch.Tensor   # N x 3 x 32 x 32, normalised
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def load_cifar10(root: str, *, download: bool = True,
                 device: torch.device | str = "cpu") -> CifarData:
    """CIFAR-10 as normalised tensors on `device`, through torchvision (downloaded into `root`)."""
    try:
        from torchvision.datasets import CIFAR10
    except ImportError as err:
        raise ResourceMissing("torchvision is not installed (pip install torchvision)") from err
    try:
        train, test = (CIFAR10(root, train=t, download=download) for t in (True, False))
    except Exception as err:   # no network, no files: say so, the chapter records needs-resource
        raise ResourceMissing(f"CIFAR-10 is not in {root} and could not be downloaded "
                              f"({err})") from err

    def tensors(ds):
        x = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).float().div(255)
        y = torch.as_tensor(ds.targets, dtype=torch.long, device=device)
        return _normalise(x).to(device), y

    (x, y), (xt, yt) = tensors(train), tensors(test)
    return CifarData(x, y, xt, yt)


def synthetic_cifar(n_train: int = 256, n_test: int = 128, seed: int = 0,
                    classes: int = 10) -> CifarData:
    """CIFAR-shaped random images whose class shifts the mean colour (so a net can learn something):
    for testing the code path offline, never for a verdict."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randn(classes, 3, 1, 1, generator=gen)

    def make(n):
        y = torch.randint(0, classes, (n,), generator=gen)
        return torch.randn(n, 3, 32, 32, generator=gen) * 0.5 + shift[y], y

    (x, y), (xt, yt) = make(n_train), make(n_test)
    return CifarData(x, y, xt, yt)


def tiny_vgg(classes: int = 10) -> nn.Sequential:
    """VGG16-D's shape (conv-BN-ReLU blocks, max pools, two hidden fc layers) at a tiny width."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(4),
        nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(8),
        nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, classes))


NETS: dict[str, Callable[[], nn.Module]] = dict(CIFAR_NETS)
TINY_NETS: dict[str, Callable[[], nn.Module]] = {"tiny-VGG": tiny_vgg,
                                                 "tiny-WRN": lambda: wrn(depth=10, width=1)}


@dataclass
class CifarConfig:
    net: str = "VGG16-D"
    density: float = 0.05
    epochs: int = 250
    seed: int = 0
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    prune_rate: float = 0.5
    prune_rate_floor: float = 0.005

    def build(self) -> nn.Module:
        nets = {**NETS, **TINY_NETS}
        if self.net not in nets:
            raise ValueError(f"net must be one of {sorted(nets)}, not {self.net!r}")
        return nets[self.net]()


@dataclass
class CifarRun:
    config: CifarConfig
    test_error: float
    model: nn.Module
    sparse: SparseMomentum
    epoch_seconds: list[float] = field(default_factory=list)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random 32x32 crops of the 4-pixel zero-padded images and random horizontal flips."""
    n = len(x)
    padded = F.pad(x, (4, 4, 4, 4))
    dx = torch.randint(0, 9, (n,), generator=gen).tolist()
    dy = torch.randint(0, 9, (n,), generator=gen).tolist()
    flip = torch.rand(n, generator=gen) < 0.5
    out = torch.stack([padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    return torch.where(flip.to(x.device).view(-1, 1, 1, 1), out.flip(3), out)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    model.eval()
    wrong = sum(int((model(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum())
                for i in range(0, len(x), batch))
    model.train()
    return wrong / len(x)


def train_cifar(cfg: CifarConfig, data: CifarData, *, device: torch.device | str = "cpu",
                progress: Callable[[int, float, float], None] | None = None) -> CifarRun:
    """Train one CIFAR net with sparse momentum (density 1: the dense baseline)."""
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    model = cfg.build().to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                weight_decay=cfg.weight_decay)
    sparse = SparseMomentum(model, optimizer, cfg.density, epochs=cfg.epochs,
                            prune_rate=cfg.prune_rate, prune_rate_floor=cfg.prune_rate_floor,
                            seed=cfg.seed)
    steps = max(1, len(data.x_train) // cfg.batch_size)
    total = steps * cfg.epochs
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [total // 2, (3 * total) // 4],
                                                     gamma=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    run = CifarRun(cfg, float("nan"), model, sparse)
    for epoch in range(cfg.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(data.x_train), generator=gen)
        for s in range(steps):
            idx = order[s * cfg.batch_size:(s + 1) * cfg.batch_size].to(data.x_train.device)
            x = data.x_train[idx]
            if cfg.augment:
                x = augment(x, gen)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x.to(device)), data.y_train[idx].to(device)).backward()
            sparse.step()
            scheduler.step()
        sparse.end_epoch()
        run.epoch_seconds.append(time.perf_counter() - start)
        if progress is not None:
            left = sum(run.epoch_seconds) / (epoch + 1) * (cfg.epochs - epoch - 1)
            progress(epoch, run.epoch_seconds[-1], left)
    run.test_error = evaluate(model, data.x_test.to(device), data.y_test.to(device))
    return run


@torch.no_grad()
def speedup_estimate(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Two speed-up counts for a trained sparse net on a batch `x`:

    - `paper_recipe`: the paper's estimate — per convolution, dense forward FLOPs times its weight
      density times the density of its input activations, summed, against the dense sum;
    - `paper_channel_recipe`: the paper's estimate for dense kernels — per convolution, dense
      forward FLOPs times the fraction of input channels with some nonzero weight times the
      fraction of input maps not wholly zero (empty channels dropped);
    - `training_step`: one step's multiply-adds (forward + input gradient sparse in the weights, the
      weight gradient dense, as momentum of missing weights needs) against the dense step's."""
    layers = {n: m for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    seen: dict[str, tuple[float, int]] = {}
    hooks = []
    for name, mod in layers.items():
        def hook(m, inp, out, name=name):
            positions = int(np.prod(out.shape[2:])) if out.dim() == 4 else 1
            x_in = inp[0]
            # input maps zero everywhere (per image and channel): the paper's channel sparsity
            empty = float((x_in.flatten(2) == 0).all(2).float().mean()) if x_in.dim() == 4 else 0.0
            seen[name] = (float((x_in != 0).float().mean()), positions, empty)
        hooks.append(mod.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    weights = prunable_layers(model)
    names = [n for n in layers if f"{n}.weight" in weights and n in seen]
    sizes = np.array([weights[f"{n}.weight"].numel() for n in names], dtype=np.float64)
    active = np.array([int((weights[f"{n}.weight"] != 0).sum()) for n in names], dtype=np.float64)
    pos = np.array([seen[n][1] for n in names], dtype=np.float64)
    act = np.array([seen[n][0] for n in names])
    empty_maps = np.array([seen[n][2] for n in names])
    def empty_inputs(w: torch.Tensor) -> float:   # input channels whose weights are all zero
        return float((w.flatten(2) == 0).all(2).all(0).float().mean()) if w.dim() == 4 else 0.0

    empty_in = np.array([empty_inputs(weights[f"{n}.weight"]) for n in names])
    conv = np.array([isinstance(layers[n], nn.Conv2d) for n in names])
    dense_fwd = float((sizes * pos)[conv].sum())
    paper = float((sizes * pos * (active / sizes) * act)[conv].sum())
    channel = float((sizes * pos * (1 - empty_in) * (1 - empty_maps))[conv].sum())
    dense_step = step_macs(sizes, sizes, pos, dense_weight_grad=True)["step"]
    step = step_macs(active, sizes, pos, dense_weight_grad=True)["step"]
    amortized = step_macs(active, sizes, pos, dense_weight_grad=True,
                          dense_fraction=AMORTIZED_DENSE_FRACTION)["step"]
    return {"paper_recipe": dense_fwd / paper if paper else float("inf"),
            "paper_channel_recipe": dense_fwd / channel if channel else float("inf"),
            "training_step": dense_step / step,
            "training_step_amortized": dense_step / amortized,
            "density": float(active.sum() / sizes.sum()),
            "mean_input_density": float(act[conv].mean())}


# ----------------------------------------------------------------------------------------------
# The chapter's CIFAR-10 cells: the cost, the runs, the verdict (sparse-10) and the trained masks' counts
# ----------------------------------------------------------------------------------------------
HEADLINE_NETS = ["VGG16-D", "WRN-16-10"]
HEADLINE_DENSITIES = (1.0, 0.05)
T4_SUSTAINED = 0.5 * 8.1e12   # assumed: half a T4's fp32 peak (8.1 TFLOPS, NVIDIA T4 datasheet)
TRAIN_IMAGES = 50_000


def t4_hours(net: str, epochs: int) -> float:
    """Hours of a dense run of `net` on a Colab T4 at `T4_SUSTAINED` (a training step is about 3
    forward passes; `TRAIN_IMAGES` an epoch; sparse momentum runs masked dense, so the same)."""
    flops = 3 * mask_flops(net, density=1.0)["dense_forward_gflop"] * 1e9 * TRAIN_IMAGES
    return flops * epochs / T4_SUSTAINED / 3600


def cost_text(epochs: int) -> str:
    """The T4-hours of a dense run of each headline net, one line each."""
    return "\n".join(f"{net}: about {t4_hours(net, epochs):.0f} T4-hours a dense run of {epochs} epochs at "
                     "that rate (dense FLOPs; sparse momentum runs masked dense)" for net in HEADLINE_NETS)


def try_load(root: str, *, device: torch.device | str = "cpu", download: bool = True) -> CifarData | None:
    """`load_cifar10`, or None after printing why it is not there (the rows say needs-resource)."""
    try:
        return load_cifar10(root, download=download, device=device)
    except ResourceMissing as missing_data:
        print(f"not run here: {missing_data} (needs-resource)")
        return None


def train_headline(data: CifarData, seeds: list[int], epochs: int, *, device: torch.device | str = "cpu",
                   nets: tuple[str, ...] = tuple(HEADLINE_NETS)) -> dict[tuple[str, float, int], CifarRun]:
    """sparse-10's runs: each headline net dense and at 5 %, for every seed, each with a progress
    bar; keyed by (net, density, seed)."""
    from tqdm.auto import tqdm

    runs = {}
    for net in nets:
        for density in HEADLINE_DENSITIES:
            for seed in seeds:
                bar = tqdm(total=epochs, desc=f"{net} at {density:.0%}, seed {seed}")
                runs[(net, density, seed)] = train_cifar(
                    CifarConfig(net=net, density=density, epochs=epochs, seed=seed),
                    data, device=device, progress=lambda *_: bar.update(1))
                bar.close()
    return runs


@dataclass(kw_only=True)
class HeadlineMatch(Reading):
    ok: bool
    measured: list[float]   # error % [5 %, dense] per net, seed means
    wrong: str
    note: str


def headline_match(runs: dict[tuple[str, float, int], CifarRun], *, epochs: int,
                   seeds: list[int]) -> HeadlineMatch:
    """sparse-10: VGG16-D and WRN-16-10 at 5 % of the weights reach dense test error: the sparse
    mean is not above the dense mean by more than 2 standard errors (`budget.match_test`)."""
    lines = [f"{net} at {density:.0%}, seed {seed}: test error {ft(run.test_error, '.2%')}"
             for (net, density, seed), run in runs.items()]
    nets = dict.fromkeys(n for n, _, _ in runs)   # in the order they were trained
    rows = {net: [{"density": d, "seed": s, "test_error": r.test_error}
                  for (n, d, s), r in runs.items() if n == net] for net in nets}
    tests = {net: budget.match_test(rs, 0.05) for net, rs in rows.items()}
    worse = [f"{net} at 5 % is {100 * t['diff']:.2f} pp worse than dense, beyond 2 SE"
             for net, t in tests.items() if not t["ok"]]
    return HeadlineMatch(lines=lines, ok=not worse,
                         measured=[round(100 * v, 3) for t in tests.values()
                                   for v in (t["sparse"], t["dense"])],
                         wrong="says 5 % reaches dense; " + "; ".join(worse),
                         note=f"{epochs} epochs per run, seeds {seeds}")


def not_run_reason(seeds: list[int], epochs: int) -> str:
    """What sparse-10 needs when CIFAR-10 was not trained here."""
    return (f"set CIFAR = True on a GPU with internet (Colab): VGG16-D and WRN-16-10, dense and "
            f"5 %, seeds {seeds}, {epochs} epochs each ({published.CIFAR_SOURCE})")


def trained_speedups(runs: dict[tuple[str, float, int], CifarRun], data: CifarData | None, *,
                     device: torch.device | str = "cpu", probe: int = 256) -> dict[tuple, dict[str, float]]:
    """sparse-5, sparse-8: `speedup_estimate` of every trained sparse run on the first `probe` test
    images, keyed like `runs` (empty when nothing was trained)."""
    if not runs:
        return {}
    x = data.x_test[:probe].to(device)
    return {k: speedup_estimate(r.model, x) for k, r in runs.items() if k[1] < 1}


__all__ = ["HEADLINE_NETS", "HEADLINE_DENSITIES", "T4_SUSTAINED", "t4_hours", "cost_text", "try_load",
           "train_headline", "HeadlineMatch", "headline_match", "not_run_reason", "trained_speedups",
           "ResourceMissing", "CifarData", "load_cifar10", "synthetic_cifar", "tiny_vgg", "NETS",
           "TINY_NETS", "CifarConfig", "CifarRun", "augment", "evaluate", "train_cifar",
           "speedup_estimate"]
