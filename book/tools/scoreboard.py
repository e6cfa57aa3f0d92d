"""The scoreboard and status pages, generated from the notebooks the book shows.

Both read the ledger each chapter's page carries in its outputs (`ledger_from_notebook`), so the
scoreboard can never disagree with a chapter page: one build, one truth.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from book.core.registry import CHAPTERS, REPO_ROOT
from book.core.ledger import (CLAIM_VERDICTS, FORECAST_VERDICTS, TIMED_LEGEND, VERDICT_MEANINGS, VERDICTS, _fmt,
                     claim_ids, ledger_from_notebook, load_claims)


def _badge(verdict: str) -> str:
    return f'<span class="verdict verdict-{verdict.replace(" ", "-")}">{verdict}</span>'


def _cell(text: Any) -> str:
    # Markdown table cell: no pipes or newlines; a `$` is a price, never math.
    return _fmt(text).replace("|", "\\|").replace("\n", " ").replace("$", "\\$")


def _in_toc(name: str) -> bool:
    toc = REPO_ROOT / "_toc.yml"
    return toc.exists() and f"notebooks/{name}" in toc.read_text(encoding="utf-8")


def _claims_url() -> str:
    try:
        from book.tools.colab import repository_url

        return repository_url().rstrip("/") + "/blob/main/book/claims.md"
    except (OSError, ValueError):
        return "https://github.com/"


def _evidence(row: dict[str, Any], led: dict[str, Any]) -> str:
    ev = row.get("evidence") or {}
    if ev:
        return f"{ev.get('path')} ({ev.get('mode')}, {ev.get('device')}, {str(ev.get('date'))[:10]})"
    date = str((led.get("provenance") or {}).get("date", ""))[:10]
    return f"this run ({row.get('mode')}, {row.get('device')}{', ' + date if date else ''})"


def legend_lines() -> list[str]:
    lines = ["**Verdicts of claims.** " + " ".join(f"{_badge(v)} {VERDICT_MEANINGS[v]}." for v in CLAIM_VERDICTS),
             "",
             "**Verdicts of forecasts** (the closing chapter). " + " ".join(
                 f"{_badge(v)} {VERDICT_MEANINGS[v]}." for v in FORECAST_VERDICTS),
             "",
             TIMED_LEGEND + " Claims marked **+** in `claims.md` go beyond the post: what a reader who "
             "trusts the post would want checked next.",
             "",
             "**Evidence** says what stands behind each verdict: *this run* (its mode — *quick* is the "
             "small run CI re-executes, *full* the real experiment — its device and date), or a committed "
             "full-mode result in `results/` (file, mode, device, date) for claims that need scale."]
    return lines


def render_scoreboard(ledgers: Mapping[str, dict[str, Any] | None]) -> str:
    """`ledgers`: chapter name -> the ledger its page shows (None: the page has none)."""
    lines = ["# Scoreboard", "",
             f"Every claim of every post (the catalogue: [`book/claims.md`]({_claims_url()})), with the "
             "verdict its chapter page shows.", ""] + legend_lines() + [
        "", "| chapter | page | " + " | ".join(_badge(v) for v in VERDICTS) + " | not run |",
        "|---|---|" + "---|" * (len(VERDICTS) + 1)]
    totals = {v: 0 for v in VERDICTS}
    not_run = 0
    for name, chapter in CHAPTERS.items():
        ids = [cid for p in chapter.prefixes for cid in claim_ids(p)]
        led = ledgers.get(name)
        link = f"[{chapter.title}](notebooks/{name}.ipynb)" if name in ledgers and _in_toc(name) else chapter.title
        if led:
            seen = {row["id"] for row in led["claims"]}
            missing = len([cid for cid in ids if cid not in seen])
            for v in VERDICTS:
                totals[v] += led["counts"].get(v, 0)
            not_run += missing
            counts = " | ".join(str(led["counts"].get(v, 0)) for v in VERDICTS)
            lines.append(f"| {link} | {led['mode']}, {led['device']} | {counts} | {missing} |")
        else:
            not_run += len(ids)
            lines.append(f"| {link} | – | " + " | ".join("0" for _ in VERDICTS) + f" | {len(ids)} |")
    lines.append("| **total** | | " + " | ".join(f"**{totals[v]}**" for v in VERDICTS) + f" | **{not_run}** |")
    for name, chapter in CHAPTERS.items():
        led = ledgers.get(name)
        title = f"[{chapter.title}](notebooks/{name}.ipynb)" if name in ledgers and _in_toc(name) else chapter.title
        run = f" — {led['mode']} mode, {led['device']}" if led else " — not run"
        lines += ["", f"## {title}{run}", "",
                  "| id | verdict | claim | post | measured | criterion or source | evidence | note |",
                  "|---|---|---|---|---|---|---|---|"]
        rows = {row["id"]: row for row in (led["claims"] if led else [])}
        for p in chapter.prefixes:
            for cid in claim_ids(p):
                row = rows.get(cid)
                if row is None:
                    lines.append(f"| {cid} | {_badge('not run')} | {_cell(load_claims()[cid])} | | | | | |")
                    continue
                measured = _cell(row["measured"])
                if (row.get("volatile") or row.get("timed")) and measured:
                    measured = f"⟨{measured}⟩"
                verdict = _badge(row["verdict"]) + (f": {_cell(row['resource'])}" if row.get("resource") else "")
                criterion = row.get("criterion", row.get("tolerance", "")) or (f"source: {row['source']}" if row.get("source") else "")
                note = row.get("why") if row["verdict"] in ("differs", "undecided") and row.get("why") else ""
                if row.get("judged"):
                    note = f"judged {row['judged']}, due {row['due']}" + (f"; {note}" if note else "")
                lines.append(f"| {cid} | {verdict} | {_cell(row['claim'])} | {_cell(row['post'])} | {measured} "
                             f"| {_cell(criterion)} | {_cell(_evidence(row, led))} | {_cell(note)} |")
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
    lines = ["# Status", "",
             "What each chapter page of this build shows: which execution, where and when it ran, and with "
             "what. The chapters' quick runs are re-executed by CI on every push (under nbval, compared "
             "cell by cell with the committed outputs); a page from `results/` is the committed full-mode run.",
             "", "## Executions", "",
             "| chapter | page from | mode | device | date (UTC) | commit | wall time |",
             "|---|---|---|---|---|---|---|"]
    versions = ["", "## Versions", "", "| chapter | python | torch | numpy | scipy | other |", "|---|---|---|---|---|---|"]
    commands = ["", "## Commands", ""]
    for name, chapter in CHAPTERS.items():
        led = ledgers.get(name)
        src = sources.get(name)
        where = f"`{src.relative_to(REPO_ROOT)}`" if src and src.is_relative_to(REPO_ROOT) else (str(src) if src else "–")
        if not led:
            lines.append(f"| {chapter.title} | {where} | – | – | – | – | – |")
            continue
        p = led.get("provenance") or {}
        v = p.get("versions") or {}
        commit = f"`{p.get('commit') or '?'}`" + (" + local changes" if p.get("dirty") else "")
        wall = f"{led['wall_s']:.0f} s" if isinstance(led.get("wall_s"), (int, float)) else "–"
        device = _cell(p.get("device_name") or led["device"]) + (f", CUDA {p['cuda']}" if p.get("cuda") else "")
        link = f"[{chapter.title}](notebooks/{name}.ipynb)"
        lines.append(f"| {link} | {where} | {led['mode']} | {device} | "
                     f"{str(p.get('date', '–')).replace('T', ' ').rstrip('Z')} | {commit} | {wall} |")
        others = ", ".join(f"{k} {val}" for k, val in v.items() if k not in ("python", "torch", "numpy", "scipy"))
        versions.append(f"| {chapter.title} | {v.get('python', '–')} | {v.get('torch', '–')} | {v.get('numpy', '–')} "
                        f"| {v.get('scipy', '–')} | {others} |")
        commands.append(f"- **{chapter.title}**: `{led.get('command', '?')}` on {p.get('platform', '?')}")
    return "\n".join(lines + versions + commands) + "\n"


def write_status(pages: Mapping[str, Path], sources: Mapping[str, Path], target: str | Path) -> Path:
    target = Path(target)
    target.write_text(render_status(_ledgers_of(pages), sources), encoding="utf-8")
    return target


__all__ = ["render_scoreboard", "write_scoreboard", "render_status", "write_status", "legend_lines"]
