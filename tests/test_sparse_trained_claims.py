"""book.chapters.sparse.trained_claims and reading: the trained-net claims read off committed evidence —
a row says what is missing until the paper's budget is there, and judges once it is."""
import book  # noqa: F401  (the numerics profile, before torch)

from pathlib import Path

import pytest

from book.core.evidence import Evidence
from book.chapters.sparse import budget, published, trained_claims
from book.chapters.sparse.pruning import PruningConfig
from book.chapters.sparse.reading import Reading


def _ev(name, data):
    return Evidence("sparse", name, Path(f"results/sparse/{name}.json"), data,
                    {"mode": "full", "device": "cpu", "date": "2026-12-01"})


def _run(model, density, seed, err, epochs=100, **kw):
    return {"model": model, "density": density, "seed": seed, "epochs": epochs, "test_error": err,
            "growth": "momentum", "redistribution": "momentum", **kw}


def _spec_rows():
    return [{"density": d, "seed": s, "conv_mean": 0.1 + (0.1 + 0.002 * s) * (d < 1) + 0.01 * s}
            for d in (1.0, 0.05) for s in (0, 1, 2)]


def _committed(lenet300, lenet5, ablation=(), pruning=None):
    files = {"lenet300": _ev("lenet300", {"runs": lenet300}), "lenet5": _ev("lenet5", {"runs": lenet5}),
             "ablation": _ev("ablation", {"runs": list(ablation), "description": "the ablation"}),
             "specialization": _ev("specialization", {"rows": _spec_rows(), "description": "3 epochs"})}
    runs = [*lenet300, *lenet5]
    return trained_claims.CommittedEvidence(files, pruning, {n: budget.paper_runs(runs, n) for n in budget.TITLES})


def _sweep(model, errors, seeds=(0, 1), epochs=100):
    return [_run(model, d, s, e + 0.0001 * s, epochs=epochs) for d, e in errors.items() for s in seeds]


def test_a_reading_prints_its_lines_and_nothing_when_it_has_none(capsys):
    Reading(lines=["a", "b"]).show()
    Reading().show()
    assert capsys.readouterr().out == "a\nb\n" and Reading(lines=["a", "b"]).text() == "a\nb"


def test_the_committed_evidence_counts_the_paper_budget_and_falls_back_to_shorter_runs():
    short5 = [_run("lenet5", 0.05, 0, 0.0095, epochs=20, final_layer_density={"0.weight": 1.0}),
              _run("lenet5", 1.0, 0, 0.0131, epochs=20)]
    ev = _committed(_sweep("lenet300", {1.0: 0.0127, 0.2: 0.012}), short5)
    assert ev.summary().lines[0] == "evidence results/sparse/lenet300.json (full, cpu, 2026-12-01)"
    assert ev.summary().lines[-1] == "at the paper's budget: LeNet-5-Caffe, 100 epochs: no runs"
    assert ev.shown["lenet5"] == short5 and len(ev.shown["lenet300"]) == 4
    assert ev.shown_summary().lines[1].startswith("LeNet-5-Caffe, 20 epochs: 2 runs")
    assert ev.final_layer_densities().lines == [
        "evidence, LeNet-5-Caffe at 5 %, 20 epochs, seed 0: final layer densities {'conv 1→20': '‹1.000›'}"]
    dead = [dict(_run("lenet5", 0.05, 0, 0.8865), final_layer_density={"0.weight": 0.5}),
            dict(_run("lenet5", 0.05, 1, 0.008), final_layer_density={"0.weight": 0.9})]
    assert trained_claims.CommittedEvidence.final_layer_densities(_committed([], dead)).lines == [
        "evidence, LeNet-5-Caffe at 5 %, 100 epochs, seed 1: final layer densities {'conv 1→20': '‹0.900›'}"]
    ablated = [dict(_run("lenet300", 0.02, 0, 0.03), growth="random")]
    assert trained_claims.full_algorithm(ablated + short5) == short5


def test_the_real_committed_evidence_loads():
    ev = trained_claims.CommittedEvidence.load()
    assert set(ev.files) == set(trained_claims.SWEEPS) and set(ev.paper) == set(budget.TITLES)
    assert all(r["epochs"] == budget.PAPER_EPOCHS for runs in ev.paper.values() for r in runs)


