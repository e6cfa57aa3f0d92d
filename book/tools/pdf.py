"""The whole book as one PDF, from the rendered HTML (`make pdf`, after `make book` or `python -m
book build --no-execute`): `python -m book.tools.pdf`.

Each page of the table of contents is printed by headless Chromium (Debian's `chromium`; the book's
print styles drop the navigation, show every scoreboard line in full and set the ledgers as they
are on paper), after a cover with the edition, its date and the contents with page numbers;
pypdf joins them, with one bookmark per page and one per section heading. LaTeX is not needed
(Jupyter Book's pdflatex builder wants ~140 TeX Live packages; its pdfhtml builder downloads a
Chromium at run time). The PDF is written into the HTML folder (`dettmers-book.pdf`, linked from
the landing page).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from book.core.registry import REPO_ROOT
from book.tools.pages import PDF_NAME, edition, edition_text

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-pdf-header-footer",
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=15000",
]


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or next(
        (shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None
    )
    if not found:
        raise RuntimeError(
            "no Chromium to print with: apt-get install chromium (or set CHROMIUM=/path)"
        )
    return found


def toc_pages(toc: Path = REPO_ROOT / "_toc.yml") -> list[str]:
    """The book's documents in reading order (root first), as in _toc.yml."""
    import yaml

    data = yaml.safe_load(toc.read_text(encoding="utf-8"))
    docs = [data["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                docs.append(entry["file"])
            walk(entry.get("sections"))

    for part in data.get("parts", []):
        walk(part.get("chapters"))
    walk(data.get("chapters"))
    return docs


def _title(page: Path) -> str:
    text = page.read_text(encoding="utf-8")
    match = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.S)
    raw = match.group(1) if match else page.stem
    return html.unescape(re.sub(r"<[^>]+>", "", raw)).replace("#", "").strip()


def _headings(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    article = text[text.find("<article") :] if "<article" in text else text
    return [
        html.unescape(re.sub(r"<[^>]+>", "", h)).replace("#", "").strip()
        for h in re.findall(r"<h2[^>]*>(.*?)</h2>", article, re.S)
    ]


_PRINT_SCRIPT = (
    "<script>try{localStorage.setItem('mode','light');localStorage.setItem('theme','light');}"
    "catch(e){}document.documentElement.dataset.theme='light';"
    "document.documentElement.dataset.mode='light';</script>"
)


def _printable_copy(html_dir: Path, work: Path) -> Path:
    """A copy of the site set for paper: the light theme (the print styles show each claim in
    full)."""
    copy = work / "site"
    shutil.copytree(html_dir, copy, ignore=shutil.ignore_patterns(PDF_NAME))
    for page in copy.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        text = text.replace("<head>", "<head>" + _PRINT_SCRIPT, 1)
        page.write_text(text, encoding="utf-8")
    return copy


def _print(browser: str, source: Path, target: Path, profile: Path) -> None:
    cmd = [
        browser,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        f"--print-to-pdf={target}",
        source.as_uri(),
    ]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if not target.exists() or target.stat().st_size == 0:
        raise RuntimeError(
            f"chromium did not print {source.name}: {result.stderr.decode(errors='replace')[-400:]}"
        )


def _cover(entries: list[tuple[str, int]], ed: dict[str, str], css_dir: Path) -> str:
    rows = "".join(f"<tr><td>{html.escape(t)}</td><td class='n'>{n}</td></tr>" for t, n in entries)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>The executable Dettmers
    book</title>
<style>body{{font-family:sans-serif;margin:3cm 2.5cm;color:#222832}}
h1{{font-size:2.2em;margin-bottom:.2em}}
table{{width:100%;border-collapse:collapse;margin-top:2em}} td{{padding:.3em 0;border-bottom:1px
solid #ddd}}
td.n{{text-align:right}} .ed{{color:#48566b}}</style></head><body>
<h1>The executable Dettmers book</h1><p>Tim Dettmers' deep-learning posts, reproduced in code,
every claim
checked in a ledger.</p><p class="ed">{html.escape(edition_text(ed))}</p>
<h2>Contents</h2><table>{rows}</table></body></html>"""


def build_pdf(
    html_dir: Path = REPO_ROOT / "_build" / "html", target: Path | None = None, out=None
) -> Path:
    from pypdf import PdfReader, PdfWriter

    out = out or sys.stdout
    html_dir = Path(html_dir)
    if not (html_dir / "index.html").exists():
        raise RuntimeError(
            f"no rendered book in {html_dir}: build it first (make book, or "
            f"python -m book build --no-execute)"
        )
    target = Path(target or html_dir / PDF_NAME)
    browser = chromium()
    ed = edition()
    with tempfile.TemporaryDirectory(prefix="book-pdf-") as tmp:
        work = Path(tmp)
        site = _printable_copy(html_dir, work)
        printed = []
        for doc in toc_pages():
            page = site / f"{doc}.html"
            if not page.exists():
                raise RuntimeError(f"{doc}.html is missing from {html_dir}")
            pdf = work / f"{len(printed):02d}.pdf"
            print(f"printing {doc}.html", file=out, flush=True)
            _print(browser, page, pdf, work / "profile")
            printed.append(
                (doc, _title(html_dir / f"{doc}.html"), _headings(html_dir / f"{doc}.html"), pdf)
            )
        counts = [len(PdfReader(str(p)).pages) for *_, p in printed]
        # the cover takes one page (two if the contents run long): numbers count it in
        cover_pages = 1 if len(printed) <= 20 else 2
        starts, page_no = [], cover_pages + 1
        for n in counts:
            starts.append(page_no)
            page_no += n
        cover_html = work / "site" / "_cover.html"
        cover_html.write_text(
            _cover([(t, s) for (_, t, _, _), s in zip(printed, starts)], ed, site), encoding="utf-8"
        )
        cover = work / "cover.pdf"
        _print(browser, cover_html, cover, work / "profile")
        writer = PdfWriter()
        writer.append(str(cover))
        writer.add_outline_item(title="Cover and contents", page_number=0)
        for (doc, title, headings, pdf), start in zip(printed, starts):
            first = len(writer.pages)
            writer.append(str(pdf))
            parent = writer.add_outline_item(title=title, page_number=first)
            # a section bookmark points at the page whose text holds its heading first
            reader = PdfReader(str(pdf))
            texts = [(p.extract_text() or "") for p in reader.pages]
            for heading in headings:
                hit = next(
                    (i for i, t in enumerate(texts) if heading[:40] in t.replace("\n", " ")), None
                )
                if hit is not None:
                    writer.add_outline_item(title=heading, page_number=first + hit, parent=parent)
        writer.add_metadata(
            {"/Title": "The executable Dettmers book", "/Subject": edition_text(ed)}
        )
        writer.page_mode = "/UseOutlines"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_target = target.with_name(f".{target.name}.tmp")
        with open(tmp_target, "wb") as f:
            writer.write(f)
        os.replace(tmp_target, target)
    print(f"PDF written to {target} ({len(PdfReader(str(target)).pages)} pages)", file=out)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m book.tools.pdf", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--html", default=str(REPO_ROOT / "_build" / "html"), help="the rendered book"
    )
    parser.add_argument("--out", default=None, help=f"the PDF (default: HTML folder/{PDF_NAME})")
    args = parser.parse_args(argv)
    try:
        build_pdf(Path(args.html), Path(args.out) if args.out else None)
    except (RuntimeError, OSError, subprocess.SubprocessError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
