"""Tests of book.chapters.sparse.training and .sweeps: the fast LeNet-5 layout computes the plain net's
function, a killed run resumes to the same bits, and the sweep command skips and resumes runs."""
import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from book.chapters import sparse as sp
from book.chapters.sparse import sweeps, training


@pytest.fixture(scope="module")
def mnist():
    return sp.MnistData.load()


def _plain_lenet5(fast: nn.Sequential) -> nn.Sequential:
    """The textbook LeNet-5-Caffe (channel-major layout, plain Flatten) with `fast`'s weights."""
    plain = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    plain.load_state_dict({k: v.contiguous() for k, v in fast.state_dict().items()})
    return plain


def test_the_channels_last_lenet5_computes_the_plain_nets_function_and_gradients():
    torch.manual_seed(0)
    fast = sp.lenet5_caffe()
    assert fast[3].weight.is_contiguous(memory_format=torch.channels_last)
    plain = _plain_lenet5(fast)
    x = torch.randn(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    for net in (fast, plain):
        F.cross_entropy(net(x), y).backward()
    assert torch.allclose(fast(x), plain(x), atol=1e-5)
    for (name, a), b in zip(fast.named_parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5, rtol=1e-4), name
    # the flatten hands the conv part its gradient in the activations' layout (the point of it)
    seen = []
    h = fast[:6](x)
    h.register_hook(lambda g: seen.append(g.is_contiguous(memory_format=torch.channels_last)))
    fast[6:](h).sum().backward()
    assert seen == [True]


def test_pooling_before_relu_trains_to_the_same_bits_as_relu_first(mnist, monkeypatch):
    """`lenet5_caffe` pools before its conv ReLUs (faster); ReLU and max commute and neither adds
    gradients, so a run with prune/regrow cycles ends with the same bits as the conv-ReLU-pool net the
    earlier committed runs were trained with, and its class specialization reads the same."""
    cfg = sp.RunConfig("lenet5", density=0.05, epochs=3, seed=1, train_subset=2000, test_subset=500)
    fast = sp.train(cfg, mnist)
    monkeypatch.setitem(training.MODELS, "lenet5", training.lenet5_caffe_relu_first)
    first = sp.train(cfg, mnist)
    assert [type(m).__name__ for m in fast.model][:3] == ["Conv2d", "MaxPool2d", "ReLU"]
    assert [type(m).__name__ for m in first.model][:3] == ["Conv2d", "ReLU", "MaxPool2d"]
    for (name, a), b in zip(fast.model.state_dict().items(), first.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert fast.test_error == first.test_error and len(fast.sparse.history) == 2
    x, y = mnist.x_test[:500], mnist.y_test[:500]
    a, b = sp.class_specialization(fast.model, x, y), sp.class_specialization(first.model, x, y)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.parametrize("model,density,subset", [("lenet5", 0.05, 2000), ("lenet300", 0.01, 6000),
                                                   ("lenet300", 1.0, 3000)])
def test_the_foreach_optimizer_and_cached_masks_train_to_the_bits_of_the_default_loop(mnist, monkeypatch,
                                                                                        model, density, subset):
    """`training.sgd` (foreach, and its compiled step where it applies), `apply_masks` with cached 0/1
    masks and LeNet-5's fused pooling kernels (all faster) end a run with prune/regrow cycles with the
    same bytes, signed zeros included, as torch's default SGD loop, a multiply by the bool masks and
    the layers run one by one, which the committed runs were trained with."""
    cfg = sp.RunConfig(model, density=density, epochs=3, seed=1, train_subset=subset, test_subset=500)
    fast = sp.train(cfg, mnist)

    def default_sgd(params, *, lr, momentum, weight_decay):
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=True, weight_decay=weight_decay,
                               foreach=False)

    @torch.no_grad()
    def bool_masks(self):
        for name, w in self.weights.items():
            w.mul_(self.masks[name])

    monkeypatch.setattr(training, "sgd", default_sgd)
    monkeypatch.setattr(sp.SparseMomentum, "apply_masks", bool_masks)
    monkeypatch.setattr(training.LeNet5Caffe, "fused", False)
    default = sp.train(cfg, mnist)
    assert not default.sparse.optimizer.defaults["foreach"] and fast.sparse.optimizer.defaults["foreach"]

    def raw(run):
        opt = run.sparse.optimizer
        tensors = [p.detach() for p in run.model.parameters()] + [opt.state[p]["momentum_buffer"]
                                                                   for p in run.model.parameters()]
        return [t.contiguous().view(torch.int32) for t in tensors]
    assert all(torch.equal(a, b) for a, b in zip(raw(fast), raw(default)))
    assert fast.test_error == default.test_error and len(fast.sparse.history) == (2 if density < 1 else 0)


def test_sparse_momentum_keeps_masks_on_channels_last_weights(mnist):
    cfg = sp.RunConfig("lenet5", density=0.05, epochs=3, seed=0, train_subset=300, test_subset=200)
    run = sp.train(cfg, mnist)
    for name, w in run.sparse.weights.items():
        assert (w[~run.sparse.masks[name]] == 0).all(), name
    assert sum(run.sparse.active_counts().values()) == sum(round(0.05 * m.numel()) for m in run.sparse.masks.values())
    assert len(run.sparse.history) == 2


def _state(run):
    opt = run.sparse.optimizer
    return ([p.detach().clone() for p in run.model.parameters()],
            [opt.state[p]["momentum_buffer"].clone() for p in run.model.parameters()],
            {n: m.clone() for n, m in run.sparse.masks.items()})


class _Killed(Exception):
    pass


@pytest.mark.parametrize("model,subset", [("lenet300", 2000), ("lenet5", 300)])
def test_a_killed_and_resumed_run_ends_bit_identical(tmp_path, mnist, model, subset):
    cfg = sp.RunConfig(model, density=0.1, epochs=3, seed=0, train_subset=subset, test_subset=1000)
    whole = sp.train(cfg, mnist)
    ckpt = tmp_path / "run.pt"

    def kill_after_first_epoch(epoch, seconds):
        if epoch == 0:
            raise _Killed   # the checkpoint of epoch 1 is on disk when progress is called
    with pytest.raises(_Killed):
        sp.train(cfg, mnist, checkpoint=ckpt, progress=kill_after_first_epoch)
    assert torch.load(ckpt, weights_only=False)["epochs_done"] == 1
    resumed = sp.train(cfg, mnist, checkpoint=ckpt)
    assert resumed.test_error == whole.test_error
    assert len(resumed.epoch_seconds) == 3 and resumed.layer_density == whole.layer_density
    for a, b in zip(_state(whole), _state(resumed)):
        if isinstance(a, dict):
            assert all(torch.equal(a[n], b[n]) for n in a)
        else:
            assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert resumed.sparse.history[-1]["active_after"] == whole.sparse.history[-1]["active_after"]
    assert not list(tmp_path.glob(".*.tmp"))   # atomic saves leave no temporary file behind


def test_a_checkpoint_of_another_run_is_refused(tmp_path, mnist):
    ckpt = tmp_path / "run.pt"
    sp.train(sp.RunConfig("lenet300", density=0.1, epochs=1, seed=0, train_subset=500), mnist, checkpoint=ckpt)
    with pytest.raises(ValueError, match="another run"):
        sp.train(sp.RunConfig("lenet300", density=0.1, epochs=1, seed=1, train_subset=500), mnist, checkpoint=ckpt)


def test_the_sweep_skips_finished_runs_and_resumes_an_unfinished_one(tmp_path, mnist, monkeypatch):
    out = tmp_path / "sweep.json"
    cfgs = sweeps.configs("lenet300", [0.1, 0.05], [0], 3, train_subset=1000)
    reference = sp.train(cfgs[1], mnist).test_error
    first = sweeps.run_sweep(cfgs[:1], out, data=mnist, log=lambda s: None)
    assert len(first) == 1
    row = first[0]
    for key in ("commit", "training_code_digest", "torch", "numerics", "device", "wall_s", "starts"):
        assert key in row["provenance"], key
    assert row["provenance"]["numerics"]["profile"] == sweeps.numerics.status()["profile"]

    real_train = training.train

    def killed_after_first_epoch(cfg, data, **kw):
        def progress(epoch, seconds):
            if epoch == 0:
                raise _Killed
        return real_train(cfg, data, **{**kw, "progress": progress})
    monkeypatch.setattr(sweeps, "train", killed_after_first_epoch)
    with pytest.raises(_Killed):
        sweeps.run_sweep(cfgs, out, data=mnist, log=lambda s: None)
    monkeypatch.setattr(sweeps, "train", real_train)

    logged = []
    rows = sweeps.run_sweep(cfgs, out, data=mnist, log=logged.append)
    assert any("already finished" in line for line in logged)
    assert any("resuming after epoch 1" in line for line in logged)
    assert len(rows) == 1 and rows[0]["test_error"] == reference
    assert [s["after_epoch"] for s in rows[0]["provenance"]["starts"]] == [0, 1]
    stored = json.loads(out.read_text())["runs"]
    assert [r["density"] for r in stored] == [0.1, 0.05]
    assert not list((tmp_path / "sweep_checkpoints").glob("*[0-9].pt"))   # finished: only .final.pt remain


def test_a_lenet5_row_carries_its_nets_class_specialization(tmp_path, mnist):
    cfg = sweeps.configs("lenet5", [0.1], [0], 1, train_subset=200)[0]
    cfg.test_subset = 500
    row = sweeps.run_one(cfg, mnist, tmp_path / "out.json", tmp_path / "ck", log=lambda s: None)
    assert set(row["specialization"]) == {"layer1", "layer2", "layer3", "conv_mean"}
    assert 0 <= row["specialization"]["conv_mean"] <= 1


def test_a_checkpoint_made_by_other_training_code_is_not_resumed(tmp_path, mnist):
    cfg = sweeps.configs("lenet300", [0.1], [0], 2, train_subset=500)[0]
    ckpts = tmp_path / "ck"
    ckpt = ckpts / f"{sweeps.slug(cfg)}.pt"
    sp.train(cfg, mnist, checkpoint=ckpt)
    ckpt.with_suffix(".json").write_text(json.dumps({"training_code_digest": "other", "starts": []}))
    logged = []
    row = sweeps.run_one(cfg, mnist, tmp_path / "out.json", ckpts, log=logged.append)
    assert any("other training code" in line for line in logged)
    assert [s["after_epoch"] for s in row["provenance"]["starts"]] == [0]   # started again, not resumed
    assert ckpt.with_suffix(".stale.pt").exists()


def test_publish_replaces_the_evidence_with_the_finished_runs_of_the_plan(tmp_path, monkeypatch):
    from book.core import evidence

    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path / "results")
    planned = sweeps.plan_configs("ablation")
    assert len(planned) == 15
    prov = {"device": "cpu", "wall_s": 1.0}
    rows = [{**{k: getattr(c, k) for k in sweeps.KEY_FIELDS}, "test_error": 0.03, "provenance": prov}
            for c in planned[:2]]
    sweeps._write_json_atomic(sweeps.work_file("ablation", tmp_path), {"runs": rows})
    assert sweeps.publish("ablation", tmp_path) is None   # the paired comparison needs all five seeds
    path = sweeps.publish("ablation", tmp_path, force=True)
    doc = json.loads(path.read_text())
    assert len(doc["data"]["runs"]) == 2 and len(doc["data"]["missing"]) == 13
    assert "python -m book.chapters.sparse --plan ablation" in doc["data"]["description"]
    assert doc["provenance"]["command"] == "python -m book.chapters.sparse --plan ablation"


