"""The post's performance charts as a model with the post's own stated factors (gpu-12, gpu-14,
gpu-17, gpu-18), and the Q&A numbers modelled where a model can reach them (gpu-19 … gpu-21).

The post charts three metrics — 8-bit inference, 16-bit inference, 16-bit training — as raw relative
performance (normalised to the H100 SXM: "an RTX 4090 has about 0.33x performance of a H100 SXM for
8-bit inference") and as performance per dollar. Its data are not published; what it states is:

- memory bandwidth is "one of the single best indicators" of a Tensor Core GPU's speed (gpu-2);
- Ada's large L2 makes matmuls "about 1.5 – 2.0x faster" (BERT-large training); "for larger models
  the speedups are lower during training"; inference with batches above 8 "can also benefit
  immensely"; the caches of "the Ada and Hopper architecture are very large" (`POST_L2_FACTOR`);
- 8-bit inputs load "twice as fast" on the cards with FP8 (Ada, Hopper); older cards' 8-bit is not
  modelled (the post: "I did not model 8-bit compute for older GPUs"): they keep their 16-bit figure;
- Tensor Core utilisation in GPT-3-sized training is "about 45-65%" (`POST_TC_UTILISATION`);
- 8-bit training "can well be 3-4x of 16-bit training performance if the caches are as fast as
  rumored" (`POST_FP8_TRAINING`).

The model: performance = bandwidth × (the L2 factor on Ada and Hopper cards) × (2 for 8-bit on FP8
cards); the training metric has its own L2 factor (the post gives none for large models: it is an
input, and `factor_to_lead` says which value makes a given card lead). Prices are inputs too:
`price_to_lead` gives the price at which a card is the most cost-effective, next to its launch price.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from book.chapters.gpu.specs import CloudVsDesktop, electricity_cost_per_year

METRICS = ("8-bit inference", "16-bit inference", "16-bit training")
POST_L2_FACTOR = (1.5, 2.0)          # "about 1.5 – 2.0x faster for this architecture for Ada"
POST_TC_UTILISATION = (0.45, 0.65)   # "Tensor Core TFLOPS utilization of about 45-65%"
POST_FP8_TRAINING = (3.0, 4.0)       # "8-bit training performance can well be 3-4x of 16-bit"
LARGE_L2_ARCHITECTURES = ("Ada", "Hopper")
REFERENCE = "H100 SXM5"              # the post's raw chart reads cards against the H100 SXM


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, not {metric!r}")


def _check_factor(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{name} must be a number ≥ 1 (a cache can only help), not {value!r}")


def chart_performance(specs, metric: str, *, l2_factor: float = 1.75, training_l2_factor: float | None = None,
                      reference: str = REFERENCE):
    """Relative performance of every card in `metric` (a Series, `reference` = 1): bandwidth × the L2
    factor (Ada and Hopper cards; `training_l2_factor`, default `l2_factor`, for 16-bit training) ×
    2 for 8-bit inference on cards with FP8 Tensor Cores."""
    _check_metric(metric)
    factor = l2_factor if metric != "16-bit training" or training_l2_factor is None else training_l2_factor
    _check_factor("l2_factor", l2_factor)
    _check_factor("training_l2_factor", factor)
    if reference not in specs.index:
        raise KeyError(f"{reference!r} is not in the spec table")
    perf = specs["memory_bandwidth_gbs"].astype(float).copy()
    perf = perf * np.where(specs["architecture"].isin(LARGE_L2_ARCHITECTURES), factor, 1.0)
    if metric == "8-bit inference":
        perf = perf * np.where(specs["fp8_tensor_tflops"].notna(), 2.0, 1.0)
    return perf / perf[reference]


def raw_chart(specs, **kw):
    """The post's raw relative performance chart: one column per metric, `reference` = 1, sorted by
    8-bit inference (best first)."""
    import pandas as pd

    table = pd.DataFrame({m: chart_performance(specs, m, **kw) for m in METRICS})
    return table.sort_values("8-bit inference", ascending=False)


def post_system_usd(specs) -> float:
    """The computer around one GPU, from the post's own example: "The desktop with RTX 3090 costs
    $2,200 (2-GPU barebone + RTX 3090)", less the RTX 3090's price in the spec table."""
    return float(CloudVsDesktop().desktop_usd - specs.loc["RTX 3090", "price_usd"])


