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

from book.chapters.sparse.algorithm import SparseMomentum, prunable_layers
from book.chapters.sparse.counting import AMORTIZED_DENSE_FRACTION, CIFAR_NETS, step_macs, wrn

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


__all__ = ["ResourceMissing", "CifarData", "load_cifar10", "synthetic_cifar", "tiny_vgg", "NETS",
           "TINY_NETS", "CifarConfig", "CifarRun", "augment", "evaluate", "train_cifar",
           "speedup_estimate"]
