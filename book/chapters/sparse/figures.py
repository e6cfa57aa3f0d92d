"""The chapter's figures, each a function that returns its matplotlib Figure: test error against
density beside the paper's (sparse-2, sparse-3), where the weights go, the FLOP speed-ups (sparse-5),
the class specialization of the smoke nets' units (sparse-6) and the loss of the diverged run's
first epochs (sparse-13)."""
from __future__ import annotations

from typing import Any

import numpy as np

from book.chapters.sparse import budget, published
from book.chapters.sparse.analysis import (LAYER_NAMES, LAYER_NAMES_LENET5, plot_error_vs_density,
                                           plot_layer_density)
from book.chapters.sparse.training import MODEL_TITLES


def error_vs_density(shown: dict[str, list[dict[str, Any]]]):
    """sparse-2, sparse-3: one panel per net, this book's committed runs (`CommittedEvidence.shown`)
    beside the paper's sparse-momentum curve and the compression methods of its MNIST table, with
    one legend for both panels below them."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 4.0), layout="constrained")
    plot_error_vs_density(axes, shown, published.PAPER_SPARSE_MOMENTUM, published.MNIST_METHODS,
                          budget.TITLES)
    legend = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=2, fontsize=9)
    return fig


def layer_densities(history: list[dict[str, Any]], lenet5_layer_density: list[dict[str, float]],
                    lenet5_density: float, lenet300_density: float = 0.05):
    """Where the weights go: each layer's density after every epoch, of the LeNet-300-100 run whose
    cycle records are `history` and of a smoke-run LeNet-5-Caffe."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.4), layout="constrained")
    plot_layer_density(axes[0], [r["layer_density"] for r in history],
                       f"LeNet-300-100 at {round(100 * lenet300_density, 6):g} %", start=lenet300_density,
                       names=LAYER_NAMES)
    plot_layer_density(axes[1], lenet5_layer_density, f"LeNet-5-Caffe at {lenet5_density:.0%} (smoke)",
                       start=lenet5_density, names=LAYER_NAMES_LENET5)
    return fig


def speedup_bars(reports: dict[str, dict[str, Any]]):
    """sparse-5: the FLOP speed-up over dense of a sparse kernel and of dense kernels with the empty
    units dropped, per net (log axis)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    labels = [MODEL_TITLES[n] for n in reports]
    pos = np.arange(len(labels))
    ax.bar(pos - 0.2, [r["sparse_kernel_speedup"] for r in reports.values()], 0.4,
           label="sparse kernel (FLOPs)")
    ax.bar(pos + 0.2, [r["dropped_units_speedup"] for r in reports.values()], 0.4,
           label="dense kernels, empty units dropped")
    ax.set_xticks(pos, labels)
    ax.set_ylabel("speedup over dense (x)")
    ax.set_yscale("log")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=9)
    return fig


def specialization_histograms(spec: dict[str, dict[str, np.ndarray]]):
    """sparse-6: histograms of the class specialization s of LeNet-5-Caffe's units, per hidden
    layer, one series per net of `spec` (label -> `analysis.class_specialization`)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8), layout="constrained", sharey=True)
    for ax, layer, title in zip(axes, ["layer1", "layer2", "layer3"], ["conv1", "conv2", "fc 500"]):
        for label, s in spec.items():
            ax.hist(s[layer], bins=np.linspace(0, 1, 21), alpha=0.6, label=label)
        ax.set_title(f"{title} (smoke)", fontsize=10)
        ax.set_xlabel("specialization s")
    axes[0].set_ylabel("units")
    axes[-1].legend(fontsize=9)
    return fig


def divergence_trace(traces: dict[str, dict[str, Any]]):
    """sparse-13: the training loss of a run's first epochs, one line per variant of
    `divergence.trace` (name -> trace), averaged over windows of steps, with the prune/regrow cycles
    (the epoch ends) as dotted lines; log axis."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.0), layout="constrained")
    for i, (name, t) in enumerate(traces.items()):
        windows = [v for epoch in t["loss_windows"] for v in epoch]
        steps = (np.arange(len(windows)) + 0.5) * t["window"]
        ax.plot(steps, windows, "-", lw=1.2, color=f"C{i}", label=name)
    first = next(iter(traces.values()))
    for e in range(1, first["epochs"]):
        ax.axvline(e * first["steps_per_epoch"], color="0.6", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel(f"training step (dotted: the prune/regrow cycle after each epoch of "
                  f"{first['steps_per_epoch']} steps)")
    ax.set_ylabel(f"loss (mean of {first['window']} steps)")
    ax.legend(fontsize=9)
    return fig


__all__ = ["error_vs_density", "layer_densities", "speedup_bars", "specialization_histograms",
           "divergence_trace"]
