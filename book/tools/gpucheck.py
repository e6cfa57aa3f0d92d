"""GPU validation, one command: `python -m book gpu-check` (`make test-gpu`).

On a CUDA machine it executes every chapter on the GPU and holds each verdict to the committed one:

1. QUICK (the committed run's parameters, `DEVICE="cuda"`), with papermill, into `_build/gpu/quick/`;
   each ledger is compared with the QUICK ledger the committed notebook carries in its output
   metadata (`notebooks/NAME.ipynb`);
2. full mode, through the runner, compared with the committed full-mode ledger
   (`results/NAME/ledger.json`);
3. a report (`_build/gpu/report.md`) and the GPU ledgers (`_build/gpu/ledgers/{quick,full}/`), which
   are the GPU evidence to commit.

What counts as a regression (exit 1), row by row (`compare_ledgers`):
- a claim the GPU run did not record, or a chapter that did not run to its end;
- a deterministic row whose verdict changed, or whose numbers moved by more than the relative
  tolerance (QUICK only: a full run trains longer, and its numbers are compared through its verdicts);
- a timed row (`"timed": true`: the verdict comes from a timing's interval) whose verdict left its
  family (measured vs not measured): a GPU is allowed to time differently, not to stop measuring.
Rows that were `needs-gpu` or `undecided` on the CPU are what the GPU run is for: whatever they
become is reported, never a regression; so is a `needs-resource` row that the GPU machine could
measure. On a CPU-only machine the command refuses at once (exit 2).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from book.core.registry import REPO_ROOT, Chapter
from book.core.ledger import ledger_from_notebook

GPU_DIR = REPO_ROOT / "_build" / "gpu"
REL_TOL = 1e-3
SIG_DIGITS = 4           # the ledger rounds measured values to this many significant digits
OPEN_ON_CPU = ("needs-gpu", "undecided")   # what the GPU run decides: any outcome is reported, none fails
FAMILIES = {"reproduced": "measured", "differs": "measured", "undecided": "measured",
            "needs-gpu": "not measured", "needs-resource": "not measured", "cited": "cited",
            "came-true": "forecast", "partly": "forecast", "not-yet-due": "forecast", "wrong": "forecast"}


class NoGPU(RuntimeError):
    """This machine has no CUDA device: the GPU validation cannot run here."""


def require_cuda() -> str:
    """The CUDA device's name, or NoGPU with a message that says what was found."""
    try:
        import torch
    except ImportError as err:
        raise NoGPU(f"gpu-check needs PyTorch with CUDA, and torch does not import here ({err}).") from None
    if not torch.cuda.is_available():
        built = getattr(torch.version, "cuda", None)
        raise NoGPU(
            f"gpu-check needs a CUDA GPU: torch.cuda.is_available() is False on this machine "
            f"(torch {torch.__version__}, {'built for CUDA ' + built if built else 'a CPU-only build'}). "
            "Run it on a GPU machine, e.g. the self-hosted runner of .github/workflows/gpu.yml; "
            "on a CPU, `make test` is the check.")
    return torch.cuda.get_device_name(0)


# -- reading the committed ledgers -------------------------------------------------------------
def committed_full_ledger(name: str) -> dict[str, Any] | None:
    """`results/NAME/ledger.json`, the committed full-mode ledger, or None."""
    from book.core.evidence import RESULTS_DIR

    path = RESULTS_DIR / name / "ledger.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


# -- comparing two ledgers ---------------------------------------------------------------------
@dataclass
class RowResult:
    id: str
    status: str          # "same", "decided" (open on CPU, measured now), "timing", "found", "regression"
    committed: str       # the committed verdict ("" when the row is missing there)
    gpu: str             # the GPU run's verdict ("" when missing)
    detail: str = ""


@dataclass
class Comparison:
    chapter: str
    mode: str
    rows: list[RowResult] = field(default_factory=list)
    error: str = ""      # the chapter failed to run, or a ledger is missing

    @property
    def regressions(self) -> list[RowResult]:
        return [r for r in self.rows if r.status == "regression"]

    @property
    def ok(self) -> bool:
        return not self.error and not self.regressions


def _last_digit(x: float, sig: int = SIG_DIGITS) -> float:
    """One unit in the last of `sig` significant digits of x (the ledger's rounding step)."""
    if x == 0 or not math.isfinite(x):
        return 0.0
    return 10 ** (math.floor(math.log10(abs(x))) - sig + 1)


def numbers_close(a: Any, b: Any, rel_tol: float = REL_TOL) -> bool:
    """Ledger values (numbers, lists of them, strings, None) equal up to `rel_tol`, or up to one step
    of the ledger's rounding to four significant digits (a value near a rounding edge may land on
    either side of it)."""
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(numbers_close(x, y, rel_tol) for x, y in zip(a, b)))
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):
        return a == b
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    step = max(_last_digit(x), _last_digit(y))
    return math.isclose(x, y, rel_tol=rel_tol) or abs(x - y) <= step * (1 + 1e-9)


