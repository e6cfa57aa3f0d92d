"""FLOP counts of 5 %-density sparse-momentum masks for the paper's CIFAR-10 nets (sparse-8).

The post gives two headline speed-ups for sparse convolution: "3.5x for VGG to 12x for Wide Residual
Networks" and "3.0-5.6x faster". This module counts, without training, what a mask at 5 % density can
give on VGG16-D and WRN-16-10 at CIFAR-10's 32x32 input:

- a layer's multiply-adds are (its nonzero weights) x (its output positions), so a mask's FLOPs depend
  on how the weights are spread over layers, and sparse momentum spreads them by momentum;
- the uniform mask sparse momentum starts from (the same fraction in every layer) saves exactly the
  density; the FLOP-heaviest spread of the same number of weights (filling the layers with the most
  output positions first) and the lightest bound what any redistribution can reach;
- one training step is three products per layer: forward, input gradient (not for the first layer) and
  weight gradient. A sparse kernel can skip the zeros of the first two. Growth at the largest momentum
  of the *missing* weights needs those weights' gradients at every step, so as the post describes the
  algorithm the weight gradient stays dense: the step can then never be 3x cheaper than dense.

Nets as the paper names them (biases, batch norm, pooling and the CIFAR head are ignored: they are
well under 1 % of the FLOPs): VGG16-D is VGG16's conv stack (configuration D) with two fully connected
layers of 512 before the 10-way output; WRN-16-10 is Zagoruyko & Komodakis' wide ResNet, depth 16
(2 blocks per group), width 10 (groups of 160, 320, 640 channels), 1x1 shortcut convs where the shape
changes.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from book.chapters.sparse.algorithm import SparseMomentum, prunable_layers

VGG16_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def vgg16_d(classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = 3
    for v in VGG16_D:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1, bias=False), nn.BatchNorm2d(v), nn.ReLU()]
            c = v
    layers += [nn.Flatten(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if (cin != cout or stride != 1) else None

    def forward(self, x):
        o = torch.relu(self.bn1(x))
        y = self.conv2(torch.relu(self.bn2(self.conv1(o))))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


def wrn(depth: int = 16, width: int = 10, classes: int = 10) -> nn.Sequential:
    if (depth - 4) % 6:
        raise ValueError(f"WRN depth must be 6n+4, not {depth}")
    n = (depth - 4) // 6
    widths = [16, 16 * width, 32 * width, 64 * width]
    layers: list[nn.Module] = [nn.Conv2d(3, widths[0], 3, padding=1, bias=False)]
    c = widths[0]
    for g, stride in zip(widths[1:], (1, 2, 2)):
        for b in range(n):
            layers.append(_WideBlock(c, g, stride if b == 0 else 1))
            c = g
    layers += [nn.BatchNorm2d(c), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)]
    return nn.Sequential(*layers)


CIFAR_NETS = {"VGG16-D": vgg16_d, "WRN-16-10": wrn}


def output_positions(model: nn.Module, input_shape=(3, 32, 32)) -> dict[str, int]:
    """Output positions per prunable layer (1 for a linear layer), from one forward pass."""
    pos: dict[str, int] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            def hook(m, i, o, name=name):
                pos[name + ".weight"] = int(np.prod(o.shape[2:])) if o.dim() == 4 else 1
            hooks.append(mod.register_forward_hook(hook))
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return pos


def _fill(order: list[int], sizes: np.ndarray, budget: int) -> np.ndarray:
    """Active weights per layer when `budget` weights fill layers completely in `order`."""
    got = np.zeros(len(sizes), dtype=np.int64)
    for i in order:
        take = min(int(sizes[i]), budget)
        got[i], budget = take, budget - take
    return got


# Growth reads the momentum of the missing weights at each epoch's end. The paper's library resets it
# after every cycle (to the mean of the active weights' momentum) and SGD's momentum 0.9 forgets a
# gradient by 0.9 per step, so the momentum that decides growth is formed in the last
# ln(0.01)/ln(0.9) = 44 steps of an epoch (older gradients weigh under 1 %). An implementation that
# computes the dense weight gradient only then, and a sparse one otherwise, does so in 44 of the 391
# steps of a CIFAR-10 epoch (batches of 128).
MOMENTUM_STEPS = math.ceil(math.log(0.01) / math.log(0.9))
CIFAR_STEPS_PER_EPOCH = math.ceil(50_000 / 128)
AMORTIZED_DENSE_FRACTION = MOMENTUM_STEPS / CIFAR_STEPS_PER_EPOCH


def step_macs(active: np.ndarray, sizes: np.ndarray, pos: np.ndarray, *, dense_weight_grad: bool,
              dense_fraction: float | None = None) -> dict[str, float]:
    """Multiply-adds of one training step: forward, input gradient (not of the first layer), weight
    gradient — dense (`dense_weight_grad`), sparse, or dense in a `dense_fraction` of the steps."""
    fwd = float((active * pos).sum())
    inp = fwd - float(active[0] * pos[0])
    wgrad = float((sizes * pos).sum()) if dense_weight_grad else fwd
    if dense_fraction is not None:
        wgrad = dense_fraction * float((sizes * pos).sum()) + (1 - dense_fraction) * fwd
    return {"forward": fwd, "input_grad": inp, "weight_grad": wgrad, "step": fwd + inp + wgrad}


def mask_flops(name: str, density: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """FLOP speed-ups over dense at `density` for one CIFAR net: the uniform start of sparse momentum
    (its real masks) and the bounds over every spread of the same number of weights."""
    torch.manual_seed(seed)
    model = CIFAR_NETS[name]()
    pos_by = output_positions(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sparse = SparseMomentum(model, opt, density, seed=seed)
    names = list(prunable_layers(model))
    sizes = np.array([sparse.masks[n].numel() for n in names], dtype=np.int64)
    pos = np.array([pos_by[n] for n in names], dtype=np.int64)
    uniform = np.array([int(sparse.masks[n].sum()) for n in names], dtype=np.int64)
    budget = int(uniform.sum())
    heaviest = _fill(sorted(range(len(names)), key=lambda i: -pos[i]), sizes, budget)
    lightest = _fill(sorted(range(len(names)), key=lambda i: pos[i]), sizes, budget)
    dense_fwd = float((sizes * pos).sum())
    dense_step = step_macs(sizes, sizes, pos, dense_weight_grad=True)["step"]
    out: dict[str, Any] = {"net": name, "density": budget / int(sizes.sum()), "weights": int(sizes.sum()),
                           "active": budget, "dense_forward_gflop": 2 * dense_fwd / 1e9, "layers": len(names)}
    for label, active in (("uniform", uniform), ("heaviest", heaviest), ("lightest", lightest)):
        out[f"forward_speedup_{label}"] = dense_fwd / float((active * pos).sum())
        out[f"step_speedup_{label}_sparse_wgrad"] = dense_step / step_macs(active, sizes, pos, dense_weight_grad=False)["step"]
        out[f"step_speedup_{label}_dense_wgrad"] = dense_step / step_macs(active, sizes, pos, dense_weight_grad=True)["step"]
        out[f"step_speedup_{label}_amortized_wgrad"] = dense_step / step_macs(
            active, sizes, pos, dense_weight_grad=True, dense_fraction=AMORTIZED_DENSE_FRACTION)["step"]
    # what no spread of weights can beat once the weight gradient is dense: forward and input grad free
    out["step_speedup_bound_dense_wgrad"] = dense_step / float((sizes * pos).sum())
    return out
