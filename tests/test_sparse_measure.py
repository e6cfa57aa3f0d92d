"""book.chapters.sparse.measure: what the chapter's own run measures, claim by claim, on tiny
synthetic MNIST-shaped data (the code paths, not the numbers)."""
import book  # noqa: F401  (the numerics profile, before torch)

import pytest
import torch
import torch.nn.functional as F

from book.core import sparsity24
from book.chapters.sparse import measure
from book.chapters.sparse.algorithm import SparseMomentum
from book.chapters.sparse.audit import CycleAuditor
from book.chapters.sparse.training import MnistData, lenet5_caffe, lenet_300_100


@pytest.fixture(scope="module")
def tiny():
    g = torch.Generator().manual_seed(0)
    y, yt = torch.randint(0, 10, (200,), generator=g), torch.randint(0, 10, (100,), generator=g)
    x = torch.randn(200, 1, 28, 28, generator=g) * 0.3 + y.view(-1, 1, 1, 1) * 0.1
    xt = torch.randn(100, 1, 28, 28, generator=g) * 0.3 + yt.view(-1, 1, 1, 1) * 0.1
    return MnistData(x, y, xt, yt)


def _sparse_net(model, density, epochs=3, audited=False):
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sparse = SparseMomentum(model, opt, density, epochs=epochs, seed=0)
    auditor = CycleAuditor(sparse.masks, sparse.weights, opt, epochs=epochs)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for _ in range(2):
            opt.zero_grad()
            x = torch.randn(16, 1, 28, 28, generator=g)
            F.cross_entropy(model(x), torch.randint(0, 10, (16,), generator=g)).backward()
            sparse.step()
        auditor.end_epoch(sparse.end_epoch) if audited else sparse.end_epoch()
    return model, sparse, auditor


def test_setup_sets_one_thread_and_the_display_then_loads_mnist(monkeypatch):
    import matplotlib.pyplot as plt
    import pandas as pd

    threads, font = torch.get_num_threads(), plt.rcParams["font.size"]
    monkeypatch.setattr(measure.MnistData, "load", classmethod(lambda cls, device: ("mnist", device)))
    try:
        assert measure.setup(torch.device("cpu")) == ("mnist", torch.device("cpu"))
        assert torch.get_num_threads() == 1 and plt.rcParams["font.size"] == 10
        assert pd.get_option("display.max_colwidth") is None
    finally:
        torch.set_num_threads(threads)
        plt.rcParams["font.size"] = font
        pd.reset_option("display.max_colwidth")


def test_the_density_sweep_and_the_ablation_train_every_run(tiny):
    runs, rows = measure.density_sweep({"lenet300": [0.1, 1.0]}, [0], 1, tiny, device="cpu",
                                       subsets={"lenet300": dict(train_subset=100)})
    assert set(runs["lenet300"]) == {(0.1, 0), (1.0, 0)} and len(rows) == 2
    assert runs["lenet300"][(0.1, 0)].sparse.total_density() == pytest.approx(0.1, abs=1e-3)
    ablation = measure.ablation_sweep(rows, 0.1, [0], 1, tiny, device="cpu", train_subset=100)
    assert [(r["growth"], r["redistribution"]) for r in ablation] == [
        ("momentum", "momentum"), ("random", "momentum"), ("momentum", "none")]


def test_the_audit_reading_holds_for_the_real_algorithm():
    _, sparse, auditor = _sparse_net(lenet_300_100(), 0.05, epochs=3, audited=True)
    got = measure.audit_reading(auditor, sparse)
    assert got.ok and got.measured[0] == 2 and got.measured[1] > 0
    assert got.lines[1].startswith("all hold: count_conserved True") and got.lines[1].endswith("True")


def test_speedups_count_a_sparse_kernel_above_dropped_units_and_the_shrunk_net_agrees(tiny):
    nets = {"lenet300": _sparse_net(lenet_300_100(), 0.05)[0], "lenet5": _sparse_net(lenet5_caffe(), 0.2)[0]}
    got = measure.speedups(nets, probe=tiny.x_test[:50])
    for name, rep in got.reports.items():
        assert rep["sparse_kernel_speedup"] > rep["dropped_units_speedup"] >= 1
    assert all(line.endswith("(within 1e-4): True") for line in got.lines)
    times = measure.forward_times(nets, got.reports, tiny.x_test[:20])
    assert times.lines[0].startswith("LeNet-300-100: forward of 20 images: dense ⟨")
    savings = measure.kernel_savings(got.reports, {})
    assert not savings.trained and len(savings.context) == 4 and len(savings.lines) == 2
    est = {("VGG16-D", 0.05, 0): {"paper_recipe": 4.0, "paper_channel_recipe": 1.2}}
    trained = measure.kernel_savings(got.reports, est)
    assert trained.trained and trained.ok and trained.measured == [4.0, 1.2]   # 17 % < half of 75 %
    est[("VGG16-D", 0.05, 0)]["paper_channel_recipe"] = 2.0
    assert not measure.kernel_savings(got.reports, est).ok


def test_structured_2_4_prunes_a_copy_and_keeps_the_pattern_through_retraining(tiny):
    net = lenet_300_100()
    before = net[1].weight.clone()
    got = measure.structured_2_4(net, tiny, subset=100, seed=0)
    assert torch.equal(net[1].weight, before)                    # the trained net is left alone
    assert got.valid and got.ok and got.measured[0] == 0.5
    assert got.storage == sparsity24.storage(before, bits=16)
    assert set(got.errors) == {"dense", "2:4", "2:4 retrained"}
    assert not measure.has_sparse_tensor_cores(torch.device("cpu"))


def test_the_headline_counts_need_the_trained_masks_then_judge_them(monkeypatch):
    from functools import lru_cache

    monkeypatch.setattr(measure.counting, "mask_flops", lru_cache(maxsize=None)(measure.counting.mask_flops))
    counted = measure.headline_speedups({"VGG16-D": 3.5, "WRN-16-10": 12.0}, {})
    assert not counted.trained and len(counted.context) == 6
    assert counted.lines[0].startswith("VGG16-D: 15,239,872 weights, 761,993 kept at 5 %")
    est = {("VGG16-D", 0.05, 0): {"paper_recipe": 9.0, "training_step": 2.5, "training_step_amortized": 4.0},
           ("WRN-16-10", 0.05, 0): {"paper_recipe": 9.0, "training_step": 2.6, "training_step_amortized": 5.0}}
    judged = measure.headline_speedups({"VGG16-D": 3.5, "WRN-16-10": 12.0}, est, cifar_epochs=30)
    assert judged.trained and not judged.ok and judged.measured == [4.0, 5.0]
    assert judged.wrong == "WRN-16-10 trains 5.00x faster, not 12x"
    assert judged.note.startswith("trained on CIFAR-10, 30 epochs")
