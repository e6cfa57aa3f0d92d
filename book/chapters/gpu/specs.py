"""The spec table of the GPUs the post discusses, and the arithmetic on it: bandwidth speedups and
their corrections (gpu-2, gpu-3), power and electricity (gpu-9 … gpu-11), cloud against desktop,
performance per dollar and the recommendation as a decision function (gpu-12, gpu-14)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from book.chapters.gpu.memory import BERT_BASE, fits_l2_up_to_tokens
from book.core.tables import gpu_specs_frame

HOURS_PER_YEAR = 24 * 365

# the spec table's columns named short, so its two halves fit the page
SHORT_COLUMNS = {"architecture": "arch", "memory_bandwidth_gbs": "GB/s", "fp16_tensor_tflops": "fp16 TFLOPS",
                 "fp8_tensor_tflops": "fp8 TFLOPS", "l2_mb": "L2 MB", "l1_shared_kb_per_sm": "L1/shared KB",
                 "memory_gb": "mem GB", "tdp_w": "TDP W", "price_usd": "price USD",
                 "price_kind": "price kind", "price_date": "price date"}


def spec_tables(specs):
    """The spec table (`book.core.tables.gpu_specs_frame`) as the page shows it: the hardware
    columns, and the power and price columns, each with short names."""
    hardware = specs[["architecture", "memory_bandwidth_gbs", "fp16_tensor_tflops", "fp8_tensor_tflops",
                      "l2_mb", "l1_shared_kb_per_sm", "memory_gb"]].rename(columns=SHORT_COLUMNS)
    return hardware, specs[["tdp_w", "price_usd", "price_date", "price_kind"]].rename(columns=SHORT_COLUMNS)


# ---------------------------------------------------------------------------------------------
# gpu-2, gpu-3: speedup estimates and their corrections
# ---------------------------------------------------------------------------------------------
def bandwidth_speedup(specs, new: str, old: str) -> float:
    """The post's first estimate: the ratio of memory bandwidths."""
    for name in (new, old):
        if name not in specs.index:
            raise KeyError(f"{name!r} is not in the spec table")
    return float(specs.loc[new, "memory_bandwidth_gbs"] / specs.loc[old, "memory_bandwidth_gbs"])


BATCH_DOUBLING_GAIN = {"cnn": 0.136, "transformer": 0.135}  # post: NVIDIA's data / RTX Titan
EIGHT_GPU_OVERHEAD_GAIN = {"cnn": 0.05, "transformer": 0.07}  # post: NVLink 3 vs NVLink 2


def corrected_speedup(reported: float, *, batch_ratio: float = 1.0, eight_gpu: bool = False,
                      model: str = "transformer") -> float:
    """Turn a vendor speedup measured with a `batch_ratio`× larger batch (and, if `eight_gpu`, on
    8-GPU systems with better networking) into a same-batch single-GPU speedup: divide by
    (1 + gain)^log2(batch_ratio) and by (1 + 8-GPU overhead gain)."""
    if model not in BATCH_DOUBLING_GAIN:
        raise ValueError(f"model must be one of {tuple(BATCH_DOUBLING_GAIN)}, not {model!r}")
    if reported <= 0 or batch_ratio <= 0:
        raise ValueError("reported speedup and batch_ratio must be positive")
    out = reported / (1 + BATCH_DOUBLING_GAIN[model]) ** math.log2(batch_ratio)
    if eight_gpu:
        out /= 1 + EIGHT_GPU_OVERHEAD_GAIN[model]
    return out


def eight_gpu_scaling_other(scaling: float, model: str = "cnn") -> float:
    """If 8×A100 scales `scaling`× over one A100, 8×V100 (with `gain` more overhead) scales
    scaling / (1 + gain): the post's 7.00× → 6.67× for CNNs."""
    if model not in EIGHT_GPU_OVERHEAD_GAIN:
        raise ValueError(f"model must be one of {tuple(EIGHT_GPU_OVERHEAD_GAIN)}, not {model!r}")
    return scaling / (1 + EIGHT_GPU_OVERHEAD_GAIN[model])