def test_twenty_percent_says_what_is_missing_then_judges_both_nets():
    ev = _committed(_sweep("lenet300", {1.0: 0.0127, 0.2: 0.012}), [])
    got = trained_claims.twenty_percent(ev)
    assert got.missing == ("100-epoch LeNet-5-Caffe runs, 2 seeds per density: at density 1 (2 more), "
                           "0.2 (2 more)")
    assert got.context == [1.205, 1.275] and got.lines[0].startswith("LeNet-300-100, 100 epochs: 20 %")
    worse5 = _sweep("lenet5", {1.0: 0.008, 0.2: 0.03})
    got = trained_claims.twenty_percent(_committed(_sweep("lenet300", {1.0: 0.0127, 0.2: 0.012}), worse5))
    assert got.missing == "" and not got.ok and "LeNet-5-Caffe at 20 % is 2.20 pp worse" in got.wrong
    assert got.evidence["label"].endswith("and results/sparse/lenet5.json (full, cpu, 2026-12-01)")


def test_against_methods_counts_the_methods_beaten_in_range():
    ev = _committed(_sweep("lenet300", {d: 0.015 for d in (1.0, 0.2, 0.1, 0.05, 0.02, 0.01)}), [])
    got = trained_claims.against_methods(ev)
    in_range = [m for m in published.MNIST_METHODS["lenet300"] if 1 <= m.density <= 20]
    assert got.context == [sum(m.error > 1.5 for m in in_range), len(in_range), 0, 0]
    assert len(got.table) == sum(len(v) for v in published.MNIST_METHODS.values())
    assert got.missing.startswith("100-epoch LeNet-5-Caffe runs") and not got.ok
    assert got.wrong.endswith("LeNet-5-Caffe beats only 0 of 0")


def _pruning_rows(gaps):
    return [{"config": {"seed": s}, "epochs": 80, "test_error": 0.014, "sparse_momentum_error": 0.014 + g}
            for s, g in enumerate(gaps)]


def test_against_pruning_judges_the_committed_seeds_and_needs_them_otherwise():
    smoke = {"dense_error": 0.05, "one_shot_error": 0.055, "test_error": 0.047,
             "sparse_momentum_error": 0.076, "layer_density": {"1.weight": 0.078}}
    cfg = PruningConfig(density=0.08, dense_epochs=3, rounds=2, retrain_epochs=1, train_subset=10_000)
    got = trained_claims.against_pruning(smoke, cfg, _ev("pruning", {"rows": _pruning_rows([0.0005, 0.0002])}))
    assert got.decided and got.ok and got.measured == [1.435, 1.4, 0.035]
    assert got.lines[1] == "layer densities after pruning: {'fc 784→300': '‹0.078›'}"
    assert got.gap_text.startswith("sparse momentum - pruning: ‹+0.035› pp over 2 seeds")
    worse = trained_claims.against_pruning(smoke, cfg, _ev("pruning", {"rows": _pruning_rows([0.02, 0.021])}))
    assert worse.decided and not worse.ok and "2.05 pp worse than pruning" in worse.wrong
    none = trained_claims.against_pruning(smoke, cfg, None)
    assert not none.decided and none.context == [7.6, 4.7] and none.reason.startswith("0 full run(s)")


def _ablation_runs(epochs, seeds, penalty):
    out = []
    for s in seeds:
        for (g, r), extra in [(("momentum", "momentum"), 0.0), (("random", "momentum"), penalty),
                              (("momentum", "none"), 2 * penalty)]:
            out.append(dict(_run("lenet300", 0.02, s, 0.03 + extra + 0.001 * (s % 2) * extra,
                                 epochs=epochs), growth=g, redistribution=r))
    return out


def test_ablation_takes_its_verdict_at_the_paper_budget_only():
    short = _ablation_runs(20, range(5), 0.005)
    got = trained_claims.ablation(_committed([], [], short))
    assert not got.ready and len(got.context) == 4 and got.context[0] > 0
    assert got.reason.startswith("the committed ablation trains 20 epochs")
    full, diffs = trained_claims.ablation_intervals(short)
    assert full == pytest.approx([3.0] * 5) and set(diffs) == set(trained_claims.VARIANTS)
    ready = trained_claims.ablation(_committed([], [], short + _ablation_runs(100, range(3), 0.004)))
    assert ready.ready and ready.estimate == pytest.approx(0.4 + 0.0004 / 3)
    assert ready.interval[0] > 0 and any(line.startswith("100 epochs") for line in ready.lines)


def test_specialization_is_context_until_the_100_epoch_nets_are_scored():
    got = trained_claims.specialization(_committed([], []), {}, seeds=[0, 1], cifar_epochs=250)
    assert not got.decided and got.context[0] == 0.102 and got.context[1] < 0.102 < got.context[2]
    assert got.lines[1] == "seed 0: mean s of conv channels dense ‹0.1000›, 5 % ‹0.2000›"
    scored = [_run("lenet5", d, s, 0.01,
                   specialization={"conv_mean": 0.3 - (0.1 - 0.005 * s) * (d < 1) + 0.01 * s})
              for d in (1.0, 0.05) for s in (0, 1)]
    got = trained_claims.specialization(_committed([], scored), {}, seeds=[0, 1], cifar_epochs=250)
    assert got.decided and got.estimate == pytest.approx(-0.0975) and got.interval[1] < 0
    assert got.note == "LeNet-5-Caffe on MNIST, 100 epochs, seeds [0, 1]"


