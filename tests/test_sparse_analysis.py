"""book.chapters.sparse.budget and brain_gap: verdict inputs read from the evidence, the brain's
ratio."""
import book  # noqa: F401  (the numerics profile, before torch)

import math

import pytest

from book.chapters.sparse import brain_gap, budget, published


def _run(model, density, seed, err, epochs=100, **kw):
    return {"model": model, "density": density, "seed": seed, "epochs": epochs,
            "test_error": err, **kw}


def test_only_full_algorithm_runs_at_the_paper_budget_count_and_more_runs_are_picked_up():
    runs = [_run("lenet5", 1.0, 0, 0.008), _run("lenet5", 0.2, 0, 0.0075),
            _run("lenet5", 0.2, 1, 0.0077, epochs=20), _run("lenet300", 0.2, 0, 0.013),
            _run("lenet5", 0.2, 1, 0.02, growth="random")]
    five = budget.paper_runs(runs, "lenet5")
    assert budget.seeds_at(five) == {1.0: [0], 0.2: [0]}
    assert not budget.complete(five, [1.0, 0.2])
    assert budget.missing(five, "lenet5", [1.0, 0.2]) == (
        "100-epoch LeNet-5-Caffe runs, 2 seeds per density: at density 1 (1 more), 0.2 (1 more)")
    grown = runs + [_run("lenet5", 1.0, 1, 0.0084), _run("lenet5", 0.2, 1, 0.0079)]
    five = budget.paper_runs(grown, "lenet5")
    assert budget.complete(five, [1.0, 0.2]) and budget.missing(five, "lenet5", [1.0, 0.2]) == ""
    assert budget.describe(five, "lenet5").startswith("LeNet-5-Caffe, 100 epochs: 4 runs")
    t = budget.match_test(five, 0.2)
    assert t["ok"] and t["seeds"] == (2, 2) and t["diff"] == pytest.approx(0.0077 - 0.0082)


def test_match_test_fails_a_clearly_worse_sparse_net():
    runs = [_run("x", 1.0, s, 0.010) for s in (0, 1)] + [_run("x", 0.2, s, 0.020) for s in (0, 1)]
    assert not budget.match_test(runs, 0.2)["ok"]


def test_methods_are_compared_at_their_density_without_extrapolation():
    runs = [_run("m", d, s, e) for s in (0, 1) for d, e in ((0.01, 0.03), (0.1, 0.01), (1.0, 0.01))]
    assert budget.error_at_density(runs, 1.0) == pytest.approx(3.0)
    assert budget.error_at_density(runs, math.sqrt(10)) == pytest.approx(2.0)  # halfway in log
    assert budget.error_at_density(runs, 0.5) is None and budget.error_at_density(runs, 20) is None
    rows = budget.compare_with_methods(runs, published.MNIST_METHODS["lenet300"])
    assert {r["beats"] for r in rows} <= {True, False, None}


def test_the_brain_number_is_the_brain_chapters_and_the_gpus_are_2019s():
    from book.chapters import brain

    assert brain_gap.BRAIN_CHAPTER_FLOPS == pytest.approx(brain.lnp_flops(), rel=1e-9)
    assert brain_gap.BRAIN_POST_2015_FLOPS == brain.POST["estimate"].value
    gpus = brain_gap.gpus_by()
    assert gpus and all(g["date"] <= "2019-07" for g in gpus)
    assert "V100 SXM2" in {g["gpu"] for g in gpus}
    gap = brain_gap.brain_to_gpu()
    assert 1e6 < gap["low"] <= gap["high"] < 1e8   # ~1e7, two orders below the post's 1e9


def test_the_amortized_weight_gradient_reading_brackets_the_headline_numbers():
    from book.chapters.sparse import counting

    assert counting.MOMENTUM_STEPS == 44 and 0.9 ** 44 < 0.01 < 0.9 ** 43
    for net, headline in (("VGG16-D", 3.5), ("WRN-16-10", 12.0)):
        c = counting.mask_flops(net)
        assert c["step_speedup_bound_dense_wgrad"] < 3.01 < headline   # dense every step: < 3x
        lo, hi = c["step_speedup_heaviest_amortized_wgrad"], c["step_speedup_lightest_amortized_wgrad"]
        assert lo < headline < hi   # the counts alone cannot decide: the trained masks must


def test_the_brain_gap_is_printed_and_judged_against_the_posts_order_of_magnitude():
    gap = brain_gap.brain_to_gpu()
    lines = brain_gap.ratios_text(gap).splitlines()
    assert len(lines) == len(gap["ratios"]) + 1 and lines[-1].startswith("range 7.7e+06 to 2e+07")
    assert not brain_gap.in_post_order(gap)                     # 1e7: two orders below
    assert brain_gap.in_post_order({"low": 5e8, "high": 2e9})   # inside 10^8.5 .. 10^9.5
    assert not brain_gap.in_post_order({"low": 1e10, "high": 2e10})
    assert brain_gap.wrong_text(gap).startswith("says 10^9; ") and "50-130x too large" in brain_gap.wrong_text(gap)
    assert brain_gap.note_text(gap).startswith("GPUs announced by 2019-07: V100 SXM2")


def test_the_gpus_come_from_the_shared_spec_table():
    from book.core import tables

    names = {r["gpu"] for r in tables.gpu_specs()}
    assert {g["gpu"] for g in brain_gap.gpus_by("2100-01")} <= names
    assert brain_gap.GPU_SPECS == tables.GPU_SPECS_FILE


def test_each_compression_method_is_listed_once_for_both_nets():
    shared = [(m.method, m.author) for m in published.MNIST_METHODS["lenet5"]]
    assert [(m.method, m.author) for m in published.MNIST_METHODS["lenet300"]][:len(shared)] == shared
    assert len(shared) == 9 and len(published.MNIST_METHODS["lenet300"]) == 11
    assert published.MNIST_METHODS["lenet5"][6] == published.Published("Learn weights&connections",
                                                                       "Han 2015", 9.3, 0.8)
    assert [p.density for p in published.PAPER_SPARSE_MOMENTUM["lenet300"]][:2] == [1.0, 1.5]


def test_the_description_names_the_machines_the_runs_were_made_on():
    runs = [dict(_run("lenet5", 1.0, s, 0.006), provenance={"device_name": name})
            for s, name in enumerate(["Intel(R) Xeon(R) Processor (2 logical cores)", "AMD EPYC (2 logical cores)",
                                      "Intel(R) Xeon(R) Processor (2 logical cores)"])]
    text = budget.describe(budget.paper_runs(runs, "lenet5"), "lenet5")
    assert text.endswith("; made on Intel(R) Xeon(R) Processor (2 runs), AMD EPYC (1 run)")
    assert budget.machines([_run("lenet5", 1.0, 0, 0.006)]) == ""
