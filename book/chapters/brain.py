"""The brain's FLOPS after Dettmers (2015), and the year a supercomputer reaches them.

Chapter `brain` reproduces "The Brain vs Deep Learning Part I: Computational Complexity":

* every number of the post's estimate, named and quoted (`POST`), and a transparent model of the
  estimate (`lnp_flops`) under several readings of the formula, whose image the text lacks
  (`READINGS`); the older firing-rate estimate (`firing_rate_flops`); a one-at-a-time sensitivity
  analysis over the ranges the post itself states (`sensitivity`);
* an LNP neuron in torch (`LNPNeuron`): spatio-temporal convolution -> rectifier -> Poisson
  "dropout", with an explicit reference implementation to test it against (`lnp_reference`);
* the extrapolation: `year_reached` answers "in which year does a machine of X FLOPS, doubling every
  D years from year Y0, reach Z?"; `fit_doubling_time` fits the real doubling time of the HPCG #1
  (data in `data_files/brain_hpcg_top1.csv`, each row with its source);
* Part IV's three hardware trends, each fitted to a sourced table: InfiniBand's doubling time
  (`load_interconnect`, brain-12), memory bandwidth against compute on NVIDIA's compute GPUs
  (`load_gpu_generations`, `compare_growth`, brain-13) and the cost of a fab (`load_fab_costs`,
  `fab_cost_growth`, brain-14);
* the tables, reports and check inputs the notebook shows (`readings_table`, `check_lnp`, `hpcg_history`, ...).

Nothing here is tuned to land on the post's 1.075e21: every constant is a number the post states.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from book.core.registry import DATA_FILES
from book.core.tables import gpu_specs, read_table

DATA_FILE = DATA_FILES / "brain_hpcg_top1.csv"
SOURCINGS = ("published", "memory")

# --------------------------------------------------------------------------------------------
# The post's numbers, each with the sentence it comes from
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostNumber:
    value: float
    unit: str
    quote: str


POST: dict[str, PostNumber] = {
    "neurons": PostNumber(86e9, "neurons", "The adult brain has 86 billion neurons, about 10 trillion synapse, "
                                           "and about 300 billion dendrites"),
    "synapses": PostNumber(10e12, "synapses", "The adult brain has 86 billion neurons, about 10 trillion synapse"),
    "firing_rate": PostNumber(200.0, "Hz", "Then one multiplies this by the rate of fire for the average neurons "
                                           "which is about 200 action potentials per second."),
    "granule_count": PostNumber(50e9, "neurons", "We know that 50 of the 86 billion neurons in the brain are "
                                                 "cerebellar granule neurons"),
    "purkinje_count": PostNumber(100e6, "neurons", "Purkinje neurons are by far the most complex neurons, but there "
                                                   "are only about 100 million of them."),
    "granule_branches": PostNumber(3, "branches/dendrite", "When we take 3 branches per dendrite, and 4 dendrites in "
                                                           "total we have a convolutional filter of size 3 and 4"),
    "granule_dendrites": PostNumber(4, "dendrites", "When we take 3 branches per dendrite, and 4 dendrites in total"),
    "purkinje_branches": PostNumber(10, "branches/dendrite", "For Purkinje neurons a similar estimate would be "
                                                             "filters of a size of about 10x1000x5."),
    "purkinje_dendrites": PostNumber(1000, "dendrites", "They may have more than a 100000 synapses each and about "
                                                        "1000 dendrites."),
    "time_steps": PostNumber(5, "time steps", "I here now choose a fixed time dimension of 5 time steps for neural "
                                              "processes."),
    "soma_filter": PostNumber(5, "weights", "that is, a 1x1x5 convolutional filter (this will be the same for all "
                                            "neurons)."),
    "granule_inputs": PostNumber(15, "synapses", "so there are a total of about 15 inputs via synapses to the "
                                                 "granule neurons."),
    "granule_outputs": PostNumber(100, "synapses", "T shaped axon which crosses directly through the dendrites of "
                                                   "Purkinje neurons with which it forms about 100 synapses."),
    "purkinje_inputs": PostNumber(100_000, "synapses", "Purkinje neurons receive inputs from about 100000 connections "
                                                       "made with granule neurons"),
    "purkinje_outputs": PostNumber(1000, "synapses", "they themselves make about 1000 connections in the deep nuclei."),
    "frame_rate": PostNumber(30, "frames/s", "discrete images at the rate of 30 frames per second (normal video "
                                             "playback) -- or in other words time steps"),
    "estimate": PostNumber(1.075e21, "FLOPS", "So my estimate would be 1.075x10^21 FLOPS for the brain"),
    "tianhe2_hpcg": PostNumber(0.58e15, "FLOPS", "the Tianhe-2 with 0.58 petaflops on HPCG"),
    "tianhe2_power": PostNumber(24e6, "W", "The Tianhe-2 uses 24 megawatts of power"),
}

# The ranges the post itself states for the uncertain inputs (used by the sensitivity analysis).
POST_RANGES: dict[str, tuple[float, float, str]] = {
    "time_steps": (2.4, 6.0, "80-200 milliseconds 2.4-6 time steps"),
    "firing_rate": (50.0, 1000.0, "Most neurons repeat the process of receive-inputs-and-fire about 50 to 1000 "
                                  "times per second"),
    "purkinje_inputs": (75_000, 100_000, "The number of 100000 synapses might be a slight overestimate (but 75000 "
                                         "would be too conservative)"),
    "granule_inputs": (12, 16, "receive inputs from about four axons ... Each axon forms about 3-4 synapses"),
    "flops_per_mac": (1, 2, "convention: a multiply-add counted as one or as two floating-point operations"),
}


def post_parameters() -> dict[str, float]:
    """The model's inputs at the post's values (plus 2 FLOPs per multiply-add, the usual convention)."""
    params = {k: float(v.value) for k, v in POST.items()
              if k not in ("estimate", "tianhe2_hpcg", "tianhe2_power", "synapses", "soma_filter")}
    params["flops_per_mac"] = 2.0
    return params


# --------------------------------------------------------------------------------------------
# brain-1, brain-2: the small arithmetic
# --------------------------------------------------------------------------------------------


def fraction_after_doublings(years: float, doubling_years: float = 1.0) -> float:
    """Share of today's knowledge held `years` ago when it doubles every `doubling_years`."""
    _positive(doubling_years=doubling_years)
    if years < 0:
        raise ValueError(f"years must be >= 0, got {years}")
    return 2.0 ** (-years / doubling_years)


def milliseconds_to_frames(ms: float | Sequence[float], fps: float = 30.0) -> float | list[float]:
    """How many video frames (time steps) at `fps` a duration in milliseconds spans."""
    _positive(fps=fps)
    if isinstance(ms, (list, tuple)):
        return [milliseconds_to_frames(m, fps) for m in ms]
    if ms < 0:
        raise ValueError(f"a duration must be >= 0 ms, got {ms}")
    return ms / 1000.0 * fps


# --------------------------------------------------------------------------------------------
# brain-3: the firing-rate estimate
# --------------------------------------------------------------------------------------------


def firing_rate_flops(synapses: float, rate_hz: float, ops_per_event: float = 1.0) -> float:
    """The older estimate: (sum over neurons of their synapses) x firing rate x ops per synaptic event."""
    _positive(synapses=synapses, rate_hz=rate_hz, ops_per_event=ops_per_event)
    return synapses * rate_hz * ops_per_event


# --------------------------------------------------------------------------------------------
# brain-4: the LNP estimate under readings of the missing formula
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NeuronType:
    """One cell type of the estimate, in the post's terms (dimensions are per time step x time steps)."""

    name: str
    count: float
    branches: float        # spatial filter dimension 1 (branches per dendrite)
    dendrites: float       # spatial filter dimension 2
    inputs: float          # input synapses
    outputs: float         # output synapses
    time_steps: float
    soma_filter: float

    @property
    def dendrite_filter(self) -> float:
        """Weights of the spatio-temporal dendritic filter (3x4x5 or 10x1000x5)."""
        return self.branches * self.dendrites * self.time_steps

    @property
    def input_size(self) -> float:
        """Input dimensionality (15x5 or 100000x5)."""
        return self.inputs * self.time_steps

    @property
    def output_size(self) -> float:
        return self.outputs * self.time_steps


def neuron_types(params: dict[str, float]) -> list[NeuronType]:
    """Granule and Purkinje cells as the post describes them."""
    t = params["time_steps"]
    soma = 1 * 1 * t  # the 1x1xT somatic filter, "the same for all neurons"
    return [
        NeuronType("granule", params["granule_count"], params["granule_branches"], params["granule_dendrites"],
                   params["granule_inputs"], params["granule_outputs"], t, soma),
        NeuronType("Purkinje", params["purkinje_count"], params["purkinje_branches"], params["purkinje_dendrites"],
                   params["purkinje_inputs"], params["purkinje_outputs"], t, soma),
    ]


def dense_macs(n: NeuronType) -> float:
    """Multiply-adds per update if every input value meets every weight of the dendritic filter
    (input x filter), then the soma filter, then one weight per output synapse and time step."""
    return n.input_size * n.dendrite_filter + n.soma_filter + n.output_size


def filter_macs(n: NeuronType) -> float:
    """Multiply-adds per update if each filter weight is used once (one filter position per update)."""
    return n.dendrite_filter + n.soma_filter + n.output_size


@dataclass(frozen=True)
class Reading:
    name: str
    description: str
    macs: Callable[[NeuronType], float]
    rate_key: str          # which post number sets the updates per second
    flops_per_mac: bool    # multiply the multiply-adds by params["flops_per_mac"]