def ownership_usd(specs, prices=None, *, years: float = 5, usd_per_kwh: float = 0.175,
                   utilization: float = 0.15, system_usd_per_gpu: float | None = None):
    """Price + the computer around the GPU (`post_system_usd` unless given) + `years` of electricity
    at TDP (the post's chart: 5 years, $0.175/kWh, 15 % use). `prices` (a mapping) overrides the
    table's launch prices."""
    if years < 0:
        raise ValueError("years must be ≥ 0")
    if system_usd_per_gpu is None:
        system_usd_per_gpu = post_system_usd(specs)
    price = specs["price_usd"].astype(float).copy()
    for card, value in (prices or {}).items():
        if card not in price.index:
            raise KeyError(f"{card!r} is not in the spec table")
        if not value > 0:
            raise ValueError(f"price of {card} must be positive, not {value!r}")
        price[card] = float(value)
    power = specs["tdp_w"].map(lambda w: electricity_cost_per_year(w, utilization, usd_per_kwh)) * years
    return price + system_usd_per_gpu + power, price


def chart_perf_per_dollar(specs, *, prices=None, l2_factor: float = 1.75, training_l2_factor: float | None = None,
                          **cost_kw):
    """The post's performance-per-dollar chart: each metric's relative performance over the cost of
    owning the card (`ownership_usd`), normalised so that the best card of each metric is 1; sorted
    by 8-bit inference, as the post sorts it."""
    import pandas as pd

    total, _ = ownership_usd(specs, prices, **cost_kw)
    out = {}
    for m in METRICS:
        ppd = chart_performance(specs, m, l2_factor=l2_factor, training_l2_factor=training_l2_factor) / total
        out[m] = ppd / ppd.max()
    return pd.DataFrame(out).sort_values("8-bit inference", ascending=False)


def ranking(specs, metric: str, *, min_memory_gb: float = 0, **kw) -> list[str]:
    """Cards with at least `min_memory_gb`, best performance per dollar in `metric` first."""
    _check_metric(metric)
    table = chart_perf_per_dollar(specs, **kw)[metric].sort_values(ascending=False)
    return [g for g in table.index if specs.loc[g, "memory_gb"] >= min_memory_gb]


def price_to_lead(specs, card: str, metric: str, *, min_memory_gb: float = 0, prices=None, **kw) -> float:
    """The highest price of `card` at which it is the most cost-effective card in `metric` (among
    cards with ≥ `min_memory_gb`), every other card at its price (`prices`, else launch price).
    Compare with its launch price: below that, the card leads at launch prices. NaN when it cannot
    lead at any positive price."""
    _check_metric(metric)
    total, price = ownership_usd(specs, prices, **{k: v for k, v in kw.items() if k not in (
        "l2_factor", "training_l2_factor")})
    perf = chart_performance(specs, metric, **{k: v for k, v in kw.items() if k in ("l2_factor", "training_l2_factor")})
    rivals = [g for g in specs.index if g != card and specs.loc[g, "memory_gb"] >= min_memory_gb]
    best_rival = max(perf[g] / total[g] for g in rivals)
    extra = total[card] - price[card]            # computer share + electricity
    limit = perf[card] / best_rival - extra      # price at which the two are equal
    return float(limit) if limit > 0 else math.nan


def factor_to_lead(specs, card: str, rival: str, metric: str = "16-bit training", *, prices=None,
                   l2_factor: float = 1.75, **cost_kw) -> float:
    """The L2 factor (of `metric`, on Ada and Hopper cards) at which `card` and `rival` have the same
    performance per dollar. One of the two must be Ada/Hopper and the other not (else the factor
    cancels and NaN is returned)."""
    _check_metric(metric)
    total, _ = ownership_usd(specs, prices, **cost_kw)
    base = chart_performance(specs, metric, l2_factor=1.0, training_l2_factor=1.0)
    big = specs["architecture"].isin(LARGE_L2_ARCHITECTURES)
    if big[card] == big[rival]:
        return math.nan
    ratio = (base[rival] / total[rival]) / (base[card] / total[card])  # rival over card, factor 1
    return float(ratio if big[card] else 1 / ratio)


