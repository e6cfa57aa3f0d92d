"""What a reader meets in the rendered book (`_build/html`): run by `make check-html` after a build.

Also (issue 23): each chapter opens with its verdict summary and has a Ledger heading, every ledger
row links a prefilled dispute, no papermill or `check()` noise, figures with alt text and captions,
the landing page's counts and edition, and, in headless Chromium when there is one, no table wider
than its column and no figure shrunk so far its text falls under 8 px.

No prose typeset as math, no traceback or error output, every image and internal link resolves,
math from the local MathJax (no script from the network), every chapter page ends with its ledger,
the scoreboard shows the verdicts the chapter pages show, and the Colab and repository buttons point
at the right notebook. The checks read the HTML only; they skip (saying why) when there is none.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

bs4 = pytest.importorskip("bs4")

ROOT = Path(__file__).resolve().parent.parent
HTML_ENV = "BOOK_HTML_DIR"


def _html_dir() -> Path:
    value = os.environ.get(HTML_ENV)
    if not value:
        pytest.skip(f"reader checks run on a fresh build: `make check-html` after `make book` (or "
                    f"set {HTML_ENV}=_build/html); a stale _build/html is not checked by a plain pytest run")
    path = Path(value)
    if not (path / "index.html").exists():
        pytest.skip(f"no rendered book in {path}: build it first (make book, or python -m book build --no-execute)")
    return path


@lru_cache(maxsize=None)
def _soup(path: Path):
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html")
                  if not p.relative_to(html).parts[0].startswith("_"))


def _content_pages(html: Path) -> list[Path]:
    return [p for p in _pages(html) if p.name not in ("genindex.html", "search.html")
            and not _soup(p).find("meta", attrs={"http-equiv": "Refresh"})]


def _article(soup):
    return soup.find("article") or soup.find(class_="bd-article") or soup


def _chapters():
    from book.core.registry import available_chapters

    return available_chapters()


@pytest.fixture(scope="module")
def html() -> Path:
    return _html_dir()


# -- math ------------------------------------------------------------------------------------------
_TEXT_COMMANDS = re.compile(r"\\(?:text\w*|mathrm|mathbf|mathit|mathsf|mathtt|mathcal|mathbb|operatorname|mbox|"
                            r"textrm|textit|textbf|label|tag)\s*\{[^{}]*\}")
_COMMAND = re.compile(r"\\[A-Za-z]+|\\.")
# prose words: lower case after the first letter (variables like AB, JJ, or single letters are math)
_WORD_RUN = re.compile(r"(?<![\\A-Za-z])[A-Za-z][a-z]+(?:[,;:.]?\s+[A-Za-z][a-z]+(?![A-Za-z])){2,}")


def prose_in_math(tex: str) -> str | None:
    """The stretch of ordinary prose inside a piece of TeX, if there is one: a `$` (a price or an
    unescaped delimiter), or three or more consecutive words outside \\text{} and friends."""
    body = tex.strip()
    for opener, closer in (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$")):
        if body.startswith(opener) and body.endswith(closer) and len(body) >= len(opener) + len(closer):
            body = body[len(opener):len(body) - len(closer)]
            break
    if re.search(r"(?<!\\)\$", body):
        return "a $ inside math: " + body[:80]
    stripped = _COMMAND.sub(" ", _TEXT_COMMANDS.sub(" ", body))
    run = _WORD_RUN.search(stripped)
    return run.group(0) if run else None


@pytest.mark.parametrize("tex, prose", [
    (r"\(1.075\times10^{21}\)", False),
    (r"\(N_\text{type}\big(\underbrace{I\,T}_{\text{input times filter}}\big)\)", False),
    (r"\(0.745\ \mathrm{ms} \approx 0.75\ \mathrm{ms}\)", False),
    (r"\(\log_2(\text{FLOPS})\)", False),
    (r"\(0.12/kWh) against an AWS V100 on-demand instance at \)", True),
    (r"\((A - a J)(B - b J) = AB - b\,AJ - a\,JB + ab\,JJ, \qquad JJ = K\,J\)", False),
    (r"\(0.175/kWh and 15 % use — the inputs of the post's perf/\)", True),
    (r"\(\nThe discrete FFT computes a circular convolution, so\)", True),
    (r"\(65k–100k a day, about $23 M\)", True),
])
def test_prose_in_math_detector(tex, prose):
    assert (prose_in_math(tex) is not None) is prose


def test_no_prose_typeset_as_math(html):
    found = []
    for page in _content_pages(html):
        for node in _article(_soup(page)).find_all(class_="math"):
            hit = prose_in_math(node.get_text())
            if hit:
                found.append(f"{page.relative_to(html)}: {hit!r}")
    assert not found, "prose typeset as math (escape prices as \\$ in markdown):\n" + "\n".join(found)


def test_no_raw_tex_delimiters_left_for_mathjax_in_text(html):
    """Text outside math elements that MathJax would still typeset (its delimiters are \\( \\[ $$)."""
    found = []
    for page in _content_pages(html):
        article = _article(_soup(page))
        for text in article.find_all(string=True):
            if text.parent.name in ("script", "style", "code", "pre") or text.find_parent(class_="math") \
                    or text.find_parent(["pre", "code"]):
                continue
            if re.search(r"\\\(|\\\[|\$\$", text):
                found.append(f"{page.relative_to(html)}: {text.strip()[:80]!r}")
    assert not found, "raw TeX delimiters in page text:\n" + "\n".join(found)


# -- errors ----------------------------------------------------------------------------------------
_ERROR_TEXT = re.compile(r"Traceback \(most recent call last\)|^\s*\w+(?:Error|Exception): ", re.M)


def test_no_traceback_or_error_output(html):
    found = []
    for page in _content_pages(html):
        soup = _soup(page)
        article = _article(soup)
        for node in article.select(".output.traceback, .output.error, .system-message, .problematic, "
                                   ".output.stderr"):
            found.append(f"{page.relative_to(html)}: {' '.join(node.get('class', []))}: "
                         f"{node.get_text()[:100]!r}")
        for output in article.select(".cell_output"):
            match = _ERROR_TEXT.search(output.get_text())
            if match:
                found.append(f"{page.relative_to(html)}: output reads {match.group(0).strip()!r}")
    assert not found, "error output on pages:\n" + "\n".join(found)


# -- links, images, scripts -----------------------------------------------------------------------
def _local_target(page: Path, url: str, html: Path) -> tuple[Path, str] | None:
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
        return None
    if not parts.path:
        return page, parts.fragment
    return (page.parent / unquote(parts.path)).resolve(), parts.fragment


def test_every_image_and_internal_link_resolves(html):
    broken = []
    for page in _pages(html):
        soup = _soup(page)
        for tag, attr in (("img", "src"), ("a", "href"), ("link", "href"), ("script", "src")):
            for node in soup.find_all(tag, attrs={attr: True}):
                target = _local_target(page, node[attr], html)
                if target is None:
                    continue
                path, fragment = target
                if path.name == "dettmers-book.pdf" and not path.exists() and not os.environ.get("BOOK_REQUIRE_PDF"):
                    continue   # built by `make pdf` (the Pages workflow, before these checks): see test_pdf
                if path.is_dir():
                    path = path / "index.html"
                if not path.exists():
                    broken.append(f"{page.relative_to(html)}: <{tag} {attr}={node[attr]!r}> (no file)")
                elif fragment and tag == "a" and path.suffix == ".html" and path.name not in ("genindex.html", "search.html"):
                    if not _soup(path).find(id=fragment):
                        broken.append(f"{page.relative_to(html)}: <a href={node[attr]!r}> (no #{fragment} there)")
    assert not broken, "broken links or images:\n" + "\n".join(broken)


def test_math_is_typeset_by_the_local_mathjax_and_no_script_comes_from_the_network(html):
    problems = []
    for page in _content_pages(html):
        soup = _soup(page)
        srcs = [s["src"] for s in soup.find_all("script", src=True)]
        external = [s for s in srcs if urlsplit(s).scheme or s.startswith("//")]
        if external:
            problems.append(f"{page.relative_to(html)}: scripts from the network: {external}")
        if _article(soup).find(class_="math"):
            local = [s for s in srcs if re.search(r"(^|/)_static/mathjax/tex-\w+\.js", s)]
            if not local:
                problems.append(f"{page.relative_to(html)}: has math but no _static/mathjax script")
            elif not (page.parent / urlsplit(local[0]).path).exists():
                problems.append(f"{page.relative_to(html)}: {local[0]} is missing")
    assert not problems, "\n".join(problems)


# -- chapter pages and their ledgers ---------------------------------------------------------------
def _claim_id(text: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9]+-\d+", text.strip()))


def _verdict_text(cell) -> str:
    return cell.get_text().strip().strip("⟨⟩").strip()


def _page_ledger(soup):
    """The page's last ledger table: claim id -> verdict, and the cell that shows it."""
    article = _article(soup)
    tables = [t for t in article.select(".cell_output table")
              if t.find("th") and [th.get_text().strip() for th in t.find_all("th")][:2] == ["id", "verdict"]]
    if not tables:
        return {}, None
    table = tables[-1]
    rows = {}
    for tr in table.find_all("tr"):
        cells = tr.find_all("td")
        if len(cells) >= 2 and _claim_id(cells[0].get_text()):
            rows[cells[0].get_text().strip()] = _verdict_text(cells[1])
    return rows, table.find_parent(class_="cell")


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_chapter_page_ends_with_its_ledger(html, chapter):
    page = html / "notebooks" / f"{chapter}.html"
    if not page.exists():
        pytest.fail(f"{chapter}: no page notebooks/{chapter}.html in the rendered book")
    soup = _soup(page)
    rows, cell = _page_ledger(soup)
    assert rows, f"{chapter}: the page shows no ledger table"
    cells = _article(soup).select("div.cell")
    assert cells and cells[-1] is cell, f"{chapter}: the ledger is not the page's last cell"


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_chapter_ledger_shows_every_claim_in_catalogue_order(html, chapter):
    from book.core.registry import get_chapter
    from book.core.ledger import claim_ids

    page = html / "notebooks" / f"{chapter}.html"
    if not page.exists():
        pytest.fail(f"{chapter}: no page")
    rows, _ = _page_ledger(_soup(page))
    expected = [cid for p in get_chapter(chapter).prefixes for cid in claim_ids(p)]
    missing = [cid for cid in expected if cid not in rows]
    assert not missing, f"{chapter}: the page's ledger lacks {missing} (claims.md has them)"
    shown = [cid for cid in rows if cid in expected]
    assert shown == expected, f"{chapter}: ledger rows out of claims.md order: {list(rows)}"


def _scoreboard(html: Path) -> dict[str, str]:
    page = html / "scoreboard.html"
    if not page.exists():
        pytest.fail("the rendered book has no scoreboard page")
    found = {}
    for tr in _article(_soup(page)).find_all("tr"):
        cells = tr.find_all("td")
        if len(cells) >= 2 and _claim_id(cells[0].get_text()):
            found[cells[0].get_text().strip()] = _verdict_text(cells[1])
    return found


def test_scoreboard_agrees_with_the_chapter_pages(html):
    board = _scoreboard(html)
    disagree = []
    for chapter in _chapters():
        page = html / "notebooks" / f"{chapter.name}.html"
        if not page.exists():
            continue
        rows, _ = _page_ledger(_soup(page))
        for cid, verdict in rows.items():
            if board.get(cid) != verdict:
                disagree.append(f"{cid}: page {verdict!r}, scoreboard {board.get(cid)!r}")
    assert not disagree, "the scoreboard contradicts the chapter pages:\n" + "\n".join(disagree)


def _repository() -> tuple[str, str]:
    from book.tools.colab import repository_url

    text = (ROOT / "_config.yml").read_text(encoding="utf-8")
    branch = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+branch:\s*(\S+)", text, re.M)
    return repository_url().rstrip("/"), (branch.group(1).strip("'\"") if branch else "main")


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_launch_and_repository_links_point_at_the_chapter_notebook(html, chapter):
    page = html / "notebooks" / f"{chapter}.html"
    if not page.exists():
        pytest.fail(f"{chapter}: no page")
    url, branch = _repository()
    owner_repo = urlsplit(url).path.strip("/")
    hrefs = [a["href"] for a in _soup(page).find_all("a", href=True)]
    colab = [h for h in hrefs if h.startswith("https://colab.research.google.com/")]
    assert colab == [f"https://colab.research.google.com/github/{owner_repo}/blob/{branch}/notebooks/{chapter}.ipynb"], colab
    assert url in [h.rstrip("/") for h in hrefs], f"{chapter}: no link to the repository {url}"
    github = [h for h in hrefs if h.startswith(url + "/") and "/notebooks/" in h]
    for h in github:
        assert h.endswith(f"/notebooks/{chapter}.ipynb"), f"{chapter}: repository link to another notebook: {h}"


def test_no_bare_domain_turned_into_a_link(html):
    """linkify's fuzzy links made `timdettmers.com` an `http://` link; only written URLs are links."""
    found = []
    for page in _content_pages(html):
        for a in _article(_soup(page)).find_all("a", href=True):
            text = a.get_text().strip()
            if a["href"].startswith(("http://", "https://")) and re.fullmatch(r"[\w.-]+\.[a-z]{2,}(/\S*)?", text) \
                    and not text.startswith(("http://", "https://")) and a["href"].startswith("http://" + text):
                found.append(f"{page.relative_to(html)}: {text!r} -> {a['href']}")
    assert not found, "bare domains rendered as links:\n" + "\n".join(found)


# -- issue 23: what a reader sees first, and around the ledger -------------------------------------
def _chapter_page(html: Path, chapter: str):
    page = html / "notebooks" / f"{chapter}.html"
    if not page.exists():
        pytest.fail(f"{chapter}: no page")
    return _soup(page)


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_chapter_opens_with_its_verdict_summary(html, chapter):
    soup = _chapter_page(html, chapter)
    article = _article(soup)
    summary = article.select_one(".verdict-summary")
    assert summary is not None, f"{chapter}: no verdict summary at the top"
    first_cell = article.select_one("div.cell")
    assert first_cell is None or summary.sourceline < first_cell.sourceline, \
        f"{chapter}: the verdict summary comes after the first code cell"
    rows, _ = _page_ledger(soup)
    wrong = [cid for cid, verdict in rows.items() if verdict == "differs"]
    listed = [a.get_text() for a in summary.select("a[href^='#ledger-']")]
    missing = [cid for cid in wrong if cid not in listed]
    assert not missing, f"{chapter}: the summary does not list the differs rows {missing}"


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_chapter_ledger_sits_under_a_ledger_heading_in_the_contents(html, chapter):
    soup = _chapter_page(html, chapter)
    headings = [h.get_text(" ", strip=True).replace("#", "").strip() for h in _article(soup).find_all(["h2", "h3"])]
    assert any(h.startswith("Ledger") for h in headings), f"{chapter}: no 'Ledger' heading ({headings})"
    toc = soup.select_one(".bd-toc, #pst-page-toc-nav, .page-toc")
    if toc is not None:
        assert any(a.get_text(strip=True).startswith("Ledger") for a in toc.find_all("a")), \
            f"{chapter}: the page's contents list has no Ledger entry"


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_every_ledger_row_links_a_prefilled_dispute(html, chapter):
    from book.tools.colab import repository_url

    soup = _chapter_page(html, chapter)
    rows = _article(soup).select("tr[id^='ledger-']")
    assert rows, f"{chapter}: no ledger rows"
    for tr in rows:
        cid = tr["id"][len("ledger-"):]
        link = tr.select_one("a.ledger-dispute")
        assert link is not None, f"{chapter}: {cid} has no dispute link"
        assert link["href"].startswith(repository_url().rstrip("/") + "/issues/new?title=claim%20" + cid), link["href"][:120]
        assert "nowrap" not in str(tr.get("style", "")) and not tr.select("[style*=nowrap]"), \
            f"{chapter}: {cid}: a nowrap cell widens the ledger"


def test_the_issues_button_is_on(html):
    from book.tools.colab import repository_url

    hrefs = [a.get("href", "") for a in _soup(html / "intro.html").find_all("a")]
    assert any(h.rstrip("/").startswith(repository_url().rstrip("/") + "/issues") for h in hrefs)


_ENTRY = re.compile(r"^[a-z0-9]+-\d+ ⟨?(reproduced|differs|undecided|needs-gpu|needs-resource|cited)\b")


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_no_papermill_or_check_noise_on_the_page(html, chapter):
    article = _article(_chapter_page(html, chapter))
    assert not article.select(".tag_injected-parameters"), f"{chapter}: papermill's injected cell is shown"
    noise = [o.get_text()[:80] for o in article.select(".cell_output .output")
             if _ENTRY.match(o.get_text().strip())]
    assert not noise, f"{chapter}: a check()'s return value printed after its cell: {noise[:3]}"


@pytest.mark.parametrize("chapter", [c.name for c in _chapters()])
def test_figures_have_alt_text_and_a_numbered_caption(html, chapter):
    """FIGURES.md: cell metadata mystnb.figure.caption/name and mystnb.image.alt on every figure."""
    article = _article(_chapter_page(html, chapter))
    bad = []
    for img in article.select(".cell_output img"):
        alt = (img.get("alt") or "").strip()
        if not alt or alt.endswith((".png", ".svg", ".jpg")) or ("/" in alt and " " not in alt) or alt.startswith("_images"):
            bad.append(f"no alt text: {img.get('src')}")
        figure = img.find_parent("figure")
        if figure is None or not figure.find("figcaption") or not figure.find(class_="caption-number"):
            bad.append(f"no numbered caption: {img.get('src')}")
    assert not bad, f"{chapter}: {len(bad)} figure problems:\n" + "\n".join(bad[:12])


def test_landing_page_shows_the_counts_the_edition_and_the_pdf(html):
    soup = _soup(html / "intro.html")
    counts = _article(soup).select_one(".book-counts")
    assert counts is not None and re.search(r"\d+ claims in \d+ chapters", counts.get_text())
    table = _article(soup).select_one("table.chapter-counts")
    assert table is not None and len(table.find_all("tr")) >= len(_chapters()) + 1
    edition = _article(soup).select_one(".book-edition")
    assert edition is not None and re.search(r"dated \d{4}-\d{2}-\d{2}", edition.get_text())
    assert edition.find("a", href="dettmers-book.pdf"), "the landing page links the PDF"


def test_no_invalid_theme_mode_on_a_first_visit(html):
    """pydata-sphinx-theme logs 'Got invalid theme mode' when html_context has no default_mode."""
    text = (html / "intro.html").read_text(encoding="utf-8")
    assert 'data-default-mode="auto"' in text or 'data-default-mode="light"' in text


def test_pdf(html):
    pdf = html / "dettmers-book.pdf"
    if not pdf.exists():
        if os.environ.get("BOOK_REQUIRE_PDF"):
            pytest.fail("no PDF: make pdf")
        pytest.skip("no PDF built (make pdf)")
    pypdf = pytest.importorskip("pypdf")
    reader = pypdf.PdfReader(str(pdf))
    titles = [item.title for item in reader.outline if not isinstance(item, list)]
    for chapter in _chapters():
        assert chapter.title in titles, f"the PDF has no bookmark for {chapter.title}"
    assert "Scoreboard" in titles and "Status" in titles


# -- layout, measured in headless Chromium ------------------------------------------------------------
_MEASURE_JS = """<script>window.addEventListener('load',function(){setTimeout(function(){
var a=document.querySelector('article')||document.body;var aw=a.getBoundingClientRect().width;
var out={article:aw,tables:[],images:[]};
a.querySelectorAll('table').forEach(function(t){var r=t.getBoundingClientRect();
 if(r.width>aw+1){out.tables.push({width:Math.round(r.width),cls:t.className,
 where:((t.closest('section[id]')||{}).id||'')});}});
a.querySelectorAll('.cell_output img').forEach(function(i){if(i.naturalWidth>0){
 out.images.push({src:i.getAttribute('src'),shown:i.clientWidth,natural:i.naturalWidth});}});
var pre=document.createElement('pre');pre.id='book-measure';pre.textContent=JSON.stringify(out);
document.body.appendChild(pre);},500);});</script>"""


def _chromium():
    import shutil

    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


def _measure(page: Path, width: int, tries: int = 3) -> dict:
    """Layout numbers of `page` at `width` px, from a copy carrying a measuring script (the page's
    load event can miss the virtual-time budget on a busy machine: tried up to `tries` times)."""
    import html as html_module
    import json
    import shutil
    import subprocess
    import tempfile

    copy = page.with_name(f".measure-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</head>", _MEASURE_JS + "</head>", 1), encoding="utf-8")
    try:
        for _ in range(tries):
            profile = tempfile.mkdtemp(prefix="book-measure-")
            try:
                out = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-background-networking", "--disable-component-update",
                                      "--disable-sync", f"--user-data-dir={profile}", f"--window-size={width},1000",
                                      "--virtual-time-budget=15000", "--dump-dom", copy.as_uri()],
                                     capture_output=True, text=True, timeout=180).stdout
            finally:
                shutil.rmtree(profile, ignore_errors=True)
            match = re.search(r'<pre id="book-measure">(.*?)</pre>', out, re.S)
            if match:
                return json.loads(html_module.unescape(match.group(1)))
    finally:
        copy.unlink(missing_ok=True)
    raise AssertionError(f"{page.name}: the measuring script did not run in {tries} tries")


