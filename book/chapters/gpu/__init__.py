"""Which GPU for deep learning: the models behind the advice, and measurements of this machine.

The post's charts are images whose data is not published, so this subpackage rebuilds the reasoning
as small executable models whose inputs are in the open, in three parts:

- `book.chapters.gpu.specs`: arithmetic on the spec table of the GPUs the post discusses (read by
  `book.core.tables.gpu_specs_frame` from `gpu_specs.csv`, every row with the date and source of its
  numbers and of its price);
  bandwidth-ratio speedups, the batch-size and 8-GPU corrections, power, electricity,
  cloud-vs-desktop break-even, performance per dollar and the recommendation as a decision function;
- `book.chapters.gpu.memory`: the cycle model of a 32×32 matmul, the cache-latency ratios, BERT-large's
  operands against L2 and a tiled matmul whose global-memory loads are counted as it runs;
  `book.chapters.gpu.formats`: number formats (fp16 range, loss scaling, bf16, tf32) and the 2:4
  format's check on the CPU (the format itself: `book.core.sparsity24`);
- `book.chapters.gpu.perfmodel`: the post's charts (raw performance and performance per dollar in
  its three metrics) from bandwidth with the factors the post states (Ada/Hopper L2 1.5–2.0×, Tensor
  Core utilisation 45–65 %, 8-bit training 3–4×), the prices at which its picks lead, the cache
  bandwidths behind "3–5× / 7–10×", and the Q&A's PCIe, network and memory numbers as models;
- `book.chapters.gpu.measure`: measurements of the machine the notebook runs on: matmul throughput,
  STREAM-like bandwidth, the theoretical peak and the roofline, and on a CUDA GPU the Tensor Core
  dtypes and 2:4 sparse matmuls, timed in interleaved trials.

Every public name is importable from `book.chapters.gpu` itself (``from book.chapters import gpu as G``).
"""
from __future__ import annotations

from book.chapters.gpu.formats import (
    PRECISION_MODES, DynamicLossScaler, FormatClaims, Sparse24Demo, accuracy, deep_sigmoid_mlp,
    format_range_facts, matmul_error_by_format, plot_losses, precision_summary, round_to_tf32,
    torch_threads, train_all_precisions, train_low_precision)
from book.chapters.gpu.measure import (
    CpuPeak, Machine, MatmulSweep, NeedsCuda, PeakFraction, SpeedupIntervals, cpu_peak,
    cpu_peak_under_profile, describe_cpu_peak, gpu_spec_for, matmul_rate_trials, matmul_sweep,
    measure_fp8_matmul, measure_matmul, measure_sparse_speedup, peak_fraction, profile_isa_cap,
    require_cuda, roofline, sparse_speedup, sparse_speedup_trials, stream_bandwidth,
    tensor_core_speedups, tensor_core_trials, this_machine, time_fn)
from book.chapters.gpu.memory import (
    LATENCY_VARIANTS, MATMUL_KINDS, MIB_FP32, POST_CACHE_SPEEDUPS, BERT_BASE, BERT_LARGE,
    GlobalMemory, Latencies, MatmulSetup, TiledRun, TilingExperiment, TrafficCount,
    bert_large_matmuls, cache_speedups, cycle_table, fits_l2_up_to_tokens, largest_shared_tile,
    matmul_cycles, run_tiled_matmul, tiled_matmul, tiling_experiment)
from book.chapters.gpu.specs import (
    BATCH_DOUBLING_GAIN, EIGHT_GPU_OVERHEAD_GAIN, HOURS_PER_YEAR, POST_L2_TABLE, SHORT_COLUMNS,
    SYSTEM_USD_PER_GPU, TOP500_NUMBER_ONE, CloudVsDesktop, L2Fit, bandwidth_speedup, bert_l2_fit,
    corrected_speedup, eight_gpu_scaling_other, electricity_cost_per_year, electricity_kwh_per_year,
    perf_per_dollar, plot_power_limit, post_ratios, power_limited_speed, price_to_match, recommend,
    relative_performance, spec_tables)
from book.chapters.gpu.perfmodel import (
    A100_BANDWIDTH, LARGE_L2_ARCHITECTURES, METRICS, PCIE_GBS_PER_LANE, POST_FP8_TRAINING,
    POST_L2_FACTOR, POST_NEEDS, POST_PICKS, POST_TC_UTILISATION, REFERENCE,
    TRAINING_BYTES_PER_PARAM, WORKLOADS, CacheBandwidth, CacheReadings, Fp8Lead, PicksReport,
    PpdRatio, TrainingStep, bert_large_step, break_even_gbit, cache_readings, chart_perf_per_dollar,
    chart_performance, communication_table, data_parallel_step_s, decide, decision_table,
    describe_step, factor_to_lead, fp8_lead, fp8_span_within, fp8_training_ratio, fp8_training_span,
    largest_model_fitting, memory_gb, ownership_usd, pcie_cost, pcie_gbs, plot_metric_bars,
    post_picks, post_system_usd, ppd_ratio_4070ti_3090, price_to_lead, ranking, raw_chart,
    ring_allreduce_s, server_picks_hold, two_machine_speedup, workload_memory_table)

__all__ = sorted(name for name in dir() if not name.startswith("_") and name != "annotations")
