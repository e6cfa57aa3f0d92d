"""Tests of book.chapters.gpu.perfmodel: the post's charts in its three metrics with its stated
factors, the prices and factors at which its picks lead, the decision function, the 8-bit training
model, the cache bandwidths behind "3-5x / 7-10x" and the Q&A's communication and memory models."""
import math

import pandas as pd
import pytest

from book.chapters import gpu as G
from book.core import tables


@pytest.fixture(scope="module")
def specs():
    return tables.gpu_specs_frame()


# -- the three metrics ---------------------------------------------------------------------------
def test_metrics_are_the_posts_three(specs):
    assert G.METRICS == ("8-bit inference", "16-bit inference", "16-bit training")
    raw = G.raw_chart(specs)
    assert list(raw.columns) == list(G.METRICS)
    assert (raw.loc[G.REFERENCE] == 1.0).all()  # normalised to the H100 SXM, as the post reads it
    assert raw["8-bit inference"].is_monotonic_decreasing


def test_l2_factor_lifts_ada_and_hopper_only(specs):
    base = G.chart_performance(specs, "16-bit inference", l2_factor=1.0)
    lifted = G.chart_performance(specs, "16-bit inference", l2_factor=2.0)
    # normalised to the H100 (itself lifted): a card without the large L2 falls by half
    assert lifted["RTX 3090"] == pytest.approx(base["RTX 3090"] / 2)
    assert lifted["RTX 4090"] == pytest.approx(base["RTX 4090"])  # both lifted: ratio unchanged
    assert base["RTX 4090"] == pytest.approx(1008 / 3350)
    with pytest.raises(ValueError):
        G.chart_performance(specs, "16-bit inference", l2_factor=0.5)
    with pytest.raises(ValueError):
        G.chart_performance(specs, "4-bit inference")


def test_8bit_doubles_fp8_cards_and_training_has_its_own_factor(specs):
    r8 = G.chart_performance(specs, "8-bit inference", l2_factor=1.5)
    r16 = G.chart_performance(specs, "16-bit inference", l2_factor=1.5)
    assert r8["RTX 4090"] == pytest.approx(r16["RTX 4090"])  # fp8 on both sides of the ratio
    assert r8["RTX 3090"] == pytest.approx(r16["RTX 3090"] / 2)  # no fp8: keeps its 16-bit figure
    t = G.chart_performance(specs, "16-bit training", l2_factor=1.5, training_l2_factor=1.0)
    assert t["RTX 3090"] == pytest.approx(r16["RTX 3090"] * 1.5)


def test_perf_per_dollar_uses_the_posts_desktop(specs):
    assert G.post_system_usd(specs) == 2200 - specs.loc["RTX 3090", "price_usd"]
    t = G.chart_perf_per_dollar(specs)
    assert (t.max() == 1.0).all()
    total, price = G.ownership_usd(specs)
    assert (total > price + G.post_system_usd(specs)).all()  # electricity on top
    cheaper = G.chart_perf_per_dollar(specs, prices={"RTX 4070 Ti": 300})
    assert cheaper["8-bit inference"].idxmax() == "RTX 4070 Ti"
    with pytest.raises(KeyError):
        G.ownership_usd(specs, {"RTX 9090": 1})
    with pytest.raises(ValueError):
        G.ownership_usd(specs, {"RTX 4090": 0})


def test_price_to_lead_is_the_break_even(specs):
    limit = G.price_to_lead(specs, "RTX 4070 Ti", "8-bit inference")
    assert 0 < limit < specs.loc["RTX 4070 Ti", "price_usd"]
    at = G.chart_perf_per_dollar(specs, prices={"RTX 4070 Ti": limit - 1})
    above = G.chart_perf_per_dollar(specs, prices={"RTX 4070 Ti": limit + 1})
    assert at["8-bit inference"].idxmax() == "RTX 4070 Ti"
    assert above["8-bit inference"].idxmax() != "RTX 4070 Ti"
    # a card that cannot lead at any positive price
    assert math.isnan(G.price_to_lead(specs, "V100 SXM2", "8-bit inference"))