# ---------------------------------------------------------------------------------------------
# gpu-8 … gpu-12: power, electricity, cloud vs desktop, perf per dollar
# ---------------------------------------------------------------------------------------------
# TOP500 number-one systems (Rmax, HPL in fp64, PFLOPS): list of November 2007 and November 2010.
TOP500_NUMBER_ONE = {
    2007: ("BlueGene/L (LLNL)", 0.4782, "TOP500 list, November 2007: Rmax 478.2 TFLOPS"),
    2010: ("Tianhe-1A (NSC Tianjin)", 2.566, "TOP500 list, November 2010: Rmax 2,566 TFLOPS"),
}


def electricity_kwh_per_year(watts: float, utilization: float) -> float:
    if watts < 0 or not 0 <= utilization <= 1:
        raise ValueError("watts must be ≥ 0 and utilization in [0, 1]")
    return watts * utilization * HOURS_PER_YEAR / 1000


def electricity_cost_per_year(watts: float, utilization: float, usd_per_kwh: float) -> float:
    if usd_per_kwh < 0:
        raise ValueError("usd_per_kwh must be ≥ 0")
    return electricity_kwh_per_year(watts, utilization) * usd_per_kwh


def power_limited_speed(tdp_w: float, limit_w, exponent: float = 3.0):
    """First-order DVFS model: dynamic power ∝ f·V² with V ∝ f, so P ∝ f³ and a compute-bound
    kernel's speed ∝ P^(1/3). Returns the speed at `limit_w` (a number or an array) relative to `tdp_w`."""
    limits = np.asarray(limit_w, dtype=float)
    if not (np.all(limits > 0) and np.all(limits <= tdp_w)):
        raise ValueError("need 0 < limit_w ≤ tdp_w")
    out = (limits / tdp_w) ** (1 / exponent)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class CloudVsDesktop:
    """The post's example: a $2,200 RTX 3090 desktop (350 W GPU + 100 W CPU) at $0.12/kWh against an
    AWS V100 on-demand instance at $2.14/h, both used 15 % of the time."""

    desktop_usd: float = 2200
    gpu_w: float = 350
    cpu_w: float = 100
    usd_per_kwh: float = 0.12
    cloud_usd_per_hour: float = 2.14
    utilization: float = 0.15

    def __post_init__(self) -> None:
        for name in ("desktop_usd", "gpu_w", "cpu_w", "usd_per_kwh", "cloud_usd_per_hour"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be ≥ 0")
        if not 0 < self.utilization <= 1:
            raise ValueError("utilization must be in (0, 1]")

    @property
    def kwh_per_year(self) -> float:
        return electricity_kwh_per_year(self.gpu_w + self.cpu_w, self.utilization)

    @property
    def electricity_per_year(self) -> float:
        return self.kwh_per_year * self.usd_per_kwh

    def desktop_cost(self, days) -> np.ndarray:
        return self.desktop_usd + self.electricity_per_year * np.asarray(days, dtype=float) / 365

    def cloud_cost(self, days) -> np.ndarray:
        return self.cloud_usd_per_hour * self.utilization * 24 * np.asarray(days, dtype=float)

    @property
    def break_even_days(self) -> float:
        """Days after which the desktop is cheaper (inf when the cloud never catches up)."""
        per_day = self.cloud_usd_per_hour * self.utilization * 24 - self.electricity_per_year / 365
        return math.inf if per_day <= 0 else self.desktop_usd / per_day

    def summary(self, utilizations: Sequence[float] = (0.05, 0.10, 0.15, 0.35, 0.60)) -> str:
        """gpu-10: the electricity, the two costs the post quotes, the break-even, and the break-even
        at other rates of use (the post's typical ones)."""
        return (f"{self.kwh_per_year:.1f} kWh/year = ${self.electricity_per_year:.2f}; cloud for 300 days "
                f"${float(self.cloud_cost(300)):,.0f}; desktop after a year "
                f"${float(self.desktop_cost(365)):,.0f}; "
                f"break-even {self.break_even_days:.0f} days\n"
                "break-even by utilisation (the post's typical rates): "
                + ", ".join(f"{u:.0%} {CloudVsDesktop(utilization=u).break_even_days:.0f} days"
                            for u in utilizations))

    def plot(self, days: int = 3 * 365, others: Sequence[float] = (0.05, 0.35)):
        """gpu-10: cumulative cost of desktop and cloud over `days`, also at the `others` rates of use."""
        import matplotlib.pyplot as plt

        t = np.arange(0, days + 1)
        fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
        ax.plot(t, self.desktop_cost(t), label="desktop: $2,200 + electricity")
        ax.plot(t, self.cloud_cost(t), label="cloud: $2.14/h × 15 %")
        for util, ls in zip(others, (":", "--")):
            other = CloudVsDesktop(utilization=util)
            ax.plot(t, other.cloud_cost(t), "C1", ls=ls, lw=1, label=f"cloud at {util:.0%} use")
            ax.plot(t, other.desktop_cost(t), "C0", ls=ls, lw=1, label=f"desktop at {util:.0%} use")
        ax.axvline(self.break_even_days, color="k", lw=0.8)
        ax.set_ylim(0, 6000); ax.set_xlabel("days"); ax.set_ylabel("cumulative cost (USD)")
        fig.legend(loc="outside lower center", ncols=3, fontsize=9)
        return fig


def plot_power_limit(tdp_w: float, measured_pct: float = 7.0):
    """gpu-9: the P ∝ f³ model's slowdown from 150 W up to `tdp_w`, with the post's measurement
    (`measured_pct` at 50 W below TDP; the RTX 2080 Ti in the post)."""
    import matplotlib.pyplot as plt

    limits_w = np.arange(150, tdp_w + 1, 10)
    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    ax.plot(limits_w, 100 * (1 - power_limited_speed(tdp_w, limits_w)), label="P ∝ f³ model")
    ax.plot([tdp_w - 50], [measured_pct], "ro", label="post's measurement (−50 W)")
    ax.set_xlabel("power limit (W), RTX 2080 Ti"); ax.set_ylabel("slowdown (%)")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=9)
    return fig


