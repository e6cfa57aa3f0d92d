"""Quantization as in LLM.int8(): absmax and zero-point codes, vector-wise int8 matrix
multiplication with int32 accumulation, the mixed-precision outlier decomposition, and the
4/8-bit integer and float formats the post compares.

Conventions
- ``absmax_quantize(x, bits, dim)``: codes = round(x / scale) with scale = absmax / (2**(bits-1) - 1).
  ``dim=None`` is one constant for the tensor; ``dim=d`` is one constant per vector *along* ``d``
  (the absmax is taken over ``d``): rows of A are ``dim=1``, columns of B are ``dim=0``.
- Integer products are exact: ``backend="int_mm"`` is ``torch._int_mm`` (int8 x int8 -> int32, the
  real GEMM on GPUs); ``backend="exact-float"`` multiplies the same int8 codes with float32 GEMMs
  over chunks of K short enough (<= 1040) that every partial sum is an exactly representable
  integer (< 2**24), adding the chunks in float64, so it returns the very integers an int32
  accumulator would.
  ``"auto"`` uses ``_int_mm`` on CUDA, and on a CPU where it is a real int8 GEMM (torch 2.13 with
  AVX-512 VNNI: about 4x faster than a float32 matmul of the same size, benchmarks/bench_quant.py);
  where it is only a scalar reference loop (AVX2 CPUs: ~450x slower) it uses exact-float. A small
  timing probe decides once per process. Both backends give the same integers (tested).
- The 16-bit half of the decomposition multiplies float16-rounded inputs with float32 accumulation
  (what fp16 tensor cores do); on CPU, where float16 GEMMs are emulated and slow, the float16
  values are multiplied in float32, which is exact for the products (11 x 11 mantissa bits).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

INT32_MAX = 2**31 - 1
EXACT_FP32_CHUNK = (2**24 - 1) // 127**2   # 1040: K up to this keeps int8 dot products exact in float32


# --- input checks -----------------------------------------------------------------------------
def _check_tensor(x, name: str = "x", finite: bool = True) -> torch.Tensor:
    """Type, emptiness and (unless the caller checks its absmax instead) finiteness of `x`."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, not {type(x).__name__}")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); nothing to quantize")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, not {x.dtype}")
    if finite:
        _check_finite(x, name)
    return x


def _check_finite(x: torch.Tensor, name: str = "x") -> None:
    # amax propagates nan and inf, so checking a tensor's absmax (small) checks the whole tensor
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} holds non-finite values (inf or nan); absmax would be meaningless")


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise TypeError(f"bits must be an int, not {type(bits).__name__}")
    if not 2 <= bits <= 8:
        raise ValueError(f"bits must be between 2 and 8 (codes are stored as int8), got {bits}")
    return bits


def _check_dim(dim, x: torch.Tensor):
    if dim is None:
        return None
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise TypeError(f"dim must be None or an int, not {type(dim).__name__}")
    if not -x.dim() <= dim < x.dim():
        raise ValueError(f"dim {dim} is out of range for a tensor with {x.dim()} dimensions")
    return dim


def qmax(bits: int) -> int:
    """The largest symmetric code: 127 for 8 bits, 7 for 4 bits."""
    return 2 ** (_check_bits(bits) - 1) - 1


# --- absmax (symmetric) quantization ----------------------------------------------------------
def absmax_quantize(x: torch.Tensor, bits: int = 8, dim: int | None = None):
    """Symmetric absmax quantization -> (int8 codes, float32 scale); x ≈ codes * scale.

    ``dim=None``: one scale for the tensor; ``dim=d``: one scale per vector along ``d`` (the scale
    keeps ``d`` as a size-1 dimension so that it broadcasts). An all-zero vector gets scale 1."""
    _check_tensor(x, finite=False)
    q = qmax(bits)
    dim = _check_dim(dim, x)
    codes, scale = _absmax_codes(x.float(), q, dim)
    return codes.to(torch.int8), scale


