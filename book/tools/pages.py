"""What a reader meets around the chapters' outputs, made at build time (a Sphinx extension:
_config.yml lists `book.tools.pages`). The committed notebooks are never written to; each page is
transformed as Sphinx reads it (`source-read`), from the very notebook staged for it:

- papermill's injected-parameters cell is dropped and the parameters cell shows the values the run
  used (``QUICK = False  # this run (default: True)``);
- a printed `Entry` (the return value of ``ledger.check(...)`` left as a cell's last expression) is
  dropped: the ledger shows it, with its evidence;
- right after the chapter's first (title) cell, a generated verdict summary: counts by family, what
  the post got wrong and by how much (each row's ``wrong`` text, else its ``why``), what this book
  could not test, and which run the page shows (no GPU run yet, when so);
- a ``## Ledger`` heading before the ledger, when the chapter has none;
- the ledger itself is rendered from the JSON its output carries (the same data as its table), in a
  layout that fits the column (id | verdict | post and measured | criterion, evidence and note),
  with a "dispute" link on every row: a prefilled issue on the repository;
- the landing page's placeholders (``<!-- book:counts -->``, ``<!-- book:chapters -->``,
  ``<!-- book:edition -->``, ``<!-- book:rule -->``, ``<!-- book:legend -->``) become the counts
  over the whole book, the chapter table with counts, the edition this build shows, the verdict
  rule and the legend (from book.core.verdicts).

At `config-inited` it also writes the verdict colours (`book.core.verdicts.css()`) next to
ledger.css, names the edition and its date in the footer, and sets the theme's default mode.
"""

from __future__ import annotations

import ast
import datetime as _dt
import html
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote, urlencode

from book.core import verdicts
from book.core.ledger import Entry, mask_run, value_text
from book.core.registry import CHAPTERS, REPO_ROOT

LEDGER_KEY = "dettmers_book_ledger"
PDF_NAME = "dettmers-book.pdf"
SUMMARY_TAG = "verdict-summary"
_ENTRY_REPR = re.compile(
    r"^[a-z0-9]+-\d+ ⟨?(?:" + "|".join(map(re.escape, verdicts.NAMES)) + r")\b"
)