def fp8_training_ratio(specs, *, utilisation: float, l2_factor: float):
    """The post's 8-bit training estimate as a model, per FP8 card: 16-bit training runs its Tensor
    Cores at `utilisation` (memory-bound); 8-bit moves half the bytes and gains the L2 factor on the
    memory side ("if the caches are as fast as rumored"), so its speed-up is 2 × `l2_factor`, capped
    by the Tensor Cores: FP8 peak / (utilisation × FP16 peak). Returns a Series (FP8 cards only)."""
    if not 0 < utilisation <= 1:
        raise ValueError(f"utilisation must be in (0, 1], not {utilisation!r}")
    _check_factor("l2_factor", l2_factor)
    fp8 = specs[specs["fp8_tensor_tflops"].notna()]
    compute_cap = fp8["fp8_tensor_tflops"] / (utilisation * fp8["fp16_tensor_tflops"])
    return np.minimum(compute_cap, 2 * l2_factor)


def fp8_training_span(specs, utilisation: Sequence[float] = POST_TC_UTILISATION,
                      l2_factor: Sequence[float] = POST_L2_FACTOR, points: int = 5):
    """The lowest and highest `fp8_training_ratio` of each FP8 card over a grid spanning the post's
    stated ranges (a DataFrame: min, max, and the FP8/FP16 peak ratio of the datasheet)."""
    import pandas as pd

    grid = [fp8_training_ratio(specs, utilisation=u, l2_factor=f)
            for u in np.linspace(*utilisation, points) for f in np.linspace(*l2_factor, points)]
    stack = pd.concat(grid, axis=1)
    fp8 = specs[specs["fp8_tensor_tflops"].notna()]
    return pd.DataFrame({"min": stack.min(axis=1), "max": stack.max(axis=1),
                         "fp8/fp16 peak": fp8["fp8_tensor_tflops"] / fp8["fp16_tensor_tflops"]})


# ---------------------------------------------------------------------------------------------
# gpu-15: the post's "3-5x / 7-10x" read as bandwidth (A100, the post's Ampere reference)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheBandwidth:
    """Aggregate bandwidths of one GPU's memory levels from its published architecture numbers:
    L2 read bytes per clock, shared memory bytes per clock per SM (32 banks × 4 bytes), SMs, boost
    clock, DRAM bandwidth. `source` says where each number comes from."""

    gpu: str
    l2_bytes_per_clk: float
    shared_bytes_per_clk_per_sm: float
    sms: int
    boost_ghz: float
    dram_gbs: float
    source: str

    @property
    def l2_gbs(self) -> float:
        return self.l2_bytes_per_clk * self.boost_ghz

    @property
    def shared_gbs(self) -> float:
        return self.shared_bytes_per_clk_per_sm * self.sms * self.boost_ghz

    def speedups(self) -> dict[str, float]:
        """How many times the DRAM bandwidth each level delivers (the post's "faster", read as bandwidth)."""
        return {"L2": self.l2_gbs / self.dram_gbs, "shared": self.shared_gbs / self.dram_gbs}


A100_BANDWIDTH = CacheBandwidth(
    gpu="A100 SXM4 40GB", l2_bytes_per_clk=5120, shared_bytes_per_clk_per_sm=128, sms=108, boost_ghz=1.41,
    dram_gbs=1555,
    source="NVIDIA A100 Tensor Core GPU Architecture whitepaper V1.0 (2020): L2 read bandwidth 5120 bytes/clk, "
           "108 SMs, boost clock 1410 MHz, 1555 GB/s HBM2; shared memory 32 banks × 4 bytes per clock per SM "
           "(CUDA C++ Programming Guide, compute capability 8.0, shared memory)")


# ---------------------------------------------------------------------------------------------
# gpu-19, gpu-20: PCIe, lanes and networking in a data-parallel step (a model, for context)
# ---------------------------------------------------------------------------------------------
PCIE_GBS_PER_LANE = {3: 0.985, 4: 1.969, 5: 3.938}   # GB/s per lane and direction (128b/130b encoding)


