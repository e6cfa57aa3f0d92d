"""The data-parallelism chapter's measurements, one function per claim, and its figures.

Each function runs what a claim of "How to Parallelize Deep Learning on GPUs Part 1/2" needs (on the
worker pools where it needs processes) and returns a small result that prints its table and holds
the numbers the ledger checks; each `figure_*` returns its matplotlib Figure. Timings are shown
between ⟨ ⟩ and numbers that depend on the float kernels between ‹ › (`book.core.numerics`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from book.chapters.parallel.collectives import allreduce_sweep
from book.chapters.parallel.measure import (efficiency_trials, matmul_trials, overlap_timing,
                                            rmsprop_overlap_trials, group_ratio_interval)
from book.chapters.parallel.models import (dp_train, naive_exchange_ms, ring_allreduce_ms,
                                           train_single)
from book.chapters.parallel.pool import Pool, check_split, rank_sum
from book.chapters.parallel.display import progress, pyplot
from book.core import numerics, timing


# -- dp-3 (context): the post's exchange against a ring all-reduce --------------------------------
def figure_exchange_scaling(grad_bytes: float, transfer_ms: float, gbit_per_s: float = 40,
                            gpus_per_node: int = 3, nodes: Sequence[int] = range(1, 9)):
    """dp-3's consequence: ms per gradient exchange against the number of nodes, for the post's
    every-GPU-to-every-GPU scheme (one card user per node) and for a ring all-reduce."""
    plt = pyplot()
    nodes = np.asarray(nodes)
    naive = [naive_exchange_ms(int(k), gpus_per_node, transfer_ms, transfer_ms / 3, serialised=True)
             for k in nodes]
    ring = [ring_allreduce_ms(grad_bytes, int(gpus_per_node * k), gbit_per_s) for k in nodes]
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    ax.plot(nodes, naive, "o-", label="every GPU to every GPU, one card user per node (the post)")
    ax.plot(nodes, ring, "s-", label="ring all-reduce, 2(N−1)/N of the gradient per GPU")
    ax.set(xlabel=f"nodes ({gpus_per_node} GPUs each)", ylabel="ms per 4 MB gradient",
           title="Exchanging one 1000×1000 gradient")
    fig.legend(loc="outside upper center", ncols=1, fontsize=9)
    ax.grid(alpha=0.3)
    return fig


# -- dp-9: one layer's backward against its forward -----------------------------------------------
def start_and_wait(pools: Mapping[int, Pool]) -> None:
    """Start every pool's workers, then return once each worker is up (and waits idle)."""
    for pool in pools.values():
        pool.start()
    for pool in pools.values():
        pool.run(rank_sum, 0.0)


@dataclass(frozen=True)
class LayerBalance:
    """dp-9: forward and backward trials of one layer, per machine state, against dp-2's transfer."""

    trials: dict[str, dict[str, list[float]]]  # state -> {"forward": [s], "backward": [s]}
    transfer_ms: float                          # one transfer of dp-2 (the post's 0.75 ms)

    @property
    def ratios(self) -> dict[str, tuple[float, float, float]]:
        """backward/forward per state: (geometric mean, 95 % interval) of the paired rounds."""
        return {state: timing.paired_ratio_interval(fb["forward"], fb["backward"])
                for state, fb in self.trials.items()}

    @property
    def estimate(self) -> float:
        """The states' ratios together: their geometric mean."""
        return float(np.exp(np.mean([np.log(r[0]) for r in self.ratios.values()])))

    @property
    def interval(self) -> tuple[float, float]:
        """The union of the states' intervals."""
        both = list(self.ratios.values())
        return min(r[1] for r in both), max(r[2] for r in both)

    def table(self) -> str:
        lines = []
        for state, fb in self.trials.items():
            fwd_ms, bwd_ms = np.median(fb["forward"]) * 1e3, np.median(fb["backward"]) * 1e3
            ratio, lo, hi = self.ratios[state]
            lines.append(f"{state}: forward ⟨{fwd_ms:.2f} ms⟩, backward ⟨{bwd_ms:.2f} ms⟩ (medians "
                         f"of {len(fb['forward'])} rounds); backward/forward ⟨{ratio:.2f}⟩ (95 % "
                         f"interval ⟨{lo:.2f}–{hi:.2f}⟩); forward + backward "
                         f"⟨{(fwd_ms + bwd_ms) / self.transfer_ms:.1f}⟩× one transfer of dp-2")
        lines.append(f"on the post's GPU: 0.2 + 0.4 ms = {0.6 / self.transfer_ms:.1f}× one transfer "
                     "of dp-2")
        return "\n".join(lines)


