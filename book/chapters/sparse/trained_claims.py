"""The verdicts of the claims about trained nets, read off the committed full-mode evidence in
results/sparse/ (what `budget` counts as the paper's budget decides whether a row is judged or says
what is missing): 20 % against dense (sparse-2), the compression methods of the paper's table
(sparse-3), the ablations (sparse-4), class specialization (sparse-6) and the magnitude-pruning
baseline (sparse-9). Each function returns a `Reading`: the lines the chapter prints and the fields
its ledger call takes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from book.core import evidence
from book.core.numerics import float_text as ft
from book.chapters.sparse import budget, published
from book.chapters.sparse.analysis import LAYER_NAMES, LAYER_NAMES_LENET5, class_specialization
from book.chapters.sparse.pruning import PruningConfig, compare
from book.chapters.sparse.reading import Reading
from book.chapters.sparse.stats import paired_interval
from book.chapters.sparse.training import MODEL_TITLES, MnistData

CHAPTER = "sparse"
SWEEPS = ("lenet300", "lenet5", "ablation", "specialization")   # the committed evidence files
VARIANTS = {"random growth": ("random", "momentum"), "no redistribution": ("momentum", "none")}


def full_algorithm(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs with momentum growth and momentum redistribution (no ablation), of any length."""
    return [r for r in runs if r.get("growth", "momentum") == "momentum"
            and r.get("redistribution", "momentum") == "momentum"]


def _describe_all(paper: dict[str, list[dict[str, Any]]]) -> str:
    return "; ".join(budget.describe(paper[n], n) for n in budget.TITLES)


@dataclass
class CommittedEvidence:
    """The chapter's committed evidence files and, per net, the runs at the paper's budget (100
    epochs, full algorithm) that the verdicts of trained-net claims read."""
    files: dict[str, evidence.Evidence]
    pruning: evidence.Evidence | None
    paper: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def load(cls) -> "CommittedEvidence":
        files = {name: evidence.load(CHAPTER, name) for name in SWEEPS}
        pruning = evidence.load(CHAPTER, "pruning") if evidence.exists(CHAPTER, "pruning") else None
        runs = [r for name in ("lenet300", "lenet5") for r in files[name].data["runs"]]
        return cls(files, pruning, {net: budget.paper_runs(runs, net) for net in budget.TITLES})

    def __getitem__(self, name: str) -> evidence.Evidence:
        return self.files[name]

    @property
    def trained(self) -> dict[str, list[dict[str, Any]]]:
        """Per net, the paper-budget runs that did not diverge: what claims about trained nets read."""
        return {net: budget.trained(runs) for net, runs in self.paper.items()}

    def summary(self) -> Reading:
        """Which files there are, and how many runs stand at the paper's budget per net."""
        files = [*self.files.values(), *([self.pruning] if self.pruning else [])]
        return Reading(lines=[f"evidence {ev.label}" for ev in files]
                       + [f"at the paper's budget: {budget.describe(runs, net)}"
                          for net, runs in self.paper.items()])

    @property
    def shown(self) -> dict[str, list[dict[str, Any]]]:
        """Per net, the runs the error-density figure shows: those at the paper's budget, else the
        committed shorter runs of the full algorithm."""
        return {net: self.paper[net] or full_algorithm(self[net].data["runs"]) for net in budget.TITLES}

    def shown_summary(self) -> Reading:
        """What the figure's panels show: runs and seeds per density, with their length."""
        out = []
        for net, shown in self.shown.items():
            epochs = sorted({r["epochs"] for r in shown})
            out.append(budget.describe(shown, net, epochs=epochs[0] if len(epochs) == 1 else epochs))
        return Reading(lines=out)

    def final_layer_densities(self, density: float = 0.05) -> Reading:
        """The final layer densities of each net's committed full-algorithm run at `density` that
        trained (the lowest such seed; a diverged net's masks say nothing of where weights help)."""
        out = []
        for name, names in [("lenet300", LAYER_NAMES), ("lenet5", LAYER_NAMES_LENET5)]:
            runs = sorted((r for r in budget.trained(full_algorithm(self[name].data["runs"]))
                           if np.isclose(r["density"], density)), key=lambda r: (-r["epochs"], r["seed"]))
            if runs:
                run = runs[0]
                shown = {names[n]: ft(v, ".3f") for n, v in run["final_layer_density"].items()}
                out.append(f"evidence, {MODEL_TITLES[name]} at {100 * density:g} %, {run['epochs']} epochs, "
                           f"seed {run['seed']}: final layer densities {shown}")
        return Reading(lines=out)


