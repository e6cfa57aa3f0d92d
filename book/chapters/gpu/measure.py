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

from book.chapters.gpu.formats import prune_2_4
from book.chapters.gpu.specs import load_specs


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
    w = prune_2_4(torch.randn(n, n, device=dev, dtype=torch.float16, generator=g))
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
