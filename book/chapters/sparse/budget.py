"""Which committed runs stand behind a verdict: the paper's budget, counted from the evidence file.

The paper trains its MNIST nets for 100 epochs (60,000 iterations with two learning-rate drops).
A claim about trained nets takes its verdict from runs of that length only, and only once every
density it needs has `SEEDS_NEEDED` seeds; until then the row says how many runs there are and what
is missing. Nothing here hard-codes a count: the functions read whatever rows the evidence file
holds, so the verdicts move by themselves when the sweep adds runs.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np

PAPER_EPOCHS = 100
SEEDS_NEEDED = 2
TEST_IMAGES = 10_000
TITLES = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5-Caffe"}
# A run diverged when its MNIST test error is at least this: chance is 90 %, and every net here that
# trained ends below 5 %. A diverged run is counted by sparse-13 (does training work reliably?); the
# claims about what a trained net reaches (sparse-2, -3, -6) read the runs that trained, and a
# diverged seed does not count towards their seeds.
DIVERGED_ERROR = 0.5


def diverged(run: dict[str, Any]) -> bool:
    return float(run["test_error"]) >= DIVERGED_ERROR


def trained(runs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs that did not diverge."""
    return [r for r in runs if not diverged(r)]


def paper_runs(runs: Iterable[dict[str, Any]], model: str, epochs: int = PAPER_EPOCHS,
               growth: str = "momentum", redistribution: str = "momentum") -> list[dict[str, Any]]:
    """The runs of `model` at the paper's budget with the full algorithm (no ablation)."""
    return [r for r in runs if r.get("model") == model and r.get("epochs") == epochs
            and r.get("growth", "momentum") == growth
            and r.get("redistribution", "momentum") == redistribution]


def _key(density: float) -> float:
    return round(float(density), 6)


def seeds_at(runs: Iterable[dict[str, Any]]) -> dict[float, list[int]]:
    """Density -> the sorted seeds of the runs at it (one run per seed counted once)."""
    out: dict[float, set[int]] = {}
    for r in runs:
        out.setdefault(_key(r["density"]), set()).add(int(r["seed"]))
    return {d: sorted(s) for d, s in sorted(out.items(), reverse=True)}


def complete(runs: Sequence[dict[str, Any]], densities: Iterable[float],
             seeds: int = SEEDS_NEEDED) -> bool:
    have = seeds_at(runs)
    return all(len(have.get(_key(d), [])) >= seeds for d in densities)


def errors_at(runs: Iterable[dict[str, Any]], density: float) -> list[float]:
    """Test errors (fractions) of the runs at `density`, in seed order, one per seed."""
    by_seed = {int(r["seed"]): float(r["test_error"]) for r in runs
               if _key(r["density"]) == _key(density)}
    return [by_seed[s] for s in sorted(by_seed)]


