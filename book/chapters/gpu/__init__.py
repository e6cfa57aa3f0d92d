"""Which GPU for deep learning: the models behind the advice, and measurements of this machine.

The post's charts are images whose data is not published, so this subpackage rebuilds the reasoning
as small executable models whose inputs are in the open, in three parts:

- `book.chapters.gpu.specs`: the spec table of the GPUs the post discusses (`load_specs`, data file
  `gpu_specs.csv`, every row with the date and source of its numbers and of its price);
  bandwidth-ratio speedups, the batch-size and 8-GPU corrections, power, electricity,
  cloud-vs-desktop break-even, performance per dollar and the recommendation as a decision function;
- `book.chapters.gpu.memory`: the cycle model of a 32×32 matmul, the cache-latency ratios, BERT-large's
  operands against L2 and a tiled matmul whose global-memory loads are counted as it runs;
  `book.chapters.gpu.formats`: number formats (fp16 range, loss scaling, bf16, tf32) and 2:4 sparsity;
- `book.chapters.gpu.perfmodel`: the post's charts (raw performance and performance per dollar in
  its three metrics) from bandwidth with the factors the post states (Ada/Hopper L2 1.5–2.0×, Tensor
  Core utilisation 45–65 %, 8-bit training 3–4×), the prices at which its picks lead, the cache
  bandwidths behind "3–5× / 7–10×", and the Q&A's PCIe, network and memory numbers as models;
- `book.chapters.gpu.measure`: measurements of the machine the notebook runs on: matmul throughput,
  STREAM-like bandwidth, the theoretical peak and the roofline, and on a CUDA GPU the Tensor Core
  dtypes and 2:4 sparse matmuls, timed in interleaved trials.

Every public name is importable from `book.chapters.gpu` itself (``from book import gpu as G; G.load_specs()``).
"""
from __future__ import annotations

from book.chapters.gpu.formats import (PRECISION_MODES, DynamicLossScaler, accuracy, compress_2_4, compressed_size_ratio,
                      decompress_2_4, deep_sigmoid_mlp, format_range_facts, matmul_error_by_format,
                      prune_2_4, round_to_tf32, torch_threads, train_low_precision)
from book.chapters.gpu.measure import (CpuPeak, NeedsCuda, cpu_peak, cpu_peak_under_profile, describe_cpu_peak,
                      profile_isa_cap, gpu_spec_for, matmul_rate_trials,
                      measure_fp8_matmul, measure_matmul, measure_sparse_speedup, require_cuda, roofline,
                      sparse_speedup_trials, stream_bandwidth, tensor_core_trials, time_fn)
from book.chapters.gpu.memory import (MATMUL_KINDS, POST_CACHE_SPEEDUPS, GlobalMemory, Latencies, MatmulSetup, TiledRun,
                     TrafficCount, BERT_BASE, BERT_LARGE, bert_large_matmuls, cache_speedups, cycle_table, fits_l2_up_to_tokens,
                     matmul_cycles, run_tiled_matmul, tiled_matmul)
from book.chapters.gpu.specs import (BATCH_DOUBLING_GAIN, EIGHT_GPU_OVERHEAD_GAIN, HOURS_PER_YEAR, POST_L2_TABLE, SPEC_COLUMNS,
                    SPECS_FILE, SYSTEM_USD_PER_GPU, TOP500_NUMBER_ONE, CloudVsDesktop, REQUIRED_COLUMNS,
                    bandwidth_speedup, corrected_speedup, eight_gpu_scaling_other, electricity_cost_per_year,
                    electricity_kwh_per_year, load_specs, perf_per_dollar, post_ratios, power_limited_speed,
                    price_to_match, recommend, relative_performance)

from book.chapters.gpu.perfmodel import (A100_BANDWIDTH, LARGE_L2_ARCHITECTURES, METRICS, PCIE_GBS_PER_LANE,
                        POST_FP8_TRAINING, POST_L2_FACTOR, POST_TC_UTILISATION, REFERENCE,
                        TRAINING_BYTES_PER_PARAM, WORKLOADS, CacheBandwidth, TrainingStep,
                        break_even_gbit, chart_perf_per_dollar, decide, chart_performance, data_parallel_step_s,
                        factor_to_lead, fp8_training_ratio, fp8_training_span, largest_model_fitting,
                        memory_gb, ownership_usd, pcie_cost, pcie_gbs, post_system_usd, price_to_lead, ranking, raw_chart,
                        ring_allreduce_s, two_machine_speedup)

__all__ = sorted(name for name in dir() if not name.startswith("_") and name != "annotations")