def test_lenet5_runs_are_published_as_they_land_once_dense_and_5_percent_have_one(tmp_path, monkeypatch):
    from book.core import evidence

    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path / "results")
    prov = {"device": "cpu", "wall_s": 1.0}
    planned = {c.density: c for c in sweeps.plan_configs("lenet5") if c.seed == 0}
    rows = [{**{k: getattr(planned[1.0], k) for k in sweeps.KEY_FIELDS}, "test_error": 0.01, "provenance": prov}]
    sweeps._write_json_atomic(sweeps.work_file("lenet5", tmp_path), {"runs": rows})
    assert sweeps.publish("lenet5", tmp_path) is None
    rows.append({**{k: getattr(planned[0.05], k) for k in sweeps.KEY_FIELDS}, "test_error": 0.01, "provenance": prov})
    sweeps._write_json_atomic(sweeps.work_file("lenet5", tmp_path), {"runs": rows})
    doc = json.loads(sweeps.publish("lenet5", tmp_path).read_text())
    assert [r["density"] for r in doc["data"]["runs"]] == [1.0, 0.05] and len(doc["data"]["missing"]) == 15
    assert "REPLACEMENT_RUNS" in doc["data"]["description"]


def test_a_fresh_clone_continues_the_committed_sweep_without_losing_its_runs(tmp_path, monkeypatch):
    """The work file lives in the ignored _build/: on a fresh clone it is empty. The committed runs
    are adopted into it (not trained again), and a publish keeps them beside the new run."""
    from book.core import evidence

    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path / "results")
    prov = {"device": "cpu", "wall_s": 1.0}
    planned = [c for c in sweeps.plan_configs("lenet5") if c.seed == 0]

    def row(cfg, err):
        return {**{k: getattr(cfg, k) for k in sweeps.KEY_FIELDS}, "test_error": err, "provenance": prov}

    committed = tmp_path / "first"
    sweeps._write_json_atomic(sweeps.work_file("lenet5", committed), {"runs": [row(planned[0], 0.01), row(planned[1], 0.02)]})
    sweeps.publish("lenet5", committed)
    fresh = tmp_path / "fresh"
    assert sweeps.adopt_committed("lenet5", fresh) == 2
    assert sweeps.adopt_committed("lenet5", fresh) == 0          # once only
    logged = []
    assert sweeps.run_one(planned[0], None, sweeps.work_file("lenet5", fresh), fresh / "ck", log=logged.append) is None
    assert "already finished" in logged[0]
    sweeps.add_row(sweeps.work_file("lenet5", fresh), row(planned[2], 0.03))
    (fresh / "lenet5.json").write_text(json.dumps({"runs": [row(planned[2], 0.03)]}))   # a work file that lost the rows
    doc = json.loads(sweeps.publish("lenet5", fresh).read_text())
    assert sorted(r["test_error"] for r in doc["data"]["runs"]) == [0.01, 0.02, 0.03]