def compare_rows(committed: dict[str, Any], gpu: dict[str, Any], *, numbers: bool = True,
                 rel_tol: float = REL_TOL) -> RowResult:
    """One claim: the committed row against the GPU run's row (see the module's rules)."""
    cid, was, now = committed["id"], committed["verdict"], gpu["verdict"]
    if was in OPEN_ON_CPU:
        return RowResult(cid, "same" if now == was else "decided", was, now,
                         "" if now == was else _measured_text(gpu))
    if was == "needs-resource" and now != was:
        return RowResult(cid, "found", was, now, _measured_text(gpu))
    if committed.get("timed") or gpu.get("timed"):
        if FAMILIES.get(was) != FAMILIES.get(now):
            return RowResult(cid, "regression", was, now,
                             f"timed claim: verdict went from {FAMILIES.get(was, was)} to {FAMILIES.get(now, now)}")
        return RowResult(cid, "same" if now == was else "timing", was, now,
                         "" if now == was else f"timed: {_measured_text(gpu)}")
    if now != was:
        return RowResult(cid, "regression", was, now, f"verdict changed; GPU measured {_measured_text(gpu)}")
    if numbers:
        if not numbers_close(committed.get("post"), gpu.get("post"), rel_tol):
            return RowResult(cid, "regression", was, now,
                             f"post's value {committed.get('post')!r} became {gpu.get('post')!r}")
        volatile = committed.get("volatile") or gpu.get("volatile")  # a run-dependent float: verdict only
        if not volatile and not numbers_close(committed.get("measured"), gpu.get("measured"), rel_tol):
            return RowResult(cid, "regression", was, now,
                             f"measured {committed.get('measured')!r} on CPU, {gpu.get('measured')!r} on GPU "
                             f"(relative tolerance {rel_tol:g})")
    return RowResult(cid, "same", was, now)


def _measured_text(row: dict[str, Any]) -> str:
    value = row.get("measured")
    text = "nothing" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def compare_ledgers(committed: dict[str, Any] | None, gpu: dict[str, Any] | None, *, chapter: str,
                    mode: str, numbers: bool = True, rel_tol: float = REL_TOL) -> Comparison:
    """Every claim of the committed ledger against the GPU run's ledger."""
    result = Comparison(chapter, mode)
    if committed is None:
        result.error = "no committed ledger to compare with"
        return result
    if gpu is None:
        result.error = "the GPU run wrote no ledger"
        return result
    gpu_rows = {row["id"]: row for row in gpu.get("claims", [])}
    seen = set()
    for row in committed.get("claims", []):
        seen.add(row["id"])
        mine = gpu_rows.get(row["id"])
        if mine is None:
            result.rows.append(RowResult(row["id"], "regression", row["verdict"], "", "not recorded by the GPU run"))
        else:
            result.rows.append(compare_rows(row, mine, numbers=numbers, rel_tol=rel_tol))
    for cid, row in gpu_rows.items():
        if cid not in seen:
            result.rows.append(RowResult(cid, "new", "", row["verdict"], "not in the committed ledger"))
    return result


# -- the report --------------------------------------------------------------------------------
_STATUS_WORDS = {"same": "same", "decided": "measured on the GPU", "timing": "timing changed",
                 "found": "resource found", "new": "new claim", "regression": "REGRESSION"}


