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
