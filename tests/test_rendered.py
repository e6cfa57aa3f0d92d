"""What a reader meets in the rendered book (`_build/html`): run by `make check-html` after a build.

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