def render_report(comparisons: Sequence[Comparison], *, device: str = "", seconds: dict[str, float] | None = None
                  ) -> str:
    """The markdown report: a summary line per chapter and mode, then every row that is not `same`."""
    seconds = seconds or {}
    failed = [c for c in comparisons if not c.ok]
    lines = ["# GPU validation", "",
             f"Device: {device or 'unknown'}. " + (f"{len(failed)} of {len(comparisons)} chapter runs REGRESSED."
                                                   if failed else f"All {len(comparisons)} chapter runs match."),
             "", "| chapter | mode | seconds | same | measured on the GPU | timing changed | regressions | error |",
             "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        count = lambda s: sum(r.status == s for r in c.rows)  # noqa: E731
        secs = seconds.get(f"{c.chapter}/{c.mode}")
        lines.append(f"| {c.chapter} | {c.mode} | {'' if secs is None else f'{secs:.0f}'} | {count('same')} | "
                     f"{count('decided') + count('found')} | {count('timing')} | {len(c.regressions)} | "
                     f"{c.error.replace('|', '/')} |")
    for c in comparisons:
        rows = [r for r in c.rows if r.status != "same"]
        if not rows:
            continue
        lines += ["", f"## {c.chapter} ({c.mode})", "", "| id | status | committed | GPU | detail |", "|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.id} | {_STATUS_WORDS.get(r.status, r.status)} | {r.committed} | {r.gpu} | "
                         f"{r.detail.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


# -- running ---------------------------------------------------------------------------------------
def _run_quick(chapter: Chapter, out_dir: Path, ledger_dir: Path, progress: bool) -> tuple[dict | None, str, float]:
    """Execute one chapter QUICK on the GPU through the runner (its temp-file, interrupt and lock
    semantics), then copy the executed notebook and ledger aside; returns (its ledger, error, seconds)."""
    import shutil

    from book.tools import execute, paths
    from book.tools.params import notebook_parameters

    declared = notebook_parameters(chapter.notebook)
    parameters = {k: v for k, v in (("QUICK", True), ("DEVICE", "cuda")) if k in declared}
    outcome = execute.execute_chapter(chapter, parameters, progress=progress)
    ledger_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger = None
    produced = paths.LEDGER_DIR / f"{chapter.name}.json"
    if outcome.ok and produced.exists():
        shutil.copyfile(produced, ledger_dir / produced.name)
        shutil.copyfile(paths.EXECUTED_DIR / chapter.notebook.name, out_dir / chapter.notebook.name)
        ledger = json.loads(produced.read_text(encoding="utf-8"))
    return ledger, outcome.error, outcome.seconds


def _run_full(chapters: Sequence[Chapter], ledger_dir: Path, progress: bool) -> dict[str, tuple[dict | None, str, float]]:
    """Full mode through the runner (into _build/executed, _build/ledgers); ledgers copied to ledger_dir."""
    from book.tools import paths, runner

    device = [("DEVICE", "'cuda'")] if _any_declares(chapters, "DEVICE") else []
    outcomes = runner.run([c.name for c in chapters], device, quick=False, progress=progress)
    ledger_dir.mkdir(parents=True, exist_ok=True)
    found = {}
    for o in outcomes:
        src = paths.LEDGER_DIR / f"{o.chapter}.json"
        ledger = None
        if o.ok and src.exists():
            shutil.copy2(src, ledger_dir / src.name)
            ledger = json.loads(src.read_text(encoding="utf-8"))
        found[o.chapter] = (ledger, o.error or ("" if o.ok else "failed"), o.seconds)
    return found


def _any_declares(chapters: Iterable[Chapter], name: str) -> bool:
    from book.tools.params import notebook_parameters

    return any(name in notebook_parameters(c.notebook) for c in chapters)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m book gpu-check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters to check (default: all)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick-only", action="store_true", help="only the QUICK runs")
    mode.add_argument("--full-only", action="store_true", help="only the full-mode runs")
    p.add_argument("--rel-tol", type=float, default=REL_TOL,
                   help=f"relative tolerance for the deterministic numbers of QUICK rows (default {REL_TOL:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    from book.core.registry import available_chapters, get_chapter

    try:
        chapters = [get_chapter(n) for n in args.chapters] if args.chapters else available_chapters()
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.rel_tol < 0:
        print("error: --rel-tol must be non-negative", file=sys.stderr)
        return 2
    try:
        device = require_cuda()
    except NoGPU as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    if GPU_DIR.exists():
        shutil.rmtree(GPU_DIR)   # this run's results only: nothing stale in the report or the ledgers
    comparisons: list[Comparison] = []
    seconds: dict[str, float] = {}
    progress = not args.no_progress
    if not args.full_only:
        for chapter in chapters:
            ledger, error, secs = _run_quick(chapter, GPU_DIR / "quick", GPU_DIR / "ledgers" / "quick", progress)
            seconds[f"{chapter.name}/quick"] = secs
            comparison = compare_ledgers(ledger_from_notebook(chapter.notebook), ledger, chapter=chapter.name,
                                         mode="quick", numbers=True, rel_tol=args.rel_tol)
            comparison.error = error or comparison.error
            comparisons.append(comparison)
            print(f"{chapter.name} quick: {'ok' if comparison.ok else 'REGRESSION'} ({secs:.0f} s)", flush=True)
    if not args.quick_only:
        from book.tools.params import UsageError

        try:
            full = _run_full(chapters, GPU_DIR / "ledgers" / "full", progress)
        except UsageError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for name, (ledger, error, secs) in full.items():
            seconds[f"{name}/full"] = secs
            comparison = compare_ledgers(committed_full_ledger(name), ledger, chapter=name, mode="full",
                                         numbers=False)
            comparison.error = error or comparison.error
            comparisons.append(comparison)
            print(f"{name} full: {'ok' if comparison.ok else 'REGRESSION'} ({secs:.0f} s)", flush=True)

    GPU_DIR.mkdir(parents=True, exist_ok=True)
    report = GPU_DIR / "report.md"
    report.write_text(render_report(comparisons, device=device, seconds=seconds), encoding="utf-8")
    print(f"report: {report.relative_to(REPO_ROOT)}; GPU ledgers: {(GPU_DIR / 'ledgers').relative_to(REPO_ROOT)}/")
    return 0 if all(c.ok for c in comparisons) else 1


__all__ = ["main", "committed_ledger", "committed_full_ledger", "compare_ledgers", "compare_rows",
           "numbers_close", "render_report", "require_cuda", "NoGPU", "Comparison", "RowResult"]