def pcie_gbs(generation: int, lanes: int) -> float:
    if generation not in PCIE_GBS_PER_LANE:
        raise ValueError(f"PCIe generation must be one of {sorted(PCIE_GBS_PER_LANE)}, not {generation!r}")
    if lanes not in (1, 2, 4, 8, 16):
        raise ValueError(f"lanes must be 1, 2, 4, 8 or 16, not {lanes!r}")
    return PCIE_GBS_PER_LANE[generation] * lanes


def ring_allreduce_s(gradient_bytes: float, workers: int, link_gbs: float) -> float:
    """Seconds of a ring all-reduce: each worker sends and receives 2(N−1)/N of the gradient."""
    if workers < 1 or link_gbs <= 0 or gradient_bytes < 0:
        raise ValueError("need workers ≥ 1, link_gbs > 0 and gradient_bytes ≥ 0")
    return 2 * (workers - 1) / workers * gradient_bytes / (link_gbs * 1e9)


def data_parallel_step_s(compute_s: float, exchange_s: float, hidden_fraction: float = 0.0) -> float:
    """One data-parallel step: compute, plus the part of the gradient exchange that is not hidden
    behind the backward pass (`hidden_fraction` of the compute time can cover it)."""
    if compute_s <= 0 or exchange_s < 0 or not 0 <= hidden_fraction <= 1:
        raise ValueError("need compute_s > 0, exchange_s ≥ 0 and hidden_fraction in [0, 1]")
    return compute_s + max(0.0, exchange_s - hidden_fraction * compute_s)


@dataclass(frozen=True)
class TrainingStep:
    """A stated workload for the communication model: `params` parameters with `grad_bytes` bytes
    per gradient element, `flops_per_step` per GPU (6 × params × tokens for a transformer), run at
    `tflops` sustained per GPU."""

    name: str
    params: float
    tokens_per_gpu: int
    tflops: float
    grad_bytes: int = 2

    @property
    def compute_s(self) -> float:
        return 6 * self.params * self.tokens_per_gpu / (self.tflops * 1e12)

    @property
    def gradient_bytes(self) -> float:
        return self.params * self.grad_bytes


def pcie_cost(step: TrainingStep, *, gpus: int = 4, slow=(4, 16), fast=(5, 16), hidden_fraction: float = 0.0) -> float:
    """How much longer a data-parallel step takes on the `slow` (generation, lanes) link than on the
    `fast` one, in % (the ring all-reduce runs over each GPU's PCIe link)."""
    times = [data_parallel_step_s(step.compute_s, ring_allreduce_s(step.gradient_bytes, gpus, pcie_gbs(*link)),
                                  hidden_fraction) for link in (slow, fast)]
    return 100 * (times[0] / times[1] - 1)


def two_machine_speedup(step: TrainingStep, network_gbit: float, *, hidden_fraction: float = 0.0) -> float:
    """Speed-up of two machines over one (same per-GPU batch): the gradient crosses the network once
    per step (a hierarchical all-reduce between the two machines' already-reduced gradients)."""
    if network_gbit <= 0:
        raise ValueError("network_gbit must be positive")
    exchange = ring_allreduce_s(step.gradient_bytes, 2, network_gbit / 8)
    return 2 * step.compute_s / data_parallel_step_s(step.compute_s, exchange, hidden_fraction)


def break_even_gbit(step: TrainingStep, speedup: float = 1.0) -> float:
    """The network bandwidth (Gbit/s) at which two machines reach `speedup` over one (no overlap)."""
    if not 0 < speedup < 2:
        raise ValueError("speedup must be in (0, 2)")
    exposed = 2 * step.compute_s / speedup - step.compute_s   # seconds the exchange may take
    return 8 * step.gradient_bytes / exposed / 1e9 if exposed > 0 else math.inf