def mean_se(errors: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error over seeds (0 for a single run: no spread measured)."""
    e = np.asarray(errors, dtype=float)
    if not len(e):
        raise ValueError("no runs")
    return float(e.mean()), float(e.std(ddof=1) / np.sqrt(len(e))) if len(e) > 1 else 0.0


def describe(runs: Sequence[dict[str, Any]], model: str, epochs: int = PAPER_EPOCHS) -> str:
    """'LeNet-5-Caffe, 100 epochs: 3 runs (density 1: seeds [0, 1]; 0.2: seeds [0])', or
    '..., 100 epochs: no runs'."""
    have = seeds_at(runs)
    title = TITLES.get(model, model)
    if not have:
        return f"{title}, {epochs} epochs: no runs"
    failed = seeds_at([r for r in runs if diverged(r)])
    parts = "; ".join(f"density {d:g}: seeds {s}" + (f" (seed {', '.join(map(str, failed[d]))} diverged)"
                                                      if d in failed else "") for d, s in have.items())
    return f"{title}, {epochs} epochs: {sum(len(s) for s in have.values())} runs ({parts}){machines(runs)}"


def machines(runs: Sequence[dict[str, Any]]) -> str:
    """'; made on Intel(R) Xeon(R) Processor (10 runs), AMD EPYC (2 runs)': the CPUs the rows'
    provenance names. Runs made on CPUs of two bits families (MKL's branch differs between Intel and
    AMD: book.core.numerics) are equally valid runs; each reproduces bit for bit in its own family."""
    count: dict[str, int] = {}
    for r in runs:
        name = str((r.get("provenance") or {}).get("device_name") or "").split(" (")[0]
        if name:
            count[name] = count.get(name, 0) + 1
    if not count:
        return ""
    return "; made on " + ", ".join(f"{n} ({k} run{'s' if k > 1 else ''})"
                                    for n, k in sorted(count.items(), key=lambda kv: -kv[1]))


def missing(runs: Sequence[dict[str, Any]], model: str, densities: Iterable[float],
            seeds: int = SEEDS_NEEDED, epochs: int = PAPER_EPOCHS) -> str:
    """What a verdict still lacks, as a resource: '' when nothing is missing. Only runs that trained
    count (a diverged seed needs another seed in its place)."""
    have = seeds_at(trained(runs))
    short = [(d, seeds - len(have.get(_key(d), []))) for d in densities]
    short = [(d, n) for d, n in short if n > 0]
    if not short:
        return ""
    where = ", ".join(f"{d:g} ({n} more)" for d, n in short)
    return (f"{epochs}-epoch {TITLES.get(model, model)} runs, {seeds} seeds per density: "
            f"at density {where}")


def match_test(runs: Sequence[dict[str, Any]], sparse_density: float, *, sigmas: float = 2.0,
               test_images: int = TEST_IMAGES) -> dict[str, Any]:
    """'Matches or beats dense': the sparse mean error is not above the dense mean by more than
    `sigmas` standard errors of the difference, which adds the seed-to-seed spread of both means and
    the test set's sampling noise of two error rates on `test_images` images."""
    sparse, dense = errors_at(runs, sparse_density), errors_at(runs, 1.0)
    (es, ss), (ed, sd) = mean_se(sparse), mean_se(dense)
    noise = float(np.sqrt((es * (1 - es) + ed * (1 - ed)) / test_images))
    se = float(np.sqrt(ss ** 2 + sd ** 2 + noise ** 2))
    diff = es - ed
    return {"sparse": es, "dense": ed, "diff": diff, "se": se, "margin": sigmas * se,
            "ok": bool(diff <= sigmas * se), "seeds": (len(sparse), len(dense))}


def error_curve(runs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """Densities (%) below 100 and their mean errors (%), in increasing density."""
    have = sorted(d for d in seeds_at(runs) if d < 1)
    means = [100 * mean_se(errors_at(runs, d))[0] for d in have]
    return np.array([100 * d for d in have]), np.array(means)


def error_at_density(runs: Sequence[dict[str, Any]], density_pct: float) -> float | None:
    """Our mean error (%) at a density (%), linear in log density between the swept densities;
    None outside the swept range (no extrapolation)."""
    d, e = error_curve(runs)
    if not len(d) or density_pct < d[0] - 1e-9 or density_pct > d[-1] + 1e-9:
        return None
    return float(np.interp(np.log(density_pct), np.log(d), e))


def compare_with_methods(runs: Sequence[dict[str, Any]], methods) -> list[dict[str, Any]]:
    """Each published method against our error at its density (interpolated in log density)."""
    out = []
    for m in methods:
        ours = error_at_density(runs, m.density)
        out.append({"method": f"{m.method} ({m.author})", "density": m.density,
                    "published": m.error, "ours": ours,
                    "beats": None if ours is None else bool(ours < m.error)})
    return out


__all__ = ["PAPER_EPOCHS", "SEEDS_NEEDED", "DIVERGED_ERROR", "diverged", "trained", "paper_runs", "seeds_at", "complete", "errors_at",
           "mean_se", "describe", "machines", "missing", "match_test", "error_curve", "error_at_density",
           "compare_with_methods"]
