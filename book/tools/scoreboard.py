"""The scoreboard and status pages, generated from the notebooks the book shows.

Both read the ledger each chapter's page carries in its outputs (`ledger_from_notebook`), so the
scoreboard can never disagree with a chapter page: one build, one truth.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Mapping

from book.core import verdicts
from book.core.ledger import claim_ids, ledger_from_notebook, load_claims
from book.core.registry import CHAPTERS, REPO_ROOT
from book.tools import pages

_fmt = pages.text_of  # a value as the ledger shows it

# The order a reader meets the families in: what the posts got wrong first, then what this book
# could not decide or could not test, then what holds.
FAMILY_ORDER = ("wrong", "undecided", "untestable", "holds", "cited", "forecast")
SECTION_TITLES = {
    "wrong": "The post is wrong here",
    "undecided": "Undecided: measured, but the interval cannot decide",
    "untestable": "Not testable on this machine (the post is not judged)",
    "holds": "The post holds",
    "cited": "Cited facts (no code can re-derive them)",
    "forecast": "Forecasts, judged on a stated date",
}
FOURTH_COLUMN = {
    "wrong": "what the post got wrong, and by how much",
    "undecided": "measured, and the criterion",
    "untestable": "what is missing",
    "holds": "post → measured",
    "cited": "source",
    "forecast": "judged · due · measured",
}


def _cell(text: Any) -> str:
    """Markdown table cell (status page): no pipes or newlines; a `$` is a price, never math."""
    return _fmt(text).replace("|", "\\|").replace("\n", " ").replace("$", "\\$")


def _e(text: Any) -> str:
    return html.escape(_fmt(text))


def _in_toc(name: str) -> bool:
    toc = REPO_ROOT / "_toc.yml"
    return toc.exists() and f"notebooks/{name}" in toc.read_text(encoding="utf-8")


def _claims_url() -> str:
    try:
        return pages.repository() + "/blob/main/book/claims.md"
    except (OSError, ValueError):
        return "https://github.com/"


def _evidence(row: dict[str, Any], led: dict[str, Any]) -> str:
    ev = row.get("evidence") or {}
    if ev:
        return (
            f"{ev.get('path')} ({ev.get('mode')}, {ev.get('device')}, {str(ev.get('date'))[:10]})"
        )
    date = str((led.get("provenance") or {}).get("date", ""))[:10]
    return f"this run ({row.get('mode')}, {row.get('device')}{', ' + date if date else ''})"


def legend_lines() -> list[str]:
    """The legend, from book.core.verdicts: the rule, then each family with its verdicts."""
    return [
        "> " + verdicts.RULE,
        "",
        pages.legend_markdown(),
        "",
        "⟨ ⟩ marks what depends on the run (timings): those numbers, and the verdicts of timed "
        "claims "
        "(shown with a dotted underline), may change from run to run. **Evidence** says what "
        "stands "
        "behind each verdict: *this run* (quick is the small run CI re-executes, full the real "
        "experiment), or a committed full-mode result in `results/`.",
    ]


def _fourth(family: str, row: dict[str, Any]) -> str:
    if family == "wrong":
        return pages.wrong_text(row) or "see the chapter"
    if family == "untestable":
        return row.get("resource") or row.get("note") or row.get("verdict")
    if family == "undecided":
        return f"{pages.measured_text(row)} against {pages.criterion_text(row)}"
    if family == "holds":
        return f"{_fmt(row.get('post'))} → {pages.measured_text(row)}"
    if family == "cited":
        return row.get("source") or ""
    return f"{row.get('judged', '')} · due {row.get('due', '')} · {pages.measured_text(row)}"


def _details(row: dict[str, Any], led: dict[str, Any], chapter: str) -> str:
    fields = [
        ("post", _fmt(row.get("post"))),
        ("measured", pages.measured_text(row)),
        ("criterion", pages.criterion_text(row)),
        ("evidence", _evidence(row, led)),
    ]
    fields += pages.note_parts(row)
    if row.get("fails_if"):
        fields.append(("would fail if", _fmt(row["fails_if"])))
    fields.insert(0, ("chapter", CHAPTERS[chapter].title))
    body = "".join(
        f'<div class="ledger-field"><span class="ledger-label">{_e(k)}:</span> {_e(v)}</div>'
        for k, v in fields
        if v
    )
    link = (
        f'<a href="notebooks/{chapter}.html#ledger-{row["id"]}">the row on its page</a> · '
        '<a class="ledger-dispute" '
        f'href="{html.escape(pages.dispute_url(row, chapter), quote=True)}">'
        f'dispute this verdict</a>'
    )
    return (
        f'<details><summary>{_e(row.get("claim", ""))}</summary>{body}'
        f'<div class="ledger-actions">{link}</div></details>'
    )


def _row(row: dict[str, Any], led: dict[str, Any] | None, chapter: str, family: str) -> str:
    if led is None:
        claim = _e(row["claim"])
        return (
            f'<tr id="claim-{row["id"]}" class="scoreboard-row"><td>{_e(row["id"])}</td>'
            f'<td>{pages.badge("not-run", text="not run")}</td>'
            f"<td>{claim}</td><td>{_e(CHAPTERS[chapter].title)}</td></tr>"
        )
    timed = bool(row.get("timed"))
    verdict = pages.badge(row["verdict"], timed, pages.verdict_text(row))
    return (
        f'<tr id="claim-{row["id"]}" class="scoreboard-row '
        f'family-{family}"><td>{_e(row["id"])}</td>'
        f"<td>{verdict}</td>"
        f"<td>{_details(row, led, chapter)}</td><td>{_e(_fourth(family, row))}</td></tr>"
    )


def _table(family: str, rows: list[str]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "id",
            "verdict",
            "claim (click: the evidence)",
            FOURTH_COLUMN.get(family, "chapter"),
        )
    )
    return (
        f'<table class="scoreboard-table"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(rows)}</tbody></table>'
    )


def render_scoreboard(ledgers: Mapping[str, dict[str, Any] | None]) -> str:
    """`ledgers`: chapter name -> the ledger its page shows (None: the page has none). One line per
    claim, grouped by what a reader wants to know: the post is wrong / undecided / not testable
    here / holds / cited / forecasts; each line expands to its evidence and a dispute link."""
    lines = [
        "# Scoreboard",
        "",
        f"Every claim of every post (the catalogue: [`book/claims.md`]({_claims_url()})), one line "
        "each, with the verdict its chapter page shows — what the posts got wrong first, apart "
        "from "
        "what this book could not decide or could not test. Click a claim for its evidence; the "
        "[status page](status.md) says which run (mode, device, date) each chapter page shows.",
        "",
    ]
    lines += (
        [":::{dropdown} What the verdicts mean, and the rule they follow", ""]
        + legend_lines()
        + [":::", "", "## Counts", ""]
    )
    count_rows = []
    totals = {f: 0 for f in FAMILY_ORDER}
    not_run_total = 0
    grouped: dict[str, list[str]] = {f: [] for f in FAMILY_ORDER + ("not-run",)}
    for name, chapter in CHAPTERS.items():
        ids = [cid for p in chapter.prefixes for cid in claim_ids(p)]
        led = ledgers.get(name)
        rows = {row["id"]: row for row in (led["claims"] if led else [])}
        counts = pages.family_counts(rows.values())
        missing = [cid for cid in ids if cid not in rows]
        for f in FAMILY_ORDER:
            totals[f] += counts[f]
        not_run_total += len(missing)
        cell = (
            f'<a href="notebooks/{name}.html">{html.escape(chapter.title)}</a>'
            if name in ledgers and _in_toc(name)
            else html.escape(chapter.title)
        )
        count_rows.append((cell, "", dict(counts, **{"not run": len(missing)})))
        for cid in ids:
            row = rows.get(cid)
            if row is None:
                grouped["not-run"].append(
                    _row({"id": cid, "claim": load_claims()[cid]}, None, name, "not-run")
                )
            else:
                fam = pages.family_of(row)
                grouped[fam].append(_row(row, led, name, fam))
    count_rows.append(("<b>total</b>", "", dict(totals, **{"not run": not_run_total})))
    lines.append(pages.counts_table(count_rows, FAMILY_ORDER, extra="not run"))
    for fam in FAMILY_ORDER:
        if not grouped[fam]:
            continue
        lines += [
            "",
            f"## {SECTION_TITLES[fam]} ({len(grouped[fam])})",
            "",
            _table(fam, grouped[fam]),
        ]
    if grouped["not-run"]:
        lines += [
            "",
            f"## Not run ({len(grouped['not-run'])})",
            "",
            _table("not-run", grouped["not-run"]),
        ]
    return "\n".join(lines) + "\n"


def _ledgers_of(pages: Mapping[str, Path]) -> dict[str, dict[str, Any] | None]:
    return {name: ledger_from_notebook(path) for name, path in pages.items()}


def write_scoreboard(pages: Mapping[str, Path], target: str | Path) -> Path:
    """`pages`: chapter name -> the notebook the book shows for it."""
    target = Path(target)
    target.write_text(render_scoreboard(_ledgers_of(pages)), encoding="utf-8")
    return target


def render_status(ledgers: Mapping[str, dict[str, Any] | None], sources: Mapping[str, Path]) -> str:
    """What ran where: per chapter the execution its page shows (mode, device, date, commit, wall
    time, command) and the versions it ran with."""
    lines = [
        "# Status",
        "",
        "What each chapter page of this build shows: which execution, where and when it ran, and "
        "with "
        "what. The chapters' quick runs are re-executed by CI on every push (under nbval, compared "
        "cell by cell with the committed outputs); a page from `results/` is the committed "
        "full-mode run.",
        "",
        "## Executions",
        "",
        "| chapter | page from | mode | device | date (UTC) | commit | wall time |",
        "|---|---|---|---|---|---|---|",
    ]
    versions = [
        "",
        "## Versions",
        "",
        "| chapter | python | torch | numpy | scipy | other |",
        "|---|---|---|---|---|---|",
    ]
    commands = ["", "## Commands", ""]
    for name, chapter in CHAPTERS.items():
        led = ledgers.get(name)
        src = sources.get(name)
        where = (
            f"`{src.relative_to(REPO_ROOT)}`"
            if src and src.is_relative_to(REPO_ROOT)
            else (str(src) if src else "–")
        )
        if not led:
            lines.append(f"| {chapter.title} | {where} | – | – | – | – | – |")
            continue
        p = led.get("provenance") or {}
        v = p.get("versions") or {}
        commit = f"`{p.get('commit') or '?'}`" + (" + local changes" if p.get("dirty") else "")
        wall = f"{led['wall_s']:.0f} s" if isinstance(led.get("wall_s"), (int, float)) else "–"
        device = _cell(p.get("device_name") or led["device"]) + (
            f", CUDA {p['cuda']}" if p.get("cuda") else ""
        )
        link = f"[{chapter.title}](notebooks/{name}.ipynb)"
        lines.append(
            f"| {link} | {where} | {led['mode']} | {device} | "
            f"{str(p.get('date', '–')).replace('T', ' ').rstrip('Z')} | {commit} | {wall} |"
        )
        others = ", ".join(
            f"{k} {val}" for k, val in v.items() if k not in ("python", "torch", "numpy", "scipy")
        )
        versions.append(
            f"| {chapter.title} | {v.get('python', '–')} | {v.get('torch', '–')} | "
            f"{v.get('numpy', '–')} "
            f"| {v.get('scipy', '–')} | {others} |"
        )
        commands.append(
            f"- **{chapter.title}**: `{led.get('command', '?')}` on {p.get('platform', '?')}"
        )
    on_gpu = [
        name
        for name, led in ledgers.items()
        if led and str(led.get("device", "")).startswith("cuda")
    ]
    gpu_line = [
        "",
        "**GPU runs**: "
        + (
            ", ".join(on_gpu) + " show a GPU run."
            if on_gpu
            else "no chapter page shows a GPU run yet: every verdict above was measured on a CPU; "
            "the "
            "needs-gpu rows are measured by the same code on a GPU (`make test-gpu`, or the "
            "chapter on "
            "Colab)."
        ),
    ]
    return "\n".join(lines + gpu_line + versions + commands) + "\n"


def write_status(
    pages: Mapping[str, Path], sources: Mapping[str, Path], target: str | Path
) -> Path:
    target = Path(target)
    target.write_text(render_status(_ledgers_of(pages), sources), encoding="utf-8")
    return target


__all__ = ["render_scoreboard", "write_scoreboard", "render_status", "write_status", "legend_lines"]