def test_factor_to_lead(specs):
    f = G.factor_to_lead(specs, "RTX 4090", "RTX 3080", "16-bit training")
    lo = G.chart_perf_per_dollar(specs, l2_factor=1.75, training_l2_factor=f * 0.99)["16-bit training"]
    hi = G.chart_perf_per_dollar(specs, l2_factor=1.75, training_l2_factor=f * 1.01)["16-bit training"]
    assert lo["RTX 3080"] > lo["RTX 4090"] and hi["RTX 3080"] < hi["RTX 4090"]
    assert math.isnan(G.factor_to_lead(specs, "RTX 4090", "RTX 4080"))  # both large-L2: cancels


def test_decision_function(specs):
    servers = G.decide(specs, 48, "8-bit inference")
    assert servers[0] == "RTX 6000 Ada"
    assert all(specs.loc[g, "memory_gb"] >= 48 for g in servers)
    cheap = G.decide(specs, 10, "16-bit training", budget_usd=800, segments=("consumer",))
    assert cheap and all(specs.loc[g, "price_usd"] <= 800 for g in cheap)
    assert G.decide(specs, 200, "16-bit training") == []
    with pytest.raises(ValueError):
        G.decide(specs, -1, "16-bit training")
    with pytest.raises(ValueError):
        G.decide(specs, 8, "16-bit training", segments=("mobile",))


# -- 8-bit training ------------------------------------------------------------------------------
def test_fp8_training_ratio_is_capped_by_the_tensor_cores(specs):
    r = G.fp8_training_ratio(specs, utilisation=0.5, l2_factor=1.5)
    assert set(r.index) == set(specs.index[specs["fp8_tensor_tflops"].notna()])
    assert r["RTX 4090"] == pytest.approx(3.0)  # memory side: 2 × 1.5
    # a high utilisation leaves the H100 (FP8 = 2 × FP16) less headroom than 2 × the L2 factor
    capped = G.fp8_training_ratio(specs, utilisation=0.9, l2_factor=2.0)
    assert capped["H100 SXM5"] == pytest.approx(1978.9 / (0.9 * 989.4))
    span = G.fp8_training_span(specs)
    assert (span["min"] >= 3 - 1e-9).all() and (span["max"] <= 4 + 1e-9).all()
    with pytest.raises(ValueError):
        G.fp8_training_ratio(specs, utilisation=0, l2_factor=1.5)


# -- cache bandwidth -----------------------------------------------------------------------------
def test_a100_cache_bandwidths():
    s = G.A100_BANDWIDTH.speedups()
    assert s["L2"] == pytest.approx(5120 * 1.41 / 1555)
    assert s["shared"] == pytest.approx(128 * 108 * 1.41 / 1555)
    assert 3 <= s["L2"] <= 5 and s["shared"] > 11.5


# -- communication and memory --------------------------------------------------------------------
def test_pcie_and_ring_allreduce():
    assert G.pcie_gbs(4, 16) == pytest.approx(31.5, rel=1e-3)
    assert G.pcie_gbs(5, 16) == pytest.approx(2 * G.pcie_gbs(4, 16))
    assert G.ring_allreduce_s(1e9, 4, 10) == pytest.approx(2 * 3 / 4 * 0.1)
    assert G.ring_allreduce_s(1e9, 1, 10) == 0
    assert G.data_parallel_step_s(1.0, 0.5, hidden_fraction=0.6) == 1.0
    assert G.data_parallel_step_s(1.0, 0.5) == 1.5
    with pytest.raises(ValueError):
        G.pcie_gbs(6, 16)
    with pytest.raises(ValueError):
        G.pcie_gbs(4, 3)


def test_pcie_cost_and_networking_follow_the_workload():
    step = G.TrainingStep("test", params=340e6, tokens_per_gpu=8192, tflops=90)
    assert step.compute_s == pytest.approx(6 * 340e6 * 8192 / 90e12)
    slow_lanes = G.pcie_cost(step, slow=(4, 4), fast=(4, 8))
    assert slow_lanes > G.pcie_cost(step) > 0
    assert G.pcie_cost(step, hidden_fraction=1.0) == 0  # the backward pass hides the exchange
    gbit = G.break_even_gbit(step)
    assert G.two_machine_speedup(step, gbit) == pytest.approx(1.0)
    assert G.two_machine_speedup(step, 2 * gbit) > 1 > G.two_machine_speedup(step, gbit / 2)
    with pytest.raises(ValueError):
        G.break_even_gbit(step, 2.0)


