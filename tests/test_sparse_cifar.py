"""book.chapters.sparse.cifar: the CIFAR-10 code path on synthetic CIFAR-shaped data (plumbing
only)."""
import book  # noqa: F401  (the numerics profile, before torch)

import pytest
import torch

from book.chapters.sparse import cifar


@pytest.mark.parametrize("net", sorted(cifar.TINY_NETS))
def test_a_tiny_cifar_net_trains_sparse_and_keeps_its_density(net):
    data = cifar.synthetic_cifar(n_train=256, n_test=64)
    assert data.x_train.shape == (256, 3, 32, 32) and data.x_test.shape == (64, 3, 32, 32)
    run = cifar.train_cifar(cifar.CifarConfig(net=net, density=0.2, epochs=2, batch_size=64), data)
    assert run.sparse.total_density() == pytest.approx(0.2, abs=2e-3)
    assert len(run.sparse.history) == 1 and len(run.epoch_seconds) == 2   # one cycle: 2 epochs
    assert 0 <= run.test_error <= 1
    est = cifar.speedup_estimate(run.model, data.x_test[:32])
    assert est["paper_recipe"] > 1 and est["training_step"] > 1
    assert est["paper_channel_recipe"] <= est["paper_recipe"]
    assert est["training_step"] < 3   # a dense weight gradient caps any training step below 3x


def test_dense_cifar_run_and_augmentation_shapes():
    data = cifar.synthetic_cifar(n_train=128, n_test=32, seed=1)
    run = cifar.train_cifar(cifar.CifarConfig(net="tiny-VGG", density=1.0, epochs=1, batch_size=64),
                            data)
    assert run.sparse.total_density() == 1.0
    x = cifar.augment(data.x_train[:8], torch.Generator().manual_seed(0))
    assert x.shape == (8, 3, 32, 32)
    with pytest.raises(ValueError, match="net must be"):
        cifar.CifarConfig(net="ResNet-9000").build()


def test_the_paper_nets_are_there_and_a_missing_dataset_says_so(tmp_path):
    assert set(cifar.NETS) == {"VGG16-D", "WRN-16-10"}
    try:
        import torchvision  # noqa: F401
    except ImportError:
        with pytest.raises(cifar.ResourceMissing, match="torchvision"):
            cifar.load_cifar10(str(tmp_path), download=False)
    else:
        with pytest.raises(cifar.ResourceMissing):
            cifar.load_cifar10(str(tmp_path), download=False)


def test_the_t4_estimate_scales_with_the_epochs_and_names_both_nets():
    assert cifar.t4_hours("VGG16-D", 500) == pytest.approx(2 * cifar.t4_hours("VGG16-D", 250))
    assert cifar.t4_hours("WRN-16-10", 250) > 4 * cifar.t4_hours("VGG16-D", 250)   # 4.82 vs 0.63 GFLOP
    lines = cifar.cost_text(250).splitlines()
    assert [line.split(":")[0] for line in lines] == cifar.HEADLINE_NETS
    assert lines[0].endswith("T4-hours a dense run of 250 epochs at that rate (dense FLOPs; sparse "
                             "momentum runs masked dense)")


def test_a_missing_cifar_is_reported_and_the_headline_needs_it(tmp_path, capsys):
    assert cifar.try_load(str(tmp_path), download=False) is None
    assert capsys.readouterr().out.startswith("not run here: ")
    reason = cifar.not_run_reason([0, 1], 250)
    assert "seeds [0, 1], 250 epochs each" in reason and cifar.published.CIFAR_SOURCE in reason
    assert cifar.trained_speedups({}, None) == {}


def test_the_headline_runs_are_judged_dense_against_5_percent():
    data = cifar.synthetic_cifar(n_train=64, n_test=32)
    runs = cifar.train_headline(data, [0, 1], 1, nets=("tiny-VGG",))
    assert set(runs) == {("tiny-VGG", d, s) for d in (1.0, 0.05) for s in (0, 1)}
    got = cifar.headline_match(runs, epochs=1, seeds=[0, 1])
    assert len(got.lines) == 4 and len(got.measured) == 2 and got.note == "1 epochs per run, seeds [0, 1]"
    assert got.ok == (not got.wrong.removeprefix("says 5 % reaches dense; "))
    est = cifar.trained_speedups(runs, data, probe=16)
    assert set(est) == {("tiny-VGG", 0.05, 0), ("tiny-VGG", 0.05, 1)}
    assert all(e["paper_recipe"] > 1 for e in est.values())
