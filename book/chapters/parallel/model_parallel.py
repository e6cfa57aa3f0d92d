"""The model-parallelism chapter's measurements, one function per claim, and its figures.

Each function runs what a claim of "How to Parallelize Deep Learning on GPUs Part 2/2" needs on the
worker pool and returns a small result that prints its table and holds the numbers the ledger
checks; each `figure_*` returns its matplotlib Figure. Timings are shown between ⟨ ⟩ and numbers
that depend on the float kernels between ‹ › (`book.core.numerics`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from book.chapters.parallel.measure import dp_vs_mp_timing, hybrid_vs_dp_trials, mp_overlap_trials
from book.chapters.parallel.models import (alexnet_like, convnet_train_single, hybrid_traffic,
                                           hybrid_train, mnist_convnet, mp_train, train_single)
from book.chapters.parallel.pool import Pool, check_split
from book.chapters.parallel.display import progress, pyplot
from book.core import numerics, timing

SPLITS = ("first", "second")


# -- mp-1, mp-2, mp-3: the split layers against the unsplit one -----------------------------------
@dataclass(frozen=True)
class SplitChecks:
    """mp-1..mp-3: `split_identities`' result on every worker, summed up."""

    ranks: list[dict[str, Any]]  # per rank: "first", "second" (the splits) and "data"

    def _worst(self, key: str) -> list[float]:
        return [max(r[s][key] for r in self.ranks) for s in SPLITS]

    @property
    def forward_errors(self) -> list[float]:
        """Largest |split - unsplit| of the forward product on any worker, per split."""
        return self._worst("forward_err")

    @property
    def backward_errors(self) -> list[float]:
        """Largest |split - unsplit| of the deltas for the layer below, per split."""
        return self._worst("backward_err")

    @property
    def weight_grad_err(self) -> float:
        """Largest error of a worker's weight-gradient slice, over both splits."""
        return max(self._worst("weight_grad_err"))

    @property
    def forward_shapes(self) -> list[list[int]]:
        return [self.ranks[0][s]["forward_block"] for s in SPLITS]

    @property
    def backward_shapes(self) -> list[list[int]]:
        return [self.ranks[0][s]["backward_block"] for s in SPLITS]

    @property
    def counted(self) -> list[int]:
        """Elements one worker sends per step: data parallel, first-dim split, second-dim split."""
        r = self.ranks[0]
        return [round(r["data"]["sent"])] + [round(r[s]["sent_forward"] + r[s]["sent_backward"])
                                             for s in SPLITS]

    @property
    def ratios(self) -> list[float]:
        """Data-parallel elements over each split's."""
        counted = self.counted
        return [counted[0] / counted[1], counted[0] / counted[2]]

    def forward_table(self) -> str:
        return "\n".join(
            f"split by the {s} dimension: each worker computes {b[0]}×{b[1]}; largest difference from "
            f"X·W on every worker {numerics.bound(err, 1e-9)}"
            for s, b, err in zip(SPLITS, self.forward_shapes, self.forward_errors))

    def backward_table(self) -> str:
        return "\n".join(
            f"split by the {s} dimension: each worker computes a {b[0]}×{b[1]} delta "
            f"({'stacked' if s == 'first' else 'added'}); largest difference from δ·Wᵀ "
            f"{numerics.bound(err, 1e-9)}"
            for s, b, err in zip(SPLITS, self.backward_shapes, self.backward_errors))

    def traffic_table(self) -> str:
        counted, ratios = self.counted, self.ratios
        return (f"elements sent per worker — data parallel: {counted[0]:,.0f}; first-dim split: "
                f"{counted[1]:,.0f}; second-dim split: {counted[2]:,.0f}; data/model: {ratios[0]:.2f}× "
                f"and {ratios[1]:.2f}×")


# -- the identities for a whole network -----------------------------------------------------------
@dataclass(frozen=True)
class ModelParallelRuns:
    """One process and model parallelism with every layer split each way, trained alike."""

    single: dict[str, Any]             # train_single's result
    runs: dict[str, dict[str, Any]]    # split -> mp_train's result on rank 0
    steps: int

    def loss_err(self, steps: int | None = None) -> float:
        """Largest loss difference from the single process over the first `steps` (all: None)."""
        return max(abs(a - b) for r in self.runs.values()
                   for a, b in zip(r["losses"][:steps], self.single["losses"][:steps]))

    def summary(self, early: int = 20) -> str:
        early = min(self.steps, early)
        return (f"largest loss difference over the first {early} SGD steps "
                f"{numerics.float_text(self.loss_err(early), '.1e')}, over all {self.steps} steps "
                f"{numerics.float_text(self.loss_err(), '.1e')}")