def test_memory_heuristics():
    assert G.memory_gb(1e9, 2) == 2.0
    assert G.largest_model_fitting(24, 16) == pytest.approx(1.5e9)
    assert G.largest_model_fitting(4, 16, reserve_gb=4) == 0
    params, source = G.WORKLOADS["Stable Diffusion v1"]
    assert params == pytest.approx(1.067e9) and "860M" in source
    with pytest.raises(ValueError):
        G.memory_gb(0, 2)


def test_tables_are_dataframes(specs):
    assert isinstance(G.raw_chart(specs), pd.DataFrame)
    assert isinstance(G.fp8_training_span(specs), pd.DataFrame)


# -- the chapter's readings, one per claim --------------------------------------------------------
def test_cache_readings_latency_and_bandwidth(specs):
    r = G.cache_readings()
    assert r.latency["L2"] == pytest.approx(1.9) and r.holds == {
        "latency (the post's cycles)": False, "bandwidth (A100 whitepaper)": False}
    assert r.measured[:2] == [1.9, 11.18]
    assert list(r.table().columns) == ["L2", "shared", "L2 in 3–5×", "shared in ~7–10×"]
    nearer = min(r.latency["shared"], r.bandwidth["shared"])
    assert r.upper_end_gap_pct == pytest.approx(100 * (1 - 10 / nearer))
    assert r.summary().splitlines()[0] == "latency (the post's cycles): not both ranges"


def test_fp8_lead_and_the_bar_chart(specs):
    lead = G.fp8_lead(specs)
    assert all(lead.first_everywhere) and lead.holds
    assert lead.ratio_4090[0] == pytest.approx(lead.ratio_4090[1])  # both large-L2 cards
    assert lead.best_old not in specs.index[specs["fp8_tensor_tflops"].notna()]
    fig = G.plot_metric_bars(G.raw_chart(specs), xlabel="x", title="t")
    assert len(fig.axes[0].patches) == 3 * len(specs)


def test_post_picks_and_the_4070ti_3090_ratio(specs):
    picks = G.post_picks(specs)
    assert set(picks.leaders) == set(G.METRICS) and len(picks.summary().splitlines()) == 4
    assert picks.train_factor > 1
    r = G.ppd_ratio_4070ti_3090(specs)
    assert r.ratios[0] < r.ratios[1]
    # at the computed 3090 price (the computer around it held) the ratio is the post's 2x
    t = G.chart_perf_per_dollar(specs, l2_factor=2.0, prices={"RTX 3090": r.price_3090_2x[1]},
                                system_usd_per_gpu=G.post_system_usd(specs))
    assert t.loc["RTX 4070 Ti", "8-bit inference"] / t.loc["RTX 3090", "8-bit inference"] == pytest.approx(2)


def test_decision_table_server_picks_and_fp8_span(specs):
    table = G.decision_table(specs)
    assert list(table.columns) == list(G.METRICS) and list(table.index) == list(G.POST_NEEDS)
    assert table.loc["servers (48 GB)", "8-bit inference"].startswith("RTX 6000 Ada")
    assert G.server_picks_hold(specs)
    span = G.fp8_training_span(specs)
    assert G.fp8_span_within(span, (0, 100)) and not G.fp8_span_within(span, (100, 200))


def test_communication_and_memory_tables(specs):
    step = G.bert_large_step(specs)
    assert step.name == "BERT-large, 16×512 tokens per GPU, RTX 4090 at 55 % of its fp16 peak"
    table = G.communication_table(step)
    assert list(table.columns) == ["no overlap", "backward covers it"]
    assert (table["no overlap"] >= table["backward covers it"]).iloc[:2].all()
    assert "Gbit/s with no overlap" in G.describe_step(step)
    memory = G.workload_memory_table()
    assert memory.loc["OPT-13B", "8-bit (GB)"] == 13 and memory.loc["BERT-large", "fp16 (GB)"] == 0.68
