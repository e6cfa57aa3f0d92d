"""Which GPU for deep learning: the models behind the advice, and measurements of this machine.

The post's charts are images whose data is not published, so this module rebuilds the reasoning as
small executable models whose inputs are in the open:

- the cycle model of a 32×32 matmul with and without Tensor Cores and async copies (`matmul_cycles`);
- the spec table of the GPUs the post discusses (`load_specs`, data file `gpu_specs.csv`, every row
  with the date and source of its numbers and of its price);
- bandwidth-ratio speedups, the batch-size and 8-GPU corrections, performance per dollar with five
  years of electricity, cloud-vs-desktop break-even and the recommendation as a decision function;
- BERT-large operand sizes against L2, and a simulated tiled matmul that counts global-memory loads;
- number formats (fp16 range, loss scaling, bf16, tf32), 2:4 sparsity;
- measurement helpers for the machine the notebook runs on: matmul throughput, STREAM-like
  bandwidth, the theoretical peak and the roofline they imply.
"""
from __future__ import annotations

import math
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

SPECS_FILE = Path(__file__).with_name("data_files") / "gpu_specs.csv"
HOURS_PER_YEAR = 24 * 365


# ---------------------------------------------------------------------------------------------
# gpu-1: the cycle model of a 32×32 matmul
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Latencies:
    """Latencies in cycles. Defaults are the post's Ampere figures. The post's worked example loads
    the tiles from global memory at `tile_load` = 200 cycles (its L2 figure; a true DRAM access is
    `global_memory` ≈ 380): the model keeps both so that a reader can try either."""

    global_memory: float = 380
    l2: float = 200
    shared: float = 34
    ffma: float = 4
    tensor_core: float = 1
    tile_load: float | None = None  # cycles of the global→shared tile load; None → the L2 figure

    def __post_init__(self) -> None:
        for name in ("global_memory", "l2", "shared", "ffma", "tensor_core"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"latency {name} must be a non-negative number, not {value!r}")
        if self.tile_load is not None and self.tile_load < 0:
            raise ValueError("tile_load must be non-negative")

    @property
    def load(self) -> float:
        return self.l2 if self.tile_load is None else self.tile_load


