"""Measurements of the machine the notebook runs on (gpu-13; gpu-7's speed on a GPU): the derived
theoretical peak, matmul throughput, STREAM-like bandwidth, the roofline, and on a CUDA GPU the
Tensor Core dtypes and 2:4 sparse matmuls against fp32/dense, timed in interleaved trials."""
from __future__ import annotations

import os
import platform
import re
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from book.chapters.gpu.formats import torch_threads
from book.core import sparsity24
from book.core.tables import gpu_specs_frame


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
    bf16_flops_per_cycle: int = 0  # native bf16 dot products (AVX-512 BF16); 0: bf16 is emulated

    @property
    def gflops(self) -> float:
        return self.cores * self.ghz * self.flops_per_cycle

    @property
    def bf16_gflops(self) -> float:
        """bf16 peak, or NaN where the CPU has no native bf16 arithmetic (no roof to draw)."""
        return self.cores * self.ghz * self.bf16_flops_per_cycle if self.bf16_flops_per_cycle else float("nan")

    def per_core(self) -> "CpuPeak":
        from dataclasses import replace

        return replace(self, cores=1)


def cpu_peak(cpuinfo: str | None = None, cores: int | None = None, isa_cap: str | None = None) -> CpuPeak:
    """Theoretical fp32 peak = cores × clock × FLOPs per cycle of the widest vector ISA in the flags
    of /proc/cpuinfo, with two FMA pipes per core (Intel Skylake-SP and later server parts, AMD Zen
    2-5): AVX-512+FMA 2×16×2 = 64 — except AMD Zen 4 (family 25), which runs 512-bit FMAs on its two
    256-bit pipes: 32 —, AVX2+FMA 2×8×2 = 32, AVX without FMA 8×2 = 16 (one add + one mul pipe),
    SSE 4×2 = 8. With AVX-512 BF16 a bf16 dot product does two multiply-adds per fp32 lane, so the bf16
    peak is twice the fp32 one (Intel AMX is not modelled: no bf16 roof is claimed there). The clock
    is the 'cpu MHz' of /proc/cpuinfo, which boost clocks exceed. Cores are the physical cores this
    process may use (logical CPUs / threads per core).

    `isa_cap="AVX2"` caps the ISA at AVX2 + FMA (what the book's numerics profile lets torch, MKL and
    oneDNN use: `book.core.numerics`): a CPU with AVX-512 is then rated at 32 fp32 FLOPs per cycle
    and no native bf16, as its kernels run under the profile."""
    if isa_cap not in (None, "AVX2"):
        raise ValueError(f"isa_cap must be None or 'AVX2', not {isa_cap!r}")
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
    amd_zen4 = field("vendor_id") == "AuthenticAMD" and field("cpu family") == "25"
    if "avx512f" in flags and "fma" in flags and amd_zen4:
        isa, fpc, note = "AVX-512 + FMA (Zen 4)", 32, "512-bit FMAs on 2 × 256-bit pipes: 2 × 8 fp32 lanes × 2 FLOPs"
    elif "avx512f" in flags and "fma" in flags:
        isa, fpc, note = "AVX-512 + FMA", 64, "2 FMA units × 16 fp32 lanes × 2 FLOPs"
    elif "avx2" in flags and "fma" in flags:
        isa, fpc, note = "AVX2 + FMA", 32, "2 FMA units × 8 fp32 lanes × 2 FLOPs"
    elif "avx" in flags:
        isa, fpc, note = "AVX", 16, "8 fp32 lanes × (1 add + 1 mul)"
    elif "sse2" in flags:
        isa, fpc, note = "SSE2", 8, "4 fp32 lanes × (1 add + 1 mul)"
    else:
        isa, fpc, note = "unknown", 0, "no x86 vector flags found: peak unknown"
    bf16 = 2 * fpc if "avx512_bf16" in flags and "amx_bf16" not in flags else 0
    if isa_cap == "AVX2" and isa.startswith("AVX-512"):
        isa, fpc, note, bf16 = "AVX2 + FMA", 32, "2 FMA units × 8 fp32 lanes × 2 FLOPs (ISA capped by the profile)", 0
    if cores is None:
        logical = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        siblings, per_socket = field("siblings"), field("cpu cores")
        tpc = int(siblings) // int(per_socket) if siblings and per_socket and int(per_socket) else 1
        cores = max(1, logical // max(tpc, 1))
    return CpuPeak(model, isa, cores, mhz / 1000, fpc, note, bf16)


def profile_isa_cap() -> str | None:
    """'AVX2' where the book's numerics profile is in force (x86-64, not switched off), else None."""
    from book.core import numerics

    return "AVX2" if numerics.enabled() else None


def cpu_peak_under_profile(cpuinfo: str | None = None, cores: int | None = None) -> CpuPeak:
    """`cpu_peak` at the ISA this process's kernels may use: capped at AVX2 under the profile."""
    return cpu_peak(cpuinfo, cores, isa_cap=profile_isa_cap())


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
    specs = gpu_specs_frame() if specs is None else specs
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
    bf16 = (f"; native bf16 (AVX-512 BF16): {peak.bf16_gflops:.0f} GFLOP/s" if peak.bf16_flops_per_cycle
            else "; no native bf16 (emulated)")
    return (f"{peak.model}: {peak.isa}; {peak.cores} cores × {peak.ghz:.2f} GHz × {peak.flops_per_cycle} "
            f"fp32 FLOPs/cycle ({peak.assumption}) = {peak.gflops:.0f} GFLOP/s theoretical fp32 peak{bf16}")


# ---------------------------------------------------------------------------------------------
# Interleaved trials (book.core.timing): what the ledger's timed verdicts are computed from
# ---------------------------------------------------------------------------------------------
class NeedsCuda(RuntimeError):
    """A measurement that only a CUDA GPU (of a given compute capability) can make."""


def require_cuda(device: str | torch.device, what: str, capability: tuple[int, int] = (0, 0)) -> torch.device:
    """The device as a torch.device, or NeedsCuda — before any work — saying what needs which GPU."""
    dev = torch.device(device)
    if dev.type != "cuda":
        raise NeedsCuda(f"{what} needs a CUDA GPU; this run's device is {dev.type!r}")
    if not torch.cuda.is_available():
        raise NeedsCuda(f"{what} needs a CUDA GPU, and torch.cuda.is_available() is False here")
    have = torch.cuda.get_device_capability(dev)
    if have < capability:
        raise NeedsCuda(f"{what} needs compute capability {capability[0]}.{capability[1]} or newer; "
                        f"{torch.cuda.get_device_name(dev)} has {have[0]}.{have[1]}")
    return dev


def _inner_calls(n: int, dev: torch.device) -> int:
    # enough calls per timed sample that the clock's resolution and launch overheads do not matter
    return max(1, min(50, int(2e8 // (2 * n**3)))) if dev.type == "cpu" else max(1, min(50, int(2e12 // (2 * n**3))))


def matmul_rate_trials(sizes: dict[str, int], device: str | torch.device = "cpu", *, rounds: int = 7,
                       seed: int = 0, dtype: torch.dtype = torch.float32) -> dict[str, list[float]]:
    """GFLOP/s of n×n `torch.matmul`s (one per named size), timed in interleaved rounds
    (`book.core.timing.interleaved`): every round times each size once, in alternating order, so load
    that comes and goes hits all of them. Returns name -> one GFLOP/s figure per round."""
    from book.core.timing import interleaved

    dev = torch.device(device)
    if not sizes or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n in sizes.values()):
        raise ValueError(f"sizes must map names to positive ints, not {sizes!r}")
    g = torch.Generator().manual_seed(seed)
    fns, inner = {}, {}
    for name, n in sizes.items():
        a, b = (torch.randn(n, n, generator=g).to(dev, dtype) for _ in range(2))
        out = torch.empty(n, n, dtype=dtype, device=dev)
        inner[name] = _inner_calls(n, dev)

        def fn(a=a, b=b, out=out, k=inner[name]):
            for _ in range(k):
                torch.matmul(a, b, out=out)
        fns[name] = fn
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else None
    times = interleaved(fns, rounds, warmup=1, sync=sync)
    return {name: [2 * sizes[name] ** 3 * inner[name] / t / 1e9 for t in ts] for name, ts in times.items()}


def tensor_core_trials(n: int, device: str | torch.device, *, rounds: int = 7, seed: int = 0) -> dict[str, list[float]]:
    """On a CUDA GPU: seconds per n×n matmul in fp32 (TF32 off), tf32, bf16, fp16 and, where the GPU
    has fp8 Tensor Cores (compute capability ≥ 8.9) and torch has `_scaled_mm`, fp8 e4m3 — timed in
    interleaved rounds. Refuses (NeedsCuda) anywhere else, before any work."""
    from book.core.timing import interleaved

    dev = require_cuda(device, "Tensor Core throughput (tf32/bf16/fp16/fp8 against fp32)", (7, 0))
    g = torch.Generator().manual_seed(seed)
    a32, b32 = (torch.randn(n, n, generator=g).to(dev) for _ in range(2))
    inner = _inner_calls(n, dev)
    prev = torch.backends.cuda.matmul.allow_tf32

    def matmul(a, b, tf32):
        def fn():
            torch.backends.cuda.matmul.allow_tf32 = tf32
            for _ in range(inner):
                torch.matmul(a, b)
        return fn

    fns = {"fp32": matmul(a32, b32, False), "tf32": matmul(a32, b32, True)}
    if torch.cuda.get_device_capability(dev) >= (8, 0):
        fns["bf16"] = matmul(a32.bfloat16(), b32.bfloat16(), False)
    fns["fp16"] = matmul(a32.half(), b32.half(), False)
    if torch.cuda.get_device_capability(dev) >= (8, 9) and hasattr(torch, "_scaled_mm") and hasattr(torch, "float8_e4m3fn"):
        a8 = a32.to(torch.float8_e4m3fn)
        b8 = b32.to(torch.float8_e4m3fn).t().contiguous().t()  # column-major, as _scaled_mm wants
        one = torch.ones((), device=dev)
        try:
            torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)

            def fp8():
                for _ in range(inner):
                    torch._scaled_mm(a8, b8, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
            fns["fp8"] = fp8
        except (RuntimeError, TypeError) as err:  # an fp8 GPU whose torch build lacks the kernel
            print(f"fp8 matmul not available here: {err}")
    try:
        times = interleaved(fns, rounds, warmup=2, sync=lambda: torch.cuda.synchronize(dev))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    return {name: [t / inner for t in ts] for name, ts in times.items()}


def sparse_speedup_trials(n: int, device: str | torch.device, *, rounds: int = 9, seed: int = 0) -> dict:
    """On a GPU with 2:4 sparse Tensor Cores (compute capability ≥ 8.0): an n×n fp16 matmul with a
    2:4-pruned weight, dense and as torch's semi-structured sparse tensor, timed in interleaved
    rounds. Returns the per-round seconds of both and the largest difference of their results.
    Refuses (NeedsCuda) anywhere else, before any work."""
    from book.core.timing import interleaved

    dev = require_cuda(device, "2:4 sparse Tensor Core matmul", (8, 0))
    from torch.sparse import to_sparse_semi_structured

    g = torch.Generator(device=dev).manual_seed(seed)
    w = sparsity24.prune(torch.randn(n, n, device=dev, dtype=torch.float16, generator=g))
    x = torch.randn(n, n, device=dev, dtype=torch.float16, generator=g)
    ws = to_sparse_semi_structured(w)
    dense_out, sparse_out = torch.mm(w, x), torch.mm(ws, x)
    err = float((sparse_out.float() - dense_out.float()).abs().max() / dense_out.float().abs().max())
    inner = 10

    def dense():
        for _ in range(inner):
            torch.mm(w, x)

    def sparse():
        for _ in range(inner):
            torch.mm(ws, x)
    times = interleaved({"dense": dense, "sparse": sparse}, rounds, warmup=2, sync=lambda: torch.cuda.synchronize(dev))
    return {"n": n, "dense_s": [t / inner for t in times["dense"]], "sparse_s": [t / inner for t in times["sparse"]],
            "max_rel_diff": err}


def measure_sparse_speedup(n: int, device: torch.device, repeats: int = 10) -> dict:
    """The median speedup of `sparse_speedup_trials` (kept for older callers)."""
    r = sparse_speedup_trials(n, device, rounds=max(2, repeats))
    dense, sparse = statistics.median(r["dense_s"]), statistics.median(r["sparse_s"])
    return {"n": n, "dense_s": dense, "sparse_s": sparse, "speedup": dense / sparse, "max_abs_diff": r["max_rel_diff"]}


# ---------------------------------------------------------------------------------------------
# The chapter's measurements of this machine, one per claim
# ---------------------------------------------------------------------------------------------
@dataclass
class Machine:
    """gpu-13: the device this run measures and the peak it is judged against: on a GPU its
    spec-table row's dense fp16 Tensor TFLOPS and GB/s (None when the GPU is not in the table), on a
    CPU `cpu_peak_under_profile`."""

    device: torch.device
    cpu: CpuPeak | None = None
    gpu_name: str | None = None
    peak: dict | None = None   # GPU only: {"fp16 TFLOPS": ..., "GB/s": ...}, None values when unknown

    @property
    def core(self) -> CpuPeak | None:
        return None if self.cpu is None else self.cpu.per_core()

    def summary(self) -> str:
        if self.cpu is None:
            if self.peak["fp16 TFLOPS"] is None:
                return "the GPU's spec-table peaks: not in the spec table"
            return (f"the GPU's spec-table peaks: {self.peak['fp16 TFLOPS']} dense fp16 Tensor TFLOPS, "
                    f"{self.peak['GB/s']} GB/s")
        return (f"fp32 peak per core at the ISA this process may use ({self.cpu.isa}): "
                f"⟨{self.core.gflops:.0f}⟩ GFLOP/s ({self.cpu.flops_per_cycle} FLOPs/cycle at the "
                "reported clock)")


def this_machine(device: str | torch.device, specs=None) -> Machine:
    """gpu-13: the `Machine` of `device` (a CUDA GPU looked up in the spec table, else this CPU)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        row = gpu_spec_for(name, specs)
        return Machine(dev, gpu_name=name,
                       peak={"fp16 TFLOPS": None if row is None else row["fp16_tensor_tflops"],
                             "GB/s": None if row is None else row["memory_bandwidth_gbs"]})
    return Machine(dev, cpu=cpu_peak_under_profile())


@dataclass
class MatmulSweep:
    """gpu-13: matmul GFLOP/s per size and dtype (`measure_matmul`; fp8 on GPUs that have it) and
    STREAM-like bandwidth on one machine."""

    machine: Machine
    sizes: list[int]
    measured: "object"          # DataFrame: one row per (size, dtype)
    bandwidth: dict[str, float]  # STREAM kernel -> GB/s

    def table(self):
        """GFLOP/s, a row per size and a column per dtype."""
        return self.measured.pivot(index="n", columns="dtype", values="gflops").round(1)

    def stream_text(self) -> str:
        return "STREAM-like GB/s: " + ", ".join(f"{k} ⟨{v:.1f}⟩" for k, v in self.bandwidth.items())

    @property
    def roofs(self) -> dict[str, float]:
        """GFLOP/s roof per dtype: on a CPU the cores torch may use (one thread under the numerics
        profile), on a GPU the spec table's fp16 peak (NaN when unknown)."""
        cpu, core = self.machine.cpu, self.machine.core
        if cpu is not None:
            used = min(torch.get_num_threads(), cpu.cores)
            return {"fp32": core.gflops * used, "bf16": core.bf16_gflops * used}
        return {"fp16": (self.machine.peak["fp16 TFLOPS"] or float("nan")) * 1000}

    def plot_roofline(self):
        """The measured matmuls and STREAM triad on the roofline of the roofs and the best STREAM kernel."""
        import matplotlib.pyplot as plt

        roofs, bw = self.roofs, self.bandwidth
        bandwidth_gbs = max(bw.values())  # the best STREAM kernel: attainable bandwidth
        ai = np.logspace(-2, 3, 200)
        fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
        for (dt, roof), ls in zip(roofs.items(), ("-", "--")):
            if np.isfinite(roof):
                ax.loglog(ai, roofline(ai, roof, bandwidth_gbs), "k", ls=ls, lw=1,
                          label=f"{dt} roof: {roof:,.0f} GFLOP/s, {bandwidth_gbs:.1f} GB/s")
        for dt, grp in self.measured.groupby("dtype"):
            ax.loglog(grp["intensity"], grp["gflops"], "o", label=f"matmul {dt}")
        # the triad: 2 FLOPs per 12 bytes (fp32)
        ax.loglog([2 / 12], [2 * bw["triad"] / 12], "s", color="tab:red", label="STREAM triad")
        ax.set_xlabel("arithmetic intensity (FLOP/byte, operands moved once)"); ax.set_ylabel("GFLOP/s")
        ax.set_title(f"roofline of this run's device ({self.machine.device.type})")
        fig.legend(loc="outside right upper", fontsize=9)
        return fig

    def roof_summary(self) -> str:
        """Per dtype with a roof: the highest point against it and how many points lie above it."""
        lines = []
        for dt, grp in self.measured.groupby("dtype"):
            if np.isfinite(self.roofs.get(dt, float("nan"))):
                frac = grp["gflops"] / self.roofs[dt]
                lines.append(f"{dt}: highest point {frac.max():.2f}× its roof at the reported clock; "
                             f"{int((frac > 1).sum())} of {len(frac)} above it")
        return "\n".join(lines)


def matmul_sweep(machine: Machine, *, quick: bool = True, progress: bool = True,
                 sizes: list[int] | None = None, stream_bytes: int | None = None) -> MatmulSweep:
    """gpu-13: the sweep the roofline shows. On a GPU fp32, tf32, bf16, fp16 (and fp8) up to 4096²
    (16384² in full mode), 1 GiB STREAM arrays; on a CPU fp32 and bf16 up to 2048² (4096²), 128 MiB
    arrays, well above a typical last-level cache. Without native bf16 (AVX2) bf16 is emulated and
    ~100× slower, so only a few sizes run. `sizes` and `stream_bytes` override the defaults."""
    dev = machine.device
    if dev.type == "cuda":
        default = [1024, 2048, 4096] if quick else [1024, 2048, 4096, 8192, 16384]
        configs = [("fp32", torch.float32, False), ("tf32", torch.float32, True),
                   ("bf16", torch.bfloat16, None), ("fp16", torch.float16, None)]
        default_bytes = 1 << 30
    else:
        default = ([16, 64, 128, 256, 512, 1024, 2048] if quick
                   else [16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
        configs = [("fp32", torch.float32, None), ("bf16", torch.bfloat16, None)]
        default_bytes = 128 << 20
    sizes = default if sizes is None else list(sizes)
    stream_bytes = default_bytes if stream_bytes is None else stream_bytes
    if progress:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tqdm warns when ipywidgets is absent
            from tqdm.auto import tqdm
        configs = tqdm(configs, desc="matmul")
    results = []
    for label, dtype, tf32 in configs:
        for n in sizes:
            emulated = dev.type == "cpu" and dtype != torch.float32 and not machine.cpu.bf16_flops_per_cycle
            if emulated and (n > 256 or n == 128):
                continue
            r = measure_matmul(n, dtype, dev, repeats=3 if quick else 7, tf32=tf32)
            results.append({**r, "dtype": label})
    if dev.type == "cuda":
        for n in sizes:
            r = measure_fp8_matmul(n, dev)
            if r is not None:
                results.append({**r, "dtype": "fp8"})
    import pandas as pd

    bw = stream_bandwidth(stream_bytes, dev, repeats=3 if quick else 7)
    return MatmulSweep(machine, sizes, pd.DataFrame(results), bw)


@dataclass
class PeakFraction:
    """gpu-13: a large matmul's rate in interleaved rounds against the machine's roof: on a CPU one
    thread's fp32 against one core's derived peak (a thread pool on a shared machine waits for its
    slowest thread), on a GPU fp16 against the spec table's dense fp16 peak (`roof` None: unknown)."""

    n: int
    rounds: int
    trials: list[float]                   # GFLOP/s per round
    roof: float | None                    # GFLOP/s
    small: list[float] | None = None      # CPU only: the 64² matmul's GFLOP/s per round
    isa: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean(self.trials))

    @property
    def interval_estimate(self) -> tuple[float, float, float]:
        from book.core.timing import mean_interval

        return mean_interval(np.asarray(self.trials) / self.roof)

    @property
    def estimate(self) -> float:
        return self.interval_estimate[0]

    @property
    def interval(self) -> tuple[float, float]:
        return self.interval_estimate[1:]

    def summary(self) -> str:
        est, lo, hi = self.interval_estimate
        return (f"one thread, fp32 {self.n}², {self.rounds} interleaved rounds: {self.mean:.0f} "
                f"GFLOP/s = {est:.2f} [{lo:.2f}, {hi:.2f}] of one core's derived peak; 64²: "
                f"{np.mean(self.small):.0f} GFLOP/s")


def peak_fraction(machine: Machine, n: int, *, rounds: int = 7, seed: int = 0) -> PeakFraction:
    """gpu-13: `matmul_rate_trials` of an n² matmul against the roof of `machine` (see `PeakFraction`)."""
    dev = machine.device
    if dev.type == "cuda":
        trials = matmul_rate_trials({f"{n}²": n}, dev, rounds=rounds, seed=seed, dtype=torch.float16)[f"{n}²"]
        tflops = machine.peak["fp16 TFLOPS"]
        return PeakFraction(n, rounds, trials, None if tflops is None else tflops * 1000)
    with torch_threads(1):
        trials = matmul_rate_trials({f"{n}²": n, "64²": 64}, dev, rounds=rounds, seed=seed)
    isa = (f"{machine.cpu.isa} (the ISA the numerics profile lets MKL use)" if profile_isa_cap()
           else "this CPU's widest vector ISA (no numerics profile: see the status page)")
    return PeakFraction(n, rounds, trials[f"{n}²"], machine.core.gflops, trials["64²"], isa)


@dataclass
class SpeedupIntervals:
    """gpu-16 / gpu-7: paired-ratio intervals (estimate, low, high) of timed variants against a baseline."""

    n: int
    speedups: dict[str, tuple[float, float, float]]
    baseline: str
    max_rel_diff: float | None = None

    def summary(self) -> str:
        if self.max_rel_diff is not None:  # 2:4 sparse against dense
            est, lo, hi = self.speedups["sparse"]
            return (f"2:4 sparse over dense at {self.n}²: {est:.2f}x [{lo:.2f}, {hi:.2f}]; results "
                    f"differ by {self.max_rel_diff:.1e} (relative)")
        return "\n".join(f"{k} over {self.baseline} at {self.n}²: {e:.2f}x [{lo:.2f}, {hi:.2f}]"
                         for k, (e, lo, hi) in self.speedups.items())


def tensor_core_speedups(n: int, device: str | torch.device, *, rounds: int = 7,
                         seed: int = 0) -> SpeedupIntervals:
    """gpu-16: `tensor_core_trials` as speed-ups over fp32 with their intervals (NeedsCuda off a GPU)."""
    from book.core.timing import paired_ratio_interval

    tc = tensor_core_trials(n, device, rounds=rounds, seed=seed)
    return SpeedupIntervals(n, {k: paired_ratio_interval(v, tc["fp32"])
                                for k, v in tc.items() if k != "fp32"}, "fp32")


def sparse_speedup(n: int, device: str | torch.device, *, rounds: int = 9, seed: int = 0) -> SpeedupIntervals:
    """gpu-7: `sparse_speedup_trials` as the sparse-over-dense speed-up with its interval (NeedsCuda
    off a GPU with sparse Tensor Cores)."""
    from book.core.timing import paired_ratio_interval

    sp = sparse_speedup_trials(n, device, rounds=rounds, seed=seed)
    speedup = paired_ratio_interval(sp["sparse_s"], sp["dense_s"])
    return SpeedupIntervals(sp["n"], {"sparse": speedup}, "dense", sp["max_rel_diff"])
