"""book.chapters.sparse.pruning: Han et al.'s magnitude pruning; the published comparison
data."""
import book  # noqa: F401  (the numerics profile, before torch)

import pytest
import torch
import torch.nn as nn

from book.chapters.sparse import published, pruning
from book.chapters.sparse.algorithm import prunable_layers


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 10))


def test_masks_keep_exactly_the_target_density_by_std_scaled_magnitude():
    net = _net()
    masks = pruning.magnitude_masks(net, 0.1)
    total = sum(m.numel() for m in masks.values())
    assert sum(int(m.sum()) for m in masks.values()) == round(0.1 * total)
    # one quality parameter q for every layer: every kept |w|/std(layer) >= every pruned one
    weights = prunable_layers(net)
    scores = {n: w.detach().abs() / w.detach().std() for n, w in weights.items()}
    kept = torch.cat([s[masks[n]] for n, s in scores.items()])
    dropped = torch.cat([s[~masks[n]] for n, s in scores.items()])
    assert float(kept.min()) >= float(dropped.max())


def test_iterative_pruning_never_regrows_a_pruned_weight():
    net = _net()
    first = pruning.magnitude_masks(net, 0.5)
    pruning.apply_masks(net, first)
    with torch.no_grad():   # a pruned weight that became large must stay pruned
        w = prunable_layers(net)["0.weight"]
        w[~first["0.weight"]] = 0.0
    second = pruning.magnitude_masks(net, 0.2, first)
    for n in first:
        assert not bool((second[n] & ~first[n]).any())
    assert pruning.density_schedule(0.08, 3)[-1] == pytest.approx(0.08)
    with pytest.raises(ValueError):
        pruning.magnitude_masks(net, 0.0)


def test_the_published_table_has_several_methods_with_sources():
    for net in ("lenet300", "lenet5"):
        methods = {m.author for m in published.MNIST_METHODS[net]}
        assert len(methods) >= 7 and "Han 2015" in methods
        assert all(0 < m.density < 100 and 0 < m.error < 10 for m in published.MNIST_METHODS[net])
        assert published.MNIST_SOURCES[net].startswith("https://")
        assert all(p.se is not None for p in published.PAPER_SPARSE_MOMENTUM[net])
    han = published.HAN_2015
    assert han["lenet300"].error == 1.59 and han["lenet5"].error == 0.77


def test_a_short_comparison_runs_on_mnist(tmp_path):
    from book.chapters.sparse.training import MnistData

    data = MnistData.load("cpu")
    cfg = pruning.PruningConfig(density=0.1, dense_epochs=1, rounds=2, retrain_epochs=1,
                                train_subset=1000, test_subset=500)
    row = pruning.compare(cfg, data)
    assert row["epochs"] == 3 and row["density"] == pytest.approx(0.1, abs=1e-3)
    assert row["sparse_momentum_density"] == pytest.approx(0.1, abs=1e-3)
    assert 0 <= row["test_error"] <= 1 and 0 <= row["sparse_momentum_error"] <= 1
    assert [r["density"] for r in row["rounds"]] == pytest.approx(pruning.density_schedule(0.1, 2))
