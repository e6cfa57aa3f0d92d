"""Data and model parallelism on real worker processes (torch.distributed: gloo on CPU, nccl on GPUs).

One module per concern, every name importable from `book.chapters.parallel` as before:
- `pool`: the worker processes — `Pool`, `launch`, `run_here`, parameter checks, and the guarantee
  that no worker outlives its launcher;
- `collectives`: the worker's view (`Worker`) and collectives that count their traffic (`Traffic`,
  `all_reduce`, `all_gather_cat`); timing every rank agrees on lives in `book.core.timing`;
- `models`: the algorithms (`FlatGradients`, `SplitLinear`, data-/model-parallel training, the
  hybrid `HybridNet`, the mini-batch gradient noise) and the posts' arithmetic;
- `measure`: what the chapters time, as repeated, interleaved trials;
- `data_parallel`, `model_parallel`: the two chapters' measurements, one per claim, and figures;
- `cli`: `torchrun ... -m book.chapters.parallel {gradients,split,allreduce}`.
"""
from book.chapters.parallel.collectives import (Traffic, Worker, all_gather_cat, all_reduce,
                                                allreduce_sweep)
from book.chapters.parallel.measure import (dp_vs_mp_timing, efficiency_trials, exchange_vs_bare,
                                            forward_backward_trials, group_ratio_interval,
                                            hybrid_vs_dp_trials, matmul_throughput, matmul_trials,
                                            mp_overlap_trials, overlap_timing,
                                            rmsprop_overlap_trials)
from book.chapters.parallel.models import (FlatGradients, HybridNet, SplitLinear, alexnet_like,
                                           convnet_train_single, dp_train, flat_grad,
                                           gradient_noise, hybrid_traffic, hybrid_train, mlp,
                                           mnist_convnet, mp_train, naive_exchange_ms,
                                           ring_allreduce_ms, shard, split_identities, split_mlp,
                                           train_single, transfer_ms_plain, transfer_ms_post)
from book.chapters.parallel.pool import (LOCALHOST, RESULT_DIR_PREFIX, Pool, WorkerFailed, busy_for,
                                         check_split, check_world_size, crash_on_rank, launch,
                                         max_world_size, pick_backend, port_is_free, rank_sum,
                                         remove_stale_result_dirs, run_here)
from book.chapters.parallel.data_parallel import (DataParallelRuns, LayerBalance, Link, NoiseSummary,
                                                  OverlapSpeedup, TileThroughput, ddp_summary,
                                                  figure_dp_losses, figure_exchange_scaling,
                                                  figure_gradient_noise, figure_link, figure_tiles,
                                                  measure_link, rmsprop_summary, start_and_wait,
                                                  time_ddp_overlap, time_rmsprop_overlap, time_tiles,
                                                  train_data_parallel)
from book.chapters.parallel.model_parallel import (JUDGED_STEPS, Crossover, HybridRun, HybridTiming,
                                                   ModelParallelRuns, Pipeline, SplitChecks,
                                                   count_hybrid, figure_crossover, figure_hybrid,
                                                   figure_hybrid_counts, figure_mp_losses,
                                                   hybrid_table, time_dp_vs_mp, time_hybrid,
                                                   time_pipeline, train_hybrid,
                                                   train_model_parallel)
from book.chapters.parallel.cli import main

__all__ = ["JUDGED_STEPS", "Traffic", "Worker", "all_gather_cat", "all_reduce", "allreduce_sweep",
           "dp_vs_mp_timing", "efficiency_trials", "exchange_vs_bare", "forward_backward_trials",
           "group_ratio_interval", "hybrid_vs_dp_trials", "matmul_throughput", "matmul_trials",
           "mp_overlap_trials", "overlap_timing", "rmsprop_overlap_trials", "FlatGradients",
           "HybridNet", "SplitLinear", "alexnet_like", "convnet_train_single", "dp_train",
           "flat_grad", "gradient_noise", "hybrid_traffic", "hybrid_train", "mlp", "mnist_convnet",
           "mp_train", "naive_exchange_ms", "ring_allreduce_ms", "shard", "split_identities",
           "split_mlp", "train_single", "transfer_ms_plain", "transfer_ms_post", "LOCALHOST",
           "RESULT_DIR_PREFIX", "Pool", "WorkerFailed", "busy_for", "check_split",
           "check_world_size", "crash_on_rank", "launch", "max_world_size", "pick_backend",
           "port_is_free", "rank_sum", "remove_stale_result_dirs", "run_here", "main",
           "DataParallelRuns", "LayerBalance", "Link", "NoiseSummary", "OverlapSpeedup",
           "TileThroughput", "ddp_summary", "figure_dp_losses", "figure_exchange_scaling",
           "figure_gradient_noise", "figure_link", "figure_tiles", "measure_link", "rmsprop_summary",
           "start_and_wait", "time_ddp_overlap", "time_rmsprop_overlap", "time_tiles",
           "train_data_parallel", "Crossover", "HybridRun", "HybridTiming", "ModelParallelRuns",
           "Pipeline", "SplitChecks", "count_hybrid", "figure_crossover", "figure_hybrid",
           "figure_hybrid_counts", "figure_mp_losses", "hybrid_table", "time_dp_vs_mp", "time_hybrid",
           "time_pipeline", "train_hybrid", "train_model_parallel"]
