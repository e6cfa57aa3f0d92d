"""book.chapters.parallel.data_parallel: the dp chapter's summaries and figures, on numbers made up
to have a known answer (the functions that need worker processes are tested in test_parallel.py,
on its shared pool)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from book.chapters import parallel as P  # noqa: E402


def test_layer_balance_joins_both_states():
    quiet = {"forward": [1.0, 1.0, 1.0], "backward": [2.0, 2.1, 1.9]}
    busy = {"forward": [1.0, 1.0, 1.0], "backward": [2.0, 2.2, 2.4]}
    layer = P.LayerBalance({"before": quiet, "idle": busy}, transfer_ms=0.75)
    r_quiet, r_busy = layer.ratios["before"], layer.ratios["idle"]
    assert r_quiet[1] < r_quiet[0] < r_quiet[2]
    assert layer.estimate == pytest.approx(np.sqrt(r_quiet[0] * r_busy[0]))
    assert layer.interval == (min(r_quiet[1], r_busy[1]), max(r_quiet[2], r_busy[2]))
    lines = layer.table().splitlines()
    assert len(lines) == 3 and lines[0].startswith("before: forward ⟨1000.00 ms⟩")
    assert "(medians of 3 rounds)" in lines[0]
    assert lines[2] == "on the post's GPU: 0.2 + 0.4 ms = 0.8× one transfer of dp-2"


def test_data_parallel_runs_report_the_largest_differences():
    single = {"first_grad": torch.zeros(4), "losses": [1.0, 0.5]}
    rank = {"first_grad": torch.tensor([0, 0, 3e-8, 0]), "losses": [1.0, 0.5 + 2e-7],
            "traffic": {"bytes": {"all_reduce": 16.0}}}
    runs = P.DataParallelRuns(single, {2: [rank, rank]}, steps=2)
    assert runs.grad_err == pytest.approx(3e-8)
    assert runs.loss_err == pytest.approx(2e-7)
    assert runs.sent == {2: 16.0}
    assert runs.summary().splitlines()[2] == "bytes each worker sends per step: 2 workers 16"
    assert "over 2 steps" in runs.summary()


def test_link_recovers_latency_and_bandwidth():
    sizes = [2 ** k for k in range(10, 20)]
    alpha, beta = 2e-4, 1e9
    seconds = [alpha + n / beta for n in sizes]
    steps = {"compute": [1e-3] * 4, "step": [2e-3] * 4, "bytes": 1_000_000}
    link = P.Link(sizes, {2: seconds}, {2: steps})
    fit_alpha, fit_beta = link.fits[2]
    assert fit_alpha == pytest.approx(alpha, rel=1e-6) and fit_beta == pytest.approx(beta, rel=1e-6)
    assert link.fit_errors[2].max() < 1e-6
    assert link.efficiency[2][0] == pytest.approx(0.5)
    mean, lo, hi = link.fit_error_interval(2)
    assert lo <= mean <= hi and mean < 1e-6
    table = link.table().splitlines()
    assert table[0].startswith("2 workers: latency ⟨200 µs⟩, bandwidth ⟨1.00 GB/s⟩")
    assert table[1].endswith("the α + n/β model predicts ⟨0.45⟩")  # 1 / (1 + 0.2 + 1) ms


def test_overlap_speedup_and_summaries():
    overlap = P.OverlapSpeedup(without=[1.1, 1.2, 1.1, 1.2], with_=[1.0, 1.0, 1.0, 1.0])
    s = overlap.speedup
    assert s[1] < s[0] < s[2] and 10 < s[0] < 20
    assert overlap.context() == f"{s[0]:+.1f} % [{s[1]:+.1f}, {s[2]:+.1f}]"
    assert "with DDP buckets ⟨1000.0 ms⟩ (medians of 4 paired steps)" in P.ddp_summary(overlap)
    rms = P.OverlapSpeedup([1.0, 1.1], [1.0, 1.1], weight_difference=0.0)
    assert P.rmsprop_summary(rms).splitlines()[0].endswith("copies: < 1e-12")


def test_noise_summary_picks_the_weaker_state():
    def state(small, large, loss):
        rows = {b: {"cosine": [0.5], "decrease": [0.5]} for b in (128, 512)}
        return {"rows": rows, "equal_compute": {"small": small, "large": large}, "loss": loss}

    summary = P.NoiseSummary({"initialised": state([3.0, 3.2], [1.0, 1.0], 2.3),
                              "trained": state([0.6, 0.7], [0.9, 0.9], 0.2)})
    assert summary.weaker == "trained"
    assert summary.margins["trained"][0] == pytest.approx(-0.25)
    assert summary.equal_compute("trained") == pytest.approx((0.65, 0.9))
    assert summary.table().splitlines()[1].startswith("trained (loss ‹0.200›)")


def test_tile_throughput_ratios_and_gflops():
    batches = [32, 64, 80, 128]
    # per-example time doubles below 64 and is 25 % higher for 80 (not a multiple of 32)
    per_example = {32: 2.0, 64: 1.0, 80: 1.25, 128: 1.0}
    trials = [[b * per_example[b] * f for b in batches] for f in (1e-6, 1.01e-6, 0.99e-6)]
    tiles = P.TileThroughput(batches, trials)
    ratios = tiles.ratios
    assert ratios["below 64"][0] == pytest.approx(0.5)
    assert ratios["not multiples of 32"][0] == pytest.approx(0.8)
    assert tiles.worse[0] == pytest.approx(0.8)
    assert tiles.gflops[64] == pytest.approx(2 * 1000 * 1000 / 1e-6 / 1e9)
    assert tiles.context().startswith("below 64 0.50 [0.50, 0.50]")
    assert len(tiles.table().splitlines()) == 2
    timed = P.time_tiles([8, 16], device="cpu", rounds=2)
    assert timed.batches == [8, 16] and len(timed.trials) == 2 and all(g > 0 for g in timed.gflops.values())


def test_figures_return_their_figure():
    single = {"first_grad": torch.zeros(2), "losses": [1.0, 0.5]}
    rank = {"first_grad": torch.zeros(2), "losses": [1.0, 0.5], "traffic": {"bytes": {"all_reduce": 8}}}
    link = P.Link([1024, 2048], {2: [1e-4, 2e-4]}, {2: {"compute": [1e-3, 1e-3], "step": [2e-3, 2e-3],
                                                         "bytes": 8}})
    rows = {b: {"cosine": [0.5], "decrease": [0.5]} for b in (16, 128, 512)}
    noise = {"initialised": {"rows": rows}, "trained": {"rows": rows}}
    figures = [(P.figure_exchange_scaling(4e6, 0.745), 1),
               (P.figure_dp_losses(P.DataParallelRuns(single, {2: [rank]}, 2)), 2),
               (P.figure_link(link), 2),
               (P.figure_gradient_noise(noise, [16, 128, 512]), 2),
               (P.figure_tiles(P.TileThroughput([32, 64], [[1e-5, 2e-5], [1e-5, 2e-5]]), "cpu"), 1)]
    for fig, axes in figures:
        assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == axes
        plt.close(fig)