def test_a_replacement_seed_comes_with_the_other_seeds_of_its_density():
    """LeNet-5-Caffe's seed 2 (dense, 10 % and 5 %, in place of the diverged seed 0 at 5 % and 10 %)
    and seeds 2 and 3 at 1 % (both planned seeds diverged there) are trained with the other seeds of
    their density; the plan's own runs keep their order."""
    order = [(c.density, c.seed) for c in sweeps.plan_configs("lenet5")]
    assert order[:6] == [(1.0, 0), (1.0, 1), (1.0, 2), (0.05, 0), (0.05, 1), (0.05, 2)]
    assert order[8:11] == [(0.1, 0), (0.1, 1), (0.1, 2)]
    assert [k for k in order if k[0] == 0.01] == [(0.01, 0), (0.01, 1), (0.01, 2), (0.01, 3)]
    assert len(order) == 17
    assert [k for k in order if k[1] < 2] == [(c.density, c.seed) for spec in training.FULL_PLAN["lenet5"]
                                                for c in sweeps._spec_configs(spec)]
    assert len(sweeps.plan_configs("lenet300")) == 21   # no replacement there


def test_a_replacement_at_a_density_the_plan_does_not_sweep_is_refused(monkeypatch):
    monkeypatch.setitem(sweeps.REPLACEMENT_RUNS, "lenet5",
                        [dict(model="lenet5", densities=[0.3], seeds=[2], epochs=100)])
    with pytest.raises(ValueError, match="does not sweep"):
        sweeps.plan_configs("lenet5")


