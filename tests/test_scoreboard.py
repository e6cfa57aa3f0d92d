"""The scoreboard, the chapter pages' build-time machinery (book.tools.pages) and the verdict
colours: grouped so the post's errors stand apart from what the book could not test; every row
disputable; the vocabulary and its colours from book.core.verdicts only, readable in both themes."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import book  # noqa: F401  (numerics profile before anything imports torch)
from book.core import verdicts
from book.core.registry import REPO_ROOT
from book.tools import pages
from book.tools.scoreboard import render_scoreboard


def _row(cid, verdict, **kw):
    row = {
        "id": cid,
        "verdict": verdict,
        "claim": f"claim text of {cid}",
        "post": 1,
        "measured": 2,
        "tolerance": "exact",
        "mode": "full",
        "device": "cpu",
        "evidence": {},
        "source": "",
        "resource": "",
        "why": "",
        "note": "",
        "fails_if": "x",
        "volatile": False,
        "timed": False,
    }
    row.update(kw)
    return row


def _ledger(chapter, rows):
    counts = {v: sum(r["verdict"] == v for r in rows) for v in verdicts.NAMES}
    return {
        "chapter": chapter,
        "mode": "full",
        "device": "cpu",
        "counts": counts,
        "provenance": {"date": "2026-11-27T10:00:00Z", "commit": "abc"},
        "claims": rows,
    }


@pytest.fixture
def board():
    dp = _ledger(
        "dp",
        [
            _row("dp-1", "reproduced"),
            _row(
                "dp-3",
                "differs",
                why="the why text",
                wrong="3 x 2.25 = 6.75, not 7.75: off by 1 ms",
            ),
            _row("dp-5", "undecided", timed=True, measured="1.1 [0.9, 1.3]"),
            _row("dp-6", "needs-resource", resource="a 100 Gbit/s network", note="loopback only"),
            _row("dp-7", "differs", why="only a why, no wrong field"),
        ],
    )
    return render_scoreboard({"dp": dp})


def _section(page: str, title: str) -> str:
    start = page.index(f"## {title}")
    rest = page[start + 3 :]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[:end]


def test_the_posts_errors_come_first_apart_from_what_could_not_be_tested(board):
    heads = re.findall(r"^## (.+?) \(\d+\)$", board, re.M)
    assert heads[:4] == [
        "The post is wrong here",
        "Undecided: measured, but the interval cannot decide",
        "Not testable on this machine (the post is not judged)",
        "The post holds",
    ], heads
    wrong = _section(board, "The post is wrong here")
    assert "dp-3" in wrong and "dp-7" in wrong and "dp-6" not in wrong and "dp-5" not in wrong
    assert "off by 1 ms" in wrong, "a differs row shows what the post got wrong (its `wrong` text)"
    assert "only a why, no wrong field" in wrong, "without `wrong`, the row's `why` says it"
    untestable = _section(board, "Not testable on this machine")
    assert "dp-6" in untestable and "a 100 Gbit/s network" in untestable
    assert "dp-5" in _section(board, "Undecided")


def test_one_line_per_claim_with_its_details_folded(board):
    rows = re.findall(r'<tr id="claim-([a-z0-9]+-\d+)"', board)
    assert len(rows) == len(set(rows)), "each claim once"
    from book.core.ledger import claim_ids

    assert set(rows) >= set(claim_ids("dp")), "claims the page does not show are listed as not run"
    assert "## Not run" in board
    assert board.count("<details>") == 5, "every recorded claim's evidence folds into its line"


def test_every_row_links_a_prefilled_dispute(board):
    links = re.findall(r'class="ledger-dispute" href="([^"]+)"', board)
    assert len(links) == 5
    for link in links:
        link = link.replace("&amp;", "&")
        parts = urlsplit(link)
        assert link.startswith(pages.repository() + "/issues/new?")
        query = parse_qs(parts.query)
        assert re.fullmatch(
            r"claim [a-z0-9]+-\d+: the verdict is wrong because …", query["title"][0]
        )
        assert "The verdict is wrong because" in query["body"][0]


def test_counts_and_the_timed_verdict_keeps_its_colour(board):
    total = re.search(
        r"<tr><td><b>total</b></td>((?:<td class='n'>[^<]*</td>)+)</tr>", board
    ).group(1)
    cells = re.findall(r"<td class='n'>([^<]*)</td>", total)
    assert cells[0] == "2", "two rows where the post is wrong (the first family column)"
    assert 'class="verdict verdict-undecided verdict-is-timed"' in board


def test_legend_and_rule_come_from_the_verdicts_module(board):
    assert verdicts.RULE in board
    for name, meaning in verdicts.MEANINGS.items():
        assert name in board and html.escape(meaning) in board, name


# -- the build-time page transforms --------------------------------------------------------------
def _notebook(led):
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# Title\n\nthe post"},
            {
                "cell_type": "code",
                "metadata": {"tags": ["parameters"]},
                "outputs": [],
                "source": "QUICK = True  # small\nDEVICE = \"auto\"\nSEED = 0",
            },
            {
                "cell_type": "code",
                "metadata": {"tags": ["injected-parameters"]},
                "outputs": [],
                "source": "# Parameters\nQUICK = False\n",
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "ledger.check('dp-1', ...)",
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "metadata": {},
                        "execution_count": 3,
                        "data": {"text/plain": "dp-1 reproduced — post: 1 | measured: 2"},
                    }
                ],
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "ledger.finish()",
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "execution_count": 4,
                        "metadata": {pages.LEDGER_KEY: led},
                        "data": {
                            "text/plain": "Ledger ...",
                            "text/html": "<table style='white-space:nowrap'></table>",
                        },
                    }
                ],
            },
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def test_chapter_transform():
    led = _ledger("dp", [_row("dp-1", "reproduced"), _row("dp-3", "differs", wrong="off by 1 ms")])
    nb = pages.transform_chapter(_notebook(led), "notebooks/dp")
    sources = [c["source"] for c in nb["cells"]]
    assert not any(
        "injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]
    )
    params = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assert params["source"].splitlines()[0] == "QUICK = False  # this run (default: True)"
    assert (
        pages.SUMMARY_TAG in nb["cells"][1]["metadata"]["tags"]
    ), "the summary follows the title cell"
    assert "off by 1 ms" in sources[1] and "Where the post is wrong" in sources[1]
    assert any(s.startswith("## Ledger") for s in sources), "a Ledger heading before the ledger"
    entry_cell = next(c for c in nb["cells"] if c["source"].startswith("ledger.check"))
    assert entry_cell["outputs"] == [], "a printed Entry is dropped from the page"
    html = nb["cells"][-1]["outputs"][0]["data"]["text/html"]
    assert "nowrap" not in html and html.count('class="ledger-dispute"') == 2
    assert '<th>id</th><th>verdict</th>' in html
    assert all(
        c.get("id") for c in nb["cells"] if c["cell_type"] == "markdown" and c is not nb["cells"][0]
    )


def test_an_existing_ledger_heading_is_not_doubled():
    led = _ledger("dp", [_row("dp-1", "reproduced")])
    nb = _notebook(led)
    nb["cells"].insert(
        4, {"cell_type": "markdown", "metadata": {}, "source": "## Ledger\n\nEvery claim."}
    )
    nb = pages.transform_chapter(nb)
    assert sum(c["source"].startswith("## Ledger") for c in nb["cells"]) == 1


def test_landing_page_placeholders_are_filled(tmp_path):
    (tmp_path / "notebooks").mkdir()
    led = _ledger("dp", [_row("dp-1", "reproduced"), _row("dp-3", "differs")])
    (tmp_path / "notebooks" / "dp.ipynb").write_text(json.dumps(_notebook(led)), encoding="utf-8")
    text = (REPO_ROOT / "intro.md").read_text(encoding="utf-8")
    filled = pages.fill_intro(text, tmp_path)
    assert "<!-- book:" not in filled
    assert "2 claims in 1 chapters" in filled and "1 the post is wrong" in filled
    assert pages.PDF_NAME in filled and verdicts.RULE in filled


# -- colours ---------------------------------------------------------------------------------
def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    channels = [int(h[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _theme_backgrounds() -> dict[str, list[str]]:
    """The backgrounds a verdict can sit on, read from the installed theme: page, surface (striped
    rows, table heads) and on-background, in the light and the dark theme."""
    import pydata_sphinx_theme

    css = (
        Path(pydata_sphinx_theme.__file__).parent
        / "theme"
        / "pydata_sphinx_theme"
        / "static"
        / "styles"
        / "pydata-sphinx-theme.css"
    ).read_text(encoding="utf-8")
    found = {}
    for theme in ("light", "dark"):
        block = " ".join(re.findall(r"html\[data-theme=%s\]\{([^}]*)\}" % theme, css))
        values = [
            re.search(r"--pst-color-%s:(#[0-9a-fA-F]{3,6})" % name, block)
            for name in ("background", "on-background", "surface")
        ]
        found[theme] = [v.group(1) for v in values if v]
        assert len(found[theme]) == 3, f"theme variables not found for {theme}"
    return found


def test_every_verdict_colour_reads_at_4_5_to_1_in_both_themes():
    backgrounds = _theme_backgrounds()
    low = []
    for v in verdicts.VERDICTS.values():
        for theme, colour in (("light", v.colour), ("dark", v.colour_dark)):
            for bg in backgrounds[theme]:
                if contrast(colour, bg) < 4.5:
                    low.append(f"{v.name} {theme} {colour} on {bg}: {contrast(colour, bg):.2f}")
    for theme, colour in (("light", verdicts.TIMED_COLOUR), ("dark", verdicts.TIMED_COLOUR_DARK)):
        for bg in backgrounds[theme]:
            if contrast(colour, bg) < 4.5:
                low.append(f"timed {theme} {colour} on {bg}: {contrast(colour, bg):.2f}")
    assert not low, "verdict colours below 4.5:1:\n" + "\n".join(low)


def test_verdict_colours_live_in_one_place():
    """ledger.css carries no verdict colour; the build writes verdicts.css from
    book.core.verdicts."""
    css = (REPO_ROOT / "_static" / "ledger.css").read_text(encoding="utf-8")
    hand = re.findall(
        r"\.verdict-(%s)\s*\{[^}]*color" % "|".join(map(re.escape, verdicts.NAMES)), css
    )
    assert not hand, f"_static/ledger.css sets verdict colours by hand: {hand}"
    config = (REPO_ROOT / "_config.yml").read_text(encoding="utf-8")
    assert (
        "book.tools.pages" in config
    ), "the build step that writes verdicts.css is not in _config.yml"
    for path in (REPO_ROOT / "book").rglob("*.py"):
        if path.name == "verdicts.py":
            continue
        text = path.read_text(encoding="utf-8")
        for v in verdicts.VERDICTS.values():
            for colour in (v.colour, v.colour_dark):
                assert (
                    colour.lower() not in text.lower() or "verdicts" in text
                ), f"{path.relative_to(REPO_ROOT)} copies the colour of {v.name} ({colour})"


def test_the_forecast_chart_takes_its_colours_from_the_verdicts_module():
    from book.chapters import predictions

    assert predictions.OUTCOME_COLOURS == {
        v: verdicts.COLOURS[v] for v in verdicts.FORECAST_VERDICTS
    }