# ---------------------------------------------------------------------------------------------
# gpu-21: the 12 GB / 24 GB memory heuristics
# ---------------------------------------------------------------------------------------------
TRAINING_BYTES_PER_PARAM = 16   # fp16 weights + fp16 grads + fp32 master weights + Adam's two fp32 moments
WORKLOADS = {  # parameters, with the source of each count
    "Stable Diffusion v1": (860e6 + 123e6 + 84e6,
        "CompVis stable-diffusion model card: 860M UNet, 123M CLIP ViT-L/14 text encoder; VAE 84M"),
    "BERT-large": (340e6, "Devlin et al. 2019, BERT: 340M parameters"),
    "GPT-2 XL": (1.5e9, "Radford et al. 2019, GPT-2: 1.5B parameters"),
    "OPT-13B": (13e9, "Zhang et al. 2022, OPT: 13B parameters"),
}


def memory_gb(params: float, bytes_per_param: float) -> float:
    """GB (10^9 bytes) of `params` at `bytes_per_param`: the weights/states only, no activations."""
    if params <= 0 or bytes_per_param <= 0:
        raise ValueError("params and bytes_per_param must be positive")
    return params * bytes_per_param / 1e9


def largest_model_fitting(memory: float, bytes_per_param: float, reserve_gb: float = 0.0) -> float:
    """Parameters whose weights/states fill `memory` GB, less `reserve_gb` for activations."""
    if memory <= reserve_gb:
        return 0.0
    return (memory - reserve_gb) * 1e9 / bytes_per_param


# ---------------------------------------------------------------------------------------------
# The recommendation procedure as a decision function (gpu-22)
# ---------------------------------------------------------------------------------------------
def decide(specs, memory_gb_needed: float, metric: str, *, budget_usd: float = math.inf,
           segments: Sequence[str] = ("consumer", "workstation", "datacenter"), **kw) -> list[str]:
    """The post's procedure: "Determine the amount of GPU memory that you need"; choose 8-bit or
    16-bit; "find the GPU with the highest relative performance/dollar that has the amount of memory
    you need". Returns the qualifying cards (memory, launch price within `budget_usd`, segment),
    best performance per dollar in `metric` first (`kw`: L2 factors and prices of the model)."""
    _check_metric(metric)
    if not (isinstance(memory_gb_needed, (int, float)) and memory_gb_needed > 0):
        raise ValueError(f"memory_gb_needed must be a positive number, not {memory_gb_needed!r}")
    if not budget_usd > 0:
        raise ValueError(f"budget_usd must be positive, not {budget_usd!r}")
    bad = set(segments) - set(specs["segment"])
    if bad:
        raise ValueError(f"unknown segments: {sorted(bad)}")
    _, price = ownership_usd(specs, kw.get("prices"))
    ranked = ranking(specs, metric, min_memory_gb=memory_gb_needed, **kw)
    return [g for g in ranked if price[g] <= budget_usd and specs.loc[g, "segment"] in segments]


# ---------------------------------------------------------------------------------------------
# The chapter's readings of these models, one per claim
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CacheReadings:
    """gpu-15: the post's "L2 3–5×, shared ~7–10× faster than global memory" read two ways: as
    latency (the post's cycles) and as bandwidth (A100 whitepaper)."""

    latency: dict
    bandwidth: dict

    @staticmethod
    def fits(r) -> bool:
        """Both ranges hold: L2 in 3–5×, shared in ~7–10× (±15 %)."""
        return 3 <= r["L2"] <= 5 and 7 * 0.85 <= r["shared"] <= 10 * 1.15

    def table(self):
        """One row per reading: the L2 and shared speed-ups and whether each is in the post's range."""
        import pandas as pd

        readings = pd.DataFrame({"latency (the post's cycles)": self.latency,
                                 "bandwidth (A100 whitepaper)": self.bandwidth}).T[["L2", "shared"]]
        readings["L2 in 3–5×"] = [3 <= r["L2"] <= 5 for _, r in readings.iterrows()]
        readings["shared in ~7–10×"] = [5.95 <= r["shared"] <= 11.5 for _, r in readings.iterrows()]
        return readings

    @property
    def holds(self) -> dict[str, bool]:
        return {name: self.fits(r) for name, r in self.table().iterrows()}

    @property
    def measured(self) -> list[float]:
        """global/L2 and global/shared by latency, then by bandwidth."""
        return [round(self.latency["L2"], 2), round(self.latency["shared"], 2),
                round(self.bandwidth["L2"], 2), round(self.bandwidth["shared"], 2)]

    @property
    def upper_end_gap_pct(self) -> float:
        """How far below the nearer shared-memory reading the post's upper end (10×) lies, in %."""
        return 100 * (1 - 10 / min(self.latency["shared"], self.bandwidth["shared"]))

    def summary(self) -> str:
        return "\n".join(f"{name}: {'both ranges hold' if ok else 'not both ranges'}"
                         for name, ok in self.holds.items())


