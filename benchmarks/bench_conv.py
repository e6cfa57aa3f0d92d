"""Benchmark of the convolution chapter's targets (issue: the spine, proven on convolution).

1. `fft_convolve` against `scipy.signal.fftconvolve` on a 512×512 input, kernels 3×3 … 129×129:
   ratio of median times, measured in the same run (target ≤ 1.3×).
2. `convolve(method="auto")` against the better of `direct_convolve` and `fft_convolve` on the same
   sweep (target ≤ 1.5×), and scipy's own `convolve(method="auto")` for reference.

Usage: python benchmarks/bench_conv.py [--size 512] [--repeats 5] [--calibrate]
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
import scipy.signal

from book.chapters.conv import (DEFAULT_COST_MODEL, calibrate_cost_model, convolve, direct_convolve, fft_convolve,
                       median_seconds)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--kernels", type=int, nargs="*", default=[3, 5, 9, 17, 33, 65, 129])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--calibrate", action="store_true", help="fit the cost model on this machine first")
    args = ap.parse_args(argv)

    model = calibrate_cost_model() if args.calibrate else DEFAULT_COST_MODEL
    print(f"cost model: {model}")
    rng = np.random.default_rng(0)
    image = rng.standard_normal((args.size, args.size))
    print(f"{'kernel':>7} {'ours fft':>10} {'scipy fft':>10} {'ratio':>6} | {'direct':>9} {'auto':>9} "
          f"{'picked':>6} {'auto/best':>9} | {'scipy auto':>10}")
    worst_fft, worst_auto = 0.0, 0.0
    for k in args.kernels:
        kernel = rng.standard_normal((k, k))
        t_ours = median_seconds(lambda: fft_convolve(image, kernel), args.repeats)
        t_scipy = median_seconds(lambda: scipy.signal.fftconvolve(image, kernel), args.repeats)
        direct_repeats = args.repeats if k <= 33 else 1
        t_direct = median_seconds(lambda: direct_convolve(image, kernel), direct_repeats, warmup=0 if k > 33 else 1)
        t_auto = median_seconds(lambda: convolve(image, kernel, method="auto", cost_model=model),
                                args.repeats if model.choose(image.shape, kernel.shape) == "fft" or k <= 33 else 1)
        t_scipy_auto = median_seconds(lambda: scipy.signal.convolve(image, kernel, method="auto"), args.repeats)
        best = min(t_ours, t_direct)
        worst_fft = max(worst_fft, t_ours / t_scipy)
        worst_auto = max(worst_auto, t_auto / best)
        print(f"{k:>4}×{k:<2} {t_ours * 1e3:>8.2f}ms {t_scipy * 1e3:>8.2f}ms {t_ours / t_scipy:>6.2f} | "
              f"{t_direct * 1e3:>7.1f}ms {t_auto * 1e3:>7.2f}ms {model.choose(image.shape, kernel.shape):>6} "
              f"{t_auto / best:>9.2f} | {t_scipy_auto * 1e3:>8.2f}ms", flush=True)
    print(f"worst fft_convolve / scipy.signal.fftconvolve: {worst_fft:.2f}× (target ≤ 1.3×)")
    print(f"worst convolve(auto) / best of direct and fft: {worst_auto:.2f}× (target ≤ 1.5×)")
    return 0 if worst_fft <= 1.3 and worst_auto <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