def rerun_all(device: str = "cpu") -> None:
    """Regenerate every committed evidence file of the chapter (many hours on a CPU), printing each."""
    from book.chapters.sparse import sweeps, training

    for name in [*training.FULL_PLAN, "specialization"]:
        print("re-ran", sweeps.rerun_evidence(name, device=device))


# ----------------------------------------------------------------------------------------------
# sparse-2: 20 % of the weights against dense
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class TwentyPercent(Reading):
    missing: str          # '' once both nets have the runs at the paper's budget
    context: list[float]  # error % at 20 % and dense, seed means, of the nets that have them
    reason: str
    ok: bool
    wrong: str
    evidence: dict[str, Any]
    note: str


def twenty_percent(ev: CommittedEvidence, sparse_density: float = 0.2) -> TwentyPercent:
    """sparse-2: both nets match or beat dense at 20 % of the weights (`budget.match_test`) at the
    paper's budget; the lines show every net that has the runs, and the shorter LeNet-5 runs."""
    need = [1.0, sparse_density]
    missing = [m for net in budget.TITLES if (m := budget.missing(ev.paper[net], net, need))]
    tests = {net: budget.match_test(ev.trained[net], sparse_density) for net in budget.TITLES
             if budget.complete(ev.trained[net], need)}
    lines = [f"{budget.TITLES[net]}, 100 epochs: 20 % {ft(t['sparse'], '.2%')} against dense "
             f"{ft(t['dense'], '.2%')} ({t['seeds'][0]} and {t['seeds'][1]} seeds): sparse - dense "
             f"{ft(100 * t['diff'], '+.3f')} pp, 2 SE {ft(100 * t['margin'], '.3f')} pp"
             for net, t in tests.items()]
    short5 = [r for r in full_algorithm(ev["lenet5"].data["runs"]) if r["epochs"] != budget.PAPER_EPOCHS]
    lines += [f"not the paper's budget: LeNet-5-Caffe, {r['epochs']} epochs, density {r['density']:g},"
              f" seed {r['seed']}: {ft(r['test_error'], '.2%')}"
              for r in sorted(short5, key=lambda r: -r["density"])]
    worse = [f"{budget.TITLES[n]} at 20 % is {100 * t['diff']:.2f} pp worse than dense, beyond "
             f"2 SE ({100 * t['margin']:.2f} pp)" for n, t in tests.items() if not t["ok"]]
    return TwentyPercent(
        lines=lines, missing="; ".join(missing),
        context=[round(100 * v, 3) for t in tests.values() for v in (t["sparse"], t["dense"])],
        reason="the post's nets are trained for the paper's 100 epochs; the evidence holds "
               + _describe_all(ev.paper)
               + " (context: error % at 20 % and dense, seed means, of the nets that have them)",
        ok=not worse, wrong="says 20 % matches dense; " + "; ".join(worse),
        evidence={**ev["lenet300"].as_ledger_evidence(),
                  "label": f"{ev['lenet300'].label} and {ev['lenet5'].label}"},
        note=_describe_all(ev.paper))


# ----------------------------------------------------------------------------------------------
# sparse-13: training from random weights works reliably
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Reliability(Reading):
    measured: list[int]   # [runs at the paper's setup, of them diverged]
    decided: bool         # a diverged run decides at once; none needs both nets' sweeps complete
    ok: bool
    wrong: str
    resource: str
    reason: str
    evidence: dict[str, Any]
    note: str


