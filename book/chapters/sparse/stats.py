"""Paired intervals over seeds: two variants trained with the same seeds differ by a per-seed amount;
the t interval of its mean says whether the difference is resolved with that many seeds."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def paired_interval(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, float]:
    """Mean of b - a over paired seeds, its standard error, a two-sided t interval and the p-value of
    'no difference' (paired t test). Needs at least two pairs."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two equal-length 1-d samples of >= 2 paired seeds, got {a.shape} and {b.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    d = b - a
    mean, se = float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(d) - 1)) * se
    p = float(stats.ttest_rel(b, a).pvalue) if se > 0 else (0.0 if mean != 0 else 1.0)
    return {"mean": mean, "se": se, "lo": mean - half, "hi": mean + half, "p": p, "n": len(d),
            "confidence": confidence}
