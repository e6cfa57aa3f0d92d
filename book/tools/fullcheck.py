"""Re-execute the pages readers read: `python -m book full-check` (`make test-full`, and the
scheduled workflow `.github/workflows/full.yml`).

Every chapter (or those named) runs in full mode through the runner, and its ledger is held to the
committed full-mode evidence in `results/NAME/`, row by row:
- a deterministic row (not timed): the same verdict, and the same post's value and measured value,
  exactly; a number marked as depending on the run (`volatile`) is compared through its verdict, and
  one that depends on float rounding paths (`float_path`) exactly only where the numerics profile is
  in force (`book.core.numerics`), else through its verdict;
- a timed row (its verdict comes from a timing's interval): the same verdict family (measured or not
  measured, `book.tools.gpucheck.FAMILIES`): a machine may time differently, not stop measuring.
Before anything runs, every stored page is checked against its notebook and its manifest. The
report goes to `_build/full/report.md`; exit 0 when every row matches, 1 when one does not.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

from book.tools.gpucheck import FAMILIES, Comparison, RowResult

REPORT_FOLDER = "full"  # under _build/


def compare_rows_exactly(
    committed: dict[str, Any], fresh: dict[str, Any], *, profile: bool = True
) -> RowResult:
    """One claim of the committed full run against the fresh full run (see the module's rules)."""
    cid, was, now = committed["id"], committed["verdict"], fresh["verdict"]
    if committed.get("timed") or fresh.get("timed"):
        if FAMILIES.get(was) != FAMILIES.get(now):
            return RowResult(
                cid,
                "regression",
                was,
                now,
                f"timed claim: verdict went from {FAMILIES.get(was, was)} "
                f"to {FAMILIES.get(now, now)}",
            )
        return RowResult(cid, "same" if now == was else "timing", was, now)
    if now != was:
        return RowResult(
            cid, "regression", was, now, f"verdict changed; measured {fresh.get('measured')!r}"
        )
    if committed.get("post") != fresh.get("post"):
        return RowResult(
            cid,
            "regression",
            was,
            now,
            f"post's value {committed.get('post')!r} became {fresh.get('post')!r}",
        )
    run_dependent = committed.get("volatile") or fresh.get("volatile")
    rounding = committed.get("float_path") or fresh.get("float_path")
    if (
        not run_dependent
        and (profile or not rounding)
        and committed.get("measured") != fresh.get("measured")
    ):
        return RowResult(
            cid,
            "regression",
            was,
            now,
            f"measured {committed.get('measured')!r} in results/, {fresh.get('measured')!r} now",
        )
    return RowResult(cid, "same", was, now)


def compare_full(
    committed: dict[str, Any] | None,
    fresh: dict[str, Any] | None,
    chapter: str,
    *,
    profile: bool = True,
) -> Comparison:
    result = Comparison(chapter, "full")
    if committed is None:
        result.error = f"no committed full run (results/{chapter}/ledger.json) to compare with"
        return result
    if fresh is None:
        result.error = "the full run finished no ledger"
        return result
    rows = {row["id"]: row for row in fresh.get("claims", [])}
    for row in committed.get("claims", []):
        mine = rows.pop(row["id"], None)
        result.rows.append(
            RowResult(row["id"], "regression", row["verdict"], "", "not recorded by the full run")
            if mine is None
            else compare_rows_exactly(row, mine, profile=profile)
        )
    for cid, row in rows.items():
        result.rows.append(
            RowResult(cid, "regression", "", row["verdict"], "not in results/ (stale evidence)")
        )
    return result


def render(comparisons: Sequence[Comparison], profile: bool) -> str:
    bad = [c for c in comparisons if not c.ok]
    lines = [
        "# Full-mode re-execution against results/",
        "",
        ("Numerics profile in force: float-path numbers compared exactly. " if profile else
         "Numerics profile not in force: float-path numbers compared through their verdicts. ")
        + (
            f"{len(bad)} of {len(comparisons)} chapters DIFFER from results/."
            if bad
            else f"All {len(comparisons)} chapters match results/."
        ),
        "",
        "| chapter | same | timing changed | regressions | error |",
        "|---|---|---|---|---|",
    ]
    for c in comparisons:
        count = lambda s: sum(r.status == s for r in c.rows)  # noqa: E731
        lines.append(
            f"| {c.chapter} | {count('same')} | {count('timing')} | {len(c.regressions)} | "
            f"{c.error.replace('|', '/')} |"
        )
    for c in comparisons:
        rows = [r for r in c.rows if r.status != "same"]
        if rows:
            lines += [
                "",
                f"## {c.chapter}",
                "",
                "| id | status | results/ | now | detail |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {r.id} | {r.status} | {r.committed} | {r.gpu} | {r.detail.replace('|', '/')} |"
                for r in rows
            ]
    return "\n".join(lines) + "\n"


def main(names: Sequence[str] = (), *, progress: bool = True, out=None) -> int:
    from book.core import evidence, numerics
    from book.core.registry import available_chapters, get_chapter
    from book.tools import paths, runner
    from book.tools.execute import notebook_ledger

    out = out or sys.stdout
    chapters = [get_chapter(n) for n in names] if names else available_chapters()
    # a stale or edited page: one line, before any run
    evidence.check_pages([c.name for c in chapters])
    profile = numerics.in_force()
    outcomes = runner.run([c.name for c in chapters], quick=False, progress=progress, out=out)
    comparisons, other_family = [], []
    for o in outcomes:
        executed = paths.EXECUTED_DIR / f"{o.chapter}.ipynb"
        fresh = notebook_ledger(executed) if o.ok and executed.exists() else None
        stored = evidence.RESULTS_DIR / o.chapter / "ledger.json"
        committed = json.loads(stored.read_text(encoding="utf-8")) if stored.exists() else None
        # exact only where results/ was made in this machine's bits family (MKL's branch differs
        # between Intel and AMD CPUs: book.core.numerics.notebook_comparison)
        same_family = profile and committed is not None and numerics.notebook_comparison(
            committed.get("provenance"))[0] == "exact"
        comparison = compare_full(committed, fresh, o.chapter, profile=same_family)
        if profile and committed is not None and not same_family:
            other_family.append(o.chapter)
        comparison.error = o.error or comparison.error
        comparisons.append(comparison)
        print(
            f"{o.chapter} full: {'matches results/' if comparison.ok else 'DIFFERS from results/'}",
            file=out,
        )
    folder = paths.BUILD_DIR / REPORT_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / "report.md"
    text = render(comparisons, profile)
    if other_family:
        text += (f"\nMade in another bits family than this machine's ({numerics.this_family()}), so compared "
                 f"through their verdicts: {', '.join(other_family)}.\n")
    report.write_text(text, encoding="utf-8")
    print(f"report: {paths.shown(report)}", file=out)
    return 0 if all(c.ok for c in comparisons) else 1


__all__ = ["main", "compare_full", "compare_rows_exactly", "render", "REPORT_FOLDER"]
