"""Convolution two ways, and the readings of convolution in "Understanding Convolution in Deep Learning".

`direct_convolve` is the sliding-window definition; `fft_convolve` the convolution theorem with zero
padding; `convolve(..., method="auto")` picks between them by a cost model. All three follow the
semantics of `scipy.signal.convolve` for N-d real arrays and the modes "full", "same" and "valid"
(the tests hold them to scipy). The rest of the module serves the chapter's other claims: the
Fourier view of orientation and low-pass compression, diffusion, the softmax and stochastic
readings of a kernel, cross-correlation, and the time-series models.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.fft as sp_fft

from book.core import numerics

MODES = ("full", "same", "valid")


# -- input checks and output geometry -------------------------------------------------------------
def _as_real_arrays(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    for name, x in (("a", a), ("b", b)):
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise TypeError(f"{name} must be a real numeric array, not dtype {x.dtype}")
        if np.iscomplexobj(x):
            raise TypeError(f"{name} is complex; these convolutions take real arrays")
        if x.size == 0:
            raise ValueError(f"{name} is empty (shape {x.shape}); convolution needs at least one element")
    if a.ndim != b.ndim:
        raise ValueError(f"a and b must have the same number of dimensions, not {a.ndim} and {b.ndim}")
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")


def output_region(shape_a: tuple[int, ...], shape_b: tuple[int, ...], mode: str) -> tuple[slice, ...]:
    """Where the mode's output lies inside the 'full' output (of shape a + b - 1), per axis.

    'same' is centred on the full output and shaped like `a`; 'valid' keeps the positions where one
    array lies wholly inside the other, so one of them must be at least as large in every axis."""
    _check_mode(mode)
    full = [n + m - 1 for n, m in zip(shape_a, shape_b)]
    if mode == "full":
        return tuple(slice(0, f) for f in full)
    if mode == "same":
        return tuple(slice((f - n) // 2, (f - n) // 2 + n) for f, n in zip(full, shape_a))
    a_covers = all(n >= m for n, m in zip(shape_a, shape_b))
    b_covers = all(m >= n for n, m in zip(shape_a, shape_b))
    if not (a_covers or b_covers):
        raise ValueError(f"mode 'valid' needs one array at least as large as the other in every axis; "
                         f"got shapes {shape_a} and {shape_b}")
    big, small = (shape_a, shape_b) if a_covers else (shape_b, shape_a)
    return tuple(slice(m - 1, n) for n, m in zip(big, small))


def output_shape(shape_a: tuple[int, ...], shape_b: tuple[int, ...], mode: str = "full") -> tuple[int, ...]:
    """Shape of the convolution of arrays of these shapes, e.g. 256×256 with 16×16, valid: 241×241."""
    return tuple(s.stop - s.start for s in output_region(tuple(shape_a), tuple(shape_b), mode))


# -- the two algorithms ---------------------------------------------------------------------------
def direct_convolve(a, b, mode: str = "full") -> np.ndarray:
    """Convolution by its definition: out[n] = Σ_k a[n - k] · b[k].

    Computed as one multiply-add of a shifted copy of the larger array per element of the smaller
    one — the same products and sums as sliding a flipped patch over the image, ordered so that
    numpy does the inner loop over output pixels."""
    _check_mode(mode)
    a, b = _as_real_arrays(a, b)
    region = output_region(a.shape, b.shape, mode)
    if a.ndim == 0:
        return a * b
    big, small = (a, b) if a.size >= b.size else (b, a)  # full convolution is symmetric in a and b
    pads = [(m - 1, m - 1) for m in small.shape]
    padded = np.pad(big, pads)
    out = np.zeros(tuple(s.stop - s.start for s in region), dtype=a.dtype)
    lengths = out.shape
    # full[n] = Σ_k small[k] · padded[n - k + (m - 1)]; restrict n to the mode's region.
    for k in itertools.product(*(range(m) for m in small.shape)):
        weight = small[k]
        if weight == 0:
            continue
        window = tuple(slice(r.start - ki + m - 1, r.start - ki + m - 1 + L)
                       for r, ki, m, L in zip(region, k, small.shape, lengths))
        out += weight * padded[window]
    return out


def fft_convolve(a, b, mode: str = "full") -> np.ndarray:
    """Convolution by the convolution theorem: a ⊛ b = F⁻¹(F(a) · F(b)).

    Both arrays are zero-padded to at least the full output size (a + b - 1 per axis), so the
    FFT's circular convolution equals the linear one; the padded size is rounded up to a length
    the FFT handles fast (products of small primes). Real FFTs halve the work."""
    _check_mode(mode)
    a, b = _as_real_arrays(a, b)
    region = output_region(a.shape, b.shape, mode)
    if a.ndim == 0:
        return a * b
    full = [n + m - 1 for n, m in zip(a.shape, b.shape)]
    fshape = [sp_fft.next_fast_len(n, real=True) for n in full]
    axes = list(range(a.ndim))
    spectrum = sp_fft.rfftn(a, fshape, axes=axes)
    spectrum *= sp_fft.rfftn(b, fshape, axes=axes)
    out = sp_fft.irfftn(spectrum, fshape, axes=axes)
    return np.ascontiguousarray(out[region]).astype(a.dtype, copy=False)


# -- choosing between them ------------------------------------------------------------------------
@dataclass(frozen=True)
class CostModel:
    """Seconds ≈ per_madd · (multiply-adds) + per_pass · (passes) for direct convolution, and
    per_fft_point · N·log2(N) summed over the three transforms for FFT convolution (N = padded
    size). Defaults were measured on the book's 2-core CI machine; `calibrate_cost_model` measures
    them on yours."""

    per_madd: float = 2.5e-9
    per_pass: float = 1.0e-5
    per_fft_point: float = 1.5e-9

    def direct_seconds(self, shape_a, shape_b, mode: str = "full") -> float:
        n_small = min(math.prod(shape_a), math.prod(shape_b))
        n_out = math.prod(output_shape(shape_a, shape_b, mode))
        return n_small * (self.per_madd * n_out + self.per_pass)

    def fft_seconds(self, shape_a, shape_b, mode: str = "full") -> float:
        fshape = [sp_fft.next_fast_len(n + m - 1, real=True) for n, m in zip(shape_a, shape_b)]
        n = math.prod(fshape)
        return 3 * self.per_fft_point * n * max(math.log2(n), 1.0)

    def choose(self, shape_a, shape_b, mode: str = "full") -> str:
        return "fft" if self.fft_seconds(shape_a, shape_b, mode) < self.direct_seconds(shape_a, shape_b, mode) else "direct"


DEFAULT_COST_MODEL = CostModel()


def convolve(a, b, mode: str = "full", method: str = "auto", cost_model: CostModel | None = None) -> np.ndarray:
    """Convolve with `method` 'direct', 'fft' or 'auto' (the cheaper one by the cost model)."""
    if method not in ("auto", "direct", "fft"):
        raise ValueError(f"method must be 'auto', 'direct' or 'fft', not {method!r}")
    if method == "auto":
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        _check_mode(mode)
        if a_arr.ndim == b_arr.ndim and a_arr.size and b_arr.size:
            method = (cost_model or DEFAULT_COST_MODEL).choose(a_arr.shape, b_arr.shape, mode)
        else:
            method = "direct"  # let the algorithm report what is wrong with the input
    return direct_convolve(a, b, mode) if method == "direct" else fft_convolve(a, b, mode)


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` runs after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def calibrate_cost_model(size: int = 512, repeats: int = 3, seed: int = 0) -> CostModel:
    """Fit the cost model's constants to this machine from a few small timings."""
    rng = np.random.default_rng(seed)
    image = rng.standard_normal((size, size))
    # direct: time a small and a larger kernel; two equations for (per_madd, per_pass)
    t3 = median_seconds(lambda: direct_convolve(image, rng.standard_normal((3, 3)), "same"), repeats)
    t9 = median_seconds(lambda: direct_convolve(image, rng.standard_normal((9, 9)), "same"), repeats)
    n_out = size * size
    per_madd = max((t9 - t3) / ((81 - 9) * n_out), 1e-12)
    per_pass = max(t3 / 9 - per_madd * n_out, 0.0)
    k = rng.standard_normal((17, 17))
    tf = median_seconds(lambda: fft_convolve(image, k, "same"), repeats)
    fshape = [sp_fft.next_fast_len(size + 16, real=True)] * 2
    n = math.prod(fshape)
    return CostModel(per_madd, per_pass, tf / (3 * n * math.log2(n)))