def relative_performance(specs, precision: str = "16-bit", reference: str = "RTX 4090"):
    """The bandwidth-only model (no L2 factor; the chapter's charts use
    `book.chapters.gpu.perfmodel`, which adds the factors the post states). Performance ∝ memory
    bandwidth (gpu-2). For 8-bit, cards with fp8 move
    half the bytes per element, so their 8-bit performance is twice their 16-bit; cards without fp8
    stay at their 16-bit figure (the post did not model 8-bit for them either). Normalised to
    `reference`."""
    if precision not in ("16-bit", "8-bit"):
        raise ValueError(f"precision must be '16-bit' or '8-bit', not {precision!r}")
    perf = specs["memory_bandwidth_gbs"].astype(float).copy()
    if precision == "8-bit":
        perf = perf * np.where(specs["fp8_tensor_tflops"].notna(), 2.0, 1.0)
    return perf / perf[reference]


SYSTEM_USD_PER_GPU = 1000.0  # share of the desktop/server around each GPU (stated assumption)


def perf_per_dollar(specs, precision: str = "16-bit", *, years: float = 5, usd_per_kwh: float = 0.175,
                    utilization: float = 0.15, system_usd_per_gpu: float = SYSTEM_USD_PER_GPU):
    """The bandwidth-only model's performance per dollar (with a $1,000 computer share; the chapter
    uses `perfmodel.chart_perf_per_dollar`, with the post's own desktop and L2 factor).
    Relative performance per dollar of ownership: GPU price + its share of the computer + `years`
    of electricity at the GPU's TDP and `utilization`. Returns a DataFrame sorted best first, with
    perf/$ normalised so the best card is 1."""
    import pandas as pd

    if years < 0:
        raise ValueError("years must be ≥ 0")
    perf = relative_performance(specs, precision)
    power = specs["tdp_w"].map(lambda w: electricity_cost_per_year(w, utilization, usd_per_kwh)) * years
    cost = specs["price_usd"] + system_usd_per_gpu + power
    ppd = perf / cost
    out = pd.DataFrame({"relative_perf": perf, "price_usd": specs["price_usd"],
                        "electricity_usd": power, "total_usd": cost, "memory_gb": specs["memory_gb"],
                        "perf_per_dollar": ppd / ppd.max(), "price_date": specs["price_date"],
                        "price_kind": specs["price_kind"]})
    return out.sort_values("perf_per_dollar", ascending=False)