def train_model_parallel(pool: Pool, x: torch.Tensor, y: torch.Tensor, widths: Sequence[int], batch: int,
                         steps: int, lr: float, seed: int) -> ModelParallelRuns:
    """The MLP of `widths` trained with plain SGD on the first batch × steps examples, in one process
    and model-parallel with every layer split by its first and by its second dimension (the widths
    split equally over the workers: checked before any work), with a progress bar."""
    for width in widths[1:]:
        check_split(width, pool.world_size, "layer width")
    x, y = x[: batch * steps], y[: batch * steps]
    single = train_single(x, y, widths, batch_size=batch, steps=steps, lr=lr, seed=seed)
    runs = {s: pool.run(mp_train, x, y, widths, batch, steps, lr, seed, s)[0]
            for s in progress(SPLITS, "model-parallel training")}
    return ModelParallelRuns(single, runs, steps)


def figure_mp_losses(result: ModelParallelRuns, workers: int):
    """The loss curves of one process and of each split."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    ax.plot(result.single["losses"], "k-", lw=3, alpha=0.3, label="one process, whole weights")
    for s, r in result.runs.items():
        ax.plot(r["losses"], "--", label=f"{workers} workers, split by the {s} dimension")
    ax.set(xlabel="SGD step", ylabel="training loss", title="Model-parallel = unsplit training")
    ax.legend(fontsize=9)
    return fig


# -- mp-4: where model parallelism starts to win --------------------------------------------------
@dataclass(frozen=True)
class Crossover:
    """mp-4: `dp_vs_mp_timing`'s rows (per batch and width: elements sent and paired step times)."""

    rows: list[dict[str, Any]]
    batches: list[int]

    def at(self, batch: int) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["batch"] == batch]

    def first_width(self, key: str) -> dict[int, int | None]:
        """First width where model parallelism is better ('elements': sends fewer, 'time': is
        faster), per batch."""
        return {b: next((row["width"] for row in self.at(b) if row[f"mp_{key}"] < row[f"dp_{key}"]), None)
                for b in self.batches}

    def ends(self, batch: int) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """mp/dp step time at the smallest width and dp/mp at the largest (each > 1 when the post
        is right), each with its 97.5 % interval."""
        r = self.at(batch)
        small = timing.paired_ratio_interval(r[0]["dp_times"], r[0]["mp_times"], confidence=0.975)
        large = timing.paired_ratio_interval(r[-1]["mp_times"], r[-1]["dp_times"], confidence=0.975)
        return small, large

    def margin(self, batch: int) -> list[float]:
        """The smaller of the two ratios, and of their interval ends: both above 1 iff it is."""
        return [min(a, b) for a, b in zip(*self.ends(batch))]

    def ends_summary(self, batch: int) -> str:
        (small, large), r = self.ends(batch), self.at(batch)
        return (f"width {r[0]['width']}: model-parallel / data-parallel step time "
                f"⟨{small[0]:.2f} ({small[1]:.2f}–{small[2]:.2f})⟩; width {r[-1]['width']}: "
                f"data-parallel / model-parallel ⟨{large[0]:.2f} ({large[1]:.2f}–{large[2]:.2f})⟩")


def time_dp_vs_mp(pool: Pool, widths: Sequence[int], batches: Sequence[int], rounds: int,
                  depth: int = 2) -> Crossover:
    """mp-4: for each batch, an MLP of `depth` square layers of every width, data- and
    model-parallel (first-dimension split): the elements sent and `rounds` paired timed steps
    (batch and widths split equally: checked before any work), with a progress bar."""
    for b in batches:
        check_split(b, pool.world_size, "batch size")
    for width in widths:
        check_split(width, pool.world_size, "layer width")
    rows: list[dict[str, Any]] = []
    for b in progress(batches, "data vs model parallel"):
        rows += pool.run(dp_vs_mp_timing, list(widths), depth, [b], rounds)[0]
    return Crossover(rows, list(batches))


def figure_crossover(crossover: Crossover):
    """mp-4's pictures: (a) counted elements per width, (b) the step-time ratio per width."""
    plt = pyplot()
    fig, (a, c) = plt.subplots(1, 2, figsize=(7.5, 3.6), layout="constrained")
    for b in crossover.batches:
        r = crossover.at(b)
        ws = [row["width"] for row in r]
        a.loglog(ws, [row["dp_elements"] for row in r], "o-", label=f"data parallel, B={b}")
        a.loglog(ws, [row["mp_elements"] for row in r], "s--", label=f"model parallel, B={b}")
        c.plot(ws, [row["dp_time"] / row["mp_time"] for row in r], "o-", label=f"B={b}")
    a.set(xlabel="layer width w", ylabel="elements sent per worker", title="(a) counted traffic")
    a.legend(fontsize=9)
    c.axhline(1, color="grey", ls=":")
    c.set_xscale("log")
    c.set(xlabel="layer width w", ylabel="data-parallel / model-parallel time",
          title="(b) step time (>1: model parallel faster)")
    c.legend(fontsize=9)
    return fig