# -- dp-4: the averaged gradient is the whole batch's ---------------------------------------------
@dataclass(frozen=True)
class DataParallelRuns:
    """dp-4: one process and data parallelism over each worker count, trained alike."""

    single: dict[str, Any]                 # train_single's result
    runs: dict[int, list[dict[str, Any]]]  # workers -> dp_train's result per rank
    steps: int

    @property
    def grad_err(self) -> float:
        """Largest |averaged gradient - whole-batch gradient| (first step) over ranks and runs."""
        return max((r["first_grad"] - self.single["first_grad"]).abs().max().item()
                   for res in self.runs.values() for r in res)

    @property
    def loss_err(self) -> float:
        """Largest difference between a worker's loss curve and the single process's."""
        return max(abs(a - b) for res in self.runs.values() for r in res
                   for a, b in zip(r["losses"], self.single["losses"]))

    @property
    def sent(self) -> dict[int, float]:
        """Bytes each worker all-reduces per step, per worker count."""
        return {n: res[0]["traffic"]["bytes"]["all_reduce"] for n, res in self.runs.items()}

    def summary(self) -> str:
        return "\n".join([
            f"workers {list(self.runs)}: largest difference between the averaged and the "
            f"whole-batch gradient {numerics.float_text(self.grad_err, '.1e')}",
            f"largest difference between the loss curves over {self.steps} steps "
            f"{numerics.float_text(self.loss_err, '.1e')}",
            "bytes each worker sends per step: "
            + ", ".join(f"{n} workers {b:,.0f}" for n, b in self.sent.items())])


def train_data_parallel(pools: Mapping[int, Pool], runs: Sequence[int], x: torch.Tensor, y: torch.Tensor,
                        widths: Sequence[int], batch: int, steps: int, lr: float, seed: int
                        ) -> DataParallelRuns:
    """dp-4: train the MLP of `widths` with plain SGD on the first batch × steps examples, in one
    process and data-parallel on each worker count of `runs` (the batch split equally: checked
    before any work), with a progress bar over the runs."""
    for n in runs:
        check_split(batch, n, "batch size")
    x, y = x[: batch * steps], y[: batch * steps]
    single = train_single(x, y, widths, batch_size=batch, steps=steps, lr=lr, seed=seed)
    dp_runs = {n: pools[n].run(dp_train, x, y, widths, batch, steps, lr, seed)
               for n in progress(runs, "data-parallel training")}
    return DataParallelRuns(single, dp_runs, steps)


def figure_dp_losses(result: DataParallelRuns):
    """dp-4's picture: the loss curves, and their differences (float rounding only)."""
    plt = pyplot()
    single = result.single
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.2), layout="constrained")
    a.plot(single["losses"], "k-", lw=3, alpha=0.3, label="one process")
    for n, res in result.runs.items():
        a.plot(res[0]["losses"], "--", label=f"{n} workers")
        b.semilogy(np.abs(np.array(res[0]["losses"]) - single["losses"]) + 1e-12, label=f"{n} workers")
    a.set(xlabel="SGD step", ylabel="training loss", title="(a) the same loss curve")
    a.legend(fontsize=9)
    b.set(xlabel="SGD step", ylabel="|difference| (+1e-12)", title="(b) float rounding only")
    return fig