def price_to_match(specs, card: str, rival: str, precision: str = "8-bit", **kw) -> float:
    """The price of `card` at which its perf/$ equals `rival`'s (everything else as in
    `perf_per_dollar`): below it, `card` is the more cost-effective."""
    t = perf_per_dollar(specs, precision, **kw)
    for name in (card, rival):
        if name not in t.index:
            raise KeyError(f"{name!r} is not in the spec table")
    rival_ppd = t.loc[rival, "relative_perf"] / t.loc[rival, "total_usd"]
    other = t.loc[card, "total_usd"] - t.loc[card, "price_usd"]
    return float(t.loc[card, "relative_perf"] / rival_ppd - other)


def recommend(memory_gb: float, precision: str, budget_usd: float, specs=None, *,
              segments: Sequence[str] = ("consumer", "workstation", "datacenter")) -> list[str]:
    """The recommendation chart as a decision function: the cards with at least `memory_gb` of memory,
    that support the asked precision natively ('8-bit' needs fp8 Tensor Cores; '16-bit' any card
    here), whose price fits `budget_usd`, ranked by performance per dollar for that precision.
    An empty list means nothing fits: raise the budget or lower the memory need."""
    if not isinstance(memory_gb, (int, float)) or memory_gb <= 0:
        raise ValueError(f"memory_gb must be a positive number, not {memory_gb!r}")
    if not isinstance(budget_usd, (int, float)) or budget_usd <= 0:
        raise ValueError(f"budget_usd must be a positive number, not {budget_usd!r}")
    if precision not in ("16-bit", "8-bit"):
        raise ValueError(f"precision must be '16-bit' or '8-bit', not {precision!r}")
    specs = gpu_specs_frame() if specs is None else specs
    bad = set(segments) - set(specs["segment"])
    if bad:
        raise ValueError(f"unknown segments: {sorted(bad)}")
    ok = (specs["memory_gb"] >= memory_gb) & (specs["price_usd"] <= budget_usd) & specs["segment"].isin(segments)
    if precision == "8-bit":
        ok &= specs["fp8_tensor_tflops"].notna()
    ranked = perf_per_dollar(specs, precision)
    return [g for g in ranked.index if ok[g]]


# ---------------------------------------------------------------------------------------------
# gpu-4: the post's table of shared memory and L2 per architecture; gpu-14: the post's ratios
# ---------------------------------------------------------------------------------------------
# The post's table (shared memory KB per SM / L2 MB) names a series per architecture; `cards` are the
# cards of that series in the spec table (Volta: the V100, the table's only Volta; the post's Titan V
# is not in it). The data-centre A100/H100, L40, RTX 6000 Ada and RTX A6000 are not in the post's table.
POST_L2_TABLE = {
    "Volta": {"series": "Titan V", "shared_kb": 128, "l2_mb": 6.0, "cards": ("V100 SXM2",)},
    "Turing": {"series": "RTX 20s", "shared_kb": 96, "l2_mb": 5.5, "cards": ("RTX 2080 Ti", "Titan RTX")},
    "Ampere": {"series": "RTX 30s", "shared_kb": 128, "l2_mb": 6.0,
               "cards": ("RTX 3090", "RTX 3080", "RTX 3070", "RTX 3060 12GB")},
    "Ada": {"series": "RTX 40s", "shared_kb": 128, "l2_mb": 72.0, "cards": ("RTX 4090", "RTX 4080", "RTX 4070 Ti")},
}


def post_ratios(specs, **kw) -> dict[str, float]:
    """The two ratios the post reads off its charts (gpu-14), computed from the spec table with the
    chapter's model (`perf_per_dollar`, `relative_performance`; `kw` passes on to the former):
    the RTX 4070 Ti's 8-bit performance per dollar over the RTX 3090's (post: ≈2×), and the RTX 4090's
    8-bit performance over the H100 SXM's (post: ≈0.33×)."""
    ppd = perf_per_dollar(specs, "8-bit", **kw)
    perf = relative_performance(specs, "8-bit")
    return {"ppd_4070ti_over_3090": float(ppd.loc["RTX 4070 Ti", "perf_per_dollar"] / ppd.loc["RTX 3090", "perf_per_dollar"]),
            "perf_4090_over_h100": float(perf["RTX 4090"] / perf["H100 SXM5"])}