def test_a_run_cut_short_is_the_start_of_the_whole_run(mnist):
    """The divergence study's trace: the first epochs of a run, stopped early, are the same bits as
    the whole run's first epochs, and its losses and per-epoch errors are recorded."""
    cfg = sp.RunConfig("lenet300", density=0.1, epochs=3, seed=0, train_subset=1000)
    losses, errors = [], []
    cut = sp.train(cfg, mnist, epochs_run=2, step_losses=losses, epoch_errors=errors)
    whole_losses = []
    sp.train(cfg, mnist, step_losses=whole_losses)
    assert len(losses) == 20 and losses == whole_losses[:20] and len(errors) == 2
    assert cut.layer_density == cut.layer_density[:2] and len(cut.epoch_seconds) == 2
    with pytest.raises(ValueError, match="epochs_run"):
        sp.train(cfg, mnist, epochs_run=4)
    with pytest.raises(ValueError, match="checkpoints"):
        sp.train(cfg, mnist, checkpoint="x.pt", regrown_momentum="zero")


def test_a_specialization_run_another_process_is_training_is_skipped(tmp_path, mnist):
    import fcntl

    cfg = sp.RunConfig("lenet5", density=0.05, epochs=3, seed=0)
    out = tmp_path / "specialization.json"
    with open(out.with_name(f"{out.stem}_{sweeps.slug(cfg)}.lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        logged = []
        assert sweeps.run_specialization_one(cfg, mnist, out, device="cpu", origin={}, log=logged.append) is None
    assert "being trained by another process" in logged[0] and not out.exists()


def test_finetuning_with_fixed_masks_keeps_them(mnist):
    torch.manual_seed(0)
    model = sp.lenet_300_100()
    masks = {n: torch.rand_like(w) < 0.5 for n, w in sp.prunable_layers(model).items()}
    wrapper = sp.finetune_with_masks(model, masks, mnist, epochs=1, subset=500)
    for n, w in wrapper.weights.items():
        assert torch.equal(wrapper.masks[n], masks[n]) and (w[~masks[n]] == 0).all()