def cache_readings() -> CacheReadings:
    """gpu-15: `cache_speedups` of the post's latencies and `A100_BANDWIDTH.speedups()`."""
    from book.chapters.gpu.memory import Latencies, cache_speedups

    return CacheReadings(cache_speedups(Latencies()), A100_BANDWIDTH.speedups())


def plot_metric_bars(table, *, xlabel: str, title: str):
    """gpu-17, gpu-12: the post's chart style, one horizontal bar per card and metric (`table`: a
    column per metric, e.g. `raw_chart` or `chart_perf_per_dollar`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 7), layout="constrained")
    y = np.arange(len(table))
    for k, (metric, colour) in enumerate(zip(METRICS, ("tab:orange", "tab:blue", "tab:green"))):
        ax.barh(y + (k - 1) * 0.27, table[metric], height=0.27, color=colour, label=metric)
    ax.set_yticks(y, table.index); ax.invert_yaxis(); ax.tick_params(labelsize=9)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.legend(loc="outside upper center", ncols=3, fontsize=9)
    return fig


@dataclass(frozen=True)
class Fp8Lead:
    """gpu-17: the H100 SXM's place in the raw chart at the post's L2 factors 1.5 and 2.0."""

    first_everywhere: list[bool]   # H100 SXM first in every metric, per L2 factor
    ratio_4090: list[float]        # RTX 4090 / H100 SXM in 8-bit inference, per L2 factor
    gap_growth: list[float]        # the H100's 8-bit lead over its 16-bit lead against the best non-FP8 card
    best_old: str                  # the best card without FP8 at L2 factor 1.75
    lead_8bit: float               # the H100's lead over it at 1.75, 8-bit inference
    lead_16bit: float              # and 16-bit inference

    @property
    def holds(self) -> bool:
        return (all(self.first_everywhere) and all(0.28 <= r <= 0.38 for r in self.ratio_4090)
                and min(self.gap_growth) >= 1.5)

    @property
    def measured(self) -> list[float]:
        return [round(self.ratio_4090[0], 3), round(min(self.gap_growth), 2)]

    def summary(self) -> str:
        return (f"H100 SXM first in every metric at L2 factor 1.5 and 2.0: {all(self.first_everywhere)}; "
                f"RTX 4090 / H100 SXM, 8-bit inference: {self.ratio_4090[0]:.3f}\n"
                f"the H100's lead over the best card without FP8 ({self.best_old}): "
                f"{self.lead_8bit:.1f}x in 8-bit inference, {self.lead_16bit:.1f}x in 16-bit "
                "(L2 factor 1.75)")


def fp8_lead(specs) -> Fp8Lead:
    """gpu-17: `raw_chart` at each of the post's L2 factors: who is first, the RTX 4090's 8-bit ratio
    and how much more the H100 leads the cards without FP8 in 8-bit than in 16-bit inference."""
    no_fp8 = specs.index[specs["fp8_tensor_tflops"].isna()]
    first, ratio, growth = [], [], []
    for f in POST_L2_FACTOR:
        chart = raw_chart(specs, l2_factor=f)
        first.append(all(chart[m].idxmax() == REFERENCE for m in METRICS))
        ratio.append(float(chart.loc["RTX 4090", "8-bit inference"]))
        gap8 = 1 / chart.loc[no_fp8, "8-bit inference"].max()
        gap16 = 1 / chart.loc[no_fp8, "16-bit inference"].max()
        growth.append(float(gap8 / gap16))
    raw = raw_chart(specs)
    best_old = raw.loc[no_fp8, "8-bit inference"].idxmax()
    return Fp8Lead(first, ratio, growth, best_old, 1 / raw.loc[best_old, "8-bit inference"],
                   1 / raw.loc[best_old, "16-bit inference"])


POST_PICKS = dict(zip(METRICS, ["RTX 4070 Ti", "RTX 4070 Ti", "RTX 3080"]))  # the post's cost-effective picks


@dataclass(frozen=True)
class PicksReport:
    """gpu-12: the leaders of each metric at launch prices, and the price at which each of the
    post's picks would lead (L2 factor 1.5 and 2.0)."""

    leaders: dict[str, str]
    lines: list[str]
    train_factor: float   # the Ada/Hopper training L2 factor below which the RTX 3080 leads

    def summary(self) -> str:
        return "\n".join(self.lines + [
            f"16-bit training: the RTX 3080 leads at launch prices if the Ada/Hopper training L2 factor "
            f"is below {self.train_factor:.2f} (the post: 'for larger models the speedups are lower during "
            f"training')"])