def reliability(ev: CommittedEvidence, densities: tuple[float, ...] = (1.0, 0.2, 0.1, 0.05, 0.02, 0.01)
                ) -> Reliability:
    """sparse-13: "can be done reliably from random weights": every run of the paper's MNIST setup
    (100 epochs, full algorithm, both nets, every density and seed committed) trains, none diverges
    (`budget.diverged`). One diverged run decides; with none, both sweeps must be complete."""
    runs = [(net, r) for net, rs in ev.paper.items() for r in rs]
    failed = [(net, r) for net, r in runs if budget.diverged(r)]
    lines = [f"at the paper's setup: {len(runs)} runs, {len(failed)} diverged "
             f"(test error {100 * budget.DIVERGED_ERROR:g} % or more; chance is 90 %)"]
    lines += [f"diverged: {budget.TITLES[net]}, density {r['density']:g}, seed {r['seed']}: test error "
              f"{ft(r['test_error'], '.2%')}" for net, r in failed]
    worst = max((r["test_error"] for _, r in runs if not budget.diverged(r)), default=None)
    if worst is not None:
        lines.append(f"the worst run that trained: {ft(worst, '.2%')} test error")
    missing = [m for net in budget.TITLES if (m := budget.missing(ev.paper[net], net, densities))]
    where = "; ".join(f"{budget.TITLES[net]} at {100 * r['density']:g} %, seed {r['seed']}, ends at "
                      f"{100 * r['test_error']:.2f} % test error" for net, r in failed)
    return Reliability(
        lines=lines, measured=[len(runs), len(failed)], decided=bool(failed) or not missing,
        ok=not failed, resource="; ".join(missing),
        wrong=f"says sparse training from random weights is reliable; {len(failed)} of {len(runs)} runs "
              f"of the paper's own MNIST setup diverged ({where})",
        reason="the post's sentence is about its runs at the paper's setup; context: [runs, diverged] "
               "of those committed so far: " + _describe_all(ev.paper),
        note=("runs at the paper's setup: " + _describe_all(ev.paper)
              + ("; the divergence study below traces the first epochs of "
                 + ("the diverged run" if len(failed) == 1 else "one of the diverged runs, named in its lines")
                 + ": a regrown weight keeps the momentum it gathered while missing, in the post's "
                   "algorithm as in the paper's code" if failed else "")),
        evidence={**ev["lenet5"].as_ledger_evidence(),
                  "label": f"{ev['lenet300'].label} and {ev['lenet5'].label}"})


# ----------------------------------------------------------------------------------------------
# sparse-3: against the compression methods of the paper's MNIST table
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class AgainstMethods(Reading):
    table: Any            # pandas DataFrame: each method against sparse momentum here
    missing: str
    context: list[int]    # [methods beaten, methods in range] per net
    reason: str
    ok: bool
    wrong: str
    note: str


def against_methods(ev: CommittedEvidence,
                    densities: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)) -> AgainstMethods:
    """sparse-3: sparse momentum at the paper's budget beats more than half of the published
    compression methods in its swept density range, for both nets (`budget.compare_with_methods`)."""
    import pandas as pd

    missing = [m for net in budget.TITLES if (m := budget.missing(ev.paper[net], net, densities))]
    rows = {net: budget.compare_with_methods(ev.trained[net], published.MNIST_METHODS[net])
            for net in budget.TITLES}
    beaten = {net: (sum(r["beats"] is True for r in rs), sum(r["beats"] is not None for r in rs))
              for net, rs in rows.items()}
    table = pd.DataFrame([{"net": budget.TITLES[net], "method": r["method"],
                           "density %": r["density"], "published error %": r["published"],
                           "sparse momentum here %": "out of range" if r["ours"] is None
                           else ft(r["ours"], ".3f"), "beaten": r["beats"]}
                          for net, rs in rows.items() for r in rs])
    lost = [f"{budget.TITLES[n]} beats only {w} of {o}" for n, (w, o) in beaten.items()
            if not (o and w > o / 2)]
    return AgainstMethods(
        lines=[f"{budget.TITLES[net]}: sparse momentum (100 epochs) beats {won} of the {of} methods "
               f"in its swept range" for net, (won, of) in beaten.items()],
        table=table, missing="; ".join(missing),
        context=[v for net in budget.TITLES for v in beaten[net]],
        reason="the table's nets are trained to the paper's budget; context: [methods beaten, "
               "methods in range] per net, of the runs there are: " + _describe_all(ev.paper),
        ok=not lost, wrong="says sparse momentum outperforms most methods; " + "; ".join(lost),
        note=f"published numbers: {published.MNIST_SOURCES['lenet300']}, "
             f"{published.MNIST_SOURCES['lenet5']}")


