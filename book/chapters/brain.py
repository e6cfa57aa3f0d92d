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
  (data in `data_files/brain_hpcg_top1.csv`, each row with its source).

Nothing here is tuned to land on the post's 1.075e21: every constant is a number the post states.
"""
from __future__ import annotations

import csv
import io
import itertools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch import nn
from book.core.registry import DATA_FILES

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


def load_top1(path: str | Path | None = None, benchmark: str | None = None) -> list[ListEntry]:
    """Rows of the #1 history file (comment lines start with '#'), optionally of one benchmark."""
    text = Path(path or DATA_FILE).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))
    rows = []
    for rec in csv.DictReader(io.StringIO(body)):
        if not rec["source"].strip():
            raise ValueError(f"row {rec['edition']} {rec['benchmark']} has no source")
        sourcing = {"press": "published"}.get(rec["sourcing"], rec["sourcing"])  # older files said "press"
        if sourcing not in SOURCINGS:
            raise ValueError(f"row {rec['edition']} {rec['benchmark']}: unknown sourcing {rec['sourcing']!r}")
        reason = (rec.get("unverified_because") or "").strip()
        if sourcing == "memory" and "unverified_because" in rec and not reason:
            raise ValueError(f"row {rec['edition']} {rec['benchmark']} is from memory: say why it is unverified")
        entry = ListEntry(rec["edition"], rec["benchmark"], rec["system"], float(rec["pflops"]),
                          rec["source"], sourcing, reason)
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
    """The InfiniBand generations (4x link rate by year of introduction), each with its source."""
    text = Path(path or INTERCONNECT_FILE).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if line and not line.startswith("#"))
    rows = []
    for rec in csv.DictReader(io.StringIO(body)):
        if not rec["source"].strip() or rec["sourcing"] not in SOURCINGS:
            raise ValueError(f"InfiniBand row {rec['generation']}: needs a source and a known sourcing")
        if rec["sourcing"] == "memory" and not rec["unverified_because"].strip():
            raise ValueError(f"InfiniBand row {rec['generation']} is from memory: say why it is unverified")
        rows.append(LinkGeneration(rec["generation"], int(rec["year"]), float(rec["gbit_s_4x"]), rec["source"],
                                   rec["sourcing"], rec["unverified_because"].strip()))
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
    "plot_extrapolation",
]