# -- dp-7: the latency-bandwidth model of the all-reduce, and the step's efficiency ---------------
@dataclass(frozen=True)
class Link:
    """dp-7: all-reduce times against message size, and the data-parallel step with and without
    its exchange, per worker count."""

    sizes: list[int]                             # bytes all-reduced
    allreduce_s: dict[int, list[float]]          # workers -> best seconds per size
    step_trials: dict[int, dict[str, Any]]       # workers -> efficiency_trials' result

    @property
    def fits(self) -> dict[int, tuple[float, float]]:
        """(latency α in s, bandwidth β in B/s) of t(n) = α + n/β, fitted to relative errors."""
        return {n: fit for n, (fit, _) in self._fitted().items()}

    @property
    def fit_errors(self) -> dict[int, np.ndarray]:
        """Relative error of the fit at each size."""
        return {n: errors for n, (_, errors) in self._fitted().items()}

    def _fitted(self) -> dict[int, tuple[tuple[float, float], np.ndarray]]:
        out = {}
        for n, seconds in self.allreduce_s.items():
            t = np.array(seconds)
            slope, alpha = np.polyfit(self.sizes, t, 1, w=1 / t)  # weights 1/t: fit relative errors
            alpha = max(alpha, 0.0)
            out[n] = ((alpha, 1 / slope), np.abs(alpha + slope * np.array(self.sizes) - t) / t)
        return out

    @property
    def efficiency(self) -> dict[int, tuple[float, float, float]]:
        """t_compute / t_step from paired rounds, with its 95 % interval, per worker count."""
        return {n: timing.paired_ratio_interval(r["step"], r["compute"]) for n, r in self.step_trials.items()}

    def fit_error_interval(self, workers: int) -> tuple[float, float, float]:
        """Mean relative error of the fit over the sizes, and its 95 % interval."""
        return timing.mean_interval(self.fit_errors[workers])

    def table(self) -> str:
        lines = []
        fits, errors = self.fits, self.fit_errors
        for n, (alpha, bandwidth) in fits.items():
            lines.append(f"{n} workers: latency ⟨{alpha * 1e6:.0f} µs⟩, bandwidth "
                         f"⟨{bandwidth / 1e9:.2f} GB/s⟩, mean fit error ⟨{errors[n].mean():.0%}⟩")
        for n, (e, lo, hi) in self.efficiency.items():
            compute_s = np.median(self.step_trials[n]["compute"])
            alpha, bandwidth = fits[n]
            predicted = compute_s / (compute_s + alpha + self.step_trials[n]["bytes"] / bandwidth)
            lines.append(f"{n} workers: parallel efficiency t_compute/t_step ⟨{e:.2f} "
                         f"({lo:.2f}–{hi:.2f})⟩; the α + n/β model predicts ⟨{predicted:.2f}⟩")
        return "\n".join(lines)


def measure_link(pools: Mapping[int, Pool], sizes: Sequence[int], reps: int, step_widths: Sequence[int],
                 per_worker: int) -> Link:
    """dp-7: on every pool of more than one worker, the all-reduce sweep over `sizes` (best of
    `reps`), then 2 × reps paired rounds of the MLP's data-parallel step with and without the
    exchange (`per_worker` examples each), with progress bars."""
    multi = [n for n in pools if n > 1]
    allreduce_s = {n: pools[n].run(allreduce_sweep, list(sizes), reps)[0]
                   for n in progress(multi, "all-reduce sweep")}
    trials = {n: pools[n].run(efficiency_trials, list(step_widths), per_worker, 2 * reps)[0]
              for n in progress(multi, "data-parallel step")}
    return Link(list(sizes), allreduce_s, trials)


def figure_link(link: Link):
    """dp-7's pictures: (a) the all-reduce times with their fit, (b) the step with and without
    the exchange."""
    from matplotlib import ticker

    plt = pyplot()
    multi, sizes, fits = list(link.allreduce_s), link.sizes, link.fits
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.6), layout="constrained")
    for n in multi:
        a.loglog(sizes, np.array(link.allreduce_s[n]) * 1e3, "o", label=f"{n} workers")
        alpha, bw = fits[n]
        a.loglog(sizes, (alpha + np.array(sizes) / bw) * 1e3, "-", alpha=0.5)
    a.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
    a.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    a.yaxis.set_minor_formatter(ticker.NullFormatter())
    a.set(xlabel="bytes all-reduced", ylabel="ms", title="(a) all-reduce, α + n/β fit")
    a.legend(fontsize=9)
    labels = [str(n) for n in multi]
    total = [np.median(link.step_trials[n]["step"]) * 1e3 for n in multi]
    compute = [np.median(link.step_trials[n]["compute"]) * 1e3 for n in multi]
    b.bar(labels, total, color="tab:blue", label="whole step")
    b.bar(labels, compute, color="tab:orange", label="without the exchange")
    efficiency = link.efficiency
    for k, n in enumerate(multi):  # the efficiency inside its bar, so no label crosses the frame
        b.text(k, total[k] * 0.5, f"eff. {efficiency[n][0]:.2f}", ha="center", va="center",
               fontsize=9, color="white")
    b.set_ylim(0, max(total) * 1.35)  # room for the legend above the bars
    b.set(xlabel="worker processes", ylabel="ms per step (median)", title="(b) data-parallel step")
    b.legend(fontsize=9, loc="upper left")
    return fig