def post_picks(specs, picks: dict[str, str] = POST_PICKS) -> PicksReport:
    """gpu-12: `ranking` and `price_to_lead` of the post's pick in each metric, and the training L2
    factor (`factor_to_lead`) at which the RTX 3080 leads 16-bit training."""
    leaders, lines = {}, []
    for metric, pick in picks.items():
        order = ranking(specs, metric)
        leaders[metric] = order[0]
        lead_at = [price_to_lead(specs, pick, metric, l2_factor=f) for f in POST_L2_FACTOR]
        where = ("leads" if order[0] == pick
                 else f"ranks {order.index(pick) + 1} of {len(order)} (first: {order[0]})")
        price_text = " and ".join("never" if math.isnan(p) else f"${p:,.0f}" for p in lead_at)
        lines.append(f"{metric}: the post's {pick} {where} at launch prices; it would lead at ≤ {price_text} "
                     f"(L2 factor 1.5 and 2.0; launch price ${specs.loc[pick, 'price_usd']:,.0f})")
    factor = min(factor_to_lead(specs, g, "RTX 3080", "16-bit training")
                 for g in specs.index if specs.loc[g, "architecture"] in LARGE_L2_ARCHITECTURES)
    return PicksReport(leaders, lines, factor)


@dataclass(frozen=True)
class PpdRatio:
    """gpu-14: the RTX 4070 Ti's 8-bit performance per dollar over the RTX 3090's at the post's L2
    factors 1.5 and 2.0, and the RTX 3090 prices at which the ratio is the post's 2×."""

    ratios: list[float]
    price_3090_2x: list[float]
    launch_3090: float

    def summary(self) -> str:
        return (f"RTX 4070 Ti / RTX 3090, 8-bit perf per dollar at launch prices: {self.ratios[0]:.2f}x "
                f"(L2 factor 1.5) to {self.ratios[1]:.2f}x (2.0); the post's 2x holds with an RTX 3090 at "
                f"${self.price_3090_2x[1]:,.0f} to ${self.price_3090_2x[0]:,.0f} (launch price "
                f"${self.launch_3090:,.0f}) and the RTX 4070 Ti at its launch price")


def ppd_ratio_4070ti_3090(specs) -> PpdRatio:
    """gpu-14: `chart_perf_per_dollar`'s 4070 Ti / 3090 ratio; perf/$ ∝ 1 / (price + extra), so the
    ratio falls to 2 when the 3090's total cost shrinks by r/2."""
    ratios = []
    for f in POST_L2_FACTOR:
        t = chart_perf_per_dollar(specs, l2_factor=f)
        ratios.append(float(t.loc["RTX 4070 Ti", "8-bit inference"] / t.loc["RTX 3090", "8-bit inference"]))
    total, _ = ownership_usd(specs)
    extra_3090 = total["RTX 3090"] - specs.loc["RTX 3090", "price_usd"]  # computer + electricity
    return PpdRatio(ratios, [2 * total["RTX 3090"] / r - extra_3090 for r in ratios],
                    specs.loc["RTX 3090", "price_usd"])


