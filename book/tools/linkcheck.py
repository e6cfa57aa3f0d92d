"""Every external link a reader can follow, checked: the rendered book's (`_build/html`) and the
URLs in the data files' source columns (`book/data_files/*.csv`, columns whose name contains
"source"). `make linkcheck` (after a build) runs `python -m book.tools.linkcheck`; the scheduled
workflow linkcheck.yml opens an issue with the report when a link is dead.

A link is dead when its server answers 404/410 or any 5xx, or it cannot be reached (DNS, refused,
timeout), twice; 401/403/429 (a bot wall, a rate limit) are reported as "blocked", not dead.
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urldefrag, urlsplit

from book.core.registry import DATA_FILES, REPO_ROOT

URL = re.compile(r"https?://[^\s<>\"'`|)\]]+[^\s<>\"'`|)\].,;:]")
SKIP_HOSTS = ("localhost", "127.0.0.1", "colab.research.google.com")  # Colab links need a login
BLOCKED = (401, 403, 429)
USER_AGENT = "Mozilla/5.0 (compatible; dettmers-book-linkcheck; +https://github.com/)"


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href", "").startswith(("http://", "https://")):
            self.links.append(attrs["href"])


def html_links(html_dir: Path) -> dict[str, set[str]]:
    """URL -> the pages that link it (the book's own repository links are left to the
    repository)."""
    from book.tools.pages import repository

    own = repository()
    found: dict[str, set[str]] = defaultdict(set)
    for page in sorted(Path(html_dir).rglob("*.html")):
        rel = page.relative_to(html_dir)
        if rel.parts[0].startswith("_") or page.name.startswith("."):
            continue
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for url in parser.links:
            url = urldefrag(url)[0]
            if url.startswith(own) or urlsplit(url).hostname in SKIP_HOSTS:
                continue
            found[url].add(str(rel))
    return found


def data_links(data_dir: Path = DATA_FILES) -> tuple[dict[str, set[str]], int]:
    """URL -> 'file:line' of the data rows that cite it; and how many source cells hold no URL."""
    found: dict[str, set[str]] = defaultdict(set)
    unlinked = 0
    for path in sorted(Path(data_dir).glob("*.csv")):
        lines = path.read_text(encoding="utf-8").splitlines()
        body = [
            (n, line)
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.startswith("#")
        ]
        if not body:
            continue
        reader = csv.reader(io.StringIO("\n".join(line for _, line in body)))
        header = next(reader)
        columns = [i for i, name in enumerate(header) if "source" in name.lower()]
        for (n, _), row in zip(body[1:], reader):
            for i in columns:
                cell = row[i] if i < len(row) else ""
                urls = URL.findall(cell)
                if cell.strip() and not urls:
                    unlinked += 1
                for url in urls:
                    found[url].add(f"{_shown(path)}:{n}")
    return found, unlinked


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def check(url: str, timeout: float = 20.0, tries: int = 2) -> tuple[str, str]:
    """('ok' | 'blocked' | 'dead', detail)."""
    import urllib.error
    import urllib.request

    detail = ""
    for attempt in range(tries):
        for method in ("HEAD", "GET"):
            request = urllib.request.Request(url, method=method, headers={"User-Agent": USER_AGENT})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    return "ok", str(response.status)
            except urllib.error.HTTPError as err:
                if err.code in BLOCKED:
                    return "blocked", str(err.code)
                if err.code == 405 and method == "HEAD":
                    continue  # HEAD not allowed: try GET
                detail = f"HTTP {err.code}"
                if method == "HEAD":
                    continue
            except (urllib.error.URLError, OSError, ValueError) as err:
                detail = f"{type(err).__name__}: {getattr(err, 'reason', err)}"
        if attempt + 1 < tries:
            time.sleep(2)
    return "dead", detail


def report(results: dict[str, tuple[str, str]], where: dict[str, set[str]], unlinked: int) -> str:
    dead = sorted(u for u, (state, _) in results.items() if state == "dead")
    blocked = sorted(u for u, (state, _) in results.items() if state == "blocked")
    lines = [
        f"# Link check: {len(dead)} dead of {len(results)} external links",
        "",
        f"Checked {len(results)} distinct URLs from the rendered book and the data files' source "
        f"columns; {len(blocked)} answered as a bot wall or rate limit (not counted as dead); "
        f"{unlinked} data-file source cells name a source without a URL (not checkable).",
        "",
    ]
    if dead:
        lines += ["## Dead", "", "| URL | answer | where |", "|---|---|---|"]
        lines += [f"| {u} | {results[u][1]} | {', '.join(sorted(where[u])[:5])} |" for u in dead]
    if blocked:
        lines += ["", "## Blocked (check by hand)", ""] + [
            f"- {u} ({results[u][1]})" for u in blocked
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m book.tools.linkcheck", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--html", default=str(REPO_ROOT / "_build" / "html"))
    parser.add_argument("--report", default=str(REPO_ROOT / "_build" / "linkcheck.md"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--list", action="store_true", help="list the URLs, check nothing")
    args = parser.parse_args(argv)
    html_dir = Path(args.html)
    if not (html_dir / "index.html").exists():
        print(f"error: no rendered book in {html_dir}: build it first", file=sys.stderr)
        return 2
    where = html_links(html_dir)
    from_data, unlinked = data_links()
    for url, rows in from_data.items():
        where.setdefault(url, set()).update(rows)
    if args.list:
        print("\n".join(sorted(where)))
        return 0
    with ThreadPoolExecutor(args.workers) as pool:
        results = dict(zip(where, pool.map(check, where)))
    text = report(results, where, unlinked)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(text, encoding="utf-8")
    print(text)
    return 1 if any(state == "dead" for state, _ in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
