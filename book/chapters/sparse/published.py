"""Published numbers the chapter compares with, each with its source (facts, not code).

- `MNIST_METHODS`: the MNIST comparison the post shows as an image ("Sparse Momentum results
  compared to neural network compression methods on MNIST"): test error (%) and density (%) of each
  method, from the data files of the paper's own repository, one per net;
- `PAPER_SPARSE_MOMENTUM`: the paper's sparse-momentum points on the same plot (mean error % and its
  standard error over seeds);
- `HAN_2015`: Han, Pool, Tran & Dally (2015), Table 1 (the method `pruning` implements);
- the sources of the CIFAR-10 and ImageNet results and of the speed-up recipe (stated, not numbers).
"""
from __future__ import annotations

from dataclasses import dataclass

REPO = "https://github.com/TimDettmers/sparse_learning"
MNIST_SOURCES = {
    "lenet300": f"{REPO}/blob/master/results/MNIST_compression_comparison_lenet300-100.csv",
    "lenet5": f"{REPO}/blob/master/results/MNIST_compression_comparison_lenet5.csv",
}
PAPER = ("Dettmers & Zettlemoyer (2019), Sparse Networks from Scratch, "
         "https://arxiv.org/abs/1907.04840")
HAN_SOURCE = ("Han, Pool, Tran & Dally (2015), Learning both Weights and Connections for Efficient "
              "Neural Networks, NeurIPS, Table 1, https://arxiv.org/abs/1506.02626")
# How the paper estimated its sparse speed-ups: each convolution's dense forward time scaled by
# (weight density x input-activation density); the library's masking keeps PyTorch's dense momentum
# of every weight, updated at every step (what growth at the momentum of missing weights reads).
SPEEDUP_RECIPE_SOURCE = f"{REPO}/blob/master/sparselearning/models.py (SparseSpeedupBench)"
MOMENTUM_SOURCE = f"{REPO}/blob/master/sparselearning/core.py (Masking.step, apply_mask)"
CIFAR_SOURCE = f"{PAPER}, CIFAR-10 results table (VGG16-D and WRN-16-10 at 5 % of the weights)"
IMAGENET_SOURCE = f"{PAPER}, ImageNet table (ResNet-50 at 10 % and 20 % of the weights)"


@dataclass(frozen=True)
class Published:
    method: str
    author: str
    density: float   # % of weights kept
    error: float     # test error %
    se: float | None = None


def _split(line: str) -> list[str]:
    return [s.strip() for s in line.split(",")]


# The compression methods of the paper's MNIST table, in the order of the repository's CSV files
# (MNIST_SOURCES), each once: name, author, then density %, error % on LeNet-300-100 and on
# LeNet-5-Caffe
_METHODS = """
Opt. Brain Damage, LeCun 1989, 8, 2, 8, 2.7
Layer-wise Brain Damage, Dong 2017, 1.5, 2, 1, 2.1
Compression via optimization, Carreira-Perpinan 2018, 1, 3.2, 1, 1.1
Single-shot Net. Pruning, Lee 2019, 2, 2.4, 1, 1.1
Soft weight-sharing, Ullrich 2017, 4.4, 1.9, 0.5, 1
Dyn. Network Surgery, Guo 2016, 1.8, 2, 0.9, 0.9
Learn weights&connections, Han 2015, 8.3, 1.6, 9.3, 0.8
Single-shot Net. Pruning, Lee 2019, 5, 1.6, 2, 0.8
Variational Dropout, Molchanov 2017, 1.5, 1.9, 0.4, 0.8
"""
# methods only the LeNet-300-100 file has: name, author, density %, error %
_LENET300_ONLY = """
Targeted Dropout, Gomez 2018, 5.0, 3.13
Targeted Dropout, Gomez 2018, 2.0, 3.77
"""
# the paper's own sparse-momentum points: density %, error %, SE over seeds
_SPARSE_MOMENTUM = {
    "lenet300": [(1, 2.36, 0.044), (1.5, 2.053, 0.032), (1.8, 1.984, 0.053), (2, 1.99, 0.019),
                 (4.4, 1.552, 0.027), (5, 1.53, 0.02), (8, 1.447, 0.014), (8.3, 1.426, 0.02)],
    "lenet5": [(0.4, 1.403, 0.088), (0.5, 1.144, 0.024), (0.9, 0.894, 0.033), (1, 0.83, 0.04),
               (2, 0.76, 0.022), (5, 0.69, 0.021), (8, 0.645, 0.019), (9.3, 0.642, 0.03)],
}


def _methods(net_column: int) -> list[Published]:
    """The methods of `_METHODS` on one net: its density and error are columns 2 + 2 * net_column."""
    out = []
    for line in _METHODS.strip().splitlines():
        method, author, *numbers = _split(line)
        density, error = numbers[2 * net_column:2 * net_column + 2]
        out.append(Published(method, author, float(density), float(error)))
    return out


MNIST_METHODS = {
    "lenet300": _methods(0) + [Published(m, a, float(d), float(e))
                               for m, a, d, e in map(_split, _LENET300_ONLY.strip().splitlines())],
    "lenet5": _methods(1),
}
PAPER_SPARSE_MOMENTUM = {net: [Published("Sparse Momentum", "Dettmers 2019", float(d), float(e), float(se))
                               for d, e, se in points] for net, points in _SPARSE_MOMENTUM.items()}
# Han et al. 2015, Table 1: both nets pruned 12x (1/12 = 8.3 % of the weights kept),
# LeNet-300-100 at 1.59 % test error, LeNet-5 at 0.77 %
HAN_2015 = {"lenet300": Published("Learn weights&connections", "Han 2015", 100 / 12, 1.59),
            "lenet5": Published("Learn weights&connections", "Han 2015", 100 / 12, 0.77)}

__all__ = ["Published", "MNIST_METHODS", "PAPER_SPARSE_MOMENTUM", "HAN_2015", "MNIST_SOURCES",
           "PAPER", "HAN_SOURCE", "SPEEDUP_RECIPE_SOURCE", "MOMENTUM_SOURCE", "CIFAR_SOURCE",
           "IMAGENET_SOURCE"]