READINGS: dict[str, Reading] = {r.name: r for r in [
    Reading("dense x 2 FLOPs x 200 Hz", "input x filter + soma + output, 2 FLOPs per multiply-add, updated at the "
            "firing rate", dense_macs, "firing_rate", True),
    Reading("dense x 200 Hz", "input x filter + soma + output multiply-adds, updated at the firing rate",
            dense_macs, "firing_rate", False),
    Reading("dense x 2 FLOPs x 30 fps", "input x filter + soma + output, 2 FLOPs each, updated per time step (30/s)",
            dense_macs, "frame_rate", True),
    Reading("dense x 30 fps", "input x filter + soma + output multiply-adds, one update per time step (30/s)",
            dense_macs, "frame_rate", False),
    Reading("filter x 2 FLOPs x 200 Hz", "filter + soma + output (each weight once), 2 FLOPs, at the firing rate",
            filter_macs, "firing_rate", True),
]}


def lnp_flops(params: dict[str, float] | None = None, reading: str = "dense x 2 FLOPs x 200 Hz",
              by_type: bool = False) -> float | dict[str, float]:
    """FLOPS of the post's granule + Purkinje LNP model under one reading of the formula."""
    params = {**post_parameters(), **(params or {})}
    if reading not in READINGS:
        raise ValueError(f"unknown reading {reading!r}; known: {', '.join(READINGS)}")
    for key, value in params.items():
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"model input {key} must be a positive number, got {value!r}")
    r = READINGS[reading]
    per_second = params[r.rate_key] * (params["flops_per_mac"] if r.flops_per_mac else 1.0)
    parts = {n.name: n.count * r.macs(n) * per_second for n in neuron_types(params)}
    return parts if by_type else sum(parts.values())


def all_readings(params: dict[str, float] | None = None) -> dict[str, float]:
    return {name: lnp_flops(params, name) for name in READINGS}


def closest_reading(target: float, params: dict[str, float] | None = None) -> tuple[str, float]:
    """The reading whose estimate is nearest `target` in log distance, and its value."""
    values = all_readings(params)
    name = min(values, key=lambda k: abs(math.log(values[k] / target)))
    return name, values[name]


def post_sizes() -> dict[str, float]:
    """The numbers as the post writes them in its estimate (sizes already multiplied out), for
    `exact_products`. The 5 time steps and the 1x1x5 soma filter are the same number, listed once."""
    p = post_parameters()
    t = p["time_steps"]
    return {
        "86e9 neurons": p["neurons"], "50e9 granule cells": p["granule_count"],
        "1e8 Purkinje cells": p["purkinje_count"],
        "granule filter 3x4x5": p["granule_branches"] * p["granule_dendrites"] * t,
        "Purkinje filter 10x1000x5": p["purkinje_branches"] * p["purkinje_dendrites"] * t,
        "5 time steps (= soma filter 1x1x5)": t,
        "granule input 15x5": p["granule_inputs"] * t, "Purkinje input 100000x5": p["purkinje_inputs"] * t,
        "granule output 100x5": p["granule_outputs"] * t, "Purkinje output 1000x5": p["purkinje_outputs"] * t,
        "200 Hz firing rate": p["firing_rate"], "30 frames/s": p["frame_rate"], "2 FLOPs per multiply-add": 2.0,
    }


def exact_products(target: float, numbers: dict[str, float], max_factors: int = 4,
                   rel_tol: float = 1e-3) -> list[tuple[str, ...]]:
    """Every product of at most `max_factors` distinct named numbers within `rel_tol` of `target`.
    A search over the post's own numbers (no free constant): it shows how the target factorises."""
    _positive(target=target, rel_tol=rel_tol)
    hits = []
    for r in range(1, max_factors + 1):
        for combo in itertools.combinations(sorted(numbers), r):
            value = math.prod(numbers[k] for k in combo)
            if abs(value / target - 1) <= rel_tol:
                hits.append(combo)
    return hits


def product_of(combo: tuple[str, ...], numbers: dict[str, float] | None = None) -> float:
    """The value of one product found by `exact_products` (brain-4: the reading the post's total supports)."""
    numbers = post_sizes() if numbers is None else numbers
    return math.prod(numbers[k] for k in combo)


@dataclass(frozen=True)
class Swing:
    name: str
    low: float
    high: float
    flops_low: float
    flops_high: float
    quote: str


def sensitivity(reading: str = "dense x 2 FLOPs x 200 Hz",
                ranges: dict[str, tuple[float, float, str]] | None = None) -> list[Swing]:
    """One-at-a-time sensitivity: the estimate with each input at the ends of its stated range, the
    others at the post's values; sorted by the size of the swing (largest first: a tornado)."""
    ranges = ranges or POST_RANGES
    base = post_parameters()
    swings = []
    for name, (low, high, quote) in ranges.items():
        if name not in base:
            raise ValueError(f"{name} is not a model input")
        if not 0 < low <= high:
            raise ValueError(f"range of {name} must satisfy 0 < low <= high, got {low}, {high}")
        swings.append(Swing(name, low, high, lnp_flops({name: low}, reading), lnp_flops({name: high}, reading), quote))
    return sorted(swings, key=lambda s: -abs(math.log(s.flops_high / s.flops_low)))


# --------------------------------------------------------------------------------------------
# brain-5, brain-6, brain-9: the extrapolation
# --------------------------------------------------------------------------------------------


def doublings_needed(current: float, target: float) -> float:
    """log2(target / current): how many doublings take `current` to `target` (0 if already there)."""
    _positive(current=current, target=target)
    return max(0.0, math.log2(target / current))


def year_reached(current: float, doubling_years: float, start_year: float, target: float,
                 whole_doublings: bool = False) -> float:
    """The year a machine of `current` FLOPS at `start_year`, doubling every `doubling_years`, reaches
    `target` FLOPS. `whole_doublings` counts full doubling periods (the post's "21 doublings").
    A target already reached gives `start_year`."""
    _positive(current=current, doubling_years=doubling_years, target=target)
    if not math.isfinite(start_year):
        raise ValueError(f"start_year must be finite, got {start_year}")
    n = doublings_needed(current, target)
    if whole_doublings:
        n = math.ceil(n - 1e-12)
    return start_year + n * doubling_years


def edition_year(edition: str) -> float:
    """'2014-06' -> decimal year at the middle of the month of the list's release."""
    year, month = edition.split("-")
    m = int(month)
    if not 1 <= m <= 12:
        raise ValueError(f"bad month in edition {edition!r}")
    return int(year) + (m - 0.5) / 12


@dataclass(frozen=True)
class ListEntry:
    edition: str
    benchmark: str
    system: str
    pflops: float
    source: str
    sourcing: str                  # "published" (checked against the source) or "memory" (not verified)
    unverified_because: str = ""   # for a "memory" row: why it could not be verified

    @property
    def year(self) -> float:
        return edition_year(self.edition)

    @property
    def flops(self) -> float:
        return self.pflops * 1e15


def _sourced_rows(path: Path, label: Callable[[dict[str, str]], str]) -> list[dict[str, str]]:
    """The rows of a sourced data file (`read_table`), each checked for its provenance: a source, a
    known sourcing (older files said "press" for "published") and, for a "memory" row in a file that
    has the column, why it is unverified. `label` names a row in the error."""
    rows = read_table(path)
    for rec in rows:
        rec["sourcing"] = {"press": "published"}.get(rec["sourcing"], rec["sourcing"])
        if not rec["source"]:
            raise ValueError(f"row {label(rec)} has no source")
        if rec["sourcing"] not in SOURCINGS:
            raise ValueError(f"row {label(rec)}: unknown sourcing {rec['sourcing']!r}")
        if rec["sourcing"] == "memory" and "unverified_because" in rec and not rec["unverified_because"]:
            raise ValueError(f"row {label(rec)} is from memory: say why it is unverified")
        rec.setdefault("unverified_because", "")
    return rows


def load_top1(path: str | Path | None = None, benchmark: str | None = None) -> list[ListEntry]:
    """Rows of the #1 history file (comment lines start with '#'), optionally of one benchmark."""
    rows = []
    for rec in _sourced_rows(Path(path or DATA_FILE), lambda r: f"{r['edition']} {r['benchmark']}"):
        entry = ListEntry(rec["edition"], rec["benchmark"], rec["system"], float(rec["pflops"]),
                          rec["source"], rec["sourcing"], rec["unverified_because"])
        if entry.pflops <= 0:
            raise ValueError(f"row {entry.edition} {entry.benchmark}: non-positive Pflop/s")
        if benchmark is None or entry.benchmark == benchmark:
            rows.append(entry)
    return rows


@dataclass(frozen=True)
class DoublingFit:
    """log2(FLOPS) = intercept + slope * (year - ref_year), fitted by least squares."""

    slope: float              # doublings per year
    intercept: float          # log2 FLOPS at ref_year
    ref_year: float
    doubling_years: float
    ci_doubling_years: tuple[float, float]   # bootstrap percentile interval
    n_points: int

    def flops_at(self, year: float | np.ndarray) -> float | np.ndarray:
        return 2.0 ** (self.intercept + self.slope * (np.asarray(year) - self.ref_year))

    def year_reaching(self, target: float) -> float:
        _positive(target=target)
        return self.ref_year + (math.log2(target) - self.intercept) / self.slope