# -- edition ---------------------------------------------------------------------------------------
def _git(*args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", str(REPO_ROOT), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def edition() -> dict[str, str]:
    """The edition this build shows: a release tag (BOOK_EDITION, else a tag on HEAD) or
    "development
    build", the commit, and the date (the tag's or the commit's, UTC)."""
    commit = os.environ.get("GITHUB_SHA", "")[:12] or _git("rev-parse", "--short=12", "HEAD")
    tag = os.environ.get("BOOK_EDITION") or _git("describe", "--tags", "--exact-match", "HEAD")
    date = _git("log", "-1", "--format=%cs", "HEAD") or _dt.date.today().isoformat()
    if tag:
        date = _git("log", "-1", "--format=%cs", tag) or date
    return {
        "name": f"edition {tag}" if tag else "development build",
        "tag": tag,
        "commit": commit,
        "date": date,
    }


def edition_text(ed: dict[str, str] | None = None) -> str:
    ed = ed or edition()
    commit = f", commit {ed['commit']}" if ed["commit"] else ""
    return f"This is the {ed['name']} of the book, dated {ed['date']}{commit}."


# -- repository and disputes -----------------------------------------------------------------------
def repository() -> str:
    from book.tools.colab import repository_url

    return repository_url().rstrip("/")


def dispute_url(row: dict[str, Any], page: str = "") -> str:
    """A prefilled issue on the repository: "claim dp-5: the verdict is wrong because …"."""
    verdict = row.get("verdict", "")
    body = (
        f"**Claim {row.get('id')}** ({page or 'the book'}): {row.get('claim', '')}\n\n"
        f"The page shows: **{verdict}**"
        + (f": {row['resource']}" if row.get("resource") else "")
        + f"\n- post: {text_of(row.get('post'))}\n- measured: {text_of(row.get('measured'))}\n"
        f"- criterion: {criterion_text(row)}\n- evidence: {_evidence(row)}\n\n"
        "The verdict is wrong because …\n\n(or: the source is dead / the criterion misreads the "
        "post, because …)\n"
    )
    query = urlencode(
        {
            "title": f"claim {row.get('id')}: the verdict is wrong because …",
            "body": body,
            "labels": "dispute",
        },
        quote_via=quote,
    )
    return f"{repository()}/issues/new?{query}"


# -- rows ------------------------------------------------------------------------------------------
text_of = value_text  # a value as every ledger table shows it
_mask = mask_run


def criterion_text(row: dict[str, Any]) -> str:
    return Entry.from_row(row).criterion_text(device_marks=False)


def measured_text(row: dict[str, Any]) -> str:
    return Entry.from_row(row).measured_text(device_marks=False)


def verdict_text(row: dict[str, Any]) -> str:
    return Entry.from_row(row).verdict_text(device_marks=False)


def _evidence(row: dict[str, Any]) -> str:
    ev = row.get("evidence") or {}
    if ev:
        return (
            ev.get("label")
            or f"{ev.get('path')} ({ev.get('mode')}, {ev.get('device')}, "
            f"{str(ev.get('date'))[:10]})"
        )
    return f"this run ({row.get('mode')}, {row.get('device')})"


def wrong_text(row: dict[str, Any]) -> str:
    """What the post got wrong and by how much: the row's `wrong`, else its `why`."""
    return text_of(row.get("wrong") or row.get("why"))


def note_parts(row: dict[str, Any]) -> list[tuple[str, str]]:
    parts = []
    if row.get("wrong") and row["verdict"] in ("differs", "wrong"):
        parts.append(("post got wrong", text_of(row["wrong"])))
    if row.get("note"):
        parts.append(("note", text_of(row["note"])))
    why = row.get("why")
    if (
        why
        and (row.get("timed") or row["verdict"] in ("differs", "undecided"))
        and why != row.get("wrong")
    ):
        parts.append(("why", _mask(text_of(why), bool(row.get("timed")))))
    if row.get("source"):
        parts.append(("source", text_of(row["source"])))
    if row.get("judged"):
        parts.append(("judged", f"{row['judged']}, due {row.get('due', '')}"))
    return parts


def family_of(row: dict[str, Any]) -> str:
    """The scoreboard family; a timed verdict is shown in its family too (it may change run to
    run)."""
    return (
        verdicts.family(row["verdict"]) if row.get("verdict") in verdicts.VERDICTS else "untestable"
    )


def badge(verdict: str, timed: bool = False, text: str | None = None) -> str:
    # a timed verdict keeps its colour (it is a verdict), marked as one that may change run to run
    css = f"verdict-{verdict}" + (" verdict-is-timed" if timed else "")
    meaning = verdicts.MEANINGS.get(verdict, "") + (
        " (timed: may change from run to run)" if timed else ""
    )
    title = html.escape(meaning, quote=True)
    return f'<span class="verdict {css}" title="{title}">{html.escape(text or verdict)}</span>'


def ledger_html(led: dict[str, Any], page: str = "") -> str:
    """A chapter's ledger as it fits a column: four columns, labelled lines, a dispute link per
    row."""
    rows = []
    for row in led["claims"]:
        timed = bool(row.get("timed"))
        first = [("post", text_of(row.get("post"))), ("measured", measured_text(row))]
        second = [("criterion", criterion_text(row)), ("evidence", _evidence(row))] + note_parts(
            row
        )
        if row.get("fails_if") and row["verdict"] not in ("cited",):
            second.append(("would fail if", text_of(row["fails_if"])))

        def lines(items: Iterable[tuple[str, str]]) -> str:
            return "".join(
                f'<div class="ledger-field"><span class="ledger-label">{html.escape(k)}:</span> '
                f"{html.escape(v)}</div>"
                for k, v in items
                if v
            )

        verdict = badge(row["verdict"], timed, verdict_text(row))
        dispute = (
            f'<a class="ledger-dispute" href="{html.escape(dispute_url(row, page), quote=True)}" '
            f'title="open a prefilled issue: claim {row["id"]}: the verdict is wrong because '
            '…">dispute</a>'
        )
        rows.append(
            f'<tr id="ledger-{row["id"]}" class="ledger-row family-{family_of(row)}">'
            f'<td class="ledger-id">{html.escape(row["id"])}</td>'
            f'<td class="ledger-verdict">{verdict}</td>'
            f'<td class="ledger-values">{lines(first)}</td>'
            f'<td class="ledger-details">{lines(second)}<div '
            f'class="ledger-actions">{dispute}</div></td>'
            "</tr>"
        )
    counts = ", ".join(f"{n} {v}" for v, n in led.get("counts", {}).items() if n)
    head = "".join(
        f"<th>{c}</th>" for c in ("id", "verdict", "post · measured", "criterion · evidence · note")
    )
    legend = " ".join(
        f"{badge(v)} {html.escape(verdicts.MEANINGS[v])}."
        for v in verdicts.NAMES
        if any(r["verdict"] == v for r in led["claims"])
    )
    timed_note = (
        "<p><small>⟨ ⟩ marks what depends on the run (timings): those numbers, and the verdicts "
        "of timed claims, may change from run to run; ‹ › marks numbers that depend on the "
        "machine's float kernels.</small></p>"
    )
    return (
        '<div class="ledger ledger-page"><p><b>Ledger</b> of chapter '
        f'<code>{html.escape(led["chapter"])}'
        f'</code> — mode <code>{html.escape(str(led.get("mode")))}</code>, device '
        f'<code>{html.escape(str(led.get("device")))}</code></p>'
        f'<table class="ledger-table"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        f'<tr class="ledger-total"><td colspan="4"><b>total</b>: {len(led["claims"])} claims: '
        f"{html.escape(counts)}</td></tr></tbody></table>"
        f"<p><small>{legend}</small></p>{timed_note}</div>"
    )


# -- the summary at the top of a chapter ----------------------------------------------------------
def family_counts(claims: Iterable[dict[str, Any]]) -> dict[str, int]:
    counts = {f: 0 for f in verdicts.FAMILIES}
    for row in claims:
        counts[family_of(row)] += 1
    return counts


def counts_line(counts: dict[str, int]) -> str:
    """ "7 the post holds · 2 the post is wrong · …" with each family in its verdict's colour."""
    colour = {
        "holds": "reproduced",
        "wrong": "differs",
        "undecided": "undecided",
        "untestable": "needs-gpu",
        "cited": "cited",
        "forecast": "partly",
    }
    label = {
        "holds": "the post holds",
        "wrong": "the post is wrong",
        "undecided": "undecided",
        "untestable": "not testable here",
        "cited": "cited",
        "forecast": "forecasts",
    }
    return " · ".join(
        f'<span class="verdict verdict-{colour[f]}">{n} {label[f]}</span>'
        for f, n in counts.items()
        if n
    )


def summary_markdown(led: dict[str, Any], colab_note: str = "") -> str:
    claims = led["claims"]
    counts = family_counts(claims)
    prov = led.get("provenance") or {}
    device = str(led.get("device", "cpu"))
    lines = [
        f"<div class=\"verdict-summary\"><p><b>Verdicts on this page</b> ({len(claims)} claims): "
        f"{counts_line(counts)}.</p>"
    ]
    wrong = [r for r in claims if r["verdict"] == "differs"]
    if wrong:
        lines.append("<p><b>Where the post is wrong</b>:</p><ul>")
        lines += [
            f'<li><a href="#ledger-{r["id"]}">{r["id"]}</a>: '
            f'{html.escape(wrong_text(r) or "see the ledger")}'
            + (" <small>(a timed verdict: this run's interval; it may change from run to run)</small>"
               if r.get("timed") else "")
            + "</li>"
            for r in wrong
        ]
        lines.append("</ul>")
    untestable = [r for r in claims if family_of(r) == "untestable"]
    if untestable:
        lines.append(
            "<p><b>Not testable on this machine</b> (the post is not judged): "
            + "; ".join(
                f'<a href="#ledger-{r["id"]}">{r["id"]}</a> ({html.escape(verdict_text(r))})'
                for r in untestable
            )
            + ".</p>"
        )
    undecided = [r for r in claims if r["verdict"] == "undecided"]
    if undecided:
        lines.append(
            "<p><b>Undecided</b> (the measurement's interval straddles the criterion): "
            + ", ".join(f'<a href="#ledger-{r["id"]}">{r["id"]}</a>' for r in undecided)
            + ".</p>"
        )
    forecast = [r for r in claims if family_of(r) == "forecast"]
    if forecast:
        lines.append(
            "<p><b>Forecasts</b>: "
            + ", ".join(
                f'<a href="#ledger-{r["id"]}">{r["id"]}</a> {badge(r["verdict"])}' for r in forecast
            )
            + ".</p>"
        )
    when = str(prov.get("date", ""))[:10]
    run = f"This page shows the {led.get('mode')}-mode run on {html.escape(device)}" + (
        f" of {when}" if when else ""
    )
    if not device.startswith("cuda"):
        run += (
            "; no GPU run of this chapter is published yet (the same code measures the needs-gpu "
            "rows "
            "on one: Colab, or <code>make test-gpu</code>)"
        )
    if colab_note:
        lines.append(f"<p><small>{html.escape(colab_note)}</small></p>")
    lines.append(
        f"<p><small>{run}. The full <a href=\"#ledger-section\">ledger</a> is at the end; "
        f"the <a href=\"../scoreboard.html\">scoreboard</a> has every chapter.</small></p></div>"
    )
    return "\n".join(lines)


# -- notebook transforms ---------------------------------------------------------------------------
def _tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def _src(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def merge_parameters(nb: dict) -> None:
    """Drop papermill's injected cell; show the values it set in the parameters cell itself."""
    injected = [c for c in nb["cells"] if "injected-parameters" in _tags(c)]
    if not injected:
        return
    values: dict[str, str] = {}
    for cell in injected:
        try:
            tree = ast.parse(_src(cell))
        except SyntaxError:
            continue
        lines = _src(cell).splitlines()
        for node in tree.body:
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
            ):
                values[node.targets[0].id] = (
                    "\n".join(lines[node.lineno - 1 : node.end_lineno]).split("=", 1)[1].strip()
                )
    nb["cells"] = [c for c in nb["cells"] if "injected-parameters" not in _tags(c)]
    params = next((c for c in nb["cells"] if "parameters" in _tags(c)), None)
    if params is None or not values:
        return
    source = _src(params)
    lines = source.splitlines()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return
    for node in reversed(tree.body):
        if not (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            continue
        name = node.targets[0].id
        if name not in values:
            continue
        default = ast.get_source_segment(source, node.value) or ""
        if default.strip() == values[name]:
            continue
        lines[node.lineno - 1 : node.end_lineno] = [
            f"{name} = {values[name]}  # this run (default: {default})"
        ]
    params["source"] = "\n".join(lines)


def drop_entry_results(nb: dict) -> None:
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            text = out.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if (
                out.get("output_type") == "execute_result"
                and LEDGER_KEY not in (out.get("metadata") or {})
                and "text/html" not in out.get("data", {})
                and _ENTRY_REPR.match(text)
            ):
                continue
            kept.append(out)
        cell["outputs"] = kept


def _ledger_cell(nb: dict) -> tuple[int, dict, dict] | None:
    found = None
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            meta = out.get("metadata") or {}
            if LEDGER_KEY in meta:
                found = (i, out, meta[LEDGER_KEY])
    return found


def _md(text: str, tags: list[str] | None = None) -> dict:
    import hashlib

    cell_id = "book-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]
    return {
        "cell_type": "markdown",
        "id": cell_id,
        "metadata": {"tags": tags or []},
        "source": text,
    }


def transform_chapter(nb: dict, page: str = "") -> dict:
    merge_parameters(nb)
    drop_entry_results(nb)
    found = _ledger_cell(nb)
    if not found:
        return nb
    index, output, led = found
    output["data"]["text/html"] = ledger_html(led, page)
    heading = re.compile(r"^#{1,3}\s+(?:The\s+)?Ledger\b", re.I | re.M)
    before = [c for c in nb["cells"][:index] if c.get("cell_type") == "markdown"]
    if not (before and heading.search(_src(before[-1]))):
        if not any(heading.search(_src(c)) for c in before):
            nb["cells"].insert(index, _md("## Ledger"))
            index += 1
    # an anchor the summary links to, right where the ledger section starts
    first_md = next(
        (i for i, c in enumerate(nb["cells"]) if c.get("cell_type") == "markdown"), None
    )
    nb["cells"].insert(index, _md('<span id="ledger-section"></span>'))
    if first_md is not None:
        nb["cells"].insert(
            first_md + 1, _md(summary_markdown(led, _colab_note(led.get("chapter"))), [SUMMARY_TAG])
        )
    return nb


def _colab_note(name: str | None) -> str:
    from book.tools.colab import runtime_note

    try:
        return runtime_note(CHAPTERS[name]) if name in CHAPTERS else ""
    except (OSError, ValueError):
        return ""


# -- the landing page -----------------------------------------------------------------------------
def staged_ledgers(srcdir: Path) -> dict[str, dict[str, Any] | None]:
    from book.core.ledger import ledger_from_notebook

    found = {}
    for name in CHAPTERS:
        path = Path(srcdir) / "notebooks" / f"{name}.ipynb"
        found[name] = ledger_from_notebook(path) if path.exists() else None
    return found


SHORT_FAMILY = {
    "holds": "holds",
    "wrong": "post wrong",
    "undecided": "undecided",
    "untestable": "not testable here",
    "cited": "cited",
    "forecast": "forecasts",
}


def counts_table(
    rows: list[tuple[str, str, dict[str, int]]],
    families: Iterable[str],
    extra: str = "",
    first: str = "chapter",
) -> str:
    """An HTML table of counts per chapter (a raw HTML block: one line, no blank lines). `rows`:
    (chapter cell HTML, second cell HTML or "", counts by family, plus `extra` when given)."""
    families = list(families)
    second = any(r[1] for r in rows)
    head = (
        f"<th>{first}</th>"
        + ("<th class='post-column'>post</th>" if second else "")
        + "".join(f"<th class='n'>{SHORT_FAMILY.get(f, f)}</th>" for f in families)
        + (f"<th class='n'>{extra}</th>" if extra else "")
    )
    body = []
    for cell, post, counts in rows:
        cells = f"<td>{cell}</td>" + (f"<td class='post-column'>{post}</td>" if second else "")
        cells += "".join(f"<td class='n'>{counts.get(f, 0) or '–'}</td>" for f in families)
        if extra:
            cells += f"<td class='n'>{counts.get(extra, 0) or '–'}</td>"
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<table class="chapter-counts"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table>"
    )


def chapter_table(ledgers: dict[str, dict[str, Any] | None]) -> str:
    rows = []
    for name, ch in CHAPTERS.items():
        led = ledgers.get(name)
        link = (
            f'<a href="notebooks/{name}.html">{html.escape(ch.title)}</a>'
            if led
            else html.escape(ch.title)
        )
        post = (
            f'<a href="{html.escape(ch.post_url, quote=True)}">{html.escape(ch.post_title)}</a> '
            f'({ch.year})'
            if name != "predictions"
            else "the forecasts of the brain (2015), sparse-networks (2019) and GPU (2023) posts"
        )
        rows.append((link, post, family_counts(led["claims"]) if led else {}))
    return counts_table(rows, verdicts.FAMILIES)


def book_counts(ledgers: dict[str, dict[str, Any] | None]) -> str:
    claims = [r for led in ledgers.values() if led for r in led["claims"]]
    n_ch = sum(1 for led in ledgers.values() if led)
    return (
        f'<p class="book-counts"><b>{len(claims)} claims in {n_ch} chapters</b>: '
        f"{counts_line(family_counts(claims))}. "
        'The <a href="scoreboard.html">scoreboard</a> lists them, the post\'s errors first.</p>'
    )


def legend_markdown() -> str:
    """The verdicts, their meanings and their families, from book.core.verdicts (one place)."""
    lines = []
    for fam, meaning in verdicts.FAMILIES.items():
        names = [v for v in verdicts.NAMES if verdicts.family(v) == fam]
        lines.append(
            f"- *{meaning}*: "
            + "; ".join(f"{badge(v)} — {html.escape(verdicts.MEANINGS[v])}" for v in names)
        )
    return "\n".join(lines)


def _chapters_region(text: str) -> str:
    """The intro's static chapter table (what the source shows without a build) between its
    markers."""
    start, end = "<!-- book:chapters -->", "<!-- /book:chapters -->"
    if start in text and end in text:
        return text[text.index(start) : text.index(end) + len(end)]
    return start


def fill_intro(text: str, srcdir: Path) -> str:
    ledgers = staged_ledgers(srcdir)
    ed = edition()
    pdf = (
        f'<p class="book-edition">{html.escape(edition_text(ed))} '
        f'<a href="{PDF_NAME}">Download this edition as a PDF</a> · '
        f'<a href="{repository()}/releases">all editions</a>.</p>'
    )
    return (
        text.replace("<!-- book:counts -->", book_counts(ledgers))
        .replace("<!-- book:rule -->", "> " + verdicts.RULE)
        .replace("<!-- book:legend -->", legend_markdown())
        .replace(_chapters_region(text), chapter_table(ledgers))
        .replace("<!-- book:edition -->", pdf)
    )


# -- Sphinx hooks ---------------------------------------------------------------------------------
def _source_read(app, docname: str, source: list[str]) -> None:
    path = Path(app.env.doc2path(docname))
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(source[0])
        except json.JSONDecodeError:
            return
        source[0] = json.dumps(transform_chapter(nb, page=docname), ensure_ascii=False)
    elif docname == app.config.root_doc:
        source[0] = fill_intro(source[0], Path(app.srcdir))


def _config_inited(app, config) -> None:
    static = Path(app.confdir) / "_static"
    if static.is_dir():
        (static / "verdicts.css").write_text(verdicts.css(), encoding="utf-8")
    files = list(config.html_css_files or [])
    if "verdicts.css" not in [f if isinstance(f, str) else f[0] for f in files]:
        files.append("verdicts.css")
    config.html_css_files = files
    ed = edition()
    options = dict(config.html_theme_options or {})
    options["extra_footer"] = (
        f'<p class="book-edition">{html.escape(edition_text(ed))} '
        f'<a href="https://creativecommons.org/licenses/by/4.0/">Text CC BY 4.0</a>, '
        f'code MIT; the posts\' quoted text is Tim Dettmers\'.</p>'
    )
    config.html_theme_options = options
    # pydata-sphinx-theme reads the mode from html_context; unset, a first visit logs
    # "Got invalid theme mode" (the stored mode is empty): "auto" follows the reader's system.
    config.html_context = dict(config.html_context or {}, book_edition=ed, default_mode="auto")


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("source-read", _source_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
