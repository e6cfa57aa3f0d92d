"""Tests of book.chapters.gpu: the cycle model, the spec table, the calculators, the decision function,
the instrumented tiled matmul, the number-format helpers, 2:4 sparsity and the measurement helpers
(whose CUDA-only parts must refuse cleanly on a CPU)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from book.chapters import gpu as G
from book.core import sparsity24, tables


# -- cycle model ---------------------------------------------------------------------------------
def test_cycle_model_reproduces_the_posts_three_numbers():
    assert [G.matmul_cycles(k) for k in G.MATMUL_KINDS] == [504, 235, 200]


def test_cycle_model_follows_its_inputs():
    lat = G.Latencies(l2=300, shared=20, ffma=2)
    assert G.matmul_cycles("ffma", lat) == 300 + 8 * (20 + 2)
    assert G.matmul_cycles("tensor_core", lat) == 300 + 20 + 1
    assert G.matmul_cycles("tensor_core_async", lat) == 300  # the load hides the work entirely
    # when the work is longer than the load, async copies hide the whole load
    assert G.matmul_cycles("tensor_core_async", G.Latencies(l2=10, shared=34)) == 35
    # the real DRAM latency can be used instead of the post's L2 figure
    assert G.matmul_cycles("tensor_core", G.Latencies(tile_load=380)) == 380 + 35
    # a bigger matmul needs more Tensor Core rounds: (64/4)² = 256 ops on 64 cores → 4 rounds
    assert G.MatmulSetup(n=64).tensor_core_rounds == 4


def test_cycle_model_rejects_bad_input():
    with pytest.raises(ValueError):
        G.matmul_cycles("simd")
    with pytest.raises(ValueError):
        G.Latencies(shared=-1)
    with pytest.raises(ValueError):
        G.MatmulSetup(n=30)


def test_cache_speedups_of_the_posts_latencies():
    r = G.cache_speedups()
    assert r["L2"] == pytest.approx(1.9) and r["shared"] == pytest.approx(380 / 34)
    assert r["shared_vs_L2"] == pytest.approx(200 / 34)
    assert G.cache_speedups(G.Latencies(global_memory=800))["L2"] == 4.0  # inside the post's 3–5×
    with pytest.raises(ValueError):
        G.cache_speedups(G.Latencies(shared=0))


def test_cycle_table_has_the_async_gain():
    t = G.cycle_table({"post": G.Latencies()})
    assert t.loc["post", "async_time_saved_pct"] == pytest.approx(100 * 35 / 235)


# -- spec table ----------------------------------------------------------------------------------
def test_every_spec_row_has_numbers_dates_and_sources():
    specs = tables.gpu_specs_frame()
    for col in tables.GPU_SPEC_REQUIRED:
        assert specs.reset_index()[col].notna().all(), col
    assert specs["spec_source"].str.len().min() > 20
    assert specs["price_source"].str.len().min() > 20
    # the GPUs the post names are there
    for gpu in ("V100 SXM2", "A100 SXM4 40GB", "H100 SXM5", "RTX 4090", "RTX 4070 Ti", "RTX 3080",
                "RTX 3090", "RTX 6000 Ada", "L40", "RTX 2080 Ti", "Titan RTX"):
        assert gpu in specs.index
    # fp8 exactly on Ada and Hopper
    has_fp8 = specs["fp8_tensor_tflops"].notna()
    assert (has_fp8 == specs["architecture"].isin(["Ada", "Hopper"])).all()


def test_spec_loader_refuses_a_row_without_source(tmp_path):
    df = pd.read_csv(tables.GPU_SPECS_FILE)
    df.loc[0, "spec_source"] = ""
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="spec_source"):
        tables.gpu_specs_frame(tmp_path / "bad.csv")


def test_spec_tables_split_the_table_with_short_names():
    specs = tables.gpu_specs_frame()
    hardware, prices = G.spec_tables(specs)
    assert list(prices.columns) == ["TDP W", "price USD", "price date", "price kind"]
    assert hardware.loc["A100 SXM4 40GB", "GB/s"] == 1555.0 and "arch" in hardware.columns
    assert len(hardware) == len(prices) == len(specs)


# -- speedups and corrections --------------------------------------------------------------------
def test_bandwidth_speedup_a100_over_v100():
    specs = tables.gpu_specs_frame()
    assert G.bandwidth_speedup(specs, "A100 SXM4 40GB", "V100 SXM2") == pytest.approx(1555 / 900)
    with pytest.raises(KeyError):
        G.bandwidth_speedup(specs, "A100", "V100 SXM2")


def test_corrections():
    assert G.eight_gpu_scaling_other(7.0, "cnn") == pytest.approx(6.667, abs=1e-3)
    assert G.eight_gpu_scaling_other(7.0, "transformer") == pytest.approx(7 / 1.07)
    # a speedup measured with twice the batch loses the 13.5 % a doubled batch gives
    assert G.corrected_speedup(1.135, batch_ratio=2) == pytest.approx(1.0)
    assert G.corrected_speedup(1.07, eight_gpu=True) == pytest.approx(1.0)
    assert G.corrected_speedup(2.0) == 2.0
    with pytest.raises(ValueError):
        G.corrected_speedup(1.0, model="rnn")


# -- caches and tiling -----------------------------------------------------------------------------
def test_bert_large_operand_sizes():
    t = G.bert_large_matmuls(batch=4, seq=512)
    assert t.loc["FFN up", "left_MiB"] == 4.0  # 2048 tokens × 1024 × 2 bytes
    assert t.loc["FFN up", "right_MiB"] == 8.0  # 1024 × 4096 × 2 bytes
    assert t.loc["attention × V", "left_MiB"] == 32.0  # 4 × 16 heads × 512² × 2 bytes
    assert G.bert_large_matmuls(batch=8)["inputs_MiB"].max() == 2 * t["inputs_MiB"].max()


def test_tiled_matmul_computes_the_product_and_counts_loads():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((32, 32)), rng.standard_normal((32, 32))
    for tile in (1, 4, 8, 32):
        c, count = G.tiled_matmul(a, b, tile)
        np.testing.assert_allclose(c, a @ b, rtol=1e-10, atol=1e-10)
        assert count.loads == 2 * 32**3 // tile  # each of (n/t)³ steps loads two t×t tiles
        assert count.stores == 32 * 32
    with pytest.raises(ValueError):
        G.tiled_matmul(a, b, 5)


def test_bert_weight_matmuls_against_l2():
    # FFN down: 8 KiB of input per token (4096 fp16) next to an 8 MiB weight
    assert G.fits_l2_up_to_tokens(72) == (72 - 8) * 2**20 // 8192
    assert G.fits_l2_up_to_tokens(6) == 0 and G.fits_l2_up_to_tokens(5.5) == 0  # the weight alone is 8 MiB
    assert G.fits_l2_up_to_tokens(6, **G.BERT_BASE) == 256  # BERT-base would fit: the check can fail
    # consistent with the operand table: every weight matmul fits at the limit, one does not a sequence later
    t = G.fits_l2_up_to_tokens(48)
    at = G.bert_large_matmuls(batch=t // 512, seq=512)
    assert (at.loc[at["has_weight"], "inputs_MiB"] <= 48).all()
    beyond = G.bert_large_matmuls(batch=t // 512 + 1, seq=512)
    assert (beyond.loc[beyond["has_weight"], "inputs_MiB"] > 48).any()
    with pytest.raises(ValueError):
        G.fits_l2_up_to_tokens(0)


def test_post_l2_table_names_cards_of_the_spec_table():
    specs = tables.gpu_specs_frame()
    for arch, row in G.POST_L2_TABLE.items():
        for card in row["cards"]:
            assert specs.loc[card, "architecture"] == arch


def test_instrumented_tiled_matmul_counts_what_it_reads():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((40, 24)), rng.standard_normal((24, 56))  # tiles do not divide the shapes
    run = G.run_tiled_matmul(a, b, 16)
    np.testing.assert_allclose(run.c, a @ b, rtol=1e-12, atol=1e-12)
    # every A block is read once per column of output tiles, every B block once per row of them
    assert run.count.loads == a.size * 4 + b.size * 3  # ceil(56/16) = 4, ceil(40/16) = 3
    assert run.count.stores == 40 * 56 and run.count.flops == 2 * 40 * 24 * 56
    reuse = [G.run_tiled_matmul(a, b, t).count.reuse for t in (4, 8, 16)]
    assert reuse[0] < reuse[1] < reuse[2]
    once = G.run_tiled_matmul(a, b, 8, l2_bytes=a.nbytes + b.nbytes)
    assert once.count.loads == a.size + b.size and once.count.l2_hits > 0
    with pytest.raises(ValueError, match="shared memory"):
        G.run_tiled_matmul(a, b, 32, shared_bytes=1024)
    with pytest.raises(ValueError):
        G.run_tiled_matmul(a, a, 8)  # 40×24 · 40×24: shapes do not chain


def test_tiled_matmul_cache_reduces_traffic():
    _, plain = G.tiled_matmul(None, None, 8, n=64)
    _, cached = G.tiled_matmul(None, None, 8, n=64, cache_tiles=1000)  # everything fits
    assert cached.loads == 2 * 64 * 64  # each element of A and B read once
    assert plain.loads > cached.loads


# -- number formats --------------------------------------------------------------------------------
def test_tf32_rounding():
    x = torch.tensor([1.0, 1.0 + 2**-11, 1.0 + 2**-10 + 2**-12, float("inf"), -3.0])
    r = G.round_to_tf32(x)
    assert r[0] == 1.0 and r[3] == float("inf") and r[4] == -3.0
    assert r[1] == 1.0  # tie rounds to even
    assert r[2] == 1.0 + 2**-10
    y = torch.randn(1000)
    rel = ((G.round_to_tf32(y) - y).abs() / y.abs()).max()
    assert 0 < rel <= 2**-11
    with pytest.raises(TypeError):
        G.round_to_tf32(y.double())


def test_format_range_facts():
    f = G.format_range_facts()
    assert f["fp16"]["max"] == 65504 and math.isinf(f["fp16"]["2x65504"]) and f["fp16"]["1e-8"] == 0
    assert f["bf16"]["2x65504"] == 131072 and f["bf16"]["1e-8"] > 0
    assert f["bf16"]["max"] == pytest.approx(f["fp32"]["max"], rel=0.01)


def test_matmul_error_ordering():
    e = G.matmul_error_by_format(n=64)
    assert e["fp32"] < e["tf32 (emulated)"] < e["bf16"]


def test_loss_scaler():
    s = G.DynamicLossScaler(init_scale=8.0, growth_interval=2)
    assert s.update(True) is False and s.scale == 4.0 and s.skipped == 1
    assert s.update(False) and s.update(False) and s.scale == 8.0
    with pytest.raises(ValueError):
        G.DynamicLossScaler(init_scale=0)


def test_fp16_underflow_freezes_the_first_layer_and_loss_scaling_fixes_it():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(512, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (512,), generator=g)
    fp16 = G.train_low_precision("fp16", x, y, steps=3, batch=32)
    scaled = G.train_low_precision("fp16+loss scaling", x, y, steps=6, batch=32)
    assert fp16["first_layer_zero_frac"] > 0.9 and fp16["first_layer_change"] == 0
    assert scaled["first_layer_zero_frac"] < 0.1 and scaled["first_layer_change"] > 0
    assert scaled["skipped"] > 0  # starting at 2^24 overflows first
    with pytest.raises(ValueError):
        G.train_low_precision("fp8", x, y)


# -- 2:4 sparsity ----------------------------------------------------------------------------------
def test_sparse24_demo_uses_the_core_format():
    w = torch.randn(16, 32, generator=torch.Generator().manual_seed(0)).half()
    demo = G.Sparse24Demo(w)
    assert torch.equal(demo.pruned, sparsity24.prune(w)) and sparsity24.is_2_4(demo.pruned)
    assert demo.values.shape == (16, 16) and demo.roundtrip
    assert demo.values_ratio == 0.5 and demo.storage["with_metadata_ratio"] == 0.5625
    assert 0.5 < demo.kept_energy < 1
    assert "values 0.50 of dense, round trip exact" in demo.compression
    assert "size vs dense fp16: values 0.500, with 2-bit metadata 0.5625" in demo.summary()
    with pytest.raises(ValueError):
        G.Sparse24Demo(torch.randn(4, 6))


# -- power, electricity, cloud, perf/$ -----------------------------------------------------------
def test_electricity_and_cloud_calculator():
    c = G.CloudVsDesktop()
    assert c.kwh_per_year == pytest.approx(591.3)
    assert c.electricity_per_year == pytest.approx(70.956)
    assert float(c.cloud_cost(300)) == pytest.approx(2311.2)
    assert float(c.desktop_cost(365)) == pytest.approx(2270.956)
    be = c.break_even_days
    assert float(c.cloud_cost(be)) == pytest.approx(float(c.desktop_cost(be)))
    assert G.CloudVsDesktop(cloud_usd_per_hour=0.01).break_even_days == math.inf
    assert G.electricity_cost_per_year(450, 0.15, 0.175) == pytest.approx(103.4775)
    with pytest.raises(ValueError):
        G.CloudVsDesktop(utilization=0)
    with pytest.raises(ValueError):
        G.electricity_kwh_per_year(100, 1.5)


def test_power_limit_model():
    assert G.power_limited_speed(250, 250) == 1
    assert G.power_limited_speed(250, 200) == pytest.approx(0.8 ** (1 / 3))
    with pytest.raises(ValueError):
        G.power_limited_speed(250, 300)


def test_perf_per_dollar():
    specs = tables.gpu_specs_frame()
    t = G.perf_per_dollar(specs, "16-bit")
    assert t["perf_per_dollar"].iloc[0] == 1.0 and t["perf_per_dollar"].is_monotonic_decreasing
    assert G.relative_performance(specs)["RTX 4090"] == 1.0
    # 8-bit doubles the fp8 cards only
    r16, r8 = G.relative_performance(specs, "16-bit"), G.relative_performance(specs, "8-bit")
    assert r8["RTX 3090"] == pytest.approx(r16["RTX 3090"] / 2)  # relative to the 4090, which doubled
    # electricity is part of the cost
    assert (t["total_usd"] > t["price_usd"] + G.SYSTEM_USD_PER_GPU).all()


def test_post_ratios_follow_the_spec_table():
    specs = tables.gpu_specs_frame()
    r = G.post_ratios(specs)
    assert r["perf_4090_over_h100"] == pytest.approx(1008 / 3350)  # both fp8: bandwidth ratio
    ppd = G.perf_per_dollar(specs, "8-bit")
    assert r["ppd_4070ti_over_3090"] == pytest.approx(ppd.loc["RTX 4070 Ti", "perf_per_dollar"] / ppd.loc["RTX 3090", "perf_per_dollar"])
    cheaper = specs.copy()
    cheaper["price_usd"] = cheaper["price_usd"].astype(float)
    cheaper.loc["RTX 4070 Ti", "price_usd"] = 400.0
    assert G.post_ratios(cheaper)["ppd_4070ti_over_3090"] > r["ppd_4070ti_over_3090"]


def test_spec_table_is_only_the_posts_file():
    # another chapter's file beside it (GPUs since 2023) must not change this chapter's table
    specs = tables.gpu_specs_frame()
    assert tables.GPU_SPECS_FILE.name == "gpu_specs.csv" and tables.GPU_SPECS_FILE.exists()
    assert len(specs) == 16 and "RTX 4090" in specs.index


def test_recommend_branches():
    specs = tables.gpu_specs_frame()
    eight = G.recommend(24, "8-bit", 2000, specs)
    assert eight == ["RTX 4090"]  # the only ≥24 GB fp8 card under $2,000
    sixteen = G.recommend(24, "16-bit", 2000, specs)
    assert set(sixteen) == {"RTX 4090", "RTX 3090"}
    assert G.recommend(80, "16-bit", 1000, specs) == []  # nothing fits
    big = G.recommend(48, "8-bit", 100_000, specs)
    assert all(specs.loc[g, "memory_gb"] >= 48 and specs.loc[g, "fp8_tensor_tflops"] > 0 for g in big)
    cheap = G.recommend(8, "16-bit", 700, specs, segments=("consumer",))
    assert "RTX 3080" in cheap and all(specs.loc[g, "price_usd"] <= 700 for g in cheap)
    with pytest.raises(ValueError):
        G.recommend(-1, "16-bit", 1000, specs)
    with pytest.raises(ValueError):
        G.recommend(8, "4-bit", 1000, specs)
    with pytest.raises(ValueError):
        G.recommend(8, "16-bit", 1000, specs, segments=("mobile",))


# -- measuring this machine ------------------------------------------------------------------------
CPUINFO = """model name\t: Test CPU
cpu MHz\t\t: 2000.000
siblings\t: 4
cpu cores\t: 2
flags\t\t: fpu sse sse2 avx avx2 fma avx512f
"""


def test_cpu_peak_from_cpuinfo():
    p = G.cpu_peak(CPUINFO, cores=2)
    assert (p.isa, p.flops_per_cycle, p.ghz) == ("AVX-512 + FMA", 64, 2.0)
    assert p.gflops == 2 * 2.0 * 64
    assert G.cpu_peak(CPUINFO.replace(" avx512f", "")).flops_per_cycle == 32
    assert G.cpu_peak(CPUINFO.replace(" avx2 fma avx512f", "")).flops_per_cycle == 16
    real = G.cpu_peak()
    assert real.cores >= 1
    assert math.isnan(p.bf16_gflops)  # no avx512_bf16 flag: bf16 is emulated, no roof
    zen4 = G.cpu_peak("vendor_id\t: AuthenticAMD\ncpu family\t: 25\n" + CPUINFO.replace("avx512f", "avx512f avx512_bf16"), cores=1)
    assert (zen4.flops_per_cycle, zen4.bf16_flops_per_cycle) == (32, 64)  # 512-bit FMAs on 256-bit pipes
    assert zen4.per_core().gflops == zen4.gflops and p.per_core().gflops == p.gflops / 2


def test_cpu_peak_under_the_numerics_profile_is_capped_at_avx2():
    capped = G.cpu_peak(CPUINFO.replace("avx512f", "avx512f avx512_bf16"), cores=2, isa_cap="AVX2")
    assert (capped.isa, capped.flops_per_cycle, capped.bf16_flops_per_cycle) == ("AVX2 + FMA", 32, 0)
    assert G.cpu_peak(CPUINFO.replace(" avx2 fma avx512f", ""), isa_cap="AVX2").isa == "AVX"  # no AVX2
    with pytest.raises(ValueError):
        G.cpu_peak(CPUINFO, isa_cap="AVX-512")
    from book.core import numerics

    assert G.profile_isa_cap() == ("AVX2" if numerics.enabled() else None)
    if numerics.enabled():
        assert G.cpu_peak_under_profile().flops_per_cycle <= 32


def test_measure_matmul_and_bandwidth_smoke():
    r = G.measure_matmul(64, repeats=1, warmup=1)
    assert r["gflops"] > 0 and r["intensity"] == pytest.approx(2 * 64**3 / (3 * 64 * 64 * 4))
    bw = G.stream_bandwidth(2**20, repeats=1)
    assert set(bw) == {"copy", "scale", "add", "triad"} and all(v > 0 for v in bw.values())
    assert G.measure_fp8_matmul(64, torch.device("cpu")) is None


def test_roofline_and_spec_lookup():
    np.testing.assert_allclose(G.roofline([1, 10, 100], 100, 5), [5, 50, 100])
    specs = tables.gpu_specs_frame()
    assert G.gpu_spec_for("NVIDIA H100 80GB HBM3", specs).name == "H100 SXM5"
    assert G.gpu_spec_for("NVIDIA H100 PCIe", specs).name == "H100 PCIe"
    assert G.gpu_spec_for("NVIDIA GeForce RTX 4070 Ti", specs).name == "RTX 4070 Ti"
    assert G.gpu_spec_for("NVIDIA GeForce RTX 3060", specs).name == "RTX 3060 12GB"
    assert G.gpu_spec_for("Tesla T4", specs) is None


def test_price_to_match():
    specs = tables.gpu_specs_frame()
    p = G.price_to_match(specs, "RTX 4090", "RTX 4070 Ti", "8-bit")
    s2 = specs.copy()
    s2["price_usd"] = s2["price_usd"].astype(float)
    s2.loc["RTX 4090", "price_usd"] = p
    t = G.perf_per_dollar(s2, "8-bit")
    assert t.loc["RTX 4090", "perf_per_dollar"] == pytest.approx(t.loc["RTX 4070 Ti", "perf_per_dollar"])


def test_matmul_rate_trials_interleave():
    trials = G.matmul_rate_trials({"a": 32, "b": 48}, rounds=3)
    assert set(trials) == {"a", "b"} and all(len(v) == 3 and min(v) > 0 for v in trials.values())
    with pytest.raises(ValueError):
        G.matmul_rate_trials({"a": 0})


def test_cuda_measurements_refuse_cleanly_without_a_gpu():
    for call in (lambda: G.tensor_core_trials(64, "cpu"), lambda: G.sparse_speedup_trials(64, "cpu"),
                 lambda: G.measure_sparse_speedup(64, torch.device("cpu"))):
        with pytest.raises(G.NeedsCuda, match="needs a CUDA GPU"):
            call()
    assert issubclass(G.NeedsCuda, RuntimeError)


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with G.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# -- the chapter's experiments, one function per claim --------------------------------------------
def test_latency_variants_and_the_shared_tile():
    t = G.cycle_table(G.LATENCY_VARIANTS)
    assert list(t.index) == ["post", "DRAM 380", "shared 20", "L2 300", "async 30"]
    assert t.loc["DRAM 380", "tensor_core"] == 380 + 35
    assert G.largest_shared_tile(128) == 128       # 2·128²·4 bytes = 128 KB: exactly fits
    assert G.largest_shared_tile(127) == 64 and G.largest_shared_tile(31) == 32


def test_tiling_experiment_counts_and_judges():
    run = G.tiling_experiment(32, [4, 8, 16], seed=0)
    assert run.product_err < 1e-5 and run.holds
    assert run.reuse == sorted(run.reuse) and run.measured[-2] == 1.0  # an L2 holding A and B
    table = run.table()
    assert list(table.index) == [4, 8, 16]
    assert table.loc[8, "global reads (MiB)"] == pytest.approx(table.loc[8, "2N³/T (MiB)"])
    l2 = run.l2_table()
    assert l2.loc["0 × the operands", "served by L2 (tile reads)"] == 0
    assert run.plot().axes[0].get_xlabel() == "tile size T"


def test_bert_l2_fit_separates_the_rtx_40s():
    fit = G.bert_l2_fit(tables.gpu_specs_frame())
    assert fit.holds and fit.measured[2] == 0 and fit.measured[0] >= 512
    assert fit.series.loc["RTX 4090", "L2 MB (post)"] == 72.0
    assert set(fit.ada_tokens.index) == {"RTX 4090", "RTX 4080", "RTX 4070 Ti"}
    text = fit.summary()
    assert "A100 SXM4 40GB (" in text and "BERT-base" in text
    assert len(fit.plot().axes[0].patches) == len(fit.limits)


def test_cloud_summary_and_plots():
    c = G.CloudVsDesktop()
    assert c.summary().startswith("591.3 kWh/year = $70.96; cloud for 300 days $2,311")
    assert "15% " in c.summary().splitlines()[1]
    assert len(c.plot().axes[0].lines) == 6 + 1  # two costs, two at other rates each, the break-even
    assert G.plot_power_limit(250).axes[0].get_xlabel() == "power limit (W), RTX 2080 Ti"


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # loss scaling skips all 3 steps: its means are NaN
def test_training_helpers_and_the_format_claims():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(256, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (256,), generator=g)
    runs = G.train_all_precisions(x, y, steps=3, batch=32, progress=False)
    assert list(runs) == list(G.PRECISION_MODES)
    table = G.precision_summary(runs, x[:64], y[:64])
    assert list(table.index) == list(G.PRECISION_MODES) and table.loc["fp32", "skipped steps"] == 0
    assert len(G.plot_losses(runs).axes[0].lines) == 4
    claims = G.FormatClaims(runs, {"fp32": 0.0, "tf32 (emulated)": 1e-4, "bf16": 1e-2}, window=3)
    assert claims.tf32_key == "tf32 (emulated)" and claims.zero["fp16"] == 1.0
    assert claims.measured[0] == 65504 and claims.measured[-1] == 1e-4
    assert not claims.holds  # three steps: no loss falls far enough


def test_this_machine_sweep_and_peak_on_a_cpu():
    machine = G.this_machine("cpu")
    assert machine.cpu is not None and machine.core.cores == 1 and "FLOPs/cycle" in machine.summary()
    sweep = G.matmul_sweep(machine, progress=False, sizes=[16, 32], stream_bytes=2**20)
    assert set(sweep.table().index) == {16, 32} and "fp32" in sweep.table().columns
    assert sweep.stream_text().startswith("STREAM-like GB/s: copy ⟨")
    assert sweep.roofs["fp32"] > 0 and "fp32: highest point" in sweep.roof_summary()
    assert sweep.plot_roofline().axes[0].get_ylabel() == "GFLOP/s"
    peak = G.peak_fraction(machine, 32, rounds=2)
    assert len(peak.trials) == 2 and peak.roof == machine.core.gflops
    lo, hi = peak.interval
    assert lo <= peak.estimate <= hi and "one thread, fp32 32², 2 interleaved rounds" in peak.summary()


def test_speedup_intervals_refuse_without_a_gpu_and_describe():
    for call in (lambda: G.tensor_core_speedups(64, "cpu"), lambda: G.sparse_speedup(64, "cpu")):
        with pytest.raises(G.NeedsCuda):
            call()
    tc = G.SpeedupIntervals(64, {"fp16": (3.0, 2.5, 3.5)}, "fp32")
    assert tc.summary() == "fp16 over fp32 at 64²: 3.00x [2.50, 3.50]"
    sp = G.SpeedupIntervals(64, {"sparse": (1.5, 1.4, 1.6)}, "dense", 1e-3)
    assert sp.summary().startswith("2:4 sparse over dense at 64²: 1.50x [1.40, 1.60]")