def test_vgg_conv_specialization_averages_the_conv_layers_units():
    import numpy as np
    import torch

    from book.chapters.sparse import analysis, cifar

    torch.manual_seed(0)
    net, data = cifar.tiny_vgg(), cifar.synthetic_cifar(n_train=8, n_test=64)
    per_layer = analysis.class_specialization(net, data.x_test, data.y_test)
    got = trained_claims.vgg_conv_specialization(net, data.x_test, data.y_test)
    assert got == pytest.approx(float(np.concatenate(list(per_layer.values())).mean()))  # all <= 13
    assert 0 <= got <= 1


def test_rerun_all_regenerates_every_plan_and_the_specialization_study(monkeypatch, capsys):
    from book.chapters.sparse import sweeps, training

    calls = []
    monkeypatch.setattr(sweeps, "rerun_evidence", lambda name, device: calls.append((name, device)) or name)
    trained_claims.rerun_all(device="cuda")
    assert calls == [(name, "cuda") for name in [*training.FULL_PLAN, "specialization"]]
    assert capsys.readouterr().out.splitlines()[-1] == "re-ran specialization"


def test_a_diverged_run_is_named_does_not_count_as_a_seed_and_decides_reliability():
    lenet300 = _sweep("lenet300", {d: 0.015 for d in (1.0, 0.2, 0.1, 0.05, 0.02, 0.01)})
    five = [_run("lenet5", 1.0, s, 0.0065) for s in (0, 1)] + [_run("lenet5", 0.05, 0, 0.8865),
                                                              _run("lenet5", 0.05, 1, 0.008)]
    ev = _committed(lenet300, five)
    assert budget.diverged(five[2]) and not budget.diverged(five[3]) and budget.trained(five) == [*five[:2], five[3]]
    assert ("density 0.05: seeds [0, 1] (seed 0 diverged)" in budget.describe(ev.paper["lenet5"], "lenet5"))
    # it needs another seed in its place for the claims about trained nets
    assert budget.missing(ev.paper["lenet5"], "lenet5", [1.0, 0.05]).endswith("at density 0.05 (1 more)")
    got = trained_claims.reliability(ev)
    assert got.decided and not got.ok and got.measured == [16, 1]
    assert "1 of 16 runs" in got.wrong and "LeNet-5-Caffe at 5 %, seed 0, ends at 88.65 % test error" in got.wrong
    assert got.lines[1] == "diverged: LeNet-5-Caffe, density 0.05, seed 0: test error ‹88.65%›"
    # no divergence: reproduced once both sweeps are complete, and waits for them before
    fine = _committed(lenet300, [*five[:2], five[3]])
    got = trained_claims.reliability(fine)
    assert not got.decided and "LeNet-5-Caffe" in got.resource and got.measured == [15, 0]
    full5 = _sweep("lenet5", {d: 0.008 for d in (1.0, 0.2, 0.1, 0.05, 0.02, 0.01)})
    got = trained_claims.reliability(_committed(lenet300, full5))
    assert got.decided and got.ok and got.measured == [24, 0]
    # the specialization pairs skip a diverged net
    scored = [dict(r, specialization={"conv_mean": 0.2}) for r in five]
    spec = trained_claims.specialization(_committed([], scored), {}, seeds=[0, 1], cifar_epochs=250)
    assert not spec.decided and "0.05 (1 more)" in spec.resource


def test_the_error_figure_marks_a_diverged_run_at_the_top_edge():
    import matplotlib
    matplotlib.use("Agg")
    from book.chapters.sparse import figures

    five = [_run("lenet5", 1.0, 0, 0.0065), _run("lenet5", 0.05, 0, 0.8865), _run("lenet5", 0.05, 1, 0.008)]
    fig = figures.error_vs_density({"lenet300": _sweep("lenet300", {1.0: 0.015, 0.05: 0.02}), "lenet5": five})
    ax = fig.axes[1]
    assert ax.get_ylim()[1] < 10   # the scale is set by the nets that trained
    marks = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert len(marks) == 1 and marks[0].get_ydata()[0] == ax.get_ylim()[1]
    assert any(t.get_text() == "89 %" for t in ax.texts) and "4 runs" not in ax.get_title()
    assert "3 runs of 100 epochs" in ax.get_title()