@dataclass(frozen=True)
class MatmulSetup:
    """The post's resources: a 32×32 matmul on 8 SMs with 8 warps each; 8 Tensor Cores per SM,
    each doing a 4×4 tile per cycle; `ffma_steps` sequential shared-load + FFMA rounds per warp
    (the post takes 8 and says why it is 8 is 'very technical': it is an input here)."""

    n: int = 32
    sms: int = 8
    tensor_cores_per_sm: int = 8
    tc_tile: int = 4
    ffma_steps: int = 8

    def __post_init__(self) -> None:
        for name in ("n", "sms", "tensor_cores_per_sm", "tc_tile", "ffma_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if self.n % self.tc_tile:
            raise ValueError(f"n={self.n} must be a multiple of the Tensor Core tile {self.tc_tile}")

    @property
    def tensor_core_rounds(self) -> int:
        """Sequential Tensor Core rounds: one op per 4×4 output tile, as the post counts
        ((32/4)² = 64 ops on 8×8 = 64 Tensor Cores → 1 round)."""
        ops = (self.n // self.tc_tile) ** 2
        return math.ceil(ops / (self.sms * self.tensor_cores_per_sm))


MATMUL_KINDS = ("ffma", "tensor_core", "tensor_core_async")


def matmul_cycles(kind: str, lat: Latencies = Latencies(), setup: MatmulSetup = MatmulSetup()) -> float:
    """Cycles of one tile of the post's matmul.

    - ``ffma``: load + ffma_steps × (shared + FFMA)                 (post: 200 + 8·34 + 8·4 = 504)
    - ``tensor_core``: load + shared + rounds × Tensor Core          (post: 200 + 34 + 1 = 235)
    - ``tensor_core_async``: the next tile's load overlaps the current tile's shared-memory and
      Tensor Core work, so only max(load − work, 0) is waited for (post: 165 + 34 + 1 = 200)."""
    if kind not in MATMUL_KINDS:
        raise ValueError(f"kind must be one of {MATMUL_KINDS}, not {kind!r}")
    if kind == "ffma":
        return lat.load + setup.ffma_steps * (lat.shared + lat.ffma)
    work = lat.shared + setup.tensor_core_rounds * lat.tensor_core
    if kind == "tensor_core":
        return lat.load + work
    return max(lat.load - work, 0.0) + work


def cycle_table(variants: dict[str, Latencies], setup: MatmulSetup = MatmulSetup()):
    """A DataFrame: one row per named latency set, cycles of each kind and the async gain."""
    import pandas as pd

    rows = []
    for name, lat in variants.items():
        c = {k: matmul_cycles(k, lat, setup) for k in MATMUL_KINDS}
        rows.append({"latencies": name, "load": lat.load, "shared": lat.shared, **c,
                     "tc_vs_ffma_x": c["ffma"] / c["tensor_core"],
                     "async_time_saved_pct": 100 * (1 - c["tensor_core_async"] / c["tensor_core"])})
    return pd.DataFrame(rows).set_index("latencies")


# ---------------------------------------------------------------------------------------------
# The spec table
# ---------------------------------------------------------------------------------------------
SPEC_COLUMNS = ("gpu", "architecture", "segment", "memory_bandwidth_gbs", "fp16_tensor_tflops",
                "fp8_tensor_tflops", "l2_mb", "l1_shared_kb_per_sm", "memory_gb", "tdp_w",
                "price_usd", "price_kind", "price_date", "price_source", "spec_date", "spec_source")
_REQUIRED = tuple(c for c in SPEC_COLUMNS if c != "fp8_tensor_tflops")  # fp8: blank where none
_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")


def load_specs(path: str | os.PathLike | None = None):
    """The spec table as a DataFrame indexed by GPU name; raises ValueError if a row lacks a number,
    a date or a source. Columns: bandwidth (GB/s), dense fp16 Tensor TFLOPS with fp32 accumulate,
    dense fp8 TFLOPS (fp16 accumulate; NaN where no fp8), L2 (MB), L1+shared per SM (KB), memory (GB),
    TDP (W), price (USD) with its kind, date and source, and the date and source of the specs."""
    import pandas as pd

    df = pd.read_csv(path or SPECS_FILE)
    missing_cols = [c for c in SPEC_COLUMNS if c not in df.columns]
    if missing_cols:
        raise ValueError(f"spec table lacks columns: {missing_cols}")
    problems = []
    for _, row in df.iterrows():
        for col in _REQUIRED:
            if pd.isna(row[col]) or str(row[col]).strip() == "":
                problems.append(f"{row['gpu']}: {col} is empty")
        for col in ("price_date", "spec_date"):
            if not pd.isna(row[col]) and not _DATE.match(str(row[col])):
                problems.append(f"{row['gpu']}: {col}={row[col]!r} is not YYYY-MM[-DD]")
    if df["gpu"].duplicated().any():
        problems.append("duplicate GPU names")
    if problems:
        raise ValueError("spec table: " + "; ".join(problems))
    return df.set_index("gpu")


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
# gpu-4: BERT-large matmul operands against L2
# ---------------------------------------------------------------------------------------------
def bert_large_matmuls(batch: int = 4, seq: int = 512, bytes_per_el: int = 2, hidden: int = 1024,
                       heads: int = 16, ffn: int = 4096):
    """Each distinct matmul of one BERT-large encoder layer's forward pass: its two input operands
    (activations and weights, or the two activations in attention) in MiB, at `batch`×`seq` tokens."""
    import pandas as pd

    for name, v in (("batch", batch), ("seq", seq), ("bytes_per_el", bytes_per_el)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, not {v!r}")
    t = batch * seq
    mib = bytes_per_el / 2**20
    rows = [  # name, left operand elements, right operand elements
        ("QKV projection", t * hidden, hidden * 3 * hidden),
        ("attention scores QKᵀ", t * hidden, t * hidden),  # all heads: Q and K
        ("attention × V", batch * heads * seq * seq, t * hidden),
        ("output projection", t * hidden, hidden * hidden),
        ("FFN up", t * hidden, hidden * ffn),
        ("FFN down", t * ffn, ffn * hidden),
    ]
    return pd.DataFrame([{"matmul": n, "left_MiB": a * mib, "right_MiB": b * mib,
                          "inputs_MiB": (a + b) * mib} for n, a, b in rows]).set_index("matmul")


# ---------------------------------------------------------------------------------------------
# gpu-5: tiled matmul, simulated global-memory traffic
# ---------------------------------------------------------------------------------------------
@dataclass
class TrafficCount:
    tile: int
    loads: int = 0      # elements read from global memory
    stores: int = 0     # elements written to global memory
    tile_loads: int = 0

    @property
    def total(self) -> int:
        return self.loads + self.stores


def tiled_matmul(a: np.ndarray | None, b: np.ndarray | None, tile: int, n: int | None = None,
                 cache_tiles: int = 0) -> tuple[np.ndarray | None, TrafficCount]:
    """Run a tiled matmul C = A·B (square, n divisible by `tile`) the way a GPU kernel does: for each
    output tile, loop over k, load the A tile and the B tile into 'shared memory', multiply, and
    store C once. Every tile load is counted; with `cache_tiles` > 0 an LRU cache of that many tiles
    (an L2 model) serves repeated loads without global traffic. With a and b None, only counts (n given)."""
    from collections import OrderedDict

    if a is not None:
        if a.ndim != 2 or a.shape[0] != a.shape[1] or b is None or b.shape != a.shape:
            raise ValueError("a and b must be square matrices of the same shape")
        n = a.shape[0]
    if not isinstance(n, int) or n < 1:
        raise ValueError("n must be a positive int (or give a and b)")
    if not isinstance(tile, int) or tile < 1 or n % tile:
        raise ValueError(f"tile={tile!r} must be a positive int that divides n={n}")
    count = TrafficCount(tile)
    cache: OrderedDict = OrderedDict()
    nt = n // tile
    c = np.zeros((n, n), dtype=np.float64) if a is not None else None

    def load(key):
        if cache_tiles:
            if key in cache:
                cache.move_to_end(key)
                return
            cache[key] = True
            if len(cache) > cache_tiles:
                cache.popitem(last=False)
        count.loads += tile * tile
        count.tile_loads += 1

    for i in range(nt):
        for j in range(nt):
            for k in range(nt):
                load(("A", i, k))
                load(("B", k, j))
                if c is not None:
                    si, sj, sk = (slice(x * tile, (x + 1) * tile) for x in (i, j, k))
                    c[si, sj] += a[si, sk] @ b[sk, sj]
            count.stores += tile * tile
    return c, count


# ---------------------------------------------------------------------------------------------
# gpu-6: number formats
# ---------------------------------------------------------------------------------------------
def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """fp32 → TF32 (10 explicit mantissa bits, fp32's exponent), round to nearest even, as the
    Tensor Cores see their inputs; returned as fp32. Used to emulate TF32 where there is no GPU."""
    if x.dtype != torch.float32:
        raise TypeError(f"round_to_tf32 takes float32, not {x.dtype}")
    bits = x.contiguous().view(torch.int32)
    drop = 13  # 23 → 10 mantissa bits
    lsb = (bits >> drop) & 1
    rounded = (bits + ((1 << (drop - 1)) - 1) + lsb) & ~((1 << drop) - 1)
    finite = torch.isfinite(x)
    return torch.where(finite, rounded.view(torch.float32), x)


def matmul_error_by_format(n: int = 256, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Relative Frobenius error of A·B against fp64 for fp32, tf32 (real on a GPU that allows it,
    emulated by rounding the inputs elsewhere), bf16 and fp16 inputs."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    b = torch.randn(n, n, generator=g, dtype=torch.float64)
    ref = a @ b
    dev = torch.device(device)

    def err(c):
        return float(torch.linalg.norm(c.double().cpu() - ref) / torch.linalg.norm(ref))

    a32, b32 = a.float().to(dev), b.float().to(dev)
    out = {}
    if dev.type == "cuda":
        prev = torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = False
            out["fp32"] = err(a32 @ b32)
            torch.backends.cuda.matmul.allow_tf32 = True
            out["tf32"] = err(a32 @ b32)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
    else:
        out["fp32"] = err(a32 @ b32)
        out["tf32 (emulated)"] = err(round_to_tf32(a32) @ round_to_tf32(b32))
    out["bf16"] = err(a32.bfloat16() @ b32.bfloat16())
    out["fp16"] = err(a32.half() @ b32.half())
    return out


def format_range_facts() -> dict:
    """What each dtype does with 65,504·2 (overflow) and 1e-8 (underflow), and their max values."""
    big, tiny = 65504.0 * 2, 1e-8
    facts = {}
    for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
        fi = torch.finfo(dt)
        facts[name] = {"max": float(fi.max), "smallest_subnormal": float(fi.smallest_normal * fi.eps),
                       "2x65504": float(torch.tensor(big, dtype=dt)),
                       "1e-8": float(torch.tensor(tiny, dtype=dt))}
    return facts


class DynamicLossScaler:
    """Loss scaling as mixed-precision training does it: multiply the loss by `scale` before backward;
    if any gradient overflowed (inf/nan), skip the step and halve the scale; after `growth_interval`
    clean steps, double it."""

    def __init__(self, init_scale: float = 2.0**16, growth_interval: int = 50) -> None:
        if init_scale <= 0 or growth_interval < 1:
            raise ValueError("init_scale must be positive and growth_interval ≥ 1")
        self.scale = float(init_scale)
        self.growth_interval = growth_interval
        self._clean = 0
        self.skipped = 0

    def update(self, found_inf: bool) -> bool:
        """Record one step; return True when the step should be applied."""
        if found_inf:
            self.scale /= 2
            self._clean = 0
            self.skipped += 1
            return False
        self._clean += 1
        if self._clean % self.growth_interval == 0:
            self.scale *= 2
        return True


def deep_sigmoid_mlp(depth: int = 8, width: int = 64, seed: int = 0) -> torch.nn.Sequential:
    """A deep sigmoid MLP for MNIST: the classic vanishing-gradient net (σ' ≤ 1/4 per layer), whose
    first-layer gradients are small enough to fall under fp16's smallest subnormal (6e-8)."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Flatten(), torch.nn.Linear(784, width), torch.nn.Sigmoid()]
    for _ in range(depth - 2):
        layers += [torch.nn.Linear(width, width), torch.nn.Sigmoid()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


PRECISION_MODES = ("fp32", "fp16", "fp16+loss scaling", "bf16")


class torch_threads:
    """Run a block with `n` torch threads (then restore): a small net's ops are too short to gain
    from a thread pool, and on a busy machine the pool's synchronisation costs far more than it gives."""

    def __init__(self, n: int = 1) -> None:
        self.n = n

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)
        return False


def train_low_precision(mode: str, x: torch.Tensor, y: torch.Tensor, *, steps: int = 100,
                        batch: int = 128, lr: float = 1e-3, seed: int = 0, depth: int = 8,
                        init_scale: float = 2.0**24, device: str | torch.device = "cpu") -> dict:
    """Mixed-precision training of `deep_sigmoid_mlp` on (x, y): fp32 master weights and Adam, the
    forward and backward pass in the mode's dtype; gradients are copied to fp32 (and unscaled) before
    the step. Returns per-step losses, the fraction of first-layer gradient entries that are exactly
    zero (mean, and per applied step), their median magnitude, the relative change of the first layer's weights, and the loss
    scaler's skipped steps and final scale."""
    if mode not in PRECISION_MODES:
        raise ValueError(f"mode must be one of {PRECISION_MODES}, not {mode!r}")
    if torch.device(device).type == "cpu":
        with torch_threads(1):
            return _train_low_precision(mode, x, y, steps=steps, batch=batch, lr=lr, seed=seed, depth=depth,
                                        init_scale=init_scale, device=device)
    return _train_low_precision(mode, x, y, steps=steps, batch=batch, lr=lr, seed=seed, depth=depth,
                                init_scale=init_scale, device=device)


def _train_low_precision(mode, x, y, *, steps, batch, lr, seed, depth, init_scale, device) -> dict:
    dev = torch.device(device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "fp16+loss scaling": torch.float16,
             "bf16": torch.bfloat16}[mode]
    master = deep_sigmoid_mlp(depth=depth, seed=seed).to(dev)
    work = deep_sigmoid_mlp(depth=depth, seed=seed).to(dev).to(dtype)
    opt = torch.optim.Adam(master.parameters(), lr=lr)
    scaler = DynamicLossScaler(init_scale) if mode == "fp16+loss scaling" else None
    g = torch.Generator().manual_seed(seed)
    losses, zero_frac, first_grad_abs = [], [], []
    first_init = next(master.parameters()).detach().clone()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g)
        xb, yb = x[idx].to(dev, dtype), y[idx].to(dev)
        with torch.no_grad():
            for pw, pm in zip(work.parameters(), master.parameters()):
                pw.copy_(pm.to(dtype))
        work.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(work(xb).float(), yb)
        scale = scaler.scale if scaler else 1.0
        (loss * scale).backward()
        grads = [p.grad.float() / scale for p in work.parameters()]
        found_inf = not all(bool(torch.isfinite(gr).all()) for gr in grads)
        apply = scaler.update(found_inf) if scaler else not found_inf
        if apply:
            for pm, gr in zip(master.parameters(), grads):
                pm.grad = gr
            opt.step()
            first = grads[0]
            zero_frac.append(float((first == 0).float().mean()))
            first_grad_abs.append(float(first.abs().median()))
        losses.append(loss.item())
    return {"mode": mode, "losses": losses, "first_layer_zero_frac": float(np.mean(zero_frac)) if zero_frac else float("nan"),
            "first_layer_grad_median": float(np.median(first_grad_abs)) if first_grad_abs else float("nan"),
            "first_layer_zero_steps": zero_frac,
            "first_layer_change": float((next(master.parameters()).detach() - first_init).norm() / first_init.norm()),
            "skipped": scaler.skipped if scaler else 0, "final_scale": scaler.scale if scaler else 1.0,
            "model": master}


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ---------------------------------------------------------------------------------------------
# gpu-7: 2:4 structured sparsity
# ---------------------------------------------------------------------------------------------
def prune_2_4(w: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest-magnitude entries of every group of 4 consecutive entries in each row."""
    if w.ndim != 2 or w.shape[1] % 4:
        raise ValueError(f"need a 2-D matrix whose columns are a multiple of 4, got shape {tuple(w.shape)}")
    groups = w.reshape(w.shape[0], -1, 4)
    keep = groups.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape_as(w)


def compress_2_4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The compressed form of a 2:4 matrix: the 2 kept values of each group (half the entries) and
    their 2-bit positions within the group (stored here as uint8 0..3)."""
    if w.ndim != 2 or w.shape[1] % 4:
        raise ValueError(f"need a 2-D matrix whose columns are a multiple of 4, got shape {tuple(w.shape)}")
    groups = w.reshape(w.shape[0], -1, 4)
    if int((groups != 0).sum(-1).max()) > 2:
        raise ValueError("matrix is not 2:4 sparse (a group of 4 has more than 2 non-zeros)")
    # positions of the two kept entries, in order (ties among zeros resolved by position)
    key = (groups != 0).to(torch.int8) * 8 - torch.arange(4)  # prefer non-zeros, then lower index
    idx = key.topk(2, dim=-1).indices.sort(dim=-1).values
    values = groups.gather(-1, idx).reshape(w.shape[0], -1)
    return values, idx.reshape(w.shape[0], -1).to(torch.uint8)


def decompress_2_4(values: torch.Tensor, index: torch.Tensor, cols: int) -> torch.Tensor:
    rows = values.shape[0]
    out = torch.zeros(rows, cols // 4, 4, dtype=values.dtype, device=values.device)
    out.scatter_(-1, index.reshape(rows, -1, 2).long(), values.reshape(rows, -1, 2))
    return out.reshape(rows, cols)


def compressed_size_ratio(w: torch.Tensor, metadata_bits: int = 2) -> dict:
    """Bytes of the compressed form over the dense matrix: values alone, and with the metadata."""
    values, _ = compress_2_4(w)
    dense = w.numel() * w.element_size()
    vals = values.numel() * values.element_size()
    meta = values.numel() * metadata_bits / 8
    return {"values_only": vals / dense, "with_metadata": (vals + meta) / dense}


def measure_sparse_speedup(n: int, device: torch.device, repeats: int = 10) -> dict:
    """On a GPU with 2:4 sparse Tensor Cores (compute capability ≥ 8.0): time a fp16 n×n matmul with
    a 2:4-pruned weight, dense and as torch's semi-structured sparse tensor; returns both times and
    the speedup. Raises RuntimeError where semi-structured sparsity is not available."""
    if device.type != "cuda":
        raise RuntimeError("2:4 sparse Tensor Cores need a CUDA GPU")
    if torch.cuda.get_device_capability(device) < (8, 0):
        raise RuntimeError("2:4 sparse Tensor Cores need compute capability 8.0 or newer")
    from torch.sparse import to_sparse_semi_structured

    g = torch.Generator(device=device).manual_seed(0)
    w = prune_2_4(torch.randn(n, n, device=device, dtype=torch.float16, generator=g))
    x = torch.randn(n, n, device=device, dtype=torch.float16, generator=g)
    ws = to_sparse_semi_structured(w)
    err = float((torch.mm(ws, x) - torch.mm(w, x)).abs().max())
    dense = time_fn(lambda: torch.mm(w, x), device, repeats=repeats, inner=10)
    sparse = time_fn(lambda: torch.mm(ws, x), device, repeats=repeats, inner=10)
    return {"n": n, "dense_s": dense, "sparse_s": sparse, "speedup": dense / sparse, "max_abs_diff": err}


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


def relative_performance(specs, precision: str = "16-bit", reference: str = "RTX 4090"):
    """The post's predictor: performance ∝ memory bandwidth (gpu-2). For 8-bit, cards with fp8 move
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
    """Relative performance per dollar of ownership: GPU price + its share of the computer + `years`
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
    specs = load_specs() if specs is None else specs
    bad = set(segments) - set(specs["segment"])
    if bad:
        raise ValueError(f"unknown segments: {sorted(bad)}")
    ok = (specs["memory_gb"] >= memory_gb) & (specs["price_usd"] <= budget_usd) & specs["segment"].isin(segments)
    if precision == "8-bit":
        ok &= specs["fp8_tensor_tflops"].notna()
    ranked = perf_per_dollar(specs, precision)
    return [g for g in ranked.index if ok[g]]


# ---------------------------------------------------------------------------------------------
# gpu-13: measuring this machine
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CpuPeak:
    model: str
    isa: str
    cores: int
    ghz: float
    flops_per_cycle: int  # fp32, per core
    assumption: str

    @property
    def gflops(self) -> float:
        return self.cores * self.ghz * self.flops_per_cycle


def cpu_peak(cpuinfo: str | None = None, cores: int | None = None) -> CpuPeak:
    """Theoretical fp32 peak = cores × clock × FLOPs per cycle of the widest vector ISA in the flags
    of /proc/cpuinfo. FLOPs per cycle assume two FMA pipes (true of Intel Skylake-SP and later server
    parts and of AMD Zen 2-4): AVX-512+FMA 2×16×2 = 64 (Zen 4 splits 512-bit ops, so its real figure
    is 32), AVX2+FMA 2×8×2 = 32, AVX without FMA 8×2 = 16 (one add + one mul pipe), SSE 4×2 = 8.
    The clock is the 'cpu MHz' of /proc/cpuinfo (nominal or current; turbo may exceed it). Cores are
    the physical cores this process may use (logical CPUs / threads per core)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    def field(name):
        m = re.search(rf"^{name}\s*:\s*(.*)$", cpuinfo, re.M)
        return m.group(1).strip() if m else ""
    flags = set(field("flags").split())
    model = field("model name") or platform.processor() or platform.machine()
    mhz = float(field("cpu MHz") or 0) or 0.0
    if "avx512f" in flags and "fma" in flags:
        isa, fpc, note = "AVX-512 + FMA", 64, "2 FMA units × 16 fp32 lanes × 2 FLOPs"
    elif "avx2" in flags and "fma" in flags:
        isa, fpc, note = "AVX2 + FMA", 32, "2 FMA units × 8 fp32 lanes × 2 FLOPs"
    elif "avx" in flags:
        isa, fpc, note = "AVX", 16, "8 fp32 lanes × (1 add + 1 mul)"
    elif "sse2" in flags:
        isa, fpc, note = "SSE2", 8, "4 fp32 lanes × (1 add + 1 mul)"
    else:
        isa, fpc, note = "unknown", 0, "no x86 vector flags found: peak unknown"
    if cores is None:
        logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        siblings, per_socket = field("siblings"), field("cpu cores")
        tpc = int(siblings) // int(per_socket) if siblings and per_socket and int(per_socket) else 1
        cores = max(1, logical // max(tpc, 1))
    return CpuPeak(model, isa, cores, mhz / 1000, fpc, note)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], object], device: torch.device, *, repeats: int = 5, warmup: int = 2,
            inner: int = 1) -> float:
    """Median seconds of one call of `fn` over `repeats` timed blocks of `inner` calls each, after
    `warmup` calls; only the calls are inside the timed region (the device is synchronised at both
    ends; CUDA events on a GPU)."""
    if repeats < 1 or inner < 1 or warmup < 0:
        raise ValueError("repeats and inner must be ≥ 1, warmup ≥ 0")
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000 / inner)
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times.append((time.perf_counter() - t0) / inner)
    return statistics.median(times)


def measure_matmul(n: int, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", *,
                   repeats: int = 5, warmup: int = 2, tf32: bool | None = None, seed: int = 0) -> dict:
    """GFLOP/s of an n×n·n×n `torch.matmul` (2n³ FLOPs) into a preallocated output. `tf32` sets
    torch.backends.cuda.matmul.allow_tf32 for fp32 on a GPU (None leaves it as it is)."""
    dev = torch.device(device)
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, not {n!r}")
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g).to(dev, dtype)
    b = torch.randn(n, n, generator=g).to(dev, dtype)
    out = torch.empty(n, n, dtype=dtype, device=dev)
    prev = torch.backends.cuda.matmul.allow_tf32
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    try:
        inner = max(1, min(50, int(2e8 // (2 * n**3)))) if dev.type == "cpu" else max(1, int(1e11 // (2 * n**3)))
        secs = time_fn(lambda: torch.matmul(a, b, out=out), dev, repeats=repeats, warmup=warmup, inner=inner)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return {"n": n, "dtype": str(dtype).replace("torch.", "") + ("+tf32" if tf32 else ""),
            "seconds": secs, "gflops": 2 * n**3 / secs / 1e9,
            "intensity": 2 * n**3 / (3 * n * n * a.element_size())}


def measure_fp8_matmul(n: int, device: torch.device, repeats: int = 5) -> dict | None:
    """fp8 (e4m3) GFLOP/s with torch._scaled_mm on GPUs that support it (compute capability ≥ 8.9);
    None where fp8 matmul is not available."""
    if device.type != "cuda" or not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return None
    if torch.cuda.get_device_capability(device) < (8, 9):
        return None
    a = torch.randn(n, n, device=device).to(torch.float8_e4m3fn)
    b = torch.randn(n, n, device=device).to(torch.float8_e4m3fn).t()  # column-major as _scaled_mm wants
    one = torch.ones((), device=device)
    try:
        secs = time_fn(lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16),
                       device, repeats=repeats, inner=10)
    except (RuntimeError, TypeError):
        return None
    return {"n": n, "dtype": "float8_e4m3fn", "seconds": secs, "gflops": 2 * n**3 / secs / 1e9,
            "intensity": 2 * n**3 / (3 * n * n * 1)}


def stream_bandwidth(n_bytes: int = 64 * 2**20, device: str | torch.device = "cpu", *,
                     repeats: int = 5, dtype: torch.dtype = torch.float32) -> dict[str, float]:
    """STREAM-like GB/s in torch on arrays of `n_bytes` each: copy (b = a: 2 arrays moved),
    scale (b = s·a: 2), add (c = a + b: 3), triad (a = b + s·c: 3). Counts bytes as STREAM does
    (no write-allocate traffic), so a cache-resident array overstates DRAM bandwidth: choose n_bytes
    well above the last-level cache."""
    dev = torch.device(device)
    n = n_bytes // torch.tensor([], dtype=dtype).element_size()
    if n < 1:
        raise ValueError("n_bytes too small")
    a = torch.ones(n, dtype=dtype, device=dev)
    b = torch.full((n,), 2.0, dtype=dtype, device=dev)
    c = torch.zeros(n, dtype=dtype, device=dev)
    s = 3.0
    kernels = {
        "copy": (lambda: b.copy_(a), 2),
        "scale": (lambda: torch.mul(a, s, out=b), 2),
        "add": (lambda: torch.add(a, b, out=c), 3),
        "triad": (lambda: torch.add(b, c, alpha=s, out=a), 3),
    }
    out = {}
    for name, (fn, arrays) in kernels.items():
        secs = time_fn(fn, dev, repeats=repeats, warmup=1)
        out[name] = arrays * n * a.element_size() / secs / 1e9
    return out


def gpu_spec_for(name: str, specs=None):
    """The spec-table row whose GPU name best matches a device name (e.g. 'NVIDIA H100 80GB HBM3'
    → 'H100 SXM5'), or None."""
    specs = load_specs() if specs is None else specs
    norm = name.upper().replace("NVIDIA", "").replace("GEFORCE", "")
    best = None
    for gpu in specs.index:
        stem = gpu.upper().replace(" SXM5", "").replace(" SXM4 40GB", "").replace(" SXM2", "").replace(" 12GB", "")
        if stem in norm and (best is None or len(stem) > len(best[1])):
            best = (gpu, stem)
    if best is None:
        return None
    if best[0].startswith("H100"):  # SXM (HBM3) vs PCIe (HBM2e)
        return specs.loc["H100 PCIe" if "PCIE" in norm else "H100 SXM5"]
    return specs.loc[best[0]]


def roofline(intensity: np.ndarray | float, peak_gflops: float, bandwidth_gbs: float) -> np.ndarray:
    """Attainable GFLOP/s = min(peak, intensity × bandwidth)."""
    if peak_gflops <= 0 or bandwidth_gbs <= 0:
        raise ValueError("peak and bandwidth must be positive")
    return np.minimum(peak_gflops, np.asarray(intensity, dtype=float) * bandwidth_gbs)


def describe_cpu_peak(peak: CpuPeak) -> str:
    return (f"{peak.model}: {peak.isa}; {peak.cores} cores × {peak.ghz:.2f} GHz × {peak.flops_per_cycle} "
            f"fp32 FLOPs/cycle ({peak.assumption}) = {peak.gflops:.0f} GFLOP/s theoretical peak")