def _absmax(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """max |x| (over `dim`, kept), as max(max x, -min x): no |x| temporary (and amax/amin are
    several times faster than aminmax on the CPU); nan and inf propagate."""
    if dim is None:
        return torch.maximum(x.amax(), -x.amin())
    return torch.maximum(x.amax(dim=dim, keepdim=True), -x.amin(dim=dim, keepdim=True))


def _absmax_codes(xf: torch.Tensor, q: int, dim: int | None):
    """Integer-valued float32 codes round(x / scale) and the scale; the finiteness check rides on
    the absmax, not on a pass over x."""
    absmax = _absmax(xf, dim)
    _check_finite(absmax)
    scale = torch.where(absmax > 0, absmax / q, torch.ones_like(absmax))
    codes = torch.div(xf, scale).round_().clamp_(-q, q)
    return codes, scale


def dequantize(codes: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """codes * scale in float32 (the scale broadcasts as returned by the quantizer)."""
    if not isinstance(codes, torch.Tensor) or not isinstance(scale, torch.Tensor):
        raise TypeError("codes and scale must be tensors")
    try:
        return codes.float() * scale.float()
    except RuntimeError as err:
        raise ValueError(f"scale of shape {tuple(scale.shape)} does not broadcast to codes of shape "
                         f"{tuple(codes.shape)}") from err


# --- the post's toy: quantize from one integer grid to another ---------------------------------
def _nearest_on_grid(values: torch.Tensor, grid: torch.Tensor, rounding: str) -> torch.Tensor:
    if rounding == "nearest":  # ties go to the larger grid value, as the post's 1.5 -> 2
        dist = (values[..., None] - grid).abs()
        best = dist.min(dim=-1, keepdim=True).values
        candidates = torch.where(dist <= best + 1e-12, grid.expand_as(dist), torch.full_like(dist, -math.inf))
        return candidates.max(dim=-1).values
    if rounding == "floor":  # the largest grid value not above the input (toward zero for x >= 0)
        below = torch.where(grid <= values[..., None] + 1e-12, grid.expand(*values.shape, -1),
                            torch.full((*values.shape, grid.numel()), -math.inf, dtype=values.dtype))
        return below.max(dim=-1).values
    raise ValueError(f"rounding must be 'nearest' or 'floor', not {rounding!r}")


def grid_quantize(x: torch.Tensor, target_grid, rounding: str = "nearest"):
    """The post's recipe: divide by the absmax, multiply by the target's range, round to a value
    of the target grid. Returns (grid values, absmax)."""
    x = _check_tensor(torch.as_tensor(x, dtype=torch.float64), "x")
    grid = torch.as_tensor(target_grid, dtype=torch.float64).flatten()
    if grid.numel() < 2:
        raise ValueError("target_grid needs at least two values")
    absmax = x.abs().max()
    if absmax == 0:
        raise ValueError("x is all zeros; its absmax cannot normalize it")
    normalized = x / absmax * grid.abs().max()
    return _nearest_on_grid(normalized, grid.sort().values, rounding), absmax


def grid_dequantize(codes: torch.Tensor, absmax, target_grid, source_grid=None) -> torch.Tensor:
    """Reverse the recipe: divide by the target's range, multiply by the absmax, and (when
    ``source_grid`` is given) round to the nearest source value, as the post's "round again"."""
    grid = torch.as_tensor(target_grid, dtype=torch.float64).flatten()
    values = torch.as_tensor(codes, dtype=torch.float64) / grid.abs().max() * float(absmax)
    if source_grid is None:
        return values
    source = torch.as_tensor(source_grid, dtype=torch.float64).flatten().sort().values
    return _nearest_on_grid(values, source, "nearest")


# --- zero-point (asymmetric) quantization and the cost of dependent constants -----------------
def zeropoint_quantize(x: torch.Tensor, bits: int = 8, dim: int | None = None):
    """Asymmetric quantization -> (codes 0..2**bits-1 as int16, scale, minimum); x ≈ codes*scale + minimum."""
    _check_tensor(x)
    levels = 2 ** _check_bits(bits) - 1
    dim = _check_dim(dim, x)
    xf = x.float()
    lo = xf.amin() if dim is None else xf.amin(dim=dim, keepdim=True)
    hi = xf.amax() if dim is None else xf.amax(dim=dim, keepdim=True)
    scale = torch.where(hi > lo, (hi - lo) / levels, torch.ones_like(lo))
    codes = torch.round((xf - lo) / scale).clamp_(0, levels).to(torch.int16)
    return codes, scale, lo


def zeropoint_dequantize(codes, scale, minimum) -> torch.Tensor:
    return codes.float() * scale + minimum


def zeropoint_expansion(A: torch.Tensor, B: torch.Tensor, min_a: float, min_b: float) -> torch.Tensor:
    """(A - minA)(B - minB) written as AB - minB·A·J - minA·J·B + minA·minB·J·J (J all ones): the
    post's expansion with the all-ones matrices it leaves implicit (J·J = K·J)."""
    _check_matmul(A, B)
    k = A.shape[1]
    row_sums = A.sum(dim=1, keepdim=True)   # A·J
    col_sums = B.sum(dim=0, keepdim=True)   # J·B
    return A @ B - min_b * row_sums - min_a * col_sums + min_a * min_b * k


def zeropoint_matmul(A: torch.Tensor, B: torch.Tensor, bits: int = 8):
    """A @ B with A row-wise and B column-wise zero-point quantized. The integer product of the
    codes alone is not enough: the dependent constants add a row-sum, a column-sum and two
    outer-product corrections. Returns (C, extra_ops) where extra_ops counts those additional
    multiply/adds (the symmetric vector-wise scheme needs only the n·m scale products)."""
    _check_matmul(A, B)
    n, k = A.shape
    m = B.shape[1]
    qa, sa, ma = zeropoint_quantize(A, bits, dim=1)   # (n,k), (n,1), (n,1)
    qb, sb, mb = zeropoint_quantize(B, bits, dim=0)   # (k,m), (1,m), (1,m)
    qa64, qb64 = qa.double(), qb.double()
    sa, ma, sb, mb = sa.double(), ma.double(), sb.double(), mb.double()
    core = qa64 @ qb64                                  # integer codes product
    row = qa64.sum(dim=1, keepdim=True)                 # (n,1): J applied to A's codes
    col = qb64.sum(dim=0, keepdim=True)                 # (1,m)
    C = sa * sb * core + (sa * row) * mb + ma * (sb * col) + k * ma * mb
    extra_ops = n * k + k * m + 3 * n * m
    return C.float(), extra_ops


# --- int8 matrix multiplication -----------------------------------------------------------------
def _check_matmul(A, B):
    for name, t in (("A", A), ("B", B)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, not {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must be a matrix (2-D), got shape {tuple(t.shape)}")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"cannot multiply A {tuple(A.shape)} by B {tuple(B.shape)}: inner sizes "
                         f"{A.shape[1]} and {B.shape[0]} differ")
    _check_tensor(A, "A")
    _check_tensor(B, "B")


def _pad_to(x: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    if x.shape == (rows, cols):
        return x
    out = torch.zeros(rows, cols, dtype=x.dtype, device=x.device)
    out[: x.shape[0], : x.shape[1]] = x
    return out


_CPU_INT_MM: dict = {}   # "exact", "fast": what the one-time probe found in this process


def onednn_for_integer_gemms_only() -> None:
    """Send every float op of this process to ATen/MKL, none to oneDNN; torch._int_mm still runs
    on oneDNN (`_onednn_enabled` around each call). torch 2.13 runs GELU on the CPU through
    oneDNN's eltwise kernel, whose bits follow the ISA oneDNN may use: a chapter that lifts oneDNN's
    cap for its integer GEMMs (`book.core.numerics.allow_full_isa_for_integer_kernels`) calls this
    too, so its float outputs stay those of the numerics profile (ATen's pinned AVX2 kernels)."""
    torch.backends.mkldnn.enabled = False


@contextmanager
def _onednn_enabled():
    """oneDNN on for the integer GEMM inside, whatever the process's setting (restored after)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = True
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def _probe_cpu_int_mm() -> dict:
    """Whether this process's CPU ``torch._int_mm`` gives the exact integers, and whether it is a
    real GEMM. Decided once per process on a small product of random codes in -127..127.

    Exact: oneDNN capped at AVX2 (the book's numerics profile, ``ONEDNN_MAX_CPU_ISA=AVX2``) on a CPU
    that has AVX-512 picks an int8 kernel whose u8·s8 pair sums saturate at int16 (vpmaddubsw), and
    torch._int_mm returns wrong integers; with the cap lifted for integer kernels
    (`book.core.numerics.allow_full_isa_for_integer_kernels`, the chapter's first cell) VNNI/AMX
    give the exact ones. Fast: with torch 2.13 it is a real GEMM on CPUs with AVX-512 VNNI, a
    scalar reference loop elsewhere — ~450x slower than float32 on an AVX2 EPYC (1024x4096x4096:
    351 s)."""
    if not _CPU_INT_MM:
        import time

        g = torch.Generator().manual_seed(0)  # never the global generator: the probe must not shift a chapter's draws
        a = torch.randint(-127, 128, (64, 512), dtype=torch.int8, generator=g)
        b = torch.randint(-127, 128, (512, 512), dtype=torch.int8, generator=g)

        def best(fn) -> float:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return min(times)

        exact_product = (a.float() @ b.float()).to(torch.int32)   # K = 512: exact in float32
        with _onednn_enabled():
            _CPU_INT_MM["exact"] = bool(torch.equal(torch._int_mm(a, b), exact_product))
            int_mm = best(lambda: torch._int_mm(a, b))
        exact = best(lambda: a.float() @ b.float())
        _CPU_INT_MM["fast"] = int_mm <= 2 * exact
    return _CPU_INT_MM


def _cpu_int_mm_is_fast() -> bool:
    """Whether "auto" may use this CPU's ``torch._int_mm``: it gives the exact integers and is a
    real GEMM (`_probe_cpu_int_mm`). Either way the backends give the same integers: the choice
    changes speed only, never a result."""
    probe = _probe_cpu_int_mm()
    return probe["exact"] and probe["fast"]


def cpu_int_mm_is_exact() -> bool:
    """Whether this process's CPU ``torch._int_mm`` returns the exact integer product."""
    return _probe_cpu_int_mm()["exact"]


def int8_product(a_codes: torch.Tensor, b_codes: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """The exact integer product of int8 codes as an int32 accumulator would hold it (returned as
    int32 for ``int_mm``, as integer-valued floats for ``exact-float``)."""
    if a_codes.dtype != torch.int8 or b_codes.dtype != torch.int8:
        raise TypeError(f"codes must be int8, got {a_codes.dtype} and {b_codes.dtype}")
    n, k = a_codes.shape
    m = b_codes.shape[1]
    if k * 127 * 127 > INT32_MAX:
        raise ValueError(f"inner size {k} could overflow an int32 accumulator (max {INT32_MAX // 127**2})")
    if backend == "auto":
        backend = "int_mm" if a_codes.is_cuda or _cpu_int_mm_is_fast() else "exact-float"
    if backend == "int_mm":
        if not a_codes.is_cuda and not cpu_int_mm_is_exact():
            raise RuntimeError("torch._int_mm gives wrong integers in this process (oneDNN capped "
                               "below the CPU's int8 instructions, as the numerics profile does): "
                               "call book.core.numerics.allow_full_isa_for_integer_kernels() "
                               "before any oneDNN use, or use backend='auto' or 'exact-float'")
        # cuBLASLt wants more than 16 rows and inner/outer sizes that are multiples of 8: pad with zeros
        rows, inner, cols = max(n, 17), -(-k // 8) * 8, -(-m // 8) * 8
        a_padded, b_padded = _pad_to(a_codes, rows, inner), _pad_to(b_codes, inner, cols)
        if a_codes.is_cuda:
            return torch._int_mm(a_padded, b_padded)[:n, :m]
        with _onednn_enabled():   # the CPU's int8 GEMM is oneDNN's
            return torch._int_mm(a_padded, b_padded)[:n, :m]
    if backend == "exact-float":
        if a_codes.is_cuda:  # TF32 could be switched on for float32 GEMMs there: stay in float64
            return a_codes.double() @ b_codes.double()
        # float32 GEMMs are exact while every partial sum stays below 2**24: split K into chunks of
        # at most EXACT_FP32_CHUNK and add the chunk products (integers < 2**31) in float64
        if k <= EXACT_FP32_CHUNK:
            return a_codes.float() @ b_codes.float()
        out = torch.zeros(n, m, dtype=torch.float64, device=a_codes.device)
        for start in range(0, k, EXACT_FP32_CHUNK):
            stop = min(start + EXACT_FP32_CHUNK, k)
            out += (a_codes[:, start:stop].float() @ b_codes[start:stop].float()).double()
        return out
    raise ValueError(f"backend must be 'auto', 'int_mm' or 'exact-float', not {backend!r}")


def int8_product_float32(a_codes: torch.Tensor, b_codes: torch.Tensor) -> torch.Tensor:
    """``int8_product(a, b).float()`` bit for bit — the int32 accumulator as the dequantization reads
    it — from integer-valued float32 codes (|code| <= 127), without the int8 round trip or a float64
    pass where they are not needed: chunks of K up to EXACT_FP32_CHUNK are exact in float32, and
    when there are two of them one float32 addition rounds their exact sum exactly as the int32 ->
    float32 conversion does (more chunks are summed in float64 first). CPU path of `Int8Linear`."""
    n, k = a_codes.shape
    if k * 127 * 127 > INT32_MAX:
        raise ValueError(f"inner size {k} could overflow an int32 accumulator (max {INT32_MAX // 127**2})")
    if k <= EXACT_FP32_CHUNK:
        return a_codes @ b_codes
    if k <= 2 * EXACT_FP32_CHUNK:
        half = (k + 1) // 2
        out = a_codes[:, :half] @ b_codes[:half]
        return out.add_(a_codes[:, half:] @ b_codes[half:])
    out = torch.zeros(n, b_codes.shape[1], dtype=torch.float64, device=a_codes.device)
    for start in range(0, k, EXACT_FP32_CHUNK):
        stop = min(start + EXACT_FP32_CHUNK, k)
        out += a_codes[:, start:stop] @ b_codes[start:stop]
    return out.float()


def fp16_matmul(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """16-bit matmul: float16 inputs, float32 accumulation (native on CUDA, exact emulation on CPU)."""
    if A.is_cuda:
        return (A.half() @ B.half()).float()
    return A.half().float() @ B.half().float()


@dataclass
class Int8Stats:
    """What went where in one int8 matmul."""
    outlier_columns: torch.Tensor  # indices of A's columns (B's rows) done in 16 bit
    inner_size: int

    @property
    def int8_fraction(self) -> float:
        """Fraction of the multiply-adds (equivalently of A's and B's values) done in int8."""
        return 1.0 - self.outlier_columns.numel() / self.inner_size


def outlier_columns(A: torch.Tensor, threshold: float) -> torch.Tensor:
    """Indices of A's columns holding any |value| >= threshold."""
    return torch.nonzero(_absmax(A, 0).flatten() >= threshold).flatten()


def int8_matmul(A: torch.Tensor, B: torch.Tensor, threshold: float | None = None, *,
                scheme: str = "vector", backend: str = "auto", return_stats: bool = False):
    """A @ B through int8.

    ``scheme="vector"``: A row-wise, B column-wise absmax codes, int32 accumulation, dequantized by
    the outer product of the two scale vectors. ``scheme="tensor"``: one scale per matrix.
    ``threshold``: LLM.int8()'s mixed-precision decomposition — A's columns holding any
    |value| >= threshold (and B's matching rows) are multiplied in 16 bit, the rest in int8, and
    the two outputs summed. With ``return_stats`` returns (C, Int8Stats)."""
    _check_matmul(A, B)
    if scheme not in ("vector", "tensor"):
        raise ValueError(f"scheme must be 'vector' or 'tensor', not {scheme!r}")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not threshold > 0):
        raise ValueError(f"threshold must be a positive number or None, got {threshold!r}")
    cols = (outlier_columns(A, threshold) if threshold is not None
            else torch.empty(0, dtype=torch.long, device=A.device))
    A_regular = A
    if cols.numel():
        A_regular = A.clone()
        A_regular[:, cols] = 0
    a_dim, b_dim = (1, 0) if scheme == "vector" else (None, None)
    qa, sa = absmax_quantize(A_regular, 8, dim=a_dim)
    qb, sb = absmax_quantize(B, 8, dim=b_dim)
    C = int8_product(qa, qb, backend).float().mul_(sa).mul_(sb)   # (n,1), (1,m): outer product of scales
    if cols.numel():
        C.add_(fp16_matmul(A[:, cols], B[cols, :]))
    return (C, Int8Stats(cols, A.shape[1])) if return_stats else C


# --- int8 linear layers for a real model ------------------------------------------------------------
SCHEMES = ("tensor", "vector", "llm.int8")


class Int8Linear(nn.Module):
    """A drop-in for nn.Linear computing x @ W.T through int8 with one of three schemes:
    ``tensor`` (one absmax for x and one for W), ``vector`` (a constant per token row of x and per
    output row of W) and ``llm.int8`` (vector plus the outlier decomposition at ``threshold``).
    The weight is quantized once; the activations at every call. Counts outlier columns seen.

    ``fp16_weights``: the 16-bit half multiplies the outlier columns by the layer's own float16
    weights (True, the default: 2 more bytes per weight) or, as bitsandbytes does, by the int8
    weights dequantized (False: 1 byte per weight in all, what lets a 6.7 B model fit a GPU). A
    "vector" or "llm.int8" layer may switch `scheme` between the two after it is made: both use the
    same per-output-row weight codes."""

    def __init__(self, linear: nn.Linear, scheme: str = "llm.int8", threshold: float = 6.0,
                 backend: str = "auto", fp16_weights: bool = True):
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"scheme must be one of {SCHEMES}, not {scheme!r}")
        self.scheme, self.threshold, self.backend = scheme, float(threshold), backend
        self.in_features, self.out_features = linear.in_features, linear.out_features
        W_t = linear.weight.detach().t().contiguous().float()          # (in, out): B of the matmul
        codes, scale = absmax_quantize(W_t, 8, dim=None if scheme == "tensor" else 0)
        self.register_buffer("w_codes", codes)
        self.register_buffer("w_scale", scale)
        keep = scheme == "llm.int8" and fp16_weights
        self.register_buffer("w_fp16", W_t.half() if keep else None)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())
        self.calls = 0
        self.outlier_columns_seen = 0   # summed over calls
        self.values_seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the same arithmetic as int8_matmul (tested bit for bit); on the CPU the codes stay
        # integer-valued floats for the exact float32 product
        shape = x.shape
        A = x.reshape(-1, self.in_features).float()
        cols = torch.empty(0, dtype=torch.long, device=A.device)
        if self.scheme == "llm.int8":
            cols = outlier_columns(A, self.threshold)
        A_regular = A.index_fill(1, cols, 0.0) if cols.numel() else A
        codes, sa = _absmax_codes(A_regular, 127, None if self.scheme == "tensor" else 1)
        backend = self.backend
        if backend == "auto":   # as int8_product decides: _int_mm where it is a real GEMM
            backend = "int_mm" if A.is_cuda or _cpu_int_mm_is_fast() else "exact-float"
        if backend == "exact-float" and not A.is_cuda:
            acc = int8_product_float32(codes, self.w_codes.float())
        else:
            acc = int8_product(codes.to(torch.int8), self.w_codes, backend).float()
        out = acc.mul_(sa).mul_(self.w_scale)     # dequantize: the outer product of the scales
        if cols.numel():
            weights = (self.w_fp16[cols].float() if self.w_fp16 is not None
                       else self.w_codes[cols].float().mul_(self.w_scale))   # dequantized int8 rows
            out.add_(fp16_matmul(A[:, cols], weights))
        if self.bias is not None:
            out.add_(self.bias)
        self.calls += 1
        self.outlier_columns_seen += int(cols.numel())
        self.values_seen += self.in_features
        return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, scheme={self.scheme}, threshold={self.threshold}"


def replace_linear_layers(module: nn.Module, scheme: str, threshold: float = 6.0,
                          backend: str = "auto", fp16_weights: bool = True) -> nn.Module:
    """Swap every nn.Linear inside `module` (in place) for an Int8Linear; returns `module`. Each
    layer's float weights are dropped as soon as it is swapped, so the peak memory is the model's
    plus one layer's."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child, scheme, threshold, backend, fp16_weights)
                    .to(child.weight.device))
        else:
            replace_linear_layers(child, scheme, threshold, backend, fp16_weights)
    return module


# --- 4- and 8-bit formats (int8-10) -------------------------------------------------------------------
@dataclass(frozen=True)
class FloatFormat:
    """A minifloat: sign, `exponent_bits`, `mantissa_bits`, exponent `bias`, largest finite value."""
    name: str
    exponent_bits: int
    mantissa_bits: int
    bias: int
    max_value: float

    def values(self) -> torch.Tensor:
        """All finite representable values, sorted (both signs, one zero)."""
        mags = set()
        for e in range(2 ** self.exponent_bits):
            for m in range(2 ** self.mantissa_bits):
                frac = m / 2 ** self.mantissa_bits
                v = frac * 2.0 ** (1 - self.bias) if e == 0 else (1 + frac) * 2.0 ** (e - self.bias)
                if v <= self.max_value:
                    mags.add(v)
        mags = sorted(mags)
        return torch.tensor(sorted({-v for v in mags if v} | set(mags)), dtype=torch.float64)


FP4_E2M1 = FloatFormat("fp4 (e2m1)", 2, 1, 1, 6.0)          # no inf/nan: 0, .5, 1, 1.5, 2, 3, 4, 6
FP8_E4M3 = FloatFormat("fp8 (e4m3)", 4, 3, 7, 448.0)        # OCP e4m3fn: only S.1111.111 is nan
FP8_E5M2 = FloatFormat("fp8 (e5m2)", 5, 2, 15, 57344.0)     # IEEE-like: top exponent is inf/nan
FORMATS = {"int4": 4, "int8": 8, "fp4": FP4_E2M1, "fp8_e4m3": FP8_E4M3, "fp8_e5m2": FP8_E5M2}


def round_to_format(x: torch.Tensor, fmt: FloatFormat) -> torch.Tensor:
    """Round each value (already scaled into the format's range) to the nearest representable value."""
    grid = fmt.values().to(x.device)
    xd = x.double().clamp(-fmt.max_value, fmt.max_value)
    mids = (grid[1:] + grid[:-1]) / 2
    idx = torch.bucketize(xd, mids)
    return grid[idx].to(x.dtype)


def fake_quantize(x: torch.Tensor, fmt: str, block_size: int | None = 64) -> torch.Tensor:
    """Quantize then dequantize `x` in format `fmt` (one of FORMATS) with one absmax constant per
    block of `block_size` consecutive values (None: one for the tensor)."""
    _check_tensor(x)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")
    flat = x.float().flatten()
    if block_size is None:
        blocks = flat[None, :]
    else:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise ValueError(f"block_size must be a positive int or None, got {block_size!r}")
        pad = (-flat.numel()) % block_size
        blocks = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, block_size)
    spec = FORMATS[fmt]
    if isinstance(spec, int):
        codes, scale = absmax_quantize(blocks, spec, dim=1)
        out = dequantize(codes, scale)
    else:
        absmax = blocks.abs().amax(dim=1, keepdim=True)
        scale = torch.where(absmax > 0, absmax / spec.max_value, torch.ones_like(absmax))
        out = round_to_format(blocks / scale, spec) * scale
    return out.flatten()[: flat.numel()].reshape(x.shape)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """||approx - exact||_F / ||exact||_F."""
    return float((approx.double() - exact.double()).norm() / exact.double().norm())


# --- experiments on planted outliers -------------------------------------------------------------
def planted_outliers(n: int, k: int, m: int, n_outliers: int, magnitude: float, seed: int = 0):
    """A (n,k) standard normal with `n_outliers` feature columns of size ~`magnitude` (fixed sign per
    column, 0.75x-1.25x spread), B (k,m) normal with variance 1/k. Returns (A, B, outlier column indices)."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, k, generator=g)
    B = torch.randn(k, m, generator=g) / math.sqrt(k)
    cols = torch.randperm(k, generator=g)[:n_outliers].sort().values
    if magnitude > 0 and n_outliers:
        signs = torch.where(torch.rand(n_outliers, generator=g) < 0.5, -1.0, 1.0)
        A[:, cols] = magnitude * signs * (0.75 + 0.5 * torch.rand(n, n_outliers, generator=g))
    return A, B, cols


def outlier_sweep(magnitudes, n: int = 256, k: int = 4096, m: int = 256, n_outliers: int = 4,
                  threshold: float = 6.0, seed: int = 0, backend: str = "auto"):
    """Error of fp16, tensor-wise int8, vector-wise int8 and LLM.int8() against the exact product,
    for each outlier magnitude. The error is ||C_approx - C|| / ||A_regular B||, A_regular being A with
    the outlier columns zeroed: how much of the ordinary features' contribution is lost (the outlier
    part's own large norm would otherwise hide it). Returns a pandas DataFrame."""
    import pandas as pd

    rows = []
    for magnitude in magnitudes:
        A, B, cols = planted_outliers(n, k, m, n_outliers if magnitude > 0 else 0, magnitude, seed)
        exact = A.double() @ B.double()
        regular = A.clone()
        regular[:, cols] = 0
        norm = float((regular.double() @ B.double()).norm())
        err = lambda C: float((C.double() - exact).norm()) / norm
        C_llm, stats = int8_matmul(A, B, threshold, backend=backend, return_stats=True)
        rows.append({"magnitude": float(magnitude), "fp16": err(fp16_matmul(A, B)),
                     "tensor-wise int8": err(int8_matmul(A, B, scheme="tensor", backend=backend)),
                     "vector-wise int8": err(int8_matmul(A, B, backend=backend)),
                     "LLM.int8()": err(C_llm), "int8 fraction": stats.int8_fraction})
    return pd.DataFrame(rows)


__all__ = [
    "qmax", "absmax_quantize", "dequantize", "grid_quantize", "grid_dequantize",
    "zeropoint_quantize", "zeropoint_dequantize", "zeropoint_expansion", "zeropoint_matmul",
    "int8_product", "int8_product_float32", "cpu_int_mm_is_exact", "onednn_for_integer_gemms_only", "fp16_matmul", "outlier_columns", "int8_matmul", "Int8Stats", "Int8Linear",
    "replace_linear_layers", "SCHEMES", "FloatFormat", "FP4_E2M1", "FP8_E4M3", "FP8_E5M2", "FORMATS",
    "round_to_format", "fake_quantize", "relative_error", "planted_outliers", "outlier_sweep",
]


# ---------------------------------------------------------------------------------------------
# The chapter's worked examples and sweeps, one function per claim
# ---------------------------------------------------------------------------------------------
POST_I5, POST_I3 = range(6), [0, 2, 4]   # the post's data types I5 = {0..5} and I3 = {0, 2, 4}
POST_TOY = [3, 1, 2, 3]


def float_table(df, spec: str = ".4f", exact=()):
    """`df` with its float columns (but those in `exact`) shown as ‹x›: numbers from float kernels,
    whose last bits depend on them (`book.core.numerics.float_text`)."""
    from book.core.numerics import float_text

    shown = df.copy()
    for col in shown.columns:
        if shown[col].dtype.kind == "f" and col not in exact:
            shown[col] = shown[col].map(lambda v: float_text(v, spec))
    return shown


def toy_quantization(toy=POST_TOY) -> dict[str, dict]:
    """int8-1: the post's [3, 1, 2, 3] from I5 to I3 and back, rounding to nearest and down: the I3
    codes, the values back in I5 and how many differ from the input."""
    rows = {}
    for rounding in ("nearest", "floor"):
        codes, absmax = grid_quantize(toy, POST_I3, rounding)
        back = grid_dequantize(codes, absmax, POST_I3, source_grid=POST_I5)
        rows[rounding] = {"I3 codes": codes.int().tolist(), "back in I5": back.int().tolist(),
                          "errors": int((back != torch.tensor(toy)).sum())}
    return rows


@dataclass
class ConstantsDemo:
    """int8-2: the post's two vectors through I3 with one constant for both (tensor-wise) and one
    each (vector-wise), back in I5, and tensor-wise before the recipe's last rounding."""

    pair: torch.Tensor
    recipe: dict[str, torch.Tensor]
    before_rounding: torch.Tensor

    def errors(self, back: torch.Tensor) -> list[int]:
        """Entries of each vector that differ from the input."""
        return [int((back[i] != self.pair[i]).sum()) for i in range(2)]

    def summary(self) -> str:
        lines = [f"{name}, the post's recipe (back in I5): {back.tolist()} errors per vector "
                 f"{self.errors(back)}" for name, back in self.recipe.items()]
        lines.append(f"tensor-wise, dequantized but not rounded back: {self.before_rounding.tolist()} "
                     f"errors per vector {self.errors(self.before_rounding)}")
        return "\n".join(lines)


def constants_demo() -> ConstantsDemo:
    """int8-2: [3,1,2,3] and [0,2,2,0] quantized to I3 with a shared and with their own absmax."""
    pair = torch.tensor([[3.0, 1, 2, 3], [0, 2, 2, 0]])
    codes_t, absmax_t = grid_quantize(pair, POST_I3)  # one constant for both
    own = [grid_dequantize(*grid_quantize(v, POST_I3), POST_I3, source_grid=POST_I5) for v in pair]
    recipe = {"tensor-wise": grid_dequantize(codes_t, absmax_t, POST_I3, source_grid=POST_I5),
              "vector-wise": torch.stack(own)}
    return ConstantsDemo(pair, recipe, grid_dequantize(codes_t, absmax_t, POST_I3))


@dataclass
class ZeropointCheck:
    """int8-3: the zero-point expansion against (A - minA)(B - minB) in float64, the zero-point int8
    matmul against dequantize-then-multiply, and the multiply-adds the dependent constants add."""

    identity_err: float
    zp_err: float
    extra_ops: int
    product_ops: int

    @property
    def holds(self) -> bool:
        return self.identity_err < 1e-12 and self.zp_err < 1e-5 and self.extra_ops > 0

    def summary(self) -> str:
        from book.core.numerics import bound

        return (f"identity: max relative deviation {bound(self.identity_err, 1e-12)}; zero-point int8 "
                f"matmul vs dequantize-then-multiply: {bound(self.zp_err, 1e-5)}\n"
                f"extra multiply-adds for the dependent constants: {self.extra_ops} "
                f"({self.extra_ops / self.product_ops:.1%} of the product's); symmetric vector-wise: 0")


def zeropoint_check(seed: int = 0, n: int = 64, k: int = 256, m: int = 32) -> ZeropointCheck:
    """int8-3 on A (n×k, N(0.5, 1)) and B (k×m, N(-0.3, 1)) drawn from one seeded generator."""
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(n, k, generator=g, dtype=torch.float64) + 0.5
    B = torch.randn(k, m, generator=g, dtype=torch.float64) - 0.3
    a, b = float(A.min()), float(B.min())
    direct = (A - a) @ (B - b)
    identity_err = float((zeropoint_expansion(A, B, a, b) - direct).abs().max() / direct.abs().max())
    Cz, extra_ops = zeropoint_matmul(A.float(), B.float())
    qa, sa, ma = zeropoint_quantize(A.float(), dim=1)
    qb, sb, mb = zeropoint_quantize(B.float(), dim=0)
    via_dequant = zeropoint_dequantize(qa, sa, ma).double() @ zeropoint_dequantize(qb, sb, mb).double()
    zp_err = float((Cz.double() - via_dequant).abs().max() / via_dequant.abs().max())
    return ZeropointCheck(identity_err, zp_err, extra_ops, n * k * m)


def plot_outlier_sweep(sweep, threshold: float):
    """int8-4, int8-6: the matmul error of each scheme against the planted outliers' magnitude."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2), layout="constrained")
    styles = [("tensor-wise int8", "s-"), ("vector-wise int8", "o-"), ("LLM.int8()", "^-"), ("fp16", "x--")]
    for col, style in styles:
        ax.plot(sweep["magnitude"].clip(lower=1), sweep[col], style, label=col)
    ax.set(xscale="log", yscale="log", xlabel="outlier magnitude (0 plotted at 1)",
           ylabel="error / ‖A_regular B‖",
           title="int8 matmul error, 0.1 % planted outlier columns (K = 4096): this book's run")
    ax.axvline(threshold, color="grey", lw=0.8, ls=":")
    fig.legend(loc="outside right upper")
    return fig


POST_ROW = [-0.10, -0.23, 0.08, -0.38, -0.28, -0.29, -2.11, 0.34, -0.53, -67.0]
POST_ROW_QUANTIZED = [-0.00, -0.00, 0.00, -0.53, -0.53, -0.53, -2.11, 0.53, -0.53, -67.00]  # the post's


@dataclass
class OutlierRow:
    """int8-5: the post's row without and with its outlier -67, through int8 with one absmax."""

    result: dict[str, dict]

    def table(self):
        import pandas as pd

        return pd.DataFrame(self.result).T.drop(columns="changed")

    @property
    def without(self) -> dict:
        return self.result["without outlier"]

    @property
    def with_outlier(self) -> dict:
        return self.result["with outlier"]

    @property
    def mismatches(self) -> int:
        """Values of the quantized outlier row that differ from the post's."""
        ours = self.with_outlier["dequantized"]
        return int(sum(abs(p - m) > 1e-9 for p, m in zip(POST_ROW_QUANTIZED, ours)))

    @property
    def changes(self) -> str:
        return ", ".join(f"{v:g} -> {b:g}" for v, b in self.without["changed"])


def outlier_row(row=POST_ROW) -> OutlierRow:
    """int8-5: each version dequantized (to 0.01), the values that changed and the mean |error|."""
    import numpy as np

    x_all = torch.tensor(row, dtype=torch.float64)
    result = {}
    for name, x in (("without outlier", x_all[:9]), ("with outlier", x_all)):
        back = dequantize(*absmax_quantize(x, 8)).double()
        changed = [(v, b) for v, b in zip(x.tolist(), back.round(decimals=2).tolist()) if v != b]
        result[name] = {"dequantized": np.round(back.numpy(), 2).tolist(), "errors at 0.01": len(changed),
                        "changed": changed, "mean |error|": float((back - x).abs().mean())}
    return OutlierRow(result)


def format_errors(n_weights: int, seed: int = 0):
    """int8-10: relative error of every format in `FORMATS` on normal and Student-t(3) weights, with
    blocks of 64 and one constant per tensor (rows: (distribution, block))."""
    import pandas as pd

    g = torch.Generator().manual_seed(seed)
    weights = {"normal": torch.randn(n_weights, generator=g),
               "student-t (3)": torch.distributions.StudentT(3.0).sample((n_weights,))}
    return pd.DataFrame({(dist, block or "tensor"): {f: relative_error(fake_quantize(w, f, block), w)
                                                     for f in FORMATS}
                         for dist, w in weights.items() for block in (64, None)}).T


def plot_format_errors(errors):
    """int8-10: `format_errors` as bars, one group per (distribution, block)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    errors.T.plot.bar(ax=ax, logy=True, rot=0, legend=False)
    ax.set(ylabel="relative error",
           title="quantization error by format (block of 64 / per tensor): this book's run")
    fig.legend(loc="outside right upper", fontsize=9)
    return fig