# -- the readings of convolution in the post ------------------------------------------------------
def patch_at(image: np.ndarray, kernel: np.ndarray, row: int, col: int) -> float:
    """One output pixel the way the post's gif computes it: the kernel-sized patch centred at
    (row, col), times the kernel rotated by 180°, summed (convolution flips the kernel)."""
    kh, kw = kernel.shape
    patch = image[row - kh // 2: row - kh // 2 + kh, col - kw // 2: col - kw // 2 + kw]
    if patch.shape != kernel.shape:
        raise ValueError(f"pixel ({row}, {col}) is too close to the border for a {kh}×{kw} patch")
    return float(np.sum(patch * kernel[::-1, ::-1]))


def softmax_kernel(kernel: np.ndarray) -> np.ndarray:
    """The post's normalisation of a kernel into a probability distribution: e^x / Σ e^x
    (shifted by the maximum first, which changes nothing but keeps e^x finite)."""
    k = np.asarray(kernel, dtype=np.float64)
    e = np.exp(k - k.max())
    return e / e.sum()


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """A normalised 2-D Gaussian sampled on a size×size grid centred on the middle pixel."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd number, not {size}")
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, not {sigma}")
    r = np.arange(size) - size // 2
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    return g / g.sum()


def stripes(size: int, period: float, angle_deg: float = 0.0) -> np.ndarray:
    """Black-and-white stripes (values 0/1) whose intensity changes along `angle_deg`."""
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    theta = np.deg2rad(angle_deg)
    phase = 2 * np.pi * (x * np.cos(theta) + y * np.sin(theta)) / period
    return (np.sin(phase) >= 0).astype(np.float64)


def log_spectrum(image: np.ndarray) -> np.ndarray:
    """log(1 + |F(image)|), zero frequency in the middle: the pictures of the post."""
    return np.log1p(np.abs(sp_fft.fftshift(sp_fft.fft2(image - image.mean()))))


def spectrum_orientation(image: np.ndarray) -> float:
    """Direction (degrees in [0, 180)) of the strongest change of intensity, read off the power
    spectrum: the power-weighted mean of the doubled angle of every frequency (so opposite
    frequencies agree), after a Hann window that stops the image border from adding spectral lines."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(sp_fft.fft2((img - img.mean()) * window)) ** 2
    fy = sp_fft.fftfreq(h)[:, None]
    fx = sp_fft.fftfreq(w)[None, :]
    power[0, 0] = 0.0
    # only the dominant peak: the strongest bins, not the diffuse rest of the spectrum
    power = np.where(power >= 0.05 * power.max(), power, 0.0)
    doubled = np.angle(np.sum(power * np.exp(2j * np.arctan2(fy, fx))))
    return float(np.rad2deg(doubled / 2) % 180.0)


def lowpass(image: np.ndarray, keep_fraction: float) -> tuple[np.ndarray, float]:
    """Keep the Fourier coefficients inside a centred disc holding `keep_fraction` of them, zero the
    rest (the post's 'circle padded by zeros'), transform back. Returns (image, kept fraction)."""
    if not 0 < keep_fraction <= 1:
        raise ValueError(f"keep_fraction must be in (0, 1], not {keep_fraction}")
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape
    fy = sp_fft.fftfreq(h)[:, None] * h
    fx = sp_fft.fftfreq(w)[None, :] * w
    radius2 = (fy / h) ** 2 + (fx / w) ** 2   # normalised, so the disc is a circle for any aspect
    cutoff = np.quantile(radius2, keep_fraction)
    mask = radius2 <= cutoff
    out = np.real(sp_fft.ifft2(sp_fft.fft2(img) * mask))
    return out, float(mask.mean())


def total_after(image: np.ndarray, kernel: np.ndarray, mode: str) -> float:
    """Σ of the convolution's output. In 'full' mode it is exactly Σ image · Σ kernel (every product
    lands somewhere): dividing a 3×3 kernel by 9 keeps the total only if its entries sum to 9."""
    return float(direct_convolve(image, kernel, mode).sum())


def same_mode_share(shape: tuple[int, int], kernel: np.ndarray) -> np.ndarray:
    """Per input pixel, the part of its kernel-weighted spread that stays inside a 'same' output:
    Σ kernel for interior pixels, less at the border, where 'same' crops what spills over.
    Counted pixel by pixel from the kernel's offsets (no convolution), to predict 'same' totals."""
    k = np.asarray(kernel, dtype=np.float64)
    h, w = shape
    kh, kw = k.shape
    share = np.zeros(shape)
    rows, cols = np.arange(h)[:, None], np.arange(w)[None, :]
    for (i, j), weight in np.ndenumerate(k):
        # input pixel (r, c) sends weight k[i, j] to output (r + i - kh//2, c + j - kw//2) of 'same'
        r, c = rows + i - (kh - 1) // 2, cols + j - (kw - 1) // 2
        share += weight * ((r >= 0) & (r < h) & (c >= 0) & (c < w))
    return share


@dataclass(frozen=True)
class BlurProfile:
    """What the post says a Gaussian blur does, measured for one kernel on one image."""

    steepest_step_ratio: float   # steepest horizontal/vertical step after / before (edges smoothed: < 1)
    total_variation_ratio: float  # Σ|∇u| after / before (smoothing: < 1)
    reaches_all_neighbours: bool  # an impulse spreads into all 8 neighbours (non-negative weights)
    mass_kept: float              # Σ kernel (information kept: 1)
    centre_share: float           # the weight the pixel keeps ("mixes slightly": the largest share)
    anisotropy: float             # |var_x - var_y| + 2|cov| of the impulse response, over var_x + var_y
    decreasing_with_distance: bool  # weights fall strictly with distance from the centre (a box's do not)
    gaussian_deviation: float     # max |kernel - sampled Gaussian of the same per-axis variance|

    def is_gaussian_blur(self, tol: float = 0.01) -> bool:
        """The post's description, every part: smooths edges, spreads each pixel into its neighbours
        keeping its mass and the largest share, equally in every direction, Gaussian-shaped."""
        return (self.steepest_step_ratio < 1 and self.total_variation_ratio < 1 and self.reaches_all_neighbours
                and abs(self.mass_kept - 1) < 1e-9 and self.anisotropy < tol and self.decreasing_with_distance
                and self.gaussian_deviation < tol)


def blur_profile(kernel: np.ndarray, image: np.ndarray) -> BlurProfile:
    """Measure `kernel` (odd-sized, 2-D) against the post's description of a Gaussian blur."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] % 2 == 0 or k.shape[1] % 2 == 0:
        raise ValueError(f"kernel must be 2-D with odd sides, not shape {k.shape}")
    img = np.asarray(image, dtype=np.float64)
    ch, cw = k.shape[0] // 2, k.shape[1] // 2
    out = direct_convolve(img, k, "same")[ch:-ch or None, cw:-cw or None]  # away from the zero border
    ref = img[ch:-ch or None, cw:-cw or None]

    def steepest(u):
        return max(np.abs(np.diff(u, axis=0)).max(), np.abs(np.diff(u, axis=1)).max())

    def variation(u):
        return np.abs(np.diff(u, axis=0)).sum() + np.abs(np.diff(u, axis=1)).sum()

    y, x = np.mgrid[-ch:ch + 1, -cw:cw + 1]
    mass = float(k.sum())
    neighbours = k[ch - 1:ch + 2, cw - 1:cw + 2] if min(ch, cw) >= 1 else np.zeros((3, 3))
    reaches = bool(min(ch, cw) >= 1 and (neighbours > 0).all() and (k >= 0).all())
    if mass > 0 and (k >= 0).all():
        p = k / mass
        vx, vy, cov = (p * x * x).sum(), (p * y * y).sum(), (p * x * y).sum()
        anisotropy = float((abs(vx - vy) + 2 * abs(cov)) / max(vx + vy, 1e-300))
        gauss = np.outer(_sampled_gaussian_1d(ch, vy), _sampled_gaussian_1d(cw, vx))
        deviation = float(np.abs(p - gauss).max())
    else:
        anisotropy, deviation = math.inf, math.inf
    r2 = (x * x + y * y).ravel()
    flat = k.ravel()
    decreasing = all(flat[r2 == a].max() > flat[r2 == b].min() + 1e-12
                     for a, b in zip(np.unique(r2), np.unique(r2)[1:]))
    return BlurProfile(float(steepest(out) / steepest(ref)), float(variation(out) / variation(ref)), reaches,
                       mass, float(k[ch, cw] / mass) if mass else math.nan, anisotropy, bool(decreasing), deviation)


def _sampled_gaussian_1d(half: int, variance: float) -> np.ndarray:
    """Normalised exp(-x²/2σ²) on -half..half with σ chosen so that the *sampled* weights have the
    given variance (for few samples this differs from σ² = variance); a flat row if none fits."""
    from scipy.optimize import brentq

    xs = np.arange(-half, half + 1, dtype=np.float64)

    def weights(sigma):
        w = np.exp(-xs**2 / (2 * sigma**2))
        return w / w.sum()

    flat = float((xs**2).mean())
    if half == 0 or variance <= 0:
        return weights(1e-3)
    if variance >= flat * (1 - 1e-12):
        return np.full(xs.shape, 1.0 / xs.size)
    sigma = brentq(lambda s: (weights(s) * xs**2).sum() - variance, 1e-3, 1e3)
    return weights(sigma)


# -- diffusion ------------------------------------------------------------------------------------
def heat_propagator(t: float, diffusivity: float = 1.0, spacing: float = 1.0) -> np.ndarray:
    """The heat equation's propagator sampled on a grid of the given spacing: a Gaussian of
    standard deviation √(2·D·t) (in grid units: divided by the spacing), normalised to sum 1."""
    if t <= 0 or diffusivity <= 0 or spacing <= 0:
        raise ValueError("t, diffusivity and spacing must be positive")
    sigma = math.sqrt(2 * diffusivity * t) / spacing
    return gaussian_kernel(2 * int(math.ceil(5 * sigma)) + 1, sigma)


def heat_euler(u0: np.ndarray, t: float, dt: float, diffusivity: float = 1.0,
               spacing: float = 1.0) -> tuple[np.ndarray, int]:
    """Explicit Euler for u_t = D ∇²u with the 5-point Laplacian and zero values outside the grid.
    Stable for dt ≤ spacing²/(4D). Returns (u(t), number of steps)."""
    if dt <= 0 or t < 0 or spacing <= 0:
        raise ValueError("dt and spacing must be positive and t non-negative")
    limit = spacing**2 / (4 * diffusivity)
    if dt > limit * (1 + 1e-12):
        raise ValueError(f"dt={dt} exceeds the stability limit spacing²/(4D)={limit}")
    steps = int(round(t / dt))
    if not math.isclose(steps * dt, t, rel_tol=1e-9, abs_tol=1e-12):
        raise ValueError(f"t={t} is not a whole number of steps of dt={dt}")
    u = np.array(u0, dtype=np.float64)
    rate = dt * diffusivity / spacing**2
    for _ in range(steps):
        p = np.pad(u, 1)
        u = u + rate * (p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * u)
    return u, steps


def gaussian_blobs(x: np.ndarray, y: np.ndarray, blobs, t: float = 0.0, diffusivity: float = 1.0) -> np.ndarray:
    """Sum of Gaussian blobs (x0, y0, sigma, amplitude) after diffusing for time t: each stays a
    Gaussian with variance σ² + 2Dt and keeps its mass — the heat equation's exact solution."""
    out = np.zeros(np.broadcast(x, y).shape)
    for x0, y0, sigma, amplitude in blobs:
        var = sigma**2 + 2 * diffusivity * t
        out += amplitude * (sigma**2 / var) * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * var))
    return out