def _layout_pages(html: Path) -> list[Path]:
    return [html / "intro.html", html / "scoreboard.html", html / "status.html"] + \
        [html / "notebooks" / f"{c.name}.html" for c in _chapters()]


@pytest.fixture(scope="module")
def desktop(html):
    if not _chromium():
        pytest.skip("no headless Chromium (apt-get install chromium)")
    return {p.name: _measure(p, 1400) for p in _layout_pages(html) if p.exists()}


def test_no_table_wider_than_its_column_on_a_desktop(desktop):
    wide = [f"{name}: {t['cls'] or 'table'} {t['width']} px in a {m['article']:.0f} px column (§{t['where']})"
            for name, m in desktop.items() for t in m["tables"]]
    assert not wide, "tables wider than the column at 1400 px:\n" + "\n".join(wide)


def test_no_figure_shrunk_below_readable_text_on_a_desktop(desktop):
    """Figures are drawn at <= 800 px with >= 10 pt text (FIGURES.md); shown at under 60 % of their
    width their text falls below 8 px."""
    small = [f"{name}: {i['src'].rsplit('/', 1)[-1][:16]}… {i['natural']} px shown at {i['shown']} px "
             f"({i['shown'] / i['natural']:.0%})"
             for name, m in desktop.items() for i in m["images"] if i["shown"] < 0.6 * i["natural"]]
    assert not small, "figures shrunk so their text is under 8 px:\n" + "\n".join(small)


def test_ledgers_and_scoreboard_fit_a_phone(html):
    if not _chromium():
        pytest.skip("no headless Chromium")
    wide = []
    for page in _layout_pages(html):
        if not page.exists():
            continue
        m = _measure(page, 400)
        wide += [f"{page.name}: {t['cls']} {t['width']} px in {m['article']:.0f} px" for t in m["tables"]
                 if any(k in t["cls"] for k in ("ledger-table", "scoreboard-table", "chapter-counts"))]
    assert not wide, "\n".join(wide)