# ----------------------------------------------------------------------------------------------
# sparse-9: against magnitude pruning trained here
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class AgainstPruning(Reading):
    rows: list[dict[str, Any]]        # the full comparisons, one per seed
    evidence: Any                     # the committed file they come from (None: run here)
    decided: bool                     # enough seeds for a verdict
    gap_text: str = ""
    ok: bool = False
    measured: list[float] = field(default_factory=list)   # error % [sparse momentum, pruning, gap]
    wrong: str = ""
    context: list[float] = field(default_factory=list)    # the smoke run's error % [sm, pruning]
    resource: str = ""
    reason: str = ""


def against_pruning(smoke: dict[str, Any], cfg: PruningConfig, committed: evidence.Evidence | None, *,
                    full: PruningConfig | None = None, data: MnistData | None = None,
                    device: torch.device | str = "cpu",
                    test_images: int = budget.TEST_IMAGES) -> AgainstPruning:
    """sparse-9: sparse momentum is as good as Han et al.'s magnitude pruning, the same seeds,
    density and epochs: the mean error gap (sparse momentum - pruning) over the committed seeds is
    within 2 standard errors (seed spread and the test set's noise). `smoke` is the smoke run's
    `pruning.compare` at `cfg`; without committed rows, a `full` config (full mode) is run here on
    `data`, one seed."""
    lines = [f"smoke run, {cfg.epochs} epochs each on the first {cfg.train_subset:,} images: pruning "
             f"dense {ft(smoke['dense_error'], '.2%')} -> pruned once "
             f"{ft(smoke['one_shot_error'], '.2%')}"
             f" -> retrained {ft(smoke['test_error'], '.2%')}; sparse momentum "
             f"{ft(smoke['sparse_momentum_error'], '.2%')}",
             "layer densities after pruning: "
             + str({LAYER_NAMES[n]: ft(v, ".3f") for n, v in smoke["layer_density"].items()})]
    if committed is not None:
        rows = committed.data["rows"]
    else:
        rows = [compare(full, data, device=device)] if full is not None else []
    lines += [f"full comparison, seed {r['config']['seed']}, {r['epochs']} epochs each: pruning "
              f"{ft(r['test_error'], '.2%')}, sparse momentum {ft(r['sparse_momentum_error'], '.2%')}"
              for r in rows]
    out = AgainstPruning(
        lines=lines, rows=rows, evidence=committed, decided=len(rows) >= budget.SEEDS_NEEDED,
        context=[round(100 * v, 3) for v in (smoke["sparse_momentum_error"], smoke["test_error"])],
        resource=f"the full pruning comparison for {budget.SEEDS_NEEDED} seeds "
                 f"(python -m book.chapters.sparse.pruning --seeds 0 1, ~5 min a seed on one core)",
        reason=f"{len(rows)} full run(s) here; context: error % [sparse momentum, pruning] of the "
               f"smoke run ({cfg.epochs} epochs on {cfg.train_subset:,} images)")
    if out.decided:
        mean, seed_se = budget.mean_se([r["sparse_momentum_error"] - r["test_error"] for r in rows])
        e_sm = float(np.mean([r["sparse_momentum_error"] for r in rows]))
        e_pr = float(np.mean([r["test_error"] for r in rows]))
        se = float(np.hypot(seed_se, np.sqrt((e_sm * (1 - e_sm) + e_pr * (1 - e_pr)) / test_images)))
        out.gap_text = (f"sparse momentum - pruning: {ft(100 * mean, '+.3f')} pp over {len(rows)} seeds, "
                        f"2 SE {ft(200 * se, '.3f')} pp")
        out.ok = mean <= 2 * se
        out.measured = [round(100 * e_sm, 3), round(100 * e_pr, 3), round(100 * mean, 3)]
        out.wrong = (f"says sparse momentum is as good as compression; it is {100 * mean:.2f} pp worse "
                     f"than pruning, beyond 2 SE ({200 * se:.2f} pp)")
    return out