def fit_doubling_time(years: Sequence[float], flops: Sequence[float], n_boot: int = 2000, seed: int = 0,
                      level: float = 0.9, block: int = 1) -> DoublingFit:
    """Least-squares fit of log2(FLOPS) on year; the doubling time is 1/slope. The interval comes from
    a (moving-block) bootstrap over the points: #1 values repeat for years, so neighbouring points are
    not independent and `block` > 1 resamples runs of consecutive lists together."""
    x = np.asarray(years, dtype=float)
    y = np.asarray(flops, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("years and flops must be 1-D sequences of equal length")
    if len(x) < 3:
        raise ValueError(f"need at least 3 points to fit and bootstrap, got {len(x)}")
    if np.any(y <= 0):
        raise ValueError("FLOPS must be positive")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if not 1 <= block <= len(x):
        raise ValueError(f"block must be between 1 and {len(x)}, got {block}")
    ly = np.log2(y)
    ref = float(x.mean())
    slope, intercept = np.polyfit(x - ref, ly, 1)
    if slope <= 0:
        raise ValueError("the fitted trend does not grow; no doubling time")
    rng = np.random.default_rng(seed)
    starts_max = len(x) - block + 1
    n_blocks = math.ceil(len(x) / block)
    boot = []
    for _ in range(n_boot):
        starts = rng.integers(0, starts_max, size=n_blocks)
        idx = np.concatenate([np.arange(s, s + block) for s in starts])[: len(x)]
        if np.ptp(x[idx]) == 0:
            continue
        s, _ = np.polyfit(x[idx] - ref, ly[idx], 1)
        if s > 0:
            boot.append(1.0 / s)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return DoublingFit(float(slope), float(intercept), ref, 1.0 / float(slope), (float(lo), float(hi)), len(x))


# --------------------------------------------------------------------------------------------
# brain-12: the interconnect's doubling time (Part IV of the post)
# --------------------------------------------------------------------------------------------
INTERCONNECT_FILE = DATA_FILES / "interconnect_infiniband.csv"


@dataclass(frozen=True)
class LinkGeneration:
    generation: str
    year: int
    gbit_s: float
    source: str
    sourcing: str
    unverified_because: str = ""


def load_interconnect(path: str | Path | None = None) -> list[LinkGeneration]:
    """The InfiniBand generations (4x link rate by year of introduction), each with its source (brain-12)."""
    rows = [LinkGeneration(rec["generation"], int(rec["year"]), float(rec["gbit_s_4x"]), rec["source"],
                           rec["sourcing"], rec["unverified_because"])
            for rec in _sourced_rows(Path(path or INTERCONNECT_FILE),
                                     lambda r: f"InfiniBand {r['generation']}")]
    return sorted(rows, key=lambda r: r.year)


def jackknife_doubling(years: Sequence[float], values: Sequence[float]) -> tuple[float, float, float]:
    """Doubling time of a log-linear fit, with the range over leaving out each point in turn: with a
    handful of generations a bootstrap would resample the same few points, while leave-one-out says
    how much any single generation moves the answer."""
    x, y = np.asarray(years, dtype=float), np.log2(np.asarray(values, dtype=float))
    if len(x) < 4:
        raise ValueError("need at least 4 generations")
    full = 1.0 / np.polyfit(x, y, 1)[0]
    loo = [1.0 / np.polyfit(np.delete(x, i), np.delete(y, i), 1)[0] for i in range(len(x))]
    return float(full), float(min(loo)), float(max(loo))


def plot_interconnect(rows: Sequence[LinkGeneration], doubling_years: float, post_years: float = 3.0):
    """InfiniBand's 4x link rate by year (log scale), the fitted trend and the post's 3-year pace."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    years = np.array([r.year for r in rows], dtype=float)
    rates = np.array([r.gbit_s for r in rows])
    for sourcing, marker in (("published", "o"), ("memory", "s")):
        pick = [r.sourcing == sourcing for r in rows]
        ax.scatter(years[pick], rates[pick], marker=marker, zorder=3,
                   label=f"InfiniBand generation ({sourcing} row)")
    for r in rows:
        ax.annotate(r.generation, (r.year, r.gbit_s), textcoords="offset points", xytext=(4, -12), fontsize=9)
    span = np.linspace(years.min(), years.max(), 50)
    centre = 2 ** np.mean(np.log2(rates))
    ax.plot(span, centre * 2 ** ((span - years.mean()) / doubling_years),
            label=f"fit: doubling every {doubling_years:.1f} years")
    ax.plot(span, centre * 2 ** ((span - years.mean()) / post_years), "--",
            label=f"the post: every {post_years:g} years")
    ax.set_yscale("log", base=2)
    ax.set_xlabel("year introduced")
    ax.set_ylabel("4x link rate (Gbit/s)")
    ax.legend(loc="upper left", fontsize=9)
    ax.set_title("Network interconnect bandwidth (the book's fit to sourced rows)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# brain-13: memory bandwidth against compute; brain-14: the cost of a fab (Part IV of the post)
# --------------------------------------------------------------------------------------------
GPU_GENERATIONS_FILE = DATA_FILES / "gpu_bandwidth_compute.csv"
FAB_COSTS_FILE = DATA_FILES / "fab_costs.csv"
# the datacenter flagships after 2016, read from the book's GPU spec table (their compute: fp16 tensor)
LATER_FLAGSHIPS = ("V100 SXM2", "A100 SXM4 40GB", "H100 SXM5")
MEMORY_WALL_RATIO = 3.0   # brain-13: "almost static" = bandwidth doubles at least 3x slower than compute
POST_FAB = {"cost_busd": 9.0, "year": 2015.0, "growth_pct": (7.0, 10.0)}   # brain-14, the post's numbers
RECENT_YEARS = 5   # brain-14: "the tally is at $9bn" is judged on the fabs of the five years up to the post


@dataclass(frozen=True)
class GpuGeneration:
    gpu: str
    year: float
    bandwidth_gbs: float
    gflops: float          # peak compute as quoted (FP32 in the Tesla table, fp16 tensor in the spec table)
    source: str
    sourcing: str
    unverified_because: str = ""


def load_gpu_generations(path: str | Path | None = None) -> list[GpuGeneration]:
    """NVIDIA's Tesla GPUs 2007-2016, one per generation: peak memory bandwidth and FP32 compute by
    year, each row with its source (brain-13)."""
    rows = [GpuGeneration(rec["gpu"], float(rec["year"]), float(rec["bandwidth_gbs"]),
                          float(rec["fp32_gflops"]), rec["source"], rec["sourcing"],
                          rec["unverified_because"])
            for rec in _sourced_rows(Path(path or GPU_GENERATIONS_FILE), lambda r: r["gpu"])]
    return sorted(rows, key=lambda r: r.year)


def later_flagships(names: Sequence[str] = LATER_FLAGSHIPS,
                    path: str | Path | None = None) -> list[GpuGeneration]:
    """The datacenter flagships after the post (brain-13's context), from the GPU spec table
    (`book.core.tables.gpu_specs`): bandwidth and fp16 tensor compute, dated by their spec's date."""
    specs = {r["gpu"]: r for r in gpu_specs(path)}
    rows = [GpuGeneration(n, edition_year(specs[n]["spec_date"]), float(specs[n]["memory_bandwidth_gbs"]),
                          1000 * float(specs[n]["fp16_tensor_tflops"]), specs[n]["spec_source"], "published")
            for n in names]
    return sorted(rows, key=lambda r: r.year)


def doubling_time(years: Sequence[float], values: Sequence[float]) -> float:
    """Years per doubling of a least-squares fit of log2(values) on the year (2 points at least)."""
    x, y = np.asarray(years, dtype=float), np.log2(np.asarray(values, dtype=float))
    if len(x) < 2 or np.ptp(x) == 0:
        raise ValueError("need at least 2 distinct years")
    return float(1.0 / np.polyfit(x, y, 1)[0])


@dataclass(frozen=True)
class GrowthComparison:
    """brain-13: how much slower memory bandwidth doubles than compute, over the same devices."""

    bandwidth_years: float                  # years per doubling of the bandwidth
    bandwidth_range: tuple[float, float]    # leave-one-device-out range
    compute_years: float
    compute_range: tuple[float, float]
    ratio: float                            # bandwidth_years / compute_years
    ratio_range: tuple[float, float]        # leave-one-device-out range of the ratio
    first_year: float
    last_year: float

    @property
    def bandwidth_pct_per_year(self) -> float:
        return 100 * (2 ** (1 / self.bandwidth_years) - 1)

    def report(self) -> str:
        (b_lo, b_hi), (c_lo, c_hi), (r_lo, r_hi) = self.bandwidth_range, self.compute_range, self.ratio_range
        return (f"GPUs {self.first_year:.0f}-{self.last_year:.0f}: memory bandwidth doubles every "
                f"{self.bandwidth_years:.2f} y (leave-one-out {b_lo:.2f}-{b_hi:.2f}; "
                f"+{self.bandwidth_pct_per_year:.0f} %/yr), compute every {self.compute_years:.2f} y "
                f"({c_lo:.2f}-{c_hi:.2f})\nbandwidth's doubling time / compute's: {self.ratio:.2f} "
                f"({r_lo:.2f}-{r_hi:.2f}); 'almost static' needs {MEMORY_WALL_RATIO:g} or more")

    @property
    def wrong(self) -> str:
        return (f"bandwidth doubled every {self.bandwidth_years:.1f} years "
                f"(+{self.bandwidth_pct_per_year:.0f} %/yr), "
                f"compute every {self.compute_years:.1f}: {self.ratio:.1f}x slower, not 'almost static' "
                f"(the criterion: {MEMORY_WALL_RATIO:g}x), though the gap did widen")

    @property
    def note(self) -> str:
        return (f"measured: bandwidth's doubling time / compute's over "
                f"{self.first_year:.0f}-{self.last_year:.0f} "
                f"(bandwidth {self.bandwidth_years:.2f} y, compute {self.compute_years:.2f} y)")


def compare_growth(rows: Sequence[GpuGeneration]) -> GrowthComparison:
    """Doubling times of bandwidth and compute over the same GPUs, and their ratio, each with the range
    over leaving one GPU out of both fits (brain-13)."""
    years = [r.year for r in rows]
    bw, fl = [r.bandwidth_gbs for r in rows], [r.gflops for r in rows]
    b_full, b_lo, b_hi = jackknife_doubling(years, bw)
    c_full, c_lo, c_hi = jackknife_doubling(years, fl)
    drop = lambda v, i: np.delete(np.asarray(v, dtype=float), i)  # noqa: E731
    loo = [doubling_time(drop(years, i), drop(bw, i)) / doubling_time(drop(years, i), drop(fl, i))
           for i in range(len(rows))]
    return GrowthComparison(b_full, (b_lo, b_hi), c_full, (c_lo, c_hi), b_full / c_full,
                            (float(min(loo)), float(max(loo))), min(years), max(years))


@dataclass(frozen=True)
class FabCost:
    year: int
    fab: str
    cost_busd: float
    source: str
    sourcing: str
    unverified_because: str = ""


def load_fab_costs(path: str | Path | None = None) -> list[FabCost]:
    """Announced costs of new leading-edge fabs (US$ bn, nominal) by year, each with its source (brain-14)."""
    rows = [FabCost(int(rec["year"]), rec["fab"], float(rec["cost_busd"]), rec["source"], rec["sourcing"],
                    rec["unverified_because"])
            for rec in _sourced_rows(Path(path or FAB_COSTS_FILE), lambda r: f"{r['year']} {r['fab']}")]
    if any(r.cost_busd <= 0 for r in rows):
        raise ValueError("a fab cost must be positive")
    return sorted(rows, key=lambda r: r.year)


@dataclass(frozen=True)
class AnnualGrowth:
    """brain-14: a log-linear fit of cost on year, as % per year, with its leave-one-out range."""

    pct: float
    pct_range: tuple[float, float]
    level_busd: float     # the fitted cost at `at_year`
    at_year: float
    n_rows: int
    first_year: float = math.nan
    last_year: float = math.nan
    # the announced costs of the fabs of the RECENT_YEARS up to `at_year`: the level the post's "tally"
    # speaks of is read off the data, not off the trend (which an early row can pull)
    recent_busd: tuple[float, float] = (math.nan, math.nan)

    @property
    def level_holds(self) -> bool:
        lo, hi = self.recent_busd
        return lo <= POST_FAB["cost_busd"] <= hi

    @property
    def holds(self) -> bool:
        """brain-14's criterion: growth (every leave-one-out fit) in [6.5, 10.5] %/yr, and the post's $9bn
        within the announced costs of the fabs of the RECENT_YEARS up to 2015."""
        lo, hi = self.pct_range
        return 6.5 <= lo and hi <= 10.5 and self.level_holds

    @property
    def measured(self) -> list[float]:
        return [round(self.pct, 1), round(self.pct_range[0], 1), round(self.pct_range[1], 1),
                round(self.recent_busd[0], 1), round(self.recent_busd[1], 1)]

    def report(self) -> str:
        lo, hi = self.pct_range
        return (f"{self.n_rows} fabs {self.first_year:.0f}-{self.last_year:.0f}: costs grow "
                f"{self.pct:.1f} %/yr "
                f"(leave-one-out {lo:.1f}-{hi:.1f}), doubling every "
                f"{math.log(2) / math.log1p(self.pct / 100):.1f} "
                f"years; fabs announced {self.at_year - RECENT_YEARS:.0f}-{self.at_year:.0f}: "
                f"${self.recent_busd[0]:.1f}-{self.recent_busd[1]:.1f}bn (the fit's {self.at_year:.0f} fab: "
                f"${self.level_busd:.1f}bn; post: ${POST_FAB['cost_busd']:g}bn at 7-10 %/yr)")

    @property
    def wrong(self) -> str:
        level = (f"its $9bn matches the fabs announced {self.at_year - RECENT_YEARS:.0f}-{self.at_year:.0f} "
                 f"(${self.recent_busd[0]:.0f}-{self.recent_busd[1]:.0f}bn)" if self.level_holds else
                 f"its $9bn lies outside the fabs announced {self.at_year - RECENT_YEARS:.0f}-"
                 f"{self.at_year:.0f} (${self.recent_busd[0]:.0f}-{self.recent_busd[1]:.0f}bn)")
        return (f"fab costs grew {self.pct:.0f} %/yr ({self.pct_range[0]:.0f}-{self.pct_range[1]:.0f}), "
                f"about twice the post's 7-10 %; {level}")

    @property
    def note(self) -> str:
        return ("measured: [%/yr, leave-one-out low, high, fitted $bn in "
                f"{self.at_year:.0f}] over {self.n_rows} announced fab costs "
                f"{self.first_year:.0f}-{self.last_year:.0f}")


def fab_cost_growth(rows: Sequence[FabCost], at_year: float = POST_FAB["year"]) -> AnnualGrowth:
    """Annual growth of fab costs (jackknife range over the rows) and the fitted cost at `at_year`."""
    years, costs = [r.year for r in rows], [r.cost_busd for r in rows]
    full, lo, hi = jackknife_doubling(years, costs)
    pct = lambda d: 100 * (2 ** (1 / d) - 1)  # noqa: E731  (doubling time -> % per year)
    slope, intercept = np.polyfit(years, np.log2(costs), 1)
    recent = [r.cost_busd for r in rows if at_year - RECENT_YEARS <= r.year <= at_year]
    return AnnualGrowth(pct(full), (pct(hi), pct(lo)), float(2 ** (intercept + slope * at_year)), at_year,
                        len(rows), min(years), max(years),
                        (min(recent), max(recent)) if recent else (math.nan, math.nan))


def plot_memory_wall(rows: Sequence[GpuGeneration], later: Sequence[GpuGeneration], cmp: GrowthComparison,
                     post_year: float = 2015.5):
    """Peak bandwidth (GB/s) and peak compute (GFLOP/s) of the GPU generations by year, log scale, with
    the fitted trends over the generations up to the post; the flagships after it as context."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for attr, colour, label in (("gflops", "#c44e52", "peak compute (GFLOP/s)"),
                                ("bandwidth_gbs", "#4c72b0", "peak memory bandwidth (GB/s)")):
        ax.scatter([r.year for r in rows], [getattr(r, attr) for r in rows], color=colour, zorder=3,
                   label=f"Tesla GPUs: {label}")
        ax.scatter([r.year for r in later], [getattr(r, attr) for r in later], color=colour, marker="^",
                   facecolors="none", zorder=3, label=f"later flagships (fp16 tensor): {label.split(' (')[0]}"
                   if attr == "gflops" else None)
    seen = [r for r in rows if r.year <= post_year]
    span = np.linspace(cmp.first_year, cmp.last_year, 50)
    for attr, d, colour in (("gflops", cmp.compute_years, "#c44e52"), ("bandwidth_gbs", cmp.bandwidth_years,
                                                                       "#4c72b0")):
        vals = np.array([getattr(r, attr) for r in seen])
        centre = 2 ** np.mean(np.log2(vals))
        mid = np.mean([r.year for r in seen])
        ax.plot(span, centre * 2 ** ((span - mid) / d), color=colour, lw=1,
                label=f"fit to {cmp.first_year:.0f}-{cmp.last_year:.0f}: doubling every {d:.1f} years")
    ax.axvline(post_year, color="0.5", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("year")
    ax.set_ylabel("GB/s or GFLOP/s (log scale)")
    ax.set_title("Compute against memory bandwidth on NVIDIA's compute GPUs")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_fab_costs(rows: Sequence[FabCost], growth: AnnualGrowth, judged_until: float = POST_FAB["year"]):
    """Announced fab costs by year (log scale), the fit to the rows up to the post and the post's
    7-10 %/yr from its $9bn in 2015."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    for sourcing, marker in (("published", "o"), ("memory", "s")):
        pick = [r for r in rows if r.sourcing == sourcing]
        ax.scatter([r.year for r in pick], [r.cost_busd for r in pick], marker=marker, zorder=3,
                   color="#4c72b0", label=f"announced cost of a new fab ({sourcing} row)")
    span = np.linspace(min(r.year for r in rows), judged_until, 50)
    ax.plot(span, growth.level_busd * (1 + growth.pct / 100) ** (span - growth.at_year), color="#4c72b0",
            label=f"fit up to {judged_until:.0f}: {growth.pct:.1f} %/yr")
    back = np.linspace(1970, POST_FAB["year"], 50)
    for g, ls in zip(POST_FAB["growth_pct"], ("--", ":")):
        ax.plot(back, POST_FAB["cost_busd"] * (1 + g / 100) ** (back - POST_FAB["year"]), color="#c44e52",
                ls=ls,
                label=f"the post: ${POST_FAB['cost_busd']:g}bn in 2015 at {g:g} %/yr")
    ax.set_yscale("log")
    ax.set_xlabel("year announced")
    ax.set_ylabel("US$ billion (nominal, log scale)")
    ax.set_title("The cost of a semiconductor fab")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# brain-7: energy
# --------------------------------------------------------------------------------------------


def electricity_cost(power_w: float, price_per_kwh: float, hours: float = 24.0) -> float:
    """Cost of running at `power_w` for `hours` at `price_per_kwh`."""
    _positive(power_w=power_w, price_per_kwh=price_per_kwh, hours=hours)
    return power_w / 1000.0 * hours * price_per_kwh


def homes_powered(power_w: float, kwh_per_home_year: float) -> float:
    """How many homes of a given yearly consumption a constant draw of `power_w` would supply."""
    _positive(power_w=power_w, kwh_per_home_year=kwh_per_home_year)
    return power_w / 1000.0 * HOURS_PER_YEAR / kwh_per_home_year


HOURS_PER_YEAR = 24 * 365

# Per-home electricity consumption, each with its source and date (brain-10).
HOME_CONSUMPTION: dict[str, tuple[float, str]] = {
    "Germany, average household (2005)": (3074, "VDEW (now BDEW), via stromtip.de: 3,074 kWh per household in 2005"),
    "Germany, two-person household (2014)": (3440, "BDEW Energie-Info 'Stromverbrauch im Haushalt', January 2016"),
    "US, average residential customer (2012)": (10837, "US EIA, via 411answers: 10,837 kWh per residential customer in 2012"),
    "US, average residential customer (2020)": (10715, "US EIA FAQ 'How much electricity does an American home use?', "
                                                       "updated 2021-10-07: 10,715 kWh in 2020"),
    "US, Louisiana, highest state (2020)": (14407, "US EIA FAQ (same page): Louisiana 14,407 kWh per customer, 2020 "
                                                   "(the heaviest air-conditioning use)"),
}

# Kurzweil's brain estimates, the firing-rate model the post says he uses (brain-3, brain-11).
KURZWEIL: dict[str, tuple[float, str]] = {
    "connections": (1e14, "Kurzweil, The Age of Spiritual Machines (1999): 100 billion neurons x ~1000 connections "
                          "= 100 trillion connections"),
    "rate_hz": (200.0, "same: each connection computing at 200 calculations per second"),
    "estimate": (2e16, "same: '20 million billion calculations per second', reached by 2020 (quoted at "
                       "own-the-internet.com/Quotes/the-human-brain)"),
    "range_low": (1e14, "Kurzweil, The Singularity Is Near (2005), ch. 3: estimates from functional simulations "
                        "of brain regions near 10^14-10^15 cps"),
    "range_high": (1e16, "same: 10^16 cps used as the conservative figure for functional simulation"),
}


def implied_price_per_kwh(power_w: float, cost_per_day: float) -> float:
    """The electricity price that makes a day at `power_w` cost `cost_per_day`."""
    _positive(power_w=power_w, cost_per_day=cost_per_day)
    return cost_per_day / (power_w / 1000.0 * 24.0)


# --------------------------------------------------------------------------------------------
# brain-8: the LNP neuron in torch
# --------------------------------------------------------------------------------------------


class LNPNeuron(nn.Module):
    """Linear-nonlinear-Poisson neuron, written as deep-learning layers.

    Input: (batch, 1, branches, dendrites, time) synaptic input. The dendritic tree is a
    spatio-temporal convolution (a branches x dendrites x `time_steps` filter, one output per time
    step), the rectifier gives an instantaneous firing rate, the soma is a 1x1x`time_steps` temporal
    filter followed by another rectifier, and the Poisson stage draws a waiting time W ~ Poisson(rate)
    per output: the neuron fires only when W == 0, so the output is kept with probability
    exp(-wait_rate), like dropout with a Poisson instead of a uniform draw.
    Output: (batch, time - 2*(time_steps-1)) rates, zeroed where the Poisson draw blocked the spike.
    """

    def __init__(self, branches: int, dendrites: int, time_steps: int, wait_rate: float = 0.5):
        super().__init__()
        for name, v in (("branches", branches), ("dendrites", dendrites), ("time_steps", time_steps)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        _positive(wait_rate=wait_rate)
        self.time_steps = time_steps
        self.wait_rate = float(wait_rate)
        self.dendrite = nn.Conv3d(1, 1, kernel_size=(branches, dendrites, time_steps), bias=False)
        self.soma = nn.Conv1d(1, 1, kernel_size=time_steps, bias=False)

    def rate(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic part: conv -> ReLU -> temporal conv -> ReLU."""
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"input must be (batch, 1, branches, dendrites, time), got {tuple(x.shape)}")
        k = self.dendrite.kernel_size
        if tuple(x.shape[2:4]) != tuple(k[:2]) or x.shape[4] < 2 * self.time_steps - 1:
            raise ValueError(f"input {tuple(x.shape)} does not fit filter {k} (time >= {2 * self.time_steps - 1})")
        d = torch.relu(self.dendrite(x)).flatten(1, 4).unsqueeze(1)   # (batch, 1, time')
        return torch.relu(self.soma(d)).squeeze(1)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        rate = self.rate(x)
        waiting = poisson_waiting_times(rate.shape, self.wait_rate, generator=generator, device=rate.device)
        return rate * (waiting == 0)


def poisson_waiting_times(shape: Sequence[int], wait_rate: float = 0.5, generator: torch.Generator | None = None,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """Samples of the Poisson(wait_rate) waiting time (in cycles) before a neuron may fire."""
    _positive(wait_rate=wait_rate)
    lam = torch.full(tuple(shape), float(wait_rate), device=device)
    return torch.poisson(lam, generator=generator)


def poisson_pmf(k: np.ndarray | Sequence[int], lam: float) -> np.ndarray:
    k = np.asarray(k, dtype=float)
    return np.exp(-lam + k * math.log(lam) - np.array([math.lgamma(v + 1) for v in k.ravel()]).reshape(k.shape))


def lnp_reference(x: np.ndarray, dendrite_w: np.ndarray, soma_w: np.ndarray) -> np.ndarray:
    """The LNP rate written out as sums (numpy, float64): the test oracle for `LNPNeuron.rate`.
    x: (batch, branches, dendrites, time); dendrite_w: (branches, dendrites, T); soma_w: (T,)."""
    b, nb, nd, t = x.shape
    T = dendrite_w.shape[-1]
    if dendrite_w.shape[:2] != (nb, nd):
        raise ValueError("dendrite filter does not match the input's spatial size")
    dend = np.zeros((b, t - T + 1))
    for s in range(t - T + 1):  # cross-correlation, as deep-learning "convolution" is
        dend[:, s] = np.einsum("bijt,ijt->b", x[:, :, :, s:s + T], dendrite_w)
    dend = np.maximum(dend, 0)
    Ts = soma_w.shape[0]
    soma = np.stack([dend[:, s:s + Ts] @ soma_w for s in range(dend.shape[1] - Ts + 1)], axis=1)
    return np.maximum(soma, 0)


# --------------------------------------------------------------------------------------------
# The chapter's measurements as the notebook calls them: tables, reports and the inputs of each check
# --------------------------------------------------------------------------------------------


def show_table(df, colwidth: int | None = None, floats: str | None = None,
               max_rows: int | None = None) -> None:
    """Display a DataFrame with pandas' column width, float format and row limit set for this table."""
    import pandas as pd
    from IPython.display import display

    options = [("display.max_colwidth", colwidth), ("display.max_rows", max_rows),
               ("display.float_format", floats.format if floats else None)]
    with pd.option_context(*itertools.chain.from_iterable(o for o in options if o[1] is not None)):
        display(df)


def post_table():
    """Every number of the estimate with the sentence it comes from (brain-4's inputs)."""
    import pandas as pd

    return pd.DataFrame([(k, v.value, v.unit, v.quote) for k, v in POST.items()],
                        columns=["name", "value", "unit", "the post says"])


def readings_table(readings: dict[str, float], target: float):
    """brain-4: each reading's FLOPS, its ratio to the post's number and what it counts."""
    import pandas as pd

    return pd.DataFrame({"FLOPS": readings, "/ post's 1.075e21": {k: v / target for k, v in readings.items()},
                         "reading": {k: r.description for k, r in READINGS.items()}})


def reading_report(best_name: str, best: float, target: float, exact: Sequence[tuple[str, ...]]) -> str:
    """brain-4: the closest reading, its split by cell type, and the exact products of the post's numbers."""
    parts = lnp_flops(reading=best_name, by_type=True)
    lines = [f"closest reading: {best_name}: {best:.4g} FLOPS = {best / target:.3f} x the post's number",
             "of which " + ", ".join(f"{k} cells {v:.3g} ({v / best:.2%})" for k, v in parts.items()),
             "products of at most 5 of the post's numbers that equal 1.075e21 (within 0.1 %):"]
    return "\n".join(lines + ["    " + " x ".join(combo) for combo in exact])


def reading_note(exact: Sequence[tuple[str, ...]], best_name: str, best: float, target: float) -> str:
    """brain-4's note: the exact product and the closest reading of the text's cell types."""
    return (f"measured: [the exact product ({' x '.join(exact[0]) if exact else 'none'}), the closest "
            f"reading "
            f"of the text's cell types ({best_name}: {best / target - 1:+.1%})]")


def sensitivity_table(swings: Sequence[Swing]):
    """The tornado's numbers: each input's range, the estimate at both ends and their ratio."""
    import pandas as pd

    return pd.DataFrame([(s.name, s.low, s.high, s.flops_low, s.flops_high, s.flops_high / s.flops_low,
                          s.quote) for s in swings],
                        columns=["input", "low", "high", "FLOPS at low", "FLOPS at high", "ratio", "post"])


KURZWEIL_NOTE = ("measured: [Kurzweil's inputs, the post's synapses, upper variant]; sources: Kurzweil, "
                 "The Age of "
                 "Spiritual Machines (1999): 1e14 connections x 200/s = 2e16; The Singularity Is Near "
                 "(2005), "
                 "ch. 3: functional estimates 1e14-1e16 cps")


@dataclass(frozen=True)
class FiringRateCheck:
    """brain-3: the firing-rate model with Kurzweil's inputs, the post's and an upper variant."""

    kurzweil: dict[str, float]
    with_kurzweil: float
    with_post: float
    upper: float
    lnp: float

    @property
    def holds(self) -> bool:
        k = self.kurzweil
        return math.isclose(self.with_kurzweil, k["estimate"], rel_tol=1e-9) and \
            k["range_low"] <= self.with_post <= k["range_high"]

    def report(self) -> str:
        k = self.kurzweil
        return "\n".join([
            f"firing-rate model with Kurzweil's inputs: {self.with_kurzweil:.3g} (his published figure: "
            f"{k['estimate']:.3g})",
            f"with the post's numbers: {self.with_post:.3g} FLOPS (upper variant {self.upper:.3g}); "
            f"Kurzweil's range {k['range_low']:.0e}-{k['range_high']:.0e}",
            f"LNP estimate / firing-rate model = {self.lnp / self.with_post:.3g} "
            f"({self.lnp / self.upper:.3g} "
            "for the upper variant)"])


def firing_rate_check(lnp: float) -> FiringRateCheck:
    """brain-3: Kurzweil's inputs must give his 2e16; the post's 10 trillion synapses (and, as an upper
    variant, 86 billion neurons x 25 000 synapses) at 200 Hz against his range."""
    k = {name: v for name, (v, _) in KURZWEIL.items()}
    return FiringRateCheck(k, firing_rate_flops(synapses=k["connections"], rate_hz=k["rate_hz"]),
                           firing_rate_flops(synapses=POST["synapses"].value, rate_hz=200),
                           firing_rate_flops(synapses=86e9 * 25_000, rate_hz=200), lnp)


@dataclass(frozen=True)
class LNPCheck:
    """brain-8: the torch LNP neuron against scipy, and its Poisson gate against scipy's Poisson(0.5)."""

    x: torch.Tensor
    rate: torch.Tensor
    spikes: torch.Tensor
    waits: np.ndarray
    conv_error: float
    chi2_p: float
    kept_share: float
    kept_se: float
    p_fire: float
    n_draws: int
    lam: float = 0.5

    @property
    def holds(self) -> bool:
        return (self.conv_error < 1e-9 and self.chi2_p > 0.001
                and abs(self.kept_share - self.p_fire) < 4 * self.kept_se)

    @property
    def measured(self) -> list[float]:
        return [round(self.conv_error, 12) + 0.0, round(self.chi2_p, 3), round(self.kept_share, 4)]

    def report(self) -> str:
        import scipy.stats

        return "\n".join([
            "conv+ReLU module vs scipy.signal.correlate cascade: max |difference| "
            + ("< 1e-12" if self.conv_error < 1e-12 else f"= {self.conv_error:.1e}"),
            f"Poisson(0.5) waiting times over {len(self.waits):,} draws: chi-square p = {self.chi2_p:.3f}; "
            f"P(W=0) sampled {np.mean(self.waits == 0):.4f}, scipy {self.p_fire:.4f}",
            f"gate over {self.n_draws} draws: kept {self.kept_share:.4f} ± {self.kept_se:.4f} of "
            f"positive rates "
            f"(dropout-like, no rescaling; scipy P(W=0) = {self.p_fire:.4f})",
            "scipy's Poisson(0.5): P(fire at once), P(after one cycle), P(after two) = "
            + ", ".join(f"{p:.2f}" for p in scipy.stats.poisson.pmf([0, 1, 2], 0.5))])

    def plot(self):
        """The neuron's input, rate and gated output over time, and the waiting times (`plot_lnp`)."""
        return plot_lnp(self.x[0, 0].sum(dim=(0, 1)).cpu().numpy(), self.rate[0].detach().cpu().numpy(),
                        self.spikes[0].detach().cpu().numpy(), self.waits[:20_000], self.lam)


def check_lnp(n_waits: int, n_draws: int, seed: int, device: torch.device | str = "cpu") -> LNPCheck:
    """brain-8: a granule-cell LNP neuron (3x4x5 filter) on random input, its rate against a cascade of
    `scipy.signal.correlate` + ReLU (an independent oracle), `n_waits` Poisson(0.5) waiting times against
    scipy's pmf (chi-square, the tail pooled to >= 5 expected), and the gate over `n_draws` draws against
    scipy's P(W=0). The neuron's weights and input come from torch's global generator (seeded by the run)."""
    import scipy.signal
    import scipy.stats

    neuron = LNPNeuron(branches=3, dendrites=4, time_steps=5, wait_rate=0.5).double().to(device)
    x = torch.randn(64, 1, 3, 4, 40, dtype=torch.float64, device=device)
    rate = neuron.rate(x)
    # deep learning's "convolution" is a cross-correlation: scipy's correlate, then ReLU, twice
    w_dend = neuron.dendrite.weight[0, 0].detach().cpu().numpy()
    w_soma = neuron.soma.weight[0, 0].detach().cpu().numpy()
    by_scipy = np.stack([np.maximum(scipy.signal.correlate(
        np.maximum(scipy.signal.correlate(xi, w_dend, "valid")[0, 0], 0), w_soma, "valid"), 0)
        for xi in x[:, 0].cpu().numpy()])
    conv_error = float(np.abs(rate.detach().cpu().numpy() - by_scipy).max())
    gen = torch.Generator(device=device).manual_seed(seed)
    waits = poisson_waiting_times((n_waits,), 0.5, generator=gen, device=device).cpu().numpy().astype(int)
    k = np.arange(waits.max() + 1)
    observed = np.bincount(waits, minlength=len(k))
    expected = scipy.stats.poisson.pmf(k, 0.5) * len(waits)
    tail = expected < 5  # chi-square needs >= 5 expected per cell: pool the tail
    chi2_p = float(scipy.stats.chisquare(np.r_[observed[~tail], observed[tail].sum()],
                                         np.r_[expected[~tail], len(waits) - expected[~tail].sum()]).pvalue)
    # the gate as dropout: over many draws, the share of positive rates let through
    draws = torch.stack([neuron(x, generator=gen) for _ in range(n_draws)])
    alive = rate > 0
    kept_share = float(((draws > 0) & alive).sum() / (alive.sum() * draws.shape[0]))
    kept_se = math.sqrt(kept_share * (1 - kept_share) / float(alive.sum() * draws.shape[0]))
    return LNPCheck(x, rate, draws[0], waits, conv_error, chi2_p, kept_share, kept_se,
                    float(scipy.stats.poisson.pmf(0, 0.5)), int(draws.shape[0]))


@dataclass(frozen=True)
class TianheCost:
    """brain-7: the electricity price a day's cost implies, and the year's cost at both daily ends."""

    power_w: float
    prices: tuple[float, float]
    per_year: tuple[float, float]      # $ M per year at $65k and $100k a day

    def report(self) -> str:
        p, y = self.prices, self.per_year
        return (f"24 MW for a day = {self.power_w / 1e3 * 24:,.0f} kWh; $65k-$100k a day means "
                f"${p[0]:.3f}-${p[1]:.3f} per kWh\na year at $65k / $100k a day: ${y[0]:.1f} M / "
                f"${y[1]:.1f} M")

    @property
    def note(self) -> str:
        p, y = self.prices, self.per_year
        return (f"24 MW as the post says (Tianhe-2's peak draw with cooling, itnews.com.au, Nov 2014); "
                f"$65k-$100k/day implies ${p[0]:.3f}-${p[1]:.3f}/kWh; $23 M/yr is the low end "
                f"(365 x $65k = ${y[0]:.1f} M; $100k/day would be ${y[1]:.1f} M)")


def tianhe_cost(power_w: float, per_day: tuple[float, float] = (65e3, 100e3)) -> TianheCost:
    """brain-7: $65k-$100k a day at `power_w`, as a price per kWh and as $ M per year."""
    return TianheCost(power_w, tuple(implied_price_per_kwh(power_w, c) for c in per_day),
                      tuple(365 * c / 1e6 for c in per_day))


@dataclass(frozen=True)
class HomesCheck:
    """brain-10: how many German and US homes 24 MW supplies, against the post's 6000 and 2000."""

    power_w: float
    per_year: float
    german: list[float]
    american: list[float]
    post_homes: tuple[int, int] = (6000, 2000)

    def table(self):
        import pandas as pd

        return pd.DataFrame([(name, kwh, homes_powered(self.power_w, kwh), source)
                             for name, (kwh, source) in HOME_CONSUMPTION.items()],
                            columns=["homes", "kWh per home and year", "homes 24 MW supplies", "source"])

    @property
    def within(self) -> bool:
        de, us = self.post_homes
        return (abs(self.per_year / 23 - 1) <= 0.15 and all(0.67 <= de / h <= 1.5 for h in self.german)
                and any(0.67 <= us / h <= 1.5 for h in self.american))

    @property
    def measured(self) -> list[float]:
        return [round(self.per_year, 1), round(min(self.german)), round(max(self.german)),
                round(min(self.american)), round(max(self.american))]

    def report(self) -> str:
        g, a, mw = self.german, self.american, self.power_w / 1e6
        return (f"24 MW supplies {min(g):,.0f}-{max(g):,.0f} German homes (post: 6000) and "
                f"{min(a):,.0f}-{max(a):,.0f} US homes (post: 2000); the post's homes match "
                f"{mw * 6000 / min(g):.1f}-{mw * 2000 / min(a):.1f} MW")

    @property
    def why(self) -> str:
        g, a, mw = self.german, self.american, self.power_w / 1e6
        return (f"the cost checks out, but 24 MW supplies about {min(g) / 1000:.0f}-{max(g) / 1000:.0f} "
                f"thousand German and {min(a) / 1000:.0f}-{max(a) / 1000:.0f} thousand US homes: "
                f"the post's 6000 and 2000 are about {min(g) / 6000:.0f}x too few (they fit a "
                f"{mw * 6000 / min(g):.1f} MW draw)")

    @staticmethod
    def note(prices: Sequence[float]) -> str:
        return ("measured: [$ M per year at $65k/day, German homes low-high, US homes low-high]; the "
                "daily cost "
                "is the post's (no sourced 2015 Guangzhou tariff was found offline): it implies "
                f"{100 * prices[0]:.1f}-{100 * prices[1]:.1f} cents per kWh")


def homes_check(power_w: float, per_year: float) -> HomesCheck:
    """brain-10: homes supplied by `power_w`, from every sourced per-home consumption (`HOME_CONSUMPTION`)."""
    pick = lambda prefix: [homes_powered(power_w, kwh) for name, (kwh, _) in HOME_CONSUMPTION.items()  # noqa
                           if name.startswith(prefix)]
    return HomesCheck(power_w, per_year, pick("Germany"), pick("US"))


@dataclass(frozen=True)
class PostPaces:
    """brain-6: the year 21 doublings land at each of the post's paces."""

    paces: dict[str, float]
    years: list[float]
    from_post_date: float
    moore_18_months: float

    @property
    def holds(self) -> bool:
        by_2037 = self.years[0] < 2038 and self.from_post_date < 2038
        return by_2037 and abs(self.years[1] - 2053) <= 0.5 and abs(self.years[2] - 2078) <= 0.5

    @property
    def measured(self) -> list[float]:
        y = self.years
        return [round(y[0], 1), round(self.from_post_date, 1), round(y[1], 1), round(y[2], 1)]

    def report(self) -> str:
        lines = [f"{name:>22}: {d:.1f} y/doubling -> {y:.1f}"
                 for (name, d), y in zip(self.paces.items(), self.years)]
        return "\n".join(lines + [f"doubling time that gives 2037: {(2037 - 2015) / 21:.3f} y; 18-month "
                                  f"Moore's "
                                  f"law: {self.moore_18_months:.1f}"])


def post_paces(start: float, target: float, paces: dict[str, float]) -> PostPaces:
    """brain-6: whole doublings from `start` FLOPS in 2015 to `target` at each pace; the one-year pace also
    from the post's date (July 2015); and the 18-month Moore's law for contrast."""
    years = [year_reached(start, d, 2015, target, whole_doublings=True) for d in paces.values()]
    return PostPaces(paces, years, year_reached(start, 1.0, 2015.55, target, whole_doublings=True),
                     year_reached(start, 1.5, 2015, target, whole_doublings=True))


def top1_table(hpcg: Sequence[ListEntry], hpl: Sequence[ListEntry]):
    """The #1 of every HPCG and TOP500 list side by side, with the HPCG row's sourcing (brain-9, brain-11)."""
    import pandas as pd

    return pd.DataFrame([(e.edition, e.system, e.pflops, h.system, h.pflops, e.sourcing)
                         for e, h in zip(hpcg, hpl)],
                        columns=["list", "HPCG #1", "HPCG Pflop/s", "HPL #1", "HPL Pflop/s", "HPCG sourcing"])


def _fit(rows: Sequence[ListEntry], **kw) -> DoublingFit:
    return fit_doubling_time([e.year for e in rows], [e.flops for e in rows], **kw)


@dataclass(frozen=True)
class HPCGHistory:
    """brain-9: the doubling time of the HPCG #1 since 2014, on every list and on the published rows."""

    hpcg: list[ListEntry]
    hpl: list[ListEntry]
    target: float
    fit: DoublingFit
    fit_published: DoublingFit
    iid: DoublingFit
    recent: DoublingFit
    hpl_fit: DoublingFit
    published: list[ListEntry]

    @property
    def last(self) -> ListEntry:
        return self.hpcg[-1]

    @property
    def reach(self) -> dict[str, float]:
        """The year the brain's FLOPS are reached from the latest point, at the fit and its ends."""
        paces = (("fit", self.fit.doubling_years), ("fast end", self.fit.ci_doubling_years[0]),
                 ("slow end", self.fit.ci_doubling_years[1]))
        return {name: year_reached(self.last.flops, d, self.last.year, self.target) for name, d in paces}

    @property
    def published_too_wide(self) -> bool:
        lo, hi = self.fit_published.ci_doubling_years
        return hi / lo > 4  # an interval spanning over 4x cannot test the post's pace

    @property
    def holds(self) -> bool:
        (lo, hi), (lo_p, hi_p) = self.fit.ci_doubling_years, self.fit_published.ci_doubling_years
        return lo <= 1.8 <= hi and (self.published_too_wide or lo_p <= 1.8 <= hi_p)

    @property
    def measured(self) -> list[float]:
        f, p = self.fit, self.fit_published
        return [f.doubling_years, *f.ci_doubling_years, p.doubling_years, *p.ci_doubling_years]

    @property
    def note(self) -> str:
        r = self.reach
        wide = (" (the published-rows interval spans over 4x: context, not decisive)"
                if self.published_too_wide else "")
        return (f"measured: [fit, interval, fit on published rows, interval]{wide}"
                f"; from El Capitan's 17.41 PF (2025-11) the brain's 1.075e21 is reached in {r['fit']:.0f} "
                f"({r['fast end']:.0f}-{r['slow end']:.0f}); since 2020 only: "
                f"{self.recent.doubling_years:.0f} y per doubling")

    def report(self, start: float, paces: dict[str, float]) -> str:
        f, p, last, r = self.fit, self.fit_published, self.last, self.reach
        on_post_lines = {name: start * 2 ** ((last.year - 2015) / d) for name, d in paces.items()}
        return "\n".join([
            f"HPCG #1, 2014-2025: {f.doubling_years:.2f} y per doubling "
            f"(90 % block bootstrap {f.ci_doubling_years[0]:.2f}-{f.ci_doubling_years[1]:.2f})",
            f"published rows only ({len(self.published)} lists from {self.published[0].edition}): "
            f"{p.doubling_years:.2f} y (90 % interval "
            f"{p.ci_doubling_years[0]:.2f}-{p.ci_doubling_years[1]:.1f})",
            f"(resampling single lists as if independent would give {self.iid.ci_doubling_years[0]:.2f}-"
            f"{self.iid.ci_doubling_years[1]:.2f}: too narrow, as neighbouring lists repeat the same "
            f"machine)",
            f"reaches {self.target:.4g} FLOPS from {last.system} ({last.pflops} PF, {last.edition}) in "
            f"{r['fit']:.0f} (interval {r['fast end']:.0f}-{r['slow end']:.0f}); the fit line itself "
            f"crosses it "
            f"in {f.year_reaching(self.target):.0f}",
            f"HPCG #1 since June 2020 only: {self.recent.doubling_years:.1f} y per doubling",
            f"HPL #1 (TOP500), 2014-2025: {self.hpl_fit.doubling_years:.2f} y per doubling, HPL/HPCG at "
            f"the last "
            f"list {self.hpl[-1].pflops / last.pflops:.0f}x",
            f"{last.edition}: real HPCG #1 {last.pflops} PF; the post's lines from 2015 are at "
            + ", ".join(f"{v / 1e15:.1f} PF ({k})" for k, v in on_post_lines.items())])


def hpcg_history(hpcg: Sequence[ListEntry], hpl: Sequence[ListEntry], target: float, n_boot: int, seed: int,
                 block: int) -> HPCGHistory:
    """brain-9: block-bootstrap fits of the HPCG #1 (all lists; published rows only; single-list resampling
    for contrast; the lists since June 2020), and of the HPL #1."""
    published = [e for e in hpcg if e.sourcing == "published"]
    return HPCGHistory(list(hpcg), list(hpl), target,
                       _fit(hpcg, n_boot=n_boot, seed=seed, block=block),
                       _fit(published, n_boot=n_boot, seed=seed, block=block),
                       _fit(hpcg, n_boot=n_boot, seed=seed, block=1),
                       _fit(hpcg[12:], n_boot=200, seed=seed),
                       _fit(hpl, n_boot=n_boot, seed=seed, block=block), published)


@dataclass(frozen=True)
class HPLAgainstHPCG:
    """brain-11: how far HPL overstates HPCG, and the HPCG #1 of 2020 against the brain and Kurzweil."""

    share: float                       # Tianhe-2's HPCG / HPL, %
    tianhe_hpcg: ListEntry
    tianhe_hpl: ListEntry
    last_share: float                  # the latest list's HPCG #1 / HPL #1, %
    best_2020: ListEntry
    first_over_kurzweil: dict[str, str]
    published_pairs: list[tuple[ListEntry, ListEntry]]
    target: float
    kurzweil: float

    @property
    def worst_share(self) -> float:
        return max(100 * e.pflops / h.pflops for e, h in self.published_pairs)

    @property
    def holds(self) -> bool:
        best = self.best_2020.flops
        return self.worst_share <= 5 and best < self.target and best < self.kurzweil

    @property
    def measured(self) -> list[float]:
        return [round(self.share, 3), round(self.worst_share, 3), self.best_2020.flops,
                round(self.best_2020.flops / self.kurzweil, 2)]

    @property
    def criterion(self) -> str:
        return (f"on every one of the {len(self.published_pairs)} published HPCG/HPL pairs of the same "
                f"system and "
                "list, HPCG is at most 5 % of HPL (HPL overstates practical performance 20x or more); "
                "the best "
                "HPCG #1 of 2020 below the post's 1.075e21 and below Kurzweil's own 2e16")

    @property
    def note(self) -> str:
        return ("measured: [Tianhe-2 HPCG/HPL % (its HPCG row is the post's own 0.58: shown, not "
                "decisive), the "
                "highest HPCG/HPL % of a published pair, best HPCG #1 of 2020, its share of Kurzweil's "
                "2e16]; on "
                f"HPL Kurzweil's 2e16 was passed in {self.first_over_kurzweil['HPL']}")

    def report(self) -> str:
        t, h, b = self.tianhe_hpcg, self.tianhe_hpl, self.best_2020
        return "\n".join([
            f"Tianhe-2 ({t.edition}): HPCG {t.pflops} PF / HPL {h.pflops} PF = {self.share:.2f} %; "
            f"El Capitan (2025-11): {self.last_share:.2f} %",
            f"best HPCG #1 of 2020: {b.system} {b.pflops} PF = {b.flops / self.target:.1e} of the "
            f"post's brain, {b.flops / self.kurzweil:.2f} of Kurzweil's 2e16",
            f"first list at Kurzweil's 2e16: HPCG {self.first_over_kurzweil['HPCG']}, HPL (from 2014) "
            f"{self.first_over_kurzweil['HPL']}"])


def hpl_against_hpcg(hpcg: Sequence[ListEntry], hpl: Sequence[ListEntry], target: float,
                     kurzweil: float) -> HPLAgainstHPCG:
    """brain-11: Tianhe-2's HPCG/HPL (its HPCG row is the post's own 0.58, a memory row: shown, not the
    test); the test uses every published HPCG #1 whose system has a published HPL row of the same list."""
    t_hpcg = next(e for e in hpcg if e.system == "Tianhe-2")
    t_hpl = next(e for e in hpl if e.system == "Tianhe-2" and e.edition == t_hpcg.edition)
    pairs = [(e, h) for e in hpcg for h in hpl
             if e.system == h.system and e.edition == h.edition and "memory" not in (e.sourcing, h.sourcing)]
    first = {name: next((e.edition for e in rows if e.flops >= kurzweil), "not yet")
             for name, rows in (("HPCG", hpcg), ("HPL", hpl))}
    best_2020 = max((e for e in hpcg if e.edition.startswith("2020")), key=lambda e: e.flops)
    return HPLAgainstHPCG(100 * t_hpcg.pflops / t_hpl.pflops, t_hpcg, t_hpl,
                          100 * hpcg[-1].pflops / hpl[-1].pflops, best_2020, first, pairs, target, kurzweil)


# --------------------------------------------------------------------------------------------
# Figures (matplotlib is imported when a figure is drawn)
# --------------------------------------------------------------------------------------------


def plot_readings(values: dict[str, float], target: float, ax=None):
    """Horizontal bars (log scale) of each reading's FLOPS against the post's number."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(8, 3.2))[1]
    names = list(values)[::-1]
    ax.barh(names, [values[n] for n in names], color="#4c72b0")
    ax.axvline(target, color="#c44e52", ls="--", label=f"post: {target:.4g} FLOPS")
    ax.set_xscale("log")
    ax.set_xlabel("FLOPS of the granule + Purkinje LNP model")
    ax.set_title("Readings of the missing formula")
    ax.legend(loc="lower right")
    return ax


def plot_tornado(swings: Sequence[Swing], base: float, target: float, ax=None):
    """Tornado chart: the estimate with each input at the low / high end of its stated range."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    ax = ax or plt.subplots(figsize=(8, 3.4))[1]
    for i, s in enumerate(reversed(swings)):
        lo, hi = sorted((s.flops_low, s.flops_high))
        ax.barh(i, hi - lo, left=lo, color="#8172b3")
        ax.text(max(hi, base, target) * 1.1, i, f"{_short(s.low)} to {_short(s.high)}", va="center", fontsize=9)
    ax.set_yticks(range(len(swings)), [s.name for s in reversed(swings)])
    ax.axvline(base, color="k", lw=1, label=f"all inputs at the post's values: {base:.4g}")
    ax.axvline(target, color="#c44e52", ls="--", label=f"post: {target:.4g}")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    lows = min(min(s.flops_low, s.flops_high) for s in swings)
    highs = max(max(s.flops_low, s.flops_high) for s in swings)
    ax.set_xlim(lows / 1.5, highs * 4)
    ax.set_xlabel("FLOPS")
    ax.set_title("Sensitivity over the ranges the post states")
    ax.legend(loc="lower right", fontsize=9)
    return ax


def plot_lnp(x_trace: np.ndarray, rate: np.ndarray, spikes: np.ndarray, waits: np.ndarray, lam: float):
    """Left: one neuron's summed input, rate and Poisson-gated output over time; right: the waiting times."""
    import matplotlib.pyplot as plt

    fig, (a, c) = plt.subplots(1, 2, figsize=(9, 3.4), gridspec_kw={"width_ratios": [2, 1]})
    t_in = np.arange(len(x_trace))
    offset = len(x_trace) - len(rate)
    t = np.arange(offset, len(x_trace))
    a2 = a.twinx()
    a2.plot(t_in, x_trace, color="0.75", lw=1)
    a2.set_ylabel("summed synaptic input (grey)", color="0.5")
    a.set_zorder(a2.get_zorder() + 1)
    a.patch.set_visible(False)
    a.plot(t, rate, color="#4c72b0", lw=2, label="rate: conv -> ReLU -> soma -> ReLU")
    fired = spikes > 0
    a.stem(t[fired], spikes[fired], linefmt="#c44e52", markerfmt="o", basefmt=" ", label="output after Poisson gate")
    a.set_xlabel("time step")
    a.set_title("An LNP neuron as conv + ReLU + Poisson dropout")
    a.set_ylabel("firing rate (a.u.)")
    a.legend(fontsize=9)
    k = np.arange(0, int(waits.max()) + 1)
    freq = np.bincount(waits.astype(int), minlength=len(k)) / len(waits)
    c.bar(k, freq, color="#8172b3", label="sampled")
    c.plot(k, poisson_pmf(k, lam), "ko", label=f"Poisson({lam}) pmf")
    c.set_xlabel("waiting time (cycles)")
    c.set_title(f"Poisson({lam}) waiting times")
    c.legend(fontsize=9)
    fig.tight_layout()
    return fig


def plot_extrapolation(start_year: float, start_flops: float, paces: dict[str, float], target: float,
                       hpcg: Sequence[ListEntry], hpl: Sequence[ListEntry], fit: DoublingFit,
                       end_year: float = 2085):
    """The post's three paces, the real #1 points (HPCG and HPL), the fit and the brain's estimate."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.2))
    years = np.linspace(start_year, end_year, 300)
    for (label, d), colour in zip(paces.items(), ("#dd8452", "#55a868", "#c44e52")):
        ax.plot(years, start_flops * 2 ** ((years - start_year) / d), color=colour, ls="--",
                label=f"post: {label} ({d:g} y/doubling)")
    fy = np.linspace(min(e.year for e in hpcg), end_year, 300)
    ax.plot(fy, fit.flops_at(fy), color="#4c72b0", lw=2,
            label=f"fit to HPCG #1: {fit.doubling_years:.2f} y/doubling")
    lo, hi = fit.ci_doubling_years
    last = max(hpcg, key=lambda e: e.year)
    for d in (lo, hi):  # the interval, drawn from the latest real point
        ax.plot(fy[fy >= last.year], last.flops * 2 ** ((fy[fy >= last.year] - last.year) / d),
                color="#4c72b0", lw=0.8, ls=":", label=None if d == hi else
                f"90 % interval of the pace ({lo:.2f}-{hi:.2f} y), from the latest point")
    ax.scatter([e.year for e in hpcg], [e.flops for e in hpcg], color="#4c72b0", zorder=3, s=18,
               label="HPCG #1 of each list")
    ax.scatter([e.year for e in hpl], [e.flops for e in hpl], color="0.4", marker="^", s=16, zorder=3,
               label="TOP500 (HPL) #1, for contrast")
    ax.axhline(target, color="k", lw=1)
    ax.text(start_year + 0.3, target * 1.4, f"brain (post): {target:.4g} FLOPS", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylim(1e14, 1e22)
    ax.set_xlim(start_year - 1.5, end_year)
    ax.set_xlabel("year")
    ax.set_ylabel("FLOPS")
    ax.set_title("When does the fastest practical supercomputer reach the brain's estimate?")
    ax.legend(fontsize=9, loc="lower right")
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def _short(v: float) -> str:
    return f"{v:g}" if v < 1e4 else f"{v:.3g}"


# --------------------------------------------------------------------------------------------


def _positive(**values: float) -> None:
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"{name} must be a number, got {type(v).__name__}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite number, got {v}")


__all__ = [
    "POST", "POST_RANGES", "PostNumber", "post_parameters", "fraction_after_doublings", "milliseconds_to_frames",
    "firing_rate_flops", "NeuronType", "neuron_types", "dense_macs", "filter_macs", "Reading", "READINGS",
    "lnp_flops", "all_readings", "closest_reading", "post_sizes", "exact_products", "Swing", "sensitivity",
    "doublings_needed", "year_reached", "edition_year", "ListEntry", "load_top1", "DoublingFit",
    "fit_doubling_time", "electricity_cost", "implied_price_per_kwh", "homes_powered", "HOURS_PER_YEAR",
    "HOME_CONSUMPTION", "KURZWEIL", "product_of", "load_interconnect", "jackknife_doubling", "plot_interconnect", "SOURCINGS", "LNPNeuron", "poisson_waiting_times",
    "poisson_pmf", "lnp_reference", "DATA_FILE", "plot_readings", "plot_tornado", "plot_lnp",
    "plot_extrapolation", "GpuGeneration", "load_gpu_generations", "later_flagships", "doubling_time",
    "GrowthComparison", "compare_growth", "FabCost", "load_fab_costs", "AnnualGrowth", "fab_cost_growth",
    "plot_memory_wall", "plot_fab_costs", "MEMORY_WALL_RATIO", "POST_FAB", "LATER_FLAGSHIPS",
    "GPU_GENERATIONS_FILE", "FAB_COSTS_FILE",
]