# -- mp-5: the hybrid, counted for AlexNet --------------------------------------------------------
def count_hybrid(workers: Sequence[int] = (2, 4, 8), images_per_worker: int = 128
                 ) -> dict[int, dict[str, float]]:
    """mp-5: elements per worker and step of data parallelism, model parallelism and the hybrid
    for an AlexNet-like net on 224×224 images (`hybrid_traffic`), per worker count."""
    conv_net, dense_net = alexnet_like()
    return {n: hybrid_traffic(conv_net, dense_net, (3, 224, 224), images_per_worker, n) for n in workers}


def hybrid_table(hybrid: dict[int, dict[str, float]]) -> str:
    """mp-5's printed table: M elements per scheme and worker count, and the parameters."""
    lines = [f"{n} workers: data parallel {h['data'] / 1e6:6.1f} M elements, model parallel "
             f"{h['model'] / 1e6:6.1f} M, hybrid {h['hybrid'] / 1e6:5.1f} M per worker and step"
             for n, h in hybrid.items()]
    h = next(iter(hybrid.values()))
    lines.append(f"(parameters: convolutions {h['conv_params'] / 1e6:.2f} M, "
                 f"dense layers {h['dense_params'] / 1e6:.2f} M)")
    return "\n".join(lines)


def figure_hybrid_counts(hybrid: dict[int, dict[str, float]]):
    """mp-5's picture: the three schemes' elements per worker count."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    xs = np.arange(len(hybrid))
    for i, key in enumerate(("data", "model", "hybrid")):
        ax.bar(xs + (i - 1) * 0.27, [hybrid[n][key] / 1e6 for n in hybrid], 0.27, label=key)
    ax.set_xticks(xs, [f"{n} workers" for n in hybrid])
    ax.set(ylabel="M elements per worker and step", title="AlexNet, 128 images per worker")
    ax.legend(fontsize=9)
    return fig


# -- mp-6, mp-7: the hybrid on the worker processes -----------------------------------------------
# Steps of the hybrid judged against one process. A wrong hybrid (a gradient not summed over the
# workers, a wrong split) shows at the first update, step 1. How fast float noise grows depends on
# the machine's kernels: over 20 steps at lr 0.1 the curves stayed 2.4e-7 apart on an Intel Xeon but
# parted by 7.7e-3 on an AMD EPYC (measured 2026-12-02; 2.4e-7 to step 2 and 7.9e-6 at step 5
# there), so only the first three steps are judged, 40 times inside the 1e-5 tolerance on both.
JUDGED_STEPS = 3


@dataclass(frozen=True)
class HybridRun:
    """mp-6: the hybrid's training against one process's, and what each worker sent."""

    single: dict[str, Any]          # convnet_train_single's result
    ranks: list[dict[str, Any]]     # hybrid_train's result per rank
    steps: int
    judged_steps: int
    data_sent: float                # a ring all-reduce of every gradient, per worker and step

    @property
    def error(self) -> float:
        """Largest loss difference from one process over the judged first steps."""
        return max(abs(a - b) for r in self.ranks
                   for a, b in zip(r["losses"][:self.judged_steps], self.single["losses"]))

    @property
    def drift(self) -> float:
        """Largest loss difference over the whole run (float noise amplified by SGD)."""
        return max(abs(a - b) for r in self.ranks for a, b in zip(r["losses"], self.single["losses"]))

    @property
    def sent(self) -> float:
        """Elements the hybrid's collectives sent per worker and step."""
        return sum(self.ranks[0]["traffic"]["elements"].values())

    def summary(self) -> str:
        return (f"first {self.judged_steps} of {self.steps} SGD steps: largest loss difference hybrid "
                f"vs one process {numerics.float_text(self.error, '.1e')} (over all {self.steps}: "
                f"{numerics.float_text(self.drift, '.1e')}); elements sent per worker and step: "
                f"hybrid {self.sent:,.0f}, data parallel {self.data_sent:,.0f}")


