"""The scoreboard page: every claim of every chapter, its verdict, and the numbers behind it."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .chapters import CHAPTERS
from .ledger import VERDICTS, _fmt, claim_ids, load_claims, read_ledgers

def _badge(verdict: str) -> str:
    return f'<span class="verdict verdict-{verdict.replace(" ", "-")}">{verdict}</span>'


def _cell(text: Any) -> str:
    return _fmt(text).replace("|", "\\|").replace("\n", " ")


def _in_toc(name: str) -> bool:
    from .chapters import REPO_ROOT

    toc = REPO_ROOT / "_toc.yml"
    return toc.exists() and f"notebooks/{name}" in toc.read_text(encoding="utf-8")


def render_scoreboard(ledgers: list[dict[str, Any]]) -> str:
    by_chapter = {led["chapter"]: led for led in ledgers}
    lines = [
        "# Scoreboard",
        "",
        "Every claim of every post (`claims.md`), as the last run of each chapter recorded it.",
        "*reproduced*: measured within tolerance; *differs*: measured outside it (the chapter explains);",
        "*needs-gpu*: this run had no GPU, the same code checks it on one; *cited*: a quoted fact, with",
        "its source. Values in ⟨ ⟩ vary from run to run (timings, float reduction order): nbval masks them.",
        "",
        "| chapter | mode | device | " + " | ".join(_badge(v) for v in VERDICTS) + " | not run |",
        "|---|---|---|" + "---|" * (len(VERDICTS) + 1),
    ]
    for name, chapter in CHAPTERS.items():
        ids = [cid for p in chapter.prefixes for cid in claim_ids(p)]
        led = by_chapter.get(name)
        link = f"[{chapter.title}](notebooks/{name}.ipynb)" if led and _in_toc(name) else chapter.title
        if led:
            counts = " | ".join(str(led["counts"].get(v, 0)) for v in VERDICTS)
            lines.append(f"| {link} | {led['mode']} | {led['device']} | {counts} | 0 |")
        else:
            lines.append(f"| {link} | – | – | " + " | ".join("0" for _ in VERDICTS) + f" | {len(ids)} |")
    for name, chapter in CHAPTERS.items():
        led = by_chapter.get(name)
        title = f"[{chapter.title}](notebooks/{name}.ipynb)" if led and _in_toc(name) else chapter.title
        run = f" — {led['mode']} mode, {led['device']}" if led else " — not run"
        lines += ["", f"## {title}{run}", "", "| id | verdict | claim | post | measured | criterion or source |",
                  "|---|---|---|---|---|---|"]
        rows = {row["id"]: row for row in (led["claims"] if led else [])}
        for p in chapter.prefixes:
            for cid in claim_ids(p):
                row = rows.get(cid)
                if row is None:
                    lines.append(f"| {cid} | {_badge('not run')} | {_cell(load_claims()[cid])} | | | |")
                    continue
                measured = _cell(row["measured"])
                if row.get("volatile") and measured:
                    measured = f"⟨{measured}⟩"
                criterion = row["tolerance"] or (f"source: {row['source']}" if row.get("source") else "")
                lines.append(f"| {cid} | {_badge(row['verdict'])} | {_cell(row['claim'])} | {_cell(row['post'])} "
                             f"| {measured} | {_cell(criterion)} |")
    return "\n".join(lines) + "\n"


def write_scoreboard(ledger_dir: str | Path, target: str | Path) -> Path:
    target = Path(target)
    target.write_text(render_scoreboard(read_ledgers(ledger_dir)), encoding="utf-8")
    return target
