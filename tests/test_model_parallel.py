"""book.chapters.parallel.model_parallel: the mp chapter's summaries and figures, on numbers made up
to have a known answer (the functions that need worker processes are tested in test_parallel.py,
on its shared pool)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from book.chapters import parallel as P  # noqa: E402


def _rank(fwd=1e-12, bwd=2e-12):
    first = {"forward_err": fwd, "backward_err": bwd, "weight_grad_err": 0.0, "forward_block": [128, 500],
             "backward_block": [128, 500], "sent_forward": 64_000, "sent_backward": 64_000}
    second = {"forward_err": fwd / 2, "backward_err": bwd, "weight_grad_err": 3e-12,
              "forward_block": [128, 250], "backward_block": [128, 1000], "sent_forward": 32_000,
              "sent_backward": 128_000}
    return {"first": first, "second": second, "data": {"sent": 500_000}}


def test_split_checks_take_the_worst_worker_and_count_the_post_s_elements():
    split = P.SplitChecks([_rank(), _rank(fwd=5e-12)])
    assert split.forward_errors == [5e-12, 2.5e-12] and split.weight_grad_err == 3e-12
    assert split.forward_shapes == [[128, 500], [128, 250]]
    assert split.backward_shapes == [[128, 500], [128, 1000]]
    assert split.counted == [500_000, 128_000, 160_000]
    assert split.ratios == pytest.approx([3.90625, 3.125])
    assert split.forward_table().splitlines()[1] == (
        "split by the second dimension: each worker computes 128×250; largest difference from X·W on "
        "every worker < 1e-09")
    assert "128×1000 delta (added)" in split.backward_table()
    assert split.traffic_table().endswith("data/model: 3.91× and 3.12×")
    worse = P.SplitChecks([_rank(fwd=1e-6)])
    assert "(above the 1e-09 bound)" in worse.forward_table()


def test_model_parallel_runs_compare_early_and_whole_curves():
    runs = P.ModelParallelRuns({"losses": [1.0, 0.9, 0.8]},
                               {"first": {"losses": [1.0, 0.9, 0.8 + 1e-3]},
                                "second": {"losses": [1.0, 0.9 + 1e-6, 0.8]}}, steps=3)
    assert runs.loss_err(2) == pytest.approx(1e-6) and runs.loss_err() == pytest.approx(1e-3)
    assert runs.summary(early=2).startswith(
        "largest loss difference over the first 2 SGD steps ‹1.0e-06›")
    assert "over all 3 steps ‹1.0e-03›" in runs.summary()


def _row(batch, width, dp, mp):
    return {"batch": batch, "width": width, "dp_elements": 2 * width ** 2, "mp_elements": 2.5 * batch * width,
            "dp_times": dp, "mp_times": mp, "dp_time": sum(dp) / len(dp), "mp_time": sum(mp) / len(mp)}


def test_crossover_by_elements_and_by_time():
    rows = [_row(128, 64, [1.0, 1.1, 1.0], [2.0, 2.1, 2.2]), _row(128, 256, [2.0, 2.0, 2.0], [2.0, 2.1, 2.0]),
            _row(128, 1024, [5.0, 5.2, 5.1], [2.5, 2.6, 2.5])]
    sweep = P.Crossover(rows, [128])
    assert sweep.first_width("elements") == {128: 256}  # 2w² < 2.5·128·w from w = 160 on
    assert sweep.first_width("time") == {128: 1024}
    small, large = sweep.ends(128)
    assert small[0] == pytest.approx((2.0 * 2.1 * 2.2 / (1.0 * 1.1 * 1.0)) ** (1 / 3))
    assert sweep.margin(128)[0] == pytest.approx(min(small[0], large[0]))
    assert sweep.ends_summary(128).startswith("width 64: model-parallel / data-parallel step time ⟨")
    assert P.Crossover(rows[:1], [128]).first_width("time") == {128: None}


def test_hybrid_counts_favour_the_hybrid():
    hybrid = P.count_hybrid(workers=(2,), images_per_worker=128)
    h = hybrid[2]
    assert h["hybrid"] < min(h["data"], h["model"])
    table = P.hybrid_table(hybrid).splitlines()
    assert table[0] == ("2 workers: data parallel   61.1 M elements, model parallel  111.8 M, hybrid   8.2 M "
                        "per worker and step")
    assert table[1] == "(parameters: convolutions 2.47 M, dense layers 58.63 M)"


def test_hybrid_run_timing_and_pipeline_summaries():
    run = P.HybridRun({"losses": [2.0, 1.5, 1.0]},
                      [{"losses": [2.0, 1.5, 1.1],
                        "traffic": {"elements": {"all_gather": 10, "all_reduce": 5}}}],
                      steps=3, judged_steps=2, data_sent=100.0)
    assert run.error == 0.0 and run.drift == pytest.approx(0.1) and run.sent == 15
    assert run.summary().endswith("hybrid 15, data parallel 100")
    timed = P.HybridTiming({"data": [2.0, 2.0, 2.1], "hybrid": [1.0, 1.0, 1.0], "data_elements": 100,
                            "hybrid_elements": 15})
    assert timed.ratio[0] == pytest.approx((2.0 * 2.0 * 2.1) ** (1 / 3))
    assert timed.context().startswith("2.03× [")
    assert timed.summary().splitlines()[1] == (
        "elements sent per worker and step: data parallel 100, hybrid 15")
    pipe = P.Pipeline({"difference": 0.0, "blocking": [1.0, 1.0], "pipelined": [2.0, 2.0]})
    assert pipe.difference == 0.0
    assert pipe.summary().splitlines()[0].endswith("(float64): < 1e-12")
    assert "blocking / pipelined ⟨0.50⟩" in pipe.summary()


def test_figures_return_their_figure():
    runs = P.ModelParallelRuns({"losses": [1.0, 0.9]}, {"first": {"losses": [1.0, 0.9]}}, steps=2)
    sweep = P.Crossover([_row(128, 64, [1.0, 1.0], [2.0, 2.0]),
                         _row(128, 128, [1.0, 1.0], [1.0, 1.0])], [128])
    hybrid = {2: {"data": 6e7, "model": 1e8, "hybrid": 8e6}, 4: {"data": 9e7, "model": 3e8, "hybrid": 2e7}}
    run = P.HybridRun({"losses": [2.0, 1.5]}, [{"losses": [2.0, 1.5], "traffic": {"elements": {}}}],
                      2, 2, 1.0)
    timed = P.HybridTiming({"data": [2.0, 2.0], "hybrid": [1.0, 1.0]})
    for fig, axes in [(P.figure_mp_losses(runs, 2), 1), (P.figure_crossover(sweep), 2),
                      (P.figure_hybrid_counts(hybrid), 1), (P.figure_hybrid(run, timed, 2), 2)]:
        assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == axes
        plt.close(fig)