# -- dp-5 and dp-11: hiding the exchange ----------------------------------------------------------
@dataclass(frozen=True)
class OverlapSpeedup:
    """dp-5 / dp-11: paired step times without and with an overlap of the exchange."""

    without: list[float]   # seconds per step, the exchange after the work
    with_: list[float]     # seconds per step, overlapped
    weight_difference: float | None = None  # between the two copies' weights (RMSProp only)

    @property
    def speedup(self) -> list[float]:
        """% faster with the overlap: estimate, then the 95 % interval's ends."""
        ratio, lo, hi = timing.paired_ratio_interval(self.with_, self.without)  # time off / time on
        return [100 * (v - 1) for v in (ratio, lo, hi)]

    def context(self) -> str:
        s = self.speedup
        return f"{s[0]:+.1f} % [{s[1]:+.1f}, {s[2]:+.1f}]"


def time_ddp_overlap(pool: Pool, widths: Sequence[int], per_worker: int, reps: int,
                     bucket_mb: float) -> OverlapSpeedup:
    """dp-5: one all-reduce after backward against DDP's buckets of `bucket_mb` all-reduced during
    backward, alternating step by step (`overlap_timing`)."""
    times = pool.run(overlap_timing, list(widths), per_worker, reps, bucket_mb)[0]
    return OverlapSpeedup(times["off"], times["on"])


def ddp_summary(overlap: OverlapSpeedup) -> str:
    """dp-5's printed line."""
    s = overlap.speedup
    return (f"step without overlap ⟨{np.median(overlap.without) * 1e3:.1f} ms⟩, with DDP buckets "
            f"⟨{np.median(overlap.with_) * 1e3:.1f} ms⟩ (medians of {len(overlap.with_)} paired steps): "
            f"speed-up ⟨{s[0]:+.1f} %⟩, 95 % interval ⟨{s[1]:+.1f} … {s[2]:+.1f} %⟩")


def time_rmsprop_overlap(pool: Pool, widths: Sequence[int], per_worker: int, rounds: int) -> OverlapSpeedup:
    """dp-11: all-reduce every gradient then RMSProp, against each layer's RMSProp update as soon as
    its gradient has arrived (`rmsprop_overlap_trials`); both copies must end with equal weights."""
    times = pool.run(rmsprop_overlap_trials, list(widths), per_worker, rounds)[0]
    return OverlapSpeedup(times["sequential"], times["overlapped"], times["weight_difference"])


def rmsprop_summary(overlap: OverlapSpeedup) -> str:
    """dp-11's printed lines."""
    s = overlap.speedup
    return ("largest weight difference between the two copies: "
            f"{numerics.bound(overlap.weight_difference)}\n"
            f"all-reduce, then RMSProp ⟨{np.median(overlap.without) * 1e3:.1f} ms⟩; overlapped "
            f"⟨{np.median(overlap.with_) * 1e3:.1f} ms⟩: speed-up ⟨{s[0]:+.1f} %⟩, "
            f"95 % interval ⟨{s[1]:+.1f} … {s[2]:+.1f} %⟩")


# -- dp-10: how large a mini-batch needs to be ----------------------------------------------------
@dataclass(frozen=True)
class NoiseSummary:
    """dp-10: `gradient_noise`'s result, per state (initialised, trained), summed up."""

    noise: dict[str, dict[str, Any]]

    @property
    def margins(self) -> dict[str, tuple[float, float, float]]:
        """Four steps of 128 minus one step of 512 (loss decrease as a fraction of a full-batch
        step): the mean over random batches and its 95 % interval, per state."""
        return {state: timing.mean_interval(np.array(r["equal_compute"]["small"])
                                             - np.array(r["equal_compute"]["large"]))
                for state, r in self.noise.items()}

    @property
    def weaker(self) -> str:
        """The state where the small batches' margin is smallest: it decides."""
        margins = self.margins
        return min(margins, key=lambda state: margins[state][0])

    def equal_compute(self, state: str) -> tuple[float, float]:
        """Mean loss decrease of four steps of 128 and of one step of 512 in `state`."""
        equal = self.noise[state]["equal_compute"]
        return float(np.mean(equal["small"])), float(np.mean(equal["large"]))

    def table(self) -> str:
        lines = []
        for state, result in self.noise.items():
            equal = result["equal_compute"]
            cos = {b: np.mean(result["rows"][b]["cosine"]) for b in (128, 512)}
            lines.append(
                f"{state} (loss {numerics.float_text(result['loss'], '.3f')}): cosine with the full "
                f"gradient {numerics.float_text(cos[128], '.2f')} at 128, "
                f"{numerics.float_text(cos[512], '.2f')} at 512; loss decrease, as a fraction of a "
                f"full-batch step: four steps of 128 "
                f"{numerics.float_text(np.mean(equal['small']), '.2f')}, one step of 512 "
                f"{numerics.float_text(np.mean(equal['large']), '.2f')}")
        return "\n".join(lines)