def train_hybrid(pool: Pool, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, seed: int,
                 batch: int = 128, judged_steps: int = JUDGED_STEPS) -> HybridRun:
    """mp-6: `mnist_convnet` trained for `steps` SGD steps of `batch` in one process and as the
    hybrid on the workers (`hybrid_train`). The same arithmetic in another summation order gives
    equal losses step for step until float noise, amplified by SGD over many steps, lets two
    correct trajectories drift apart: the first `judged_steps` are judged, the drift shown."""
    x, y = x[: batch * steps], y[: batch * steps]
    single = convnet_train_single(x, y, batch, steps, lr, seed)
    ranks = pool.run(hybrid_train, x, y, batch, steps, lr, seed)
    conv_part, dense_part = mnist_convnet(seed)
    params = sum(p.numel() for p in [*conv_part.parameters(), *dense_part.parameters()])
    n = pool.world_size
    return HybridRun(single, ranks, steps, judged_steps, 2 * (n - 1) / n * params)


@dataclass(frozen=True)
class HybridTiming:
    """mp-7: paired step times of data parallelism and the hybrid, and their elements sent."""

    trials: dict[str, Any]  # hybrid_vs_dp_trials' result on rank 0

    @property
    def ratio(self) -> tuple[float, float, float]:
        """Data-parallel step time over the hybrid's, with its 95 % interval."""
        return timing.paired_ratio_interval(self.trials["hybrid"], self.trials["data"])

    def context(self) -> str:
        r = self.ratio
        return f"{r[0]:.2f}× [{r[1]:.2f}, {r[2]:.2f}]"

    def summary(self) -> str:
        t, r = self.trials, self.ratio
        return (f"data-parallel step ⟨{np.median(t['data']) * 1e3:.1f} ms⟩, hybrid step "
                f"⟨{np.median(t['hybrid']) * 1e3:.1f} ms⟩ (medians of {len(t['data'])} paired steps): "
                f"data / hybrid ⟨{r[0]:.2f}⟩, 95 % interval ⟨{r[1]:.2f}–{r[2]:.2f}⟩\n"
                f"elements sent per worker and step: data parallel {t['data_elements']:,.0f}, "
                f"hybrid {t['hybrid_elements']:,.0f}")


def time_hybrid(pool: Pool, batch: int, rounds: int, seed: int) -> HybridTiming:
    """mp-7: a training step of the hybrid against data parallelism's, same net and batch,
    alternating for `rounds` (`hybrid_vs_dp_trials`)."""
    return HybridTiming(pool.run(hybrid_vs_dp_trials, batch, rounds, seed)[0])


def figure_hybrid(run: HybridRun, timed: HybridTiming, workers: int):
    """mp-6/mp-7's pictures: (a) the same training, (b) the two steps' median times."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.2), layout="constrained")
    a.plot(run.single["losses"], "k-", lw=3, alpha=0.3, label="one process")
    a.plot(run.ranks[0]["losses"], "--", label=f"hybrid, {workers} workers")
    a.set(xlabel="SGD step", ylabel="training loss", title="(a) the same training")
    a.legend(fontsize=9)
    b.bar(["data parallel", "hybrid"], [np.median(timed.trials[k]) * 1e3 for k in ("data", "hybrid")],
          color=["tab:blue", "tab:green"])
    b.set(ylabel="ms per step (median)", title="(b) step time, batch 128")
    return fig


# -- mp-8: a trick that hides the synchronisation -------------------------------------------------
@dataclass(frozen=True)
class Pipeline:
    """mp-8: the blocking and the micro-batch-pipelined schedule of the split layers."""

    trials: dict[str, Any]  # mp_overlap_trials' result on rank 0

    @property
    def difference(self) -> float:
        """Largest output difference, pipelined against blocking (float64)."""
        return self.trials["difference"]

    def summary(self) -> str:
        t = self.trials
        r = timing.paired_ratio_interval(t["pipelined"], t["blocking"])
        return (f"largest output difference, pipelined vs blocking (float64): "
                f"{numerics.bound(self.difference, 1e-12)}\n"
                f"blocking ⟨{np.median(t['blocking']) * 1e3:.1f} ms⟩, pipelined "
                f"⟨{np.median(t['pipelined']) * 1e3:.1f} ms⟩: blocking / pipelined ⟨{r[0]:.2f}⟩ "
                f"(95 % interval ⟨{r[1]:.2f}–{r[2]:.2f}⟩)")


def time_pipeline(pool: Pool, width: int, depth: int, batch: int, chunks: int, rounds: int,
                  seed: int) -> Pipeline:
    """mp-8: `depth` layers of `width` split by their first dimension, blocking and pipelined
    over `chunks` micro-batches of `batch` (`mp_overlap_trials`)."""
    return Pipeline(pool.run(mp_overlap_trials, width, depth, batch, chunks, rounds, seed)[0])
