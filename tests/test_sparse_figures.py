"""book.chapters.sparse.figures: each figure function returns its Figure, with the panels, series
and labels the chapter shows."""
import book  # noqa: F401  (the numerics profile, before torch)

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from book.chapters.sparse import figures  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _run(density, seed, err, epochs=100):
    return {"density": density, "seed": seed, "epochs": epochs, "test_error": err}


def test_error_vs_density_has_a_panel_per_net_and_one_legend():
    shown = {"lenet300": [_run(d, s, 0.012 + 0.001 * s) for d in (1.0, 0.2, 0.05) for s in (0, 1)],
             "lenet5": [_run(0.05, 0, 0.0095, epochs=20)]}
    fig = figures.error_vs_density(shown)
    assert len(fig.axes) == 2 and len(fig.legends) == 1
    assert fig.axes[0].get_title() == "LeNet-300-100\n(this book: 6 runs of 100 epochs)"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "paper: sparse momentum" in labels and "this book: dense (mean)" in labels


def test_layer_densities_start_at_the_target_density():
    history = [{"layer_density": {"1.weight": 0.04, "3.weight": 0.1}} for _ in range(3)]
    lenet5 = [{"0.weight": 0.2, "3.weight": 0.07}]
    fig = figures.layer_densities(history, lenet5, 0.08)
    left, right = fig.axes
    assert left.get_title() == "LeNet-300-100 at 5 %" and right.get_title() == "LeNet-5-Caffe at 8% (smoke)"
    assert list(left.lines[0].get_ydata()) == pytest.approx([5.0, 4.0, 4.0, 4.0])   # epoch 0: the start
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["fc 784→300", "fc 300→100"]


def test_speedup_bars_show_both_kernels_per_net():
    reports = {"lenet300": {"sparse_kernel_speedup": 20.0, "dropped_units_speedup": 1.01},
               "lenet5": {"sparse_kernel_speedup": 2.2, "dropped_units_speedup": 1.14}}
    (ax,) = figures.speedup_bars(reports).axes
    assert [p.get_height() for p in ax.patches] == [20.0, 2.2, 1.01, 1.14]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LeNet-300-100", "LeNet-5-Caffe"]
    assert ax.get_yscale() == "log"


def test_specialization_histograms_have_a_panel_per_hidden_layer():
    rng = np.random.default_rng(0)
    spec = {label: {f"layer{i}": rng.uniform(size=30) for i in (1, 2, 3)} for label in ("sparse", "dense")}
    fig = figures.specialization_histograms(spec)
    assert [ax.get_title() for ax in fig.axes] == ["conv1 (smoke)", "conv2 (smoke)", "fc 500 (smoke)"]
    assert sum(p.get_height() for p in fig.axes[0].patches) == 60   # both series, every unit counted