def figure_gradient_noise(noise: Mapping[str, Any], batches: Sequence[int]):
    """dp-10's pictures: (a) cosine with the full gradient, (b) one SGD step's loss decrease, per
    mini-batch size and state."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.5, 3.4), layout="constrained")
    for state, result in noise.items():
        rows = result["rows"]
        a.semilogx(batches, [np.mean(rows[k]["cosine"]) for k in batches], "o-", label=state)
        b.semilogx(batches, [np.mean(rows[k]["decrease"]) for k in batches], "o-", label=state)
    for ax in (a, b):
        ax.axvline(128, color="grey", ls=":")
        ax.axvline(512, color="grey", ls="--")
        ax.set_xticks(batches, [str(k) for k in batches], fontsize=9)
    a.set(xlabel="mini-batch size", ylabel="cosine with full gradient", title="(a) direction")
    b.set(xlabel="mini-batch size", ylabel="loss decrease / full step", title="(b) one SGD step")
    b.axhline(1, color="black", lw=0.5)
    fig.legend(*a.get_legend_handles_labels(), loc="outside upper center", ncols=2, fontsize=9)
    return fig


# -- dp-6: batch size and matrix-multiply throughput ----------------------------------------------
@dataclass(frozen=True)
class TileThroughput:
    """dp-6: (b × 1000)·(1000 × 1000) timed for every batch size b, every round."""

    batches: list[int]
    trials: list[list[float]]  # [round][batch index] seconds (matmul_trials)
    n: int = 1000

    @property
    def gflops(self) -> dict[int, float]:
        """GFLOP/s per batch size, from the median time."""
        return {b: 2 * b * self.n * self.n / np.median([r[k] for r in self.trials]) / 1e9
                for k, b in enumerate(self.batches)}

    @property
    def ratios(self) -> dict[str, tuple[float, float, float]]:
        """Throughput per example of the batches below 64, and of those from 64 up that are not
        multiples of 32, over the multiples of 32 from 64: estimate and 97.5 % interval."""
        aligned = [b for b in self.batches if b >= 64 and b % 32 == 0]
        groups = {"below 64": [b for b in self.batches if b < 64],
                  "not multiples of 32": [b for b in self.batches if b >= 64 and b % 32]}
        return {name: group_ratio_interval(self.trials, self.batches, group, aligned, confidence=0.975)
                for name, group in groups.items()}

    @property
    def worse(self) -> list[float]:
        """The larger of the two ratios (estimate, low, high): the claim needs both."""
        ratios = self.ratios
        return [max(r[i] for r in ratios.values()) for i in range(3)]

    def table(self) -> str:
        return "\n".join(f"throughput {name} / multiples of 32 from 64: ⟨{e:.2f}⟩ "
                         f"(97.5 % interval ⟨{lo:.2f}–{hi:.2f}⟩)"
                         for name, (e, lo, hi) in self.ratios.items())

    def context(self) -> str:
        return "; ".join(f"{name} {e:.2f} [{lo:.2f}, {hi:.2f}]" for name, (e, lo, hi) in self.ratios.items())


def time_tiles(batches: Sequence[int], device: str | torch.device, rounds: int) -> TileThroughput:
    """dp-6: the throughput of (b × 1000)·(1000 × 1000) for each batch size, all sizes swept in
    every round (`matmul_trials`, one CPU thread)."""
    return TileThroughput(list(batches), matmul_trials(list(batches), device=device, rounds=rounds))


def figure_tiles(tiles: TileThroughput, device_type: str):
    """dp-6's picture: GFLOP/s against the batch size, the multiples of 32 marked."""
    plt = pyplot()
    batches, gflops = tiles.batches, tiles.gflops
    fig, ax = plt.subplots(figsize=(7.5, 3.2), layout="constrained")
    ax.plot(batches, [gflops[b] for b in batches], "o-", label="all batch sizes")
    ax.plot([b for b in batches if b % 32 == 0], [gflops[b] for b in batches if b % 32 == 0], "s",
            ms=9, mfc="none", label="multiples of 32")
    ax.axvline(64, color="grey", ls=":")
    ax.set(xlabel="batch size b", ylabel="GFLOP/s", title=f"(b×1000)·(1000×1000) on {device_type}")
    ax.legend(fontsize=9, loc="lower right")
    return fig
