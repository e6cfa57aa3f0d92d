"""An independent audit of sparse momentum's prune/regrow cycles.

`algorithm.SparseMomentum` records what it did in each cycle; checking it against its own record
would restate its formulas. This module instead looks only at what an outside observer can see —
the masks, the weights and the momentum buffers just before and just after `end_epoch()` — and
recomputes from first principles what the post's description says must have happened:

- the prune rate of cycle t of T epochs: p_min + (p_0 - p_min)/2 · (1 + cos(π t / (T-1)));
- each layer prunes round(p_t · active) of its active weights, the ones of smallest magnitude: so the
  largest-magnitude (active − pruned) weights all survive, and no weight that is gone after the cycle
  was among them;
- every other active weight after the cycle is regrown, and no weight left missing has a larger
  momentum magnitude than any regrown one (within the layer). A weight missing before the cycle
  starts at exactly zero; one pruned and regrown in the same cycle keeps its value (its mask went off
  and on again, as in the paper's code), so every weight active before and after is unchanged;
- the total count of active weights is unchanged;
- with redistribution, a layer that did not fill up regrew in proportion to its importance (mean
  momentum magnitude of its active weights before the cycle, normalised over layers), up to rounding.

Nothing here imports `algorithm`: the counts are computed from the snapshots alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class Snapshot:
    """Masks, weights and momentum magnitudes of every sparse layer at one moment (copies)."""
    masks: dict[str, torch.Tensor]
    weights: dict[str, torch.Tensor]
    momentum: dict[str, torch.Tensor]

    @classmethod
    def take(cls, masks: dict[str, torch.Tensor], weights: dict[str, torch.Tensor],
             optimizer: torch.optim.Optimizer) -> "Snapshot":
        def mom(w):
            buf = optimizer.state.get(w, {}).get("momentum_buffer")
            if buf is None:
                raise RuntimeError("no momentum buffer yet: audit a cycle after at least one SGD step")
            return buf.detach().abs().cpu().clone()
        return cls({n: m.detach().cpu().clone() for n, m in masks.items()},
                   {n: w.detach().cpu().clone() for n, w in weights.items()},
                   {n: mom(w) for n, w in weights.items()})


def expected_prune_rate(t: int, epochs: int, p0: float = 0.5, floor: float = 0.005) -> float:
    """The post's cosine decay, written out again here (not imported) so the audit is independent."""
    return floor + 0.5 * (p0 - floor) * (1 + math.cos(math.pi * t / (epochs - 1)))


def audit_cycle(before: Snapshot, after: Snapshot, *, t: int, epochs: int, p0: float = 0.5,
                floor: float = 0.005, redistribution: bool = True) -> dict[str, Any]:
    """Recount one prune/regrow cycle (cycle t of `epochs`) from two snapshots."""
    rate = expected_prune_rate(t, epochs, p0, floor)
    out: dict[str, Any] = {"rate": rate, "layers": {}}
    active_before = {n: int(m.sum()) for n, m in before.masks.items()}
    active_after = {n: int(m.sum()) for n, m in after.masks.items()}
    out["total_before"], out["total_after"] = sum(active_before.values()), sum(active_after.values())
    regrown_counts, importance, capped = {}, {}, {}
    for n in before.masks:
        mb, ma = before.masks[n].flatten(), after.masks[n].flatten()
        wb, wa = before.weights[n].flatten(), after.weights[n].flatten()
        mom = before.momentum[n].flatten()
        k = int(round(rate * active_before[n]))           # expected number pruned
        # The survivors are the (active - k) largest magnitudes. Zeros are the smallest, so they go
        # first; where a layer has fewer nonzero weights than survivors, which zeros survived cannot be
        # seen, and those zeros are left out of both the survivor and the regrown set.
        nonzero = mb & (wb != 0)
        n_keep = min(active_before[n] - k, int(nonzero.sum()))
        mags = wb.abs()[nonzero]
        order = torch.argsort(mags, descending=True, stable=True)
        survivors = torch.zeros_like(mb)
        survivors[nonzero.nonzero().flatten()[order[:n_keep]]] = True
        ties = bool(0 < n_keep < len(mags) and float(mags[order[n_keep - 1]]) == float(mags[order[n_keep]]))
        kept, gone, new = mb & ma, mb & ~ma, ma & ~mb
        unclear_zeros = kept & (wb == 0) & (n_keep < active_before[n] - k)
        regrown = (kept & ~survivors & ~unclear_zeros) | new   # pruned and regrown in place, or new
        missing = ~ma
        grown_min = float(mom[regrown].min()) if regrown.any() else math.inf
        missing_max = float(mom[missing].max()) if missing.any() else -math.inf
        regrown_counts[n] = active_after[n] - (active_before[n] - k)  # counted, not read off the run's record
        importance[n] = float(mom[mb].mean()) if active_before[n] else 0.0
        capped[n] = not missing.any()
        out["layers"][n] = {
            "active_before": active_before[n], "active_after": active_after[n], "pruned_expected": k,
            "gone": int(gone.sum()), "regrown_in_place": int((kept & ~survivors & ~unclear_zeros).sum()),
            "regrown": regrown_counts[n],
            "pruned_as_scheduled": int(gone.sum()) <= k <= active_before[n],
            "survivors_are_largest": bool((survivors <= kept).all()) or ties,
            "kept_unchanged": bool((wa[kept] == wb[kept]).all()),
            "regrown_start_at_zero": bool((wa[new] == 0).all()),
            "regrown_have_largest_momentum": grown_min >= missing_max,
        }
    total_imp = sum(importance.values())
    share_miss = 0.0
    if redistribution and total_imp > 0:
        free = [n for n in importance if not capped[n]]
        imp = np.array([importance[n] / total_imp for n in free])
        got = np.array([regrown_counts[n] for n in free], dtype=float)
        if len(free) and imp.sum() > 0:
            share_miss = float(np.abs(got - got.sum() * imp / imp.sum()).max())
    out["redistribution_share_miss"] = share_miss
    layers = out["layers"].values()
    out["ok"] = bool(out["total_before"] == out["total_after"]
                     and all(v["pruned_as_scheduled"] for v in layers)
                     and all(v["survivors_are_largest"] and v["kept_unchanged"] and v["regrown_start_at_zero"]
                             and v["regrown_have_largest_momentum"] for v in layers)
                     and share_miss <= 1.0)
    return out