# -- the stochastic reading -----------------------------------------------------------------------
def stochastic_convolve(image: np.ndarray, kernel: np.ndarray, samples: int,
                        rng: np.random.Generator) -> np.ndarray:
    """Each output pixel averages `samples` pixels of its neighbourhood, each drawn with the
    probability the (non-negative, normalised) kernel gives it: the post's 'collapse of the
    superposition'. Its expectation is the convolution with the kernel ('same' mode, zero border)."""
    k = np.asarray(kernel, dtype=np.float64)
    if (k < 0).any() or not math.isclose(k.sum(), 1.0, rel_tol=1e-9):
        raise ValueError("the kernel must be a probability distribution (non-negative, summing to 1)")
    if samples < 1:
        raise ValueError("samples must be at least 1")
    kh, kw = k.shape
    padded = np.pad(np.asarray(image, dtype=np.float64), ((kh // 2, kh // 2), (kw // 2, kw // 2)))
    h, w = image.shape
    # offsets of the flipped kernel: convolution weights pixel (i - di) by k[di]
    picks = rng.choice(k.size, size=(samples, h, w), p=k[::-1, ::-1].ravel())
    rows = picks // kw + np.arange(h)[None, :, None]
    cols = picks % kw + np.arange(w)[None, None, :]
    return padded[rows, cols].mean(axis=0)


# -- correlation, time series, whitening ----------------------------------------------------------
def cross_correlate(a, b, mode: str = "full") -> np.ndarray:
    """Cross-correlation as convolution with `b` rotated by 180° (flipped along every axis)."""
    b = np.asarray(b)
    return convolve(a, b[tuple(slice(None, None, -1) for _ in range(b.ndim))], mode)


def match_template(image: np.ndarray, template: np.ndarray) -> tuple[int, int]:
    """Top-left corner where the template matches best: cross-correlation of the mean-removed
    image and template ('valid' positions only), brightest output pixel."""
    img = np.asarray(image, dtype=np.float64)
    tpl = np.asarray(template, dtype=np.float64)
    score = cross_correlate(img - img.mean(), tpl - tpl.mean(), "valid")
    r, c = np.unravel_index(int(np.argmax(score)), score.shape)
    return int(r), int(c)


def moving_average(x: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted moving average y[t] = Σ_i w[i]·x[t-i], as a causal convolution (first len(x) outputs)."""
    x = np.asarray(x, dtype=np.float64)
    return convolve(x, np.asarray(weights, dtype=np.float64), "full")[: len(x)]


def autoregressive_impulse_response(phi: np.ndarray, length: int) -> np.ndarray:
    """The kernel h of an AR(p) model y[t] = Σ φ_i y[t-i] + ε[t], so that y = h ⊛ ε."""
    phi = np.asarray(phi, dtype=np.float64)
    h = np.zeros(length)
    h[0] = 1.0
    for t in range(1, length):
        past = h[max(0, t - len(phi)):t][::-1]
        h[t] = float(np.dot(phi[: len(past)], past))
    return h


def whiten(data: np.ndarray) -> np.ndarray:
    """Centre the rows of `data` (samples × features), rotate onto the covariance's eigenvectors
    and scale each axis to unit variance: uncorrelated features with variance one."""
    x = np.asarray(data, dtype=np.float64)
    x = x - x.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(x, rowvar=False))
    if eigenvalues.min() <= 1e-12 * eigenvalues.max():
        raise ValueError("the data's covariance is singular: some direction has no variance")
    return (x @ eigenvectors) / np.sqrt(eigenvalues)


@dataclass(frozen=True)
class PropagatorReading:
    """The post's reading of a kernel through its softmax 'propagator', measured on one image."""

    centre: float             # softmax weight on the centre
    neighbour: float          # largest softmax weight off the centre
    corr_with_image: float    # correlation of image ⊛ softmax(kernel) with the image
    corr_with_edges: float    # ... with the edge map |image ⊛ kernel|
    top_overlap: float        # share of the output's brightest pixels among the edge map's brightest
    top_overlap_image: float  # ... among the image's own brightest
    top_fraction: float       # the fraction of pixels called "brightest"
    departure_residual: float  # max |(output - image) - (-neighbour · image ⊛ kernel)| (a centre-8 kernel)

    def summary(self) -> str:
        """conv-13: the softmax kernel, and where image ⊛ softmax(edge) is largest."""
        return "\n".join([
            f"softmax kernel: centre {self.centre:.4f}, each neighbour {self.neighbour:.2e}",
            f"image ⊛ softmax(edge): correlation with the image "
            f"{numerics.float_text(self.corr_with_image, '.5f')}, with the edge map "
            f"{numerics.float_text(self.corr_with_edges, '.3f')}",
            f"its brightest {self.top_fraction:.0%} of pixels: {self.top_overlap_image:.1%} are among "
            f"the image's brightest, {self.top_overlap:.1%} among the edge map's brightest",
            f"output − image + s · (edge ⊛ image): {numerics.bound(self.departure_residual, 1e-12)}"])


def propagator_reading(image: np.ndarray, kernel: np.ndarray, top_fraction: float = 0.05
                       ) -> PropagatorReading:
    """Convolve `image` with the softmax of `kernel` (the post's propagator) and ask where the
    result is largest: at the image's bright regions or at its edges (|image ⊛ kernel|). For the
    edge detector (centre 8, neighbours −1) the softmax is c·identity + s·(neighbours) with c = 1 − 8s,
    so output − image = s·(Σ neighbours − 8·pixel) = −s · (image ⊛ kernel) exactly: the edges are
    only in the output's departure from the image, scaled by s; `departure_residual` checks it."""
    img = np.asarray(image, dtype=np.float64)
    soft = softmax_kernel(kernel)
    out = fft_convolve(img, soft, "same")
    response = fft_convolve(img, np.asarray(kernel, dtype=np.float64), "same")
    edges = np.abs(response)
    centre = float(soft[soft.shape[0] // 2, soft.shape[1] // 2])
    off = soft.copy()
    off[soft.shape[0] // 2, soft.shape[1] // 2] = -np.inf
    neighbour = float(off.max())
    k = max(1, int(round(top_fraction * img.size)))
    top_out = np.argpartition(out.ravel(), -k)[-k:]
    top_edges = np.argpartition(edges.ravel(), -k)[-k:]
    top_image = np.argpartition(img.ravel(), -k)[-k:]
    overlap = len(np.intersect1d(top_out, top_edges)) / k
    return PropagatorReading(
        centre=centre, neighbour=neighbour,
        corr_with_image=float(np.corrcoef(out.ravel(), img.ravel())[0, 1]),
        corr_with_edges=float(np.corrcoef(out.ravel(), edges.ravel())[0, 1]),
        top_overlap=float(overlap),
        top_overlap_image=float(len(np.intersect1d(top_out, top_image)) / k),
        top_fraction=float(top_fraction),
        departure_residual=float(np.abs((out - img) + neighbour * response).max()))


# -- the chapter's measurements, one function per claim -------------------------------------------
# Each returns what the notebook prints and checks; the figures are separate functions returning
# their matplotlib Figure. Functions that take `rng` draw from it in the chapter's order, so a
# seeded run reproduces every number.
@dataclass(frozen=True)
class IntensityKept:
    """conv-1: per kernel (divided by 9), (Σ kernel ÷ 9, share of the image's total kept by the full
    output, 'same' share predicted from the kernel's offsets, 'same' share measured)."""

    rows: dict[str, tuple[float, float, float, float]]

    @property
    def kept(self) -> dict[str, float]:
        return {name: v[1] for name, v in self.rows.items()}

    @property
    def changed(self) -> list[str]:
        """The kernels whose full output does not keep the total within 1 %."""
        return [name for name, share in self.kept.items() if abs(share - 1) >= 0.01]

    @property
    def prediction_error(self) -> float:
        """Largest gap between a total and its prediction (Σ kernel; the 'same' share)."""
        return max(max(abs(v[1] - v[0]), abs(v[3] - v[2])) for v in self.rows.values())

    def kept_rounded(self, digits: int = 4) -> list[float]:
        return [round(share, digits) + 0.0 for share in self.kept.values()]  # + 0.0: no "-0"

    def changed_text(self) -> str:
        """"the X keeps 56%, ..." for the kernels that change the total."""
        return ", ".join(f"the {n} keeps {round(self.kept[n], 2) + 0.0:.0%}" for n in self.changed)

    def table(self) -> str:
        lines = [f"{'kernel ÷ 9':<15} {'Σ kernel ÷ 9':>13} {'full: total kept':>17} "
                 f"{'same: predicted':>16} {'same: measured':>15}"]
        for name, values in self.rows.items():
            s = [round(v, 6) + 0.0 for v in values]  # + 0.0: no "-0" from rounding noise
            lines.append(f"{name:<15} {s[0]:>13.4f} {s[1]:>17.6f} {s[2]:>16.6f} {s[3]:>15.6f}")
        return "\n".join(lines)


def intensity_kept(image: np.ndarray, panel: dict[str, np.ndarray], divisor: float = 9) -> IntensityKept:
    """conv-1: does dividing a kernel by its size (9) keep the image's total intensity? For each
    kernel of `panel`, divided by `divisor`, the share of the total its full and 'same' outputs keep."""
    total = image.sum()
    rows = {}
    for name, kernel in panel.items():
        k = kernel / divisor
        predicted_same = float((same_mode_share(image.shape, k) * image).sum() / total)
        rows[name] = (k.sum(), total_after(image, k, "full") / total,
                      predicted_same, total_after(image, k, "same") / total)
    return IntensityKept(rows)


def figure_edge_and_blur(image: np.ndarray, edge: np.ndarray, box: np.ndarray):
    """conv-1's picture: the image, |edge kernel ⊛ image| and the box blur."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.2), layout="constrained")
    for ax, (title, picture) in zip(axes, [
            ("image", image), ("edge kernel", np.abs(fft_convolve(image, edge, "same"))),
            ("box kernel ÷ 9 (blur)", fft_convolve(image, box, "same"))]):
        ax.imshow(picture, cmap="gray", vmax=None if title != "edge kernel" else 0.5)
        ax.set_title(title)
        ax.axis("off")
    return fig


@dataclass(frozen=True)
class Agreement:
    """conv-3: FFT against direct convolution (and both against scipy)."""

    cases: int           # random (shape, mode) cases compared
    worst: float         # largest difference relative to max(1, max |reference|)
    photo_error: float   # max |fft - direct| on the photograph


def fft_agreement(rng: np.random.Generator, trials: int, image: np.ndarray, kernel: np.ndarray,
                  max_side: int = 40) -> Agreement:
    """conv-3: the convolution theorem. `trials` random 1-D and as many 2-D pairs of arrays (sides
    below `max_side`), every mode where it is defined: fft_convolve against direct_convolve and
    direct_convolve against scipy.signal.convolve; then the photograph with `kernel`."""
    import scipy.signal

    worst, cases = 0.0, 0
    for ndim in (1, 2):
        for _ in range(trials):
            shape_a = tuple(rng.integers(1, max_side, ndim))
            shape_b = tuple(rng.integers(1, max_side, ndim))
            a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
            for mode in MODES:
                if mode == "valid" and not (all(np.greater_equal(shape_a, shape_b))
                                            or all(np.greater_equal(shape_b, shape_a))):
                    continue
                direct, fft = direct_convolve(a, b, mode), fft_convolve(a, b, mode)
                reference = scipy.signal.convolve(a, b, mode=mode, method="direct")
                scale = max(1.0, np.abs(reference).max())
                worst = max(worst, np.abs(fft - direct).max() / scale,
                            np.abs(direct - reference).max() / scale)
                cases += 1
    photo_error = np.abs(fft_convolve(image, kernel, "same") - direct_convolve(image, kernel, "same")).max()
    return Agreement(cases, worst, photo_error)


def rotate_crop(picture: np.ndarray, angle: float) -> np.ndarray:
    """Rotate counter-clockwise (on screen) and keep the central 256×256, free of corners."""
    import scipy.ndimage as ndi

    return ndi.rotate(picture, angle, reshape=False, order=1)[128:384, 128:384]


def recovered_angle(picture: np.ndarray, angle: float) -> float:
    """conv-4: the rotation of `picture` by `angle` degrees, read back off the spectra alone."""
    # image rows run downwards, so a counter-clockwise turn lowers the measured angle
    return (spectrum_orientation(rotate_crop(picture, 0))
            - spectrum_orientation(rotate_crop(picture, angle))) % 180


def figure_spectra(pattern: np.ndarray, photo: np.ndarray, angles=(0, 37), size: int = 256):
    """conv-4's picture: the stripes and the photo at each angle, with their log spectra."""
    import matplotlib.pyplot as plt

    window = np.outer(np.hanning(size), np.hanning(size))
    fig, axes = plt.subplots(2, 4, figsize=(7.5, 4.4), layout="constrained")
    for i, a in enumerate(angles):
        for j, (title, pic) in enumerate([("stripes", rotate_crop(pattern, a)),
                                          ("photo", rotate_crop(photo, a))]):
            axes[i, 2 * j].imshow(pic, cmap="gray")
            axes[i, 2 * j].set_title(f"{title}, {a}°")
            axes[i, 2 * j + 1].imshow(log_spectrum(pic * window), cmap="magma")
            axes[i, 2 * j + 1].set_title("log |spectrum|")
    for ax in axes.flat:
        ax.axis("off")
    return fig


@dataclass(frozen=True)
class Compression:
    """conv-5: low-pass filtering at each kept fraction of the spectrum."""

    fractions: list[float]
    period: float                  # of the stripes, in pixels
    errors: dict[str, list[float]]  # "stripes", "photo" -> RMS error / std per fraction
    stripes_kept: list[bool]       # correlation > 0.8 and orientation within 1° per fraction

    @property
    def fundamental_area(self) -> float:
        """The share of the spectrum inside a disc of radius 1/period (the stripes' fundamental)."""
        return np.pi / self.period**2

    @property
    def monotone(self) -> bool:
        """Less kept, more error, for both pictures."""
        return all(np.all(np.diff(errors) > 0) for errors in self.errors.values())

    @property
    def as_predicted(self) -> bool:
        """The stripes survive exactly when the disc holds their fundamental."""
        return all(kept == (f > self.fundamental_area) for f, kept in zip(self.fractions, self.stripes_kept))

    @property
    def smallest_kept(self) -> float:
        return min(f for f, kept in zip(self.fractions, self.stripes_kept) if kept)

    def photo_error_at(self, fraction: float) -> float:
        return self.errors["photo"][self.fractions.index(fraction)]

    def table(self) -> str:
        lines = [f"{'% kept':>7} {'disc holds the fundamental':>27} {'stripes kept':>13} {'photo error':>12}"]
        for f, kept, e in zip(self.fractions, self.stripes_kept, self.errors["photo"]):
            lines.append(f"{100 * f:>7.1f} {str(f > self.fundamental_area):>27} {str(kept):>13} {e:>12.3f}")
        return "\n".join(lines)


def lowpass_compression(pattern: np.ndarray, photo: np.ndarray, fractions: list[float],
                        period: float) -> Compression:
    """conv-5: keep `fractions` of the spectrum (a centred disc) of the stripes `pattern` (of this
    period) and of the photo; the relative error of each, and whether the stripes survive."""
    errors: dict[str, list[float]] = {"stripes": [], "photo": []}
    kept_stripes = []
    for f in fractions:
        for name, pic in [("stripes", pattern), ("photo", photo)]:
            filtered, _ = lowpass(pic, f)
            errors[name].append(np.sqrt(np.mean((filtered - pic) ** 2)) / pic.std())
            if name == "stripes":
                correlation = np.corrcoef(filtered.ravel(), pic.ravel())[0, 1]
                shift = abs(spectrum_orientation(filtered) - spectrum_orientation(pic))
                kept_stripes.append(bool(correlation > 0.8 and shift < 1.0))
    return Compression(list(fractions), period, errors, kept_stripes)


def figure_lowpass(pattern: np.ndarray, photo: np.ndarray):
    """conv-5's pictures: the stripes, the stripes at 1.5 % kept, the photo at 1 % kept."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.9), layout="constrained")
    axes[0].imshow(pattern, cmap="gray")
    axes[0].set_title("stripes")
    axes[1].imshow(lowpass(pattern, 0.015)[0], cmap="gray")
    axes[1].set_title("1.5 % of spectrum kept")
    axes[2].imshow(lowpass(photo, 0.01)[0], cmap="gray")
    axes[2].set_title("photo, 1 % kept")
    for ax in axes:
        ax.axis("off")
    return fig


def figure_compression(compression: Compression):
    """conv-5's curve: relative error against the % of coefficients kept."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    for name, errors in compression.errors.items():
        ax.plot([100 * f for f in compression.fractions], errors, "o-", label=name)
    ax.axvline(100 * compression.fundamental_area, color="gray", ls=":", label="stripes' fundamental")
    ax.set_xscale("log")
    ax.set_xlabel("% of coefficients kept")
    ax.set_ylabel("relative RMS error")
    ax.legend()
    ax.set_title("error against compression")
    return fig


@dataclass(frozen=True)
class HeatConvergence:
    """conv-6: the propagator and explicit Euler against the exact solution, per grid spacing."""

    half_width: float
    rows: list[tuple]   # (h, steps, point-updates, propagator error, Euler error) per spacing
    edge_value: float   # the exact solution's largest value on the finest grid's edge
    step_error: float   # one Euler step against the same step from scipy.ndimage.laplace

    @property
    def orders(self) -> list[float]:
        """Observed order of Euler's convergence in h between successive spacings."""
        return [np.log2(a[4] / b[4]) for a, b in zip(self.rows, self.rows[1:])]

    def table(self) -> str:
        lines = [f"{'h':>6} {'steps':>6} {'point-updates':>14} {'propagator error':>17} {'Euler error':>12}"]
        for h, steps, cost, e_prop, e_euler in self.rows:
            lines.append(f"{h:>6} {steps:>6} {cost:>14,} {e_prop:>17.1e} {e_euler:>12.2e}")
        orders = [round(float(o), 2) for o in self.orders]
        lines.append(f"observed order of Euler's convergence in h: {orders}")
        lines.append(f"exact solution on the grid's edge (±{self.half_width:g}): {self.edge_value:.1e}; "
                     f"one Euler step vs scipy.ndimage.laplace: {numerics.bound(self.step_error, 1e-14)}")
        return "\n".join(lines)


def heat_convergence(blobs, t_end: float, half_width: float, spacings: list[float]) -> HeatConvergence:
    """conv-6: diffuse a sum of Gaussian `blobs` to `t_end` on grids of ±half_width at each spacing h,
    by one convolution with the propagator and by Euler steps of Δt = h²/8; errors against the
    exact solution, the edge value of the finest grid and one step against scipy's Laplacian."""
    import scipy.ndimage as ndi

    rows = []
    for h in spacings:
        r = np.arange(-half_width, half_width + h / 2, h)
        x, y = np.meshgrid(r, r, indexing="ij")
        u0, exact = gaussian_blobs(x, y, blobs), gaussian_blobs(x, y, blobs, t=t_end)
        by_propagator = fft_convolve(u0, heat_propagator(t_end, spacing=h), "same")
        by_euler, steps = heat_euler(u0, t_end, h * h / 8, spacing=h)
        rows.append((h, steps, steps * u0.size, np.abs(by_propagator - exact).max(),
                     np.abs(by_euler - exact).max()))
    edge_value = max(np.abs(exact[[0, -1], :]).max(), np.abs(exact[:, [0, -1]]).max())  # finest grid
    one_step = heat_euler(u0, h * h / 8, h * h / 8, spacing=h)[0]
    scipy_step = u0 + (1 / 8) * ndi.laplace(u0, mode="constant", cval=0.0)  # Δt·D/h² = 1/8
    return HeatConvergence(half_width, rows, edge_value, np.abs(one_step - scipy_step).max())


def figure_diffusion(image: np.ndarray, times=(0.0, 4.0, 16.0)):
    """conv-6's pictures: the photograph diffused to each time (by the propagator)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(times), figsize=(7.5, 3.2), layout="constrained")
    for ax, t in zip(axes, times):
        ax.imshow(image if t == 0 else fft_convolve(image, heat_propagator(t), "same"), cmap="gray")
        ax.set_title(f"diffused to t = {t:g}")
        ax.axis("off")
    return fig


def figure_heat_convergence(diffusion: HeatConvergence):
    """conv-6's curve: max error against Euler's cost, with the propagator's error."""
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows = diffusion.rows
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    ax.loglog([r[2] for r in rows], [r[4] for r in rows], "o-", label="explicit Euler")
    ax.loglog([r[2] for r in rows], [r[3] for r in rows], "s", label="Gaussian propagator (one FFT)")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, numticks=6))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # unlabelled minor ticks
    ax.set_xlabel("cost of Euler (grid points × steps)")
    ax.set_ylabel("max error")
    ax.legend()
    ax.set_title("error against the exact solution")
    return fig


def figure_softmax_output(image: np.ndarray, kernel: np.ndarray):
    """conv-13's pictures: |kernel ⊛ image|, softmax(kernel) ⊛ image and its departure from the image."""
    import matplotlib.pyplot as plt

    soft_output = fft_convolve(image, softmax_kernel(kernel), "same")
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.2), layout="constrained")
    for ax, (title, picture, cmap) in zip(axes, [
            ("(a) |edge ⊛ image|", np.abs(fft_convolve(image, kernel, "same")), "gray"),
            ("(b) softmax(edge) ⊛ image", soft_output, "gray"),
            ("(c) (b) − image", soft_output - image, "RdBu")]):
        ax.imshow(picture, cmap=cmap, vmax=0.5 if title.startswith("(a)") else None)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    return fig


def impulse_response(kernel: np.ndarray, size: int = 7) -> np.ndarray:
    """conv-8: what `kernel` makes of one bright pixel in the middle of a size×size black image."""
    impulse = np.zeros((size, size))
    impulse[size // 2, size // 2] = 1.0
    return direct_convolve(impulse, kernel, "same")


def blur_table(profiles: dict[str, BlurProfile]) -> str:
    """conv-8: one row per kernel of its `blur_profile`, and whether it is a Gaussian blur."""
    lines = [f"{'kernel':<25} {'steepest':>9} {'TV':>6} {'spreads':>8} {'anisotropy':>11} "
             f"{'falls w/ dist':>14} {'≠ Gaussian':>11} {'Gaussian blur?':>15}"]
    for name, p in profiles.items():
        deviation = (numerics.bound(p.gaussian_deviation, 1e-12) if np.isfinite(p.gaussian_deviation)
                     else "inf")
        lines.append(f"{name:<25} {p.steepest_step_ratio:>9.3f} {p.total_variation_ratio:>6.3f} "
                     f"{str(p.reaches_all_neighbours):>8} {p.anisotropy:>11.3g} "
                     f"{str(p.decreasing_with_distance):>14} {deviation:>11} {str(p.is_gaussian_blur()):>15}")
    return "\n".join(lines)


@dataclass(frozen=True)
class SamplingError:
    """conv-9: RMS error of the stochastic convolution against the exact one, per sample count."""

    sample_counts: list[int]
    rms: list[float]

    @property
    def slope(self) -> float:
        """Log-log slope of the RMS error against the samples (the central limit theorem: -1/2)."""
        return np.polyfit(np.log(self.sample_counts), np.log(self.rms), 1)[0]


def sampling_error(image: np.ndarray, kernel: np.ndarray, sample_counts: list[int],
                   rng: np.random.Generator) -> SamplingError:
    """conv-9: average `s` stochastic 'collapses' per pixel for each s; error against the convolution."""
    expected = direct_convolve(image, kernel, "same")
    rms = [np.sqrt(np.mean((stochastic_convolve(image, kernel, s, rng) - expected) ** 2))
           for s in sample_counts]
    return SamplingError(list(sample_counts), rms)


def figure_sampling(sampling: SamplingError):
    """conv-9's curve: RMS error against samples per pixel, with 1/√S."""
    import matplotlib.pyplot as plt

    counts, rms = sampling.sample_counts, sampling.rms
    fig, ax = plt.subplots(figsize=(7.5, 3.3), layout="constrained")
    ax.loglog(counts, rms, "o-", label="sampled convolution")
    ax.loglog(counts, rms[0] / np.sqrt(counts), "--", label="1/√S")
    ax.set(xlabel="samples per pixel S", ylabel="RMS error")
    ax.legend()
    return fig


def correlation_identity_error(rng: np.random.Generator, shape_a=(30, 40), shape_b=(5, 7)) -> float:
    """conv-10: max |cross_correlate - scipy.signal.correlate| on a random pair of arrays."""
    import scipy.signal

    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    return np.abs(cross_correlate(a, b) - scipy.signal.correlate(a, b)).max()


@dataclass(frozen=True)
class TemplateSearch:
    """conv-10: the search of a noisy image for a crop of it."""

    noisy: np.ndarray
    template: np.ndarray
    found: tuple[int, int]      # by match_template (means removed)
    raw_found: tuple[int, int]  # the brightest pixel of the plain cross-correlation


def template_search(image: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator,
                    noise: float = 0.1) -> TemplateSearch:
    """conv-10: cut the template `box` = (top, left, height, width) out of `image`, add Gaussian noise
    of this standard deviation to the image, and find the template by cross-correlation, with and
    without removing the means."""
    top, left, height, width = box
    template = image[top:top + height, left:left + width]
    noisy = image + rng.normal(0, noise, image.shape)
    raw = cross_correlate(noisy, template, "valid")
    raw_found = tuple(int(i) for i in np.unravel_index(np.argmax(raw), raw.shape))
    return TemplateSearch(noisy, template, match_template(noisy, template), raw_found)


def figure_template_search(search: TemplateSearch):
    """conv-10's pictures: the noisy image with the match, the template, the correlation score."""
    import matplotlib.pyplot as plt

    noisy, template = search.noisy, search.template
    height, width = template.shape
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.2), layout="constrained")
    axes[0].imshow(noisy, cmap="gray")
    axes[0].set_title("image + noise")
    axes[0].add_patch(plt.Rectangle((search.found[1], search.found[0]), width, height, fill=False,
                                    color="red", lw=2))
    axes[1].imshow(template, cmap="gray")
    axes[1].set_title("template")
    score = cross_correlate(noisy - noisy.mean(), template - template.mean(), "valid")
    axes[2].imshow(score, cmap="inferno")
    axes[2].set_title("correlation (peak = match)")
    for ax in axes:
        ax.axis("off")
    return fig


@dataclass(frozen=True)
class TimeSeriesModels:
    """conv-11: the time-series models as convolutions, and whitening."""

    ma_error: float          # moving average against scipy.signal.lfilter
    ar_error: float          # AR model (convolution with its impulse response) against lfilter
    covariance_error: float  # covariance of the whitened data against the identity
    white: np.ndarray        # the whitened data

    @property
    def errors(self) -> tuple[float, float, float]:
        return self.ma_error, self.ar_error, self.covariance_error


def time_series_models(series: np.ndarray, weights: np.ndarray, phi: np.ndarray,
                       correlated: np.ndarray) -> TimeSeriesModels:
    """conv-11: the moving average with `weights` and the AR model with coefficients `phi` of
    `series`, each as a convolution against scipy.signal.lfilter's recursion; `correlated` whitened."""
    import scipy.signal

    ma_error = np.abs(moving_average(series, weights) - scipy.signal.lfilter(weights, [1.0], series)).max()
    kernel = autoregressive_impulse_response(phi, len(series))
    ar_error = np.abs(moving_average(series, kernel)
                      - scipy.signal.lfilter([1.0], np.r_[1.0, -phi], series)).max()
    white = whiten(correlated)
    covariance_error = np.abs(np.cov(white, rowvar=False) - np.eye(white.shape[1])).max()
    return TimeSeriesModels(ma_error, ar_error, covariance_error, white)


def figure_whitening(correlated: np.ndarray, white: np.ndarray):
    """conv-11's pictures: 2-D data with its covariance's eigenvectors, and the data whitened."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.6), layout="constrained")
    axes[0].scatter(*correlated.T, s=2, alpha=0.4)
    values, vectors = np.linalg.eigh(np.cov(correlated, rowvar=False))
    for value, vector in zip(values, vectors.T):
        axes[0].arrow(*correlated.mean(0), *(2 * np.sqrt(value) * vector), color="red", width=0.05)
    axes[0].set_title("correlated data, eigenvectors")
    axes[0].set_aspect("equal")
    axes[1].scatter(*white.T, s=2, alpha=0.4)
    axes[1].set_title("rotated onto them and scaled")
    axes[1].set_aspect("equal")
    return fig


@dataclass(frozen=True)
class KernelSweep:
    """conv-12 (shown, not judged): direct and FFT timings on a side×side image per kernel size."""

    side: int
    timings: list[tuple[int, float, float]]  # (k, direct seconds, FFT seconds)

    @property
    def crossover(self) -> int | None:
        """The first kernel size at which the FFT was faster on this machine."""
        return next((k for k, td, tf in self.timings if tf < td), None)

    def predicted(self, cost_model: CostModel = DEFAULT_COST_MODEL) -> int | None:
        """The first kernel size of the sweep at which the cost model picks the FFT."""
        return next((k for k, *_ in self.timings
                     if cost_model.choose((self.side, self.side), (k, k), "same") == "fft"), None)


def time_kernel_sweep(picture: np.ndarray, kernel_sizes: list[int], rng: np.random.Generator,
                      repeats: int = 3) -> KernelSweep:
    """conv-12: median time of direct and FFT convolution ('same') of `picture` with a random k×k
    kernel for each k, with a progress bar."""
    from tqdm.auto import tqdm

    timings = []
    for k in tqdm(kernel_sizes, desc="kernel sizes"):
        kernel = rng.standard_normal((k, k))
        t_direct = median_seconds(lambda: direct_convolve(picture, kernel, "same"), repeats=repeats)
        t_fft = median_seconds(lambda: fft_convolve(picture, kernel, "same"), repeats=repeats)
        timings.append((k, t_direct, t_fft))
    return KernelSweep(picture.shape[0], timings)


def figure_kernel_sweep(sweep: KernelSweep):
    """conv-12's curve: milliseconds of each method against the kernel size."""
    import matplotlib.pyplot as plt

    ks = [k for k, *_ in sweep.timings]
    fig, ax = plt.subplots(figsize=(7.5, 3.4), layout="constrained")
    ax.semilogy(ks, [td * 1e3 for _, td, _ in sweep.timings], "o-", label="direct")
    ax.semilogy(ks, [tf * 1e3 for *_, tf in sweep.timings], "s-", label="FFT")
    ax.set(xlabel="kernel size k (k×k)", ylabel="ms",
           title=f"{sweep.side}×{sweep.side} image, this machine")
    ax.legend()
    return fig


@dataclass(frozen=True)
class BothEnds:
    """conv-12: the winner's advantage at each end, (ratio, low, high) from interleaved trials."""

    small: tuple[float, float, float]  # FFT's time over direct's at the small kernel
    large: tuple[float, float, float]  # direct's time over FFT's at the large kernel
    sides: tuple[int, int] = (3, 33)   # the two kernels' sides

    @property
    def estimate(self) -> float:
        """The claim needs both ends: its weaker side decides."""
        return min(self.small[0], self.large[0])

    @property
    def interval(self) -> tuple[float, float]:
        """The interval of the minimum of the two ratios."""
        return min(self.small[1], self.large[1]), min(self.small[2], self.large[2])

    def summary(self) -> str:
        (s, g), (a, b) = (self.small, self.large), self.sides
        return (f"{a}×{a}: FFT takes ⟨{s[0]:.2f}× direct's time [{s[1]:.2f}, {s[2]:.2f}]⟩; {b}×{b}: "
                f"direct takes ⟨{g[0]:.1f}× FFT's time [{g[1]:.1f}, {g[2]:.1f}]⟩")


def time_both_ends(picture: np.ndarray, rng: np.random.Generator, rounds: int, small: int = 3,
                   large: int = 33, batch: int = 10) -> BothEnds:
    """conv-12: direct and FFT convolution of `picture` with a random small×small and large×large
    kernel, timed in alternation for `rounds`; the small one `batch` times per trial (a 3×3
    convolution takes about a millisecond)."""
    from book.core.timing import interleaved, paired_ratio_interval

    k_small, k_large = rng.standard_normal((small, small)), rng.standard_normal((large, large))

    def batched(fn):
        return lambda: [fn() for _ in range(batch)]

    trials = interleaved({"direct small": batched(lambda: direct_convolve(picture, k_small, "same")),
                          "fft small": batched(lambda: fft_convolve(picture, k_small, "same")),
                          "direct large": lambda: direct_convolve(picture, k_large, "same"),
                          "fft large": lambda: fft_convolve(picture, k_large, "same")},
                         rounds=rounds)
    # advantage of the method the claim says wins: fft/direct at the small end, direct/fft at the large
    return BothEnds(paired_ratio_interval(trials["direct small"], trials["fft small"]),
                    paired_ratio_interval(trials["fft large"], trials["direct large"]), (small, large))