# ----------------------------------------------------------------------------------------------
# sparse-4: the ablations
# ----------------------------------------------------------------------------------------------
def ablation_intervals(runs: list[dict[str, Any]]) -> tuple[list[float], dict[str, dict[str, float]]]:
    """The full algorithm's error % per seed, and per ablated variant the 97.5 % paired interval of
    its difference (variant - full, in error points) over the seeds."""
    def errors(g, r):
        got = {x["seed"]: 100 * x["test_error"] for x in runs
               if x["growth"] == g and x["redistribution"] == r}
        return [got[s] for s in sorted(got)]
    full = errors("momentum", "momentum")
    return full, {k: paired_interval(full, errors(g, r), confidence=0.975)
                  for k, (g, r) in VARIANTS.items()}


@dataclass(kw_only=True)
class Ablation(Reading):
    ready: bool                       # the paper's budget, enough seeds per variant
    estimate: float = 0.0             # the smaller mean difference, and its interval (pp)
    interval: tuple[float, float] = (0.0, 0.0)
    context: list[float] = field(default_factory=list)
    resource: str = ""
    reason: str = ""


def ablation(ev: CommittedEvidence) -> Ablation:
    """sparse-4: momentum growth beats random growth and redistribution beats none: the 97.5 %
    intervals of both paired differences lie above zero at the paper's budget. The lines show the
    committed ablation at every length it holds."""
    by_epochs: dict[int, list[dict[str, Any]]] = {}
    for r in ev["ablation"].data["runs"]:
        by_epochs.setdefault(r["epochs"], []).append(r)
    lines = [f"evidence: {ev['ablation'].data['description']}"]
    for epochs, runs in sorted(by_epochs.items()):
        full, diffs = ablation_intervals(runs)
        lines.append(f"{epochs} epochs: full algorithm error % per seed {[ft(v, '.2f') for v in full]}")
        lines += [f"  {label} - full: {ft(d['mean'], '+.3f')} pp, 97.5 % interval "
                  f"[{ft(d['lo'], '+.3f')}, {ft(d['hi'], '+.3f')}] ({d['n']} seeds)"
                  for label, d in diffs.items()]
    paper = by_epochs.get(budget.PAPER_EPOCHS, [])
    ready = all(len({r["seed"] for r in paper if (r["growth"], r["redistribution"]) == v})
                >= budget.SEEDS_NEEDED for v in [("momentum", "momentum"), *VARIANTS.values()])
    if ready:
        _, diffs = ablation_intervals(paper)
        return Ablation(lines=lines, ready=True, estimate=min(d["mean"] for d in diffs.values()),
                        interval=(min(d["lo"] for d in diffs.values()), min(d["hi"] for d in diffs.values())))
    longest = max(by_epochs)
    _, diffs = ablation_intervals(by_epochs[longest])
    return Ablation(
        lines=lines, ready=False,
        context=[round(diffs[k][q], 3) for k in VARIANTS for q in ("lo", "hi")],
        resource=f"{budget.PAPER_EPOCHS}-epoch ablation runs (LeNet-300-100 at 2 %: full, random "
                 f"growth, no redistribution), {budget.SEEDS_NEEDED} seeds each",
        reason=f"the committed ablation trains {longest} epochs; context: 97.5 % intervals (pp) "
               f"[random growth lo, hi, no redistribution lo, hi] of those runs")


# ----------------------------------------------------------------------------------------------
# sparse-6: class specialization
# ----------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class Specialization(Reading):
    decided: bool
    estimate: float = 0.0             # sparse - dense mean s of conv channels, and its 95 % interval
    interval: tuple[float, float] = (0.0, 0.0)
    note: str = ""
    evidence: Any = None
    context: list[float] = field(default_factory=list)
    resource: str = ""
    reason: str = ""