class CycleAuditor:
    """Wraps a run's `end_epoch()`: snapshots before and after every cycle and audits it.

        auditor = CycleAuditor(sparse.masks, sparse.weights, optimizer, epochs=T)
        ...  auditor.end_epoch(sparse.end_epoch)   # instead of sparse.end_epoch()
    """

    def __init__(self, masks: dict[str, torch.Tensor], weights: dict[str, torch.Tensor],
                 optimizer: torch.optim.Optimizer, *, epochs: int, p0: float = 0.5, floor: float = 0.005,
                 redistribution: bool = True):
        self.masks, self.weights, self.optimizer = masks, weights, optimizer
        self.epochs, self.p0, self.floor, self.redistribution = epochs, p0, floor, redistribution
        self.t = 0
        self.cycles: list[dict[str, Any]] = []

    def end_epoch(self, end_epoch) -> Any:
        if self.t >= self.epochs - 1:        # the post: no cycle after the last epoch
            before_masks = {n: m.clone() for n, m in self.masks.items()}
            result = end_epoch()
            self.last_epoch_unchanged = all(torch.equal(before_masks[n], self.masks[n]) for n in self.masks)
            self.t += 1
            return result
        before = Snapshot.take(self.masks, self.weights, self.optimizer)
        result = end_epoch()
        after = Snapshot.take(self.masks, self.weights, self.optimizer)
        self.cycles.append(audit_cycle(before, after, t=self.t, epochs=self.epochs, p0=self.p0, floor=self.floor,
                                       redistribution=self.redistribution))
        self.t += 1
        return result

    def summary(self) -> dict[str, Any]:
        c = self.cycles
        layers = [v for r in c for v in r["layers"].values()]
        return {
            "cycles": len(c),
            "count_conserved": all(r["total_before"] == r["total_after"] for r in c),
            "pruned_as_scheduled": all(v["pruned_as_scheduled"] for v in layers),
            "smallest_pruned": all(v["survivors_are_largest"] for v in layers),
            "regrown_at_zero": all(v["regrown_start_at_zero"] for v in layers),
            "kept_unchanged": all(v["kept_unchanged"] for v in layers),
            "regrown_in_place": sum(v["regrown_in_place"] for v in layers),
            "largest_momentum_regrown": all(v["regrown_have_largest_momentum"] for v in layers),
            "max_share_miss": max((r["redistribution_share_miss"] for r in c), default=0.0),
            "pruned_expected_total": sum(v["pruned_expected"] for v in layers),
            "all_ok": bool(c) and all(r["ok"] for r in c),
        }