@dataclass
class L2Fit:
    """gpu-4: for each card of the spec table, how many tokens of BERT-large's weight matmuls (input
    and weight together, fp16) its L2 holds; `series` is the post's table of shared memory and L2."""

    series: "object"  # DataFrame: the post's table against the spec table, per card
    limits: "object"  # DataFrame: L2, whether in the post's table, architecture, tokens, sequences

    @property
    def _post(self):
        return self.limits[self.limits["in the post's table"]]

    @property
    def ada_tokens(self):
        return self._post.loc[self._post["architecture"] == "Ada", "tokens that fit"]

    @property
    def other_tokens(self):
        return self._post.loc[self._post["architecture"] != "Ada", "tokens that fit"]

    @property
    def holds(self) -> bool:
        """Every RTX 40 card holds a 512-token sequence; no other card of the post's table any."""
        return bool(self.ada_tokens.min() >= 512 and self.other_tokens.max() == 0)

    @property
    def measured(self) -> list[int]:
        return [int(self.ada_tokens.min()), int(self.ada_tokens.max()), int(self.other_tokens.max())]

    def summary(self) -> str:
        outside = self.limits[~self.limits["in the post's table"] & (self.limits["tokens that fit"] > 0)]
        base_6mb = fits_l2_up_to_tokens(6.0, **BERT_BASE)
        return (f"every RTX 40 card holds them up to {int(self.ada_tokens.min())} tokens; no card of the "
                f"post's other series holds them at any batch (most: {int(self.other_tokens.max())} tokens)\n"
                "cards outside the post's table that hold them too: "
                + ", ".join(f"{g} ({int(t)} tokens)" for g, t in outside["tokens that fit"].items())
                + f"\nfor contrast, BERT-base's weight matmuls fit a 6 MB L2 up to {base_6mb} tokens")

    def plot(self):
        """Sequences of 512 tokens that fit each card's L2: RTX 40s, the post's other series, the rest."""
        import matplotlib.pyplot as plt

        shown = self.limits.sort_values("tokens that fit")
        colours = ["tab:orange" if a == "Ada" and p else "tab:blue" if p else "tab:gray"
                   for a, p in zip(shown["architecture"], shown["in the post's table"])]
        fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
        ax.barh(shown.index, shown["sequences of 512"], color=colours)
        for y, (card, seqs) in enumerate(shown["sequences of 512"].items()):
            if seqs == 0:
                in_table = shown.loc[card, "in the post's table"]
                ax.text(0.2, y, "none", va="center", fontsize=9, color="tab:blue" if in_table else "tab:gray")
        ax.set_xlabel("sequences of 512 tokens whose weight matmuls fit in L2 (fp16)")
        ax.set_title("BERT-large: input + weight of every weight matmul in L2")
        ax.text(0.98, 0.04,
                "orange: RTX 40s (Ada)\nblue: the post's other series\ngray: not in the post's table",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=9)
        return fig


def bert_l2_fit(specs) -> L2Fit:
    """gpu-4: the post's shared-memory/L2 table beside the spec table's numbers, and for every card
    the tokens of BERT-large's weight matmuls that fit its L2 (`fits_l2_up_to_tokens`)."""
    import pandas as pd

    series = pd.DataFrame([{"architecture": arch, "post's series": t["series"], "card": card,
                            "shared KB (post)": t["shared_kb"],
                            "shared KB": specs.loc[card, "l1_shared_kb_per_sm"],
                            "L2 MB (post)": t["l2_mb"], "L2 MB": specs.loc[card, "l2_mb"]}
                           for arch, t in POST_L2_TABLE.items() for card in t["cards"]]).set_index("card")
    in_post_table = list(series.index)
    limits = pd.DataFrame({"L2 MB": specs["l2_mb"],
                           "in the post's table": [g in in_post_table for g in specs.index],
                           "architecture": specs["architecture"],
                           "tokens that fit": [fits_l2_up_to_tokens(float(mb)) for mb in specs["l2_mb"]]})
    limits["sequences of 512"] = limits["tokens that fit"] / 512
    return L2Fit(series, limits)