POST_NEEDS = {"image generation (12 GB)": 12, "transformers (24 GB)": 24, "servers (48 GB)": 48}


def decision_table(specs, needs: dict[str, float] = POST_NEEDS, top: int = 3):
    """gpu-22: the first `top` cards `decide` picks for each memory need (rows) and metric (columns)."""
    import pandas as pd

    return pd.DataFrame({metric: {need: ", ".join(decide(specs, gb, metric)[:top])
                                  for need, gb in needs.items()} for metric in METRICS})


def server_picks_hold(specs) -> bool:
    """gpu-22: at both of the post's L2 factors and in every metric, the RTX 6000 Ada is the first
    ≥ 48 GB card, and the H100 SXM and the L40 both rank above the RTX A6000."""
    ok = []
    for f in POST_L2_FACTOR:
        for metric in METRICS:
            order = decide(specs, 48, metric, l2_factor=f)
            ok.append(order[0] == "RTX 6000 Ada"
                      and max(order.index("H100 SXM5"), order.index("L40")) < order.index("RTX A6000"))
    return all(ok)


def fp8_span_within(span, bounds: tuple[float, float] = POST_FP8_TRAINING) -> bool:
    """gpu-18: every FP8 card's modelled ratio (`fp8_training_span`) within the post's 3–4×."""
    lo, hi = bounds
    return bool((span["min"] >= lo - 1e-9).all() and (span["max"] <= hi + 1e-9).all())


def bert_large_step(specs, card: str = "RTX 4090", utilisation: float = 0.55) -> TrainingStep:
    """gpu-19, gpu-20: the stated workload, BERT-large with 16×512 tokens per GPU on `card` at
    `utilisation` of its dense fp16 peak."""
    return TrainingStep(f"BERT-large, 16×512 tokens per GPU, {card} at {100 * utilisation:.0f} % of "
                        "its fp16 peak",
                        params=340e6, tokens_per_gpu=16 * 512,
                        tflops=utilisation * specs.loc[card, "fp16_tensor_tflops"])


def communication_table(step: TrainingStep, hidden: dict[str, float] | None = None):
    """gpu-19, gpu-20: PCIe generation and lanes (% slower) and two machines over a network
    (speed-up), with no overlap and with the backward pass covering 2/3 of the exchange."""
    import pandas as pd

    hidden = {"no overlap": 0.0, "backward covers it": 2 / 3} if hidden is None else hidden
    return pd.DataFrame({name: {
        "PCIe 4.0 x16 vs 5.0 x16 (% slower)": pcie_cost(step, hidden_fraction=h),
        "x4 vs x8 lanes, PCIe 4.0 (% slower)": pcie_cost(step, slow=(4, 4), fast=(4, 8), hidden_fraction=h),
        "two machines at 10 Gbit/s (speed-up)": two_machine_speedup(step, 10, hidden_fraction=h),
        "two machines at 50 Gbit/s (speed-up)": two_machine_speedup(step, 50, hidden_fraction=h)}
        for name, h in hidden.items()})


def describe_step(step: TrainingStep) -> str:
    """gpu-19, gpu-20: the step's compute and gradient size, and the network at which two machines
    break even and reach 1.5×."""
    return (f"{step.name}: {1000 * step.compute_s:.0f} ms of compute per step, "
            f"{step.gradient_bytes / 1e9:.2f} GB of gradients\n"
            f"two machines break even at {break_even_gbit(step):.0f} Gbit/s and reach 1.5x at "
            f"{break_even_gbit(step, 1.5):.0f} Gbit/s with no overlap")


def workload_memory_table():
    """gpu-21: parameters and GB of each of `WORKLOADS` in fp16, 8-bit and full Adam training."""
    import pandas as pd

    return pd.DataFrame([{"model": name, "params (B)": params / 1e9, "fp16 (GB)": memory_gb(params, 2),
                          "8-bit (GB)": memory_gb(params, 1),
                          "Adam training (GB)": memory_gb(params, TRAINING_BYTES_PER_PARAM)}
                         for name, (params, _source) in WORKLOADS.items()]).set_index("model")
