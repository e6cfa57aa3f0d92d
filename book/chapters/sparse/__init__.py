"""Sparse momentum: training sparse networks from scratch (Dettmers & Zettlemoyer, 2019).

Written from the paper's and the post's description of the algorithm:

- every prunable layer (the weights of linear and conv layers; biases and norms stay dense) starts
  with a uniform random mask at the target density; masked weights are exactly zero after every
  optimizer step;
- at the end of every epoch but the last, each layer
  1. gets an importance: the mean momentum magnitude of its active weights, normalised over layers;
  2. removes the `prune_rate` fraction of its active weights with the smallest magnitude;
  3. the removed total is regrown across layers in proportion to importance (capped by the room a
     layer has), and within a layer at the missing positions with the largest momentum magnitude;
  so the total number of weights stays exactly at the target;
- the prune rate starts at 0.5 and decays with a cosine schedule to a small floor.

Using it on any torch model takes a few lines::

    sparse = SparseMomentum(model, optimizer, density=0.05, epochs=epochs)
    for epoch in range(epochs):
        for x, y in batches:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            sparse.step()            # instead of optimizer.step(): steps, then re-applies the masks
        sparse.end_epoch()           # prune, redistribute, regrow

The subpackage: `algorithm` (sparse momentum itself), `training` (LeNet-300-100 and LeNet-5-Caffe, the
paper's MNIST setup, sweeps, and the command line of the full-mode sweeps: `python -m book.chapters.sparse`),
`analysis` (FLOPs of sparse kernels against dropping empty units with dense kernels, the shrunk dense
net, class specialization, 2:4 structured pruning of a net with `book.core.sparsity24`, cycle records,
figures), `audit` (the algorithm's invariants recomputed from mask and weight snapshots, independently
of `algorithm`), `counting` (FLOPs
of 5 %-density masks for the paper's CIFAR-10 nets, VGG16-D and WRN-16-10), `stats` (paired
intervals over seeds), `budget` (which committed runs stand behind a verdict: the paper's 100-epoch
budget, counted from the evidence), `published` (the paper's MNIST comparison and other published
numbers, with sources), `pruning` (Han et al.'s magnitude pruning, the compression baseline),
`cifar` (the CIFAR-10 headline result: torchvision on a GPU, synthetic data in CI), `brain_gap`
(the brain's FLOPS against a 2019 GPU), and what the notebook's cells call: `measure` (the smoke run
and what it measures, claim by claim), `trained_claims` (the trained-net claims read off the committed
evidence), `figures` (each figure a function returning it) and `reading` (the lines a cell prints
beside its ledger row's fields). The training loop's speed on a CPU comes partly from compiled kernels
with torch's bits: `conv1` (LeNet-5's first conv), `pooling` (max-pooling with its ReLU), `fused_sgd`
(the optimizer's step), built by `native`.
"""
from book.chapters.sparse import audit, conv1, counting, fused_sgd, native, pooling, stats, sweeps  # noqa: F401  (sp.audit, ... sp.sweeps)
from book.chapters.sparse.algorithm import (GROWTH_MODES, PRUNABLE_TYPES, REDISTRIBUTION_MODES, SparseMomentum, allocate_regrowth,
                        cosine_prune_rate, load_checkpoint, prunable_layers, save_checkpoint)
from book.chapters.sparse.analysis import (LAYER_NAMES, LAYER_NAMES_LENET5, class_specialization, cycle_checks, drop_empty_units,
                       layer_flops, plot_layer_density, plot_sweep, prune_2_4, speedup_report, time_2_4_matmul,
                       time_forward)
from book.chapters.sparse.training import (MODEL_TITLES, MODELS, PAPER_ITERATIONS, PAPER_LR_DROP_EVERY, MnistData, RunConfig, RunResult,
                       finetune_with_masks, lenet5_caffe, lenet_300_100, lr_drop_every, merge_full_results, sgd, summarize,
                       sweep, test_error, train)

__all__ = [
    "audit", "conv1", "counting", "fused_sgd", "native", "pooling", "stats", "training", "analysis", "algorithm",
    "GROWTH_MODES", "PRUNABLE_TYPES", "REDISTRIBUTION_MODES", "SparseMomentum", "allocate_regrowth",
    "cosine_prune_rate", "load_checkpoint", "prunable_layers", "save_checkpoint", "LAYER_NAMES",
    "LAYER_NAMES_LENET5", "class_specialization", "cycle_checks", "drop_empty_units", "layer_flops",
    "plot_layer_density", "plot_sweep", "prune_2_4", "speedup_report", "time_2_4_matmul", "time_forward",
    "MODEL_TITLES", "MODELS", "PAPER_ITERATIONS", "PAPER_LR_DROP_EVERY",
    "MnistData", "RunConfig", "RunResult", "finetune_with_masks", "lenet5_caffe", "lenet_300_100",
    "lr_drop_every", "merge_full_results", "sgd", "summarize", "sweep", "test_error", "train"
]