def vgg_conv_specialization(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean class specialization of VGG16-D's conv channels (its first 13 ReLU layers) on (x, y)."""
    return float(np.concatenate([v for layer, v in class_specialization(model, x, y).items()
                                 if int(layer[5:]) <= 13]).mean())


def specialization(ev: CommittedEvidence, cifar_runs: dict[tuple, Any], cifar_data=None, *,
                   seeds: list[int], cifar_epochs: int, device: torch.device | str = "cpu") -> Specialization:
    """sparse-6: sparse nets learn more general features: the paired difference (sparse 5 % - dense)
    of the conv channels' mean specialization has its 95 % interval below zero — on VGG16-D trained
    on CIFAR-10 (`cifar_runs`) when there, else on the 100-epoch LeNet-5-Caffe runs once dense and
    5 % have enough seeds scored. The committed 3-epoch study is the context until then."""
    rows = ev["specialization"].data["rows"]
    by = {(r["density"], r["seed"]): r for r in rows}
    seeds6 = sorted({r["seed"] for r in rows})
    d6 = paired_interval([by[(1.0, s)]["conv_mean"] for s in seeds6],
                         [by[(0.05, s)]["conv_mean"] for s in seeds6])
    lines = [f"evidence: {ev['specialization'].data['description']}"]
    lines += [f"seed {s}: mean s of conv channels dense {ft(by[(1.0, s)]['conv_mean'], '.4f')}, "
              f"5 % {ft(by[(0.05, s)]['conv_mean'], '.4f')}" for s in seeds6]
    lines.append(f"sparse - dense: {ft(d6['mean'], '+.4f')}, 95 % interval [{ft(d6['lo'], '+.4f')}, "
                 f"{ft(d6['hi'], '+.4f')}]")
    vgg = {(d, s): r for (n, d, s), r in cifar_runs.items() if n == "VGG16-D"}
    spec_runs = [r for r in ev.trained["lenet5"] if "specialization" in r]   # 100-epoch nets, scored
    pairs, scale = [], ""
    if vgg:
        probe = cifar_data.x_test[:2000].to(device), cifar_data.y_test[:2000].to(device)
        conv_s = {k: vgg_conv_specialization(r.model, *probe) for k, r in vgg.items()}
        pairs = [(conv_s[(1.0, s)], conv_s[(0.05, s)]) for s in seeds]
        scale = f"VGG16-D on CIFAR-10, {cifar_epochs} epochs, seeds {seeds}"
    elif budget.complete(spec_runs, [1.0, 0.05]):
        s100 = {(r["density"], r["seed"]): r["specialization"]["conv_mean"] for r in spec_runs}
        both = sorted({s for d, s in s100 if d == 1.0} & {s for d, s in s100 if d == 0.05})
        pairs = [(s100[(1.0, s)], s100[(0.05, s)]) for s in both]
        scale = f"LeNet-5-Caffe on MNIST, 100 epochs, seeds {both}"
    lines += [f"{scale}: mean s of conv channels dense {ft(dense_s, '.4f')}, 5 % {ft(sparse_s, '.4f')}"
              for dense_s, sparse_s in pairs]
    if len(pairs) >= budget.SEEDS_NEEDED:
        c6 = paired_interval([a for a, _ in pairs], [b for _, b in pairs])
        return Specialization(lines=lines, decided=True, estimate=c6["mean"], interval=(c6["lo"], c6["hi"]),
                              note=scale, evidence=None if vgg else ev["lenet5"])
    return Specialization(
        lines=lines, decided=False, context=[round(d6[k], 4) for k in ("mean", "lo", "hi")],
        resource=budget.missing(spec_runs, "lenet5", [1.0, 0.05]) + " (class specialization "
                 "scored), or the post's Figure 6 nets trained on CIFAR-10 (CIFAR-10 and a GPU)",
        reason="context: sparse - dense mean s of LeNet-5-Caffe conv channels [mean, 95 % "
               f"interval] over {len(seeds6)} seeds of 3-epoch MNIST nets")


__all__ = ["SWEEPS", "VARIANTS", "full_algorithm", "CommittedEvidence", "rerun_all", "TwentyPercent",
           "twenty_percent", "Reliability", "reliability", "AgainstMethods", "against_methods", "AgainstPruning", "against_pruning",
           "ablation_intervals", "Ablation", "ablation", "Specialization", "vgg_conv_specialization",
           "specialization"]
