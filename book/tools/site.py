"""The book: stage its source in `_build/site` (root pages + one notebook per chapter), check every
stored page first, and render it with Jupyter Book into `_build/html`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

from book.core.registry import REPO_ROOT, Chapter, available_chapters
from book.tools import paths
from book.tools.locks import build_lock
from book.tools.paths import shown, unwritable
from book.tools.signals import interrupts_deferred

ROOT_PAGES = (
    "_config.yml",
    "_toc.yml",
    "intro.md",
    "scoreboard.md",
    "status.md",
    "references.bib",
    "bibliography.md",
    "_static",
)


def page_source(chapter: Chapter, executed: Iterable[str] = ()) -> Path:
    """The notebook the book shows for a chapter: this build's executed copy when the chapter ran in
    this build, else its committed full-mode evidence (results/NAME/NAME.ipynb), else the committed
    quick run in notebooks/."""
    from book.core.evidence import page_notebook

    copy = paths.EXECUTED_DIR / chapter.notebook.name
    if chapter.name in executed and copy.exists():
        return copy
    return page_notebook(chapter.name) or chapter.notebook


def check_sources(sources: dict[str, Path]) -> None:
    """Before anything is staged: every stored page consistent with its notebook and its manifest
    (`book.core.evidence.check_page`), every page a readable notebook. EvidenceError (one line)."""
    from book.core import evidence

    for name, source in sources.items():
        if source == evidence.page_notebook(name):
            evidence.check_page(name)
        else:
            evidence.read_notebook(source)


def _copy_into_build(src: Path, dst: Path, tree: bool = False) -> None:
    """A copy into _build whose failure names the target in _build (a copy's OSError names its
    source)."""
    try:
        if tree:
            shutil.copytree(src, dst)
        else:
            shutil.copyfile(src, dst)  # a fresh mtime: see stage_site
    except shutil.Error as err:  # copytree: a list of (source, target, why)
        failures = err.args[0] if err.args and isinstance(err.args[0], list) else []
        target, why = (failures[0][1], failures[0][2]) if failures else (dst, str(err))
        raise paths.BookError(
            f"cannot write {shown(target)}: {why} "
            f"(the runner needs a writable {shown(paths.BUILD_DIR)}/)"
        ) from None
    except OSError as err:
        raise unwritable(err, dst) from None


def stage_site(executed: Iterable[str] = ()) -> tuple[Path, dict[str, Path]]:
    """Lay out the book's source in _build/site: the root pages plus one notebook per chapter (see
    `page_source`), after checking them (`check_sources`). Returns the site and, per chapter, where
    its page came from."""
    executed = set(executed)
    sources = {chapter.name: page_source(chapter, executed) for chapter in available_chapters()}
    check_sources(sources)
    site = paths.SITE_DIR
    try:
        if site.exists():
            shutil.rmtree(site)
        (site / "notebooks").mkdir(parents=True)
    except OSError as err:
        raise unwritable(err, site) from None
    for name in ROOT_PAGES:
        src = REPO_ROOT / name
        if src.exists():
            _copy_into_build(src, site / name, tree=src.is_dir())
    for chapter in available_chapters():
        # copyfile, not copy2: a fresh mtime, so Sphinx never keeps an earlier build's page of a
        # chapter whose source changed to an older file (say from this build's run back to the
        # committed one)
        _copy_into_build(sources[chapter.name], site / "notebooks" / chapter.notebook.name)
    return site, sources


def build_html(executed: Iterable[str] = (), out=None) -> int:
    """Stage the site, write the scoreboard and the status page from the very notebooks staged (one
    build, one truth), and render it with Jupyter Book into _build/html. Warnings are errors (-W),
    so a broken page fails the build."""
    from book.tools.scoreboard import write_scoreboard, write_status

    out = out or sys.stdout
    with build_lock(["book"]):
        site, sources = stage_site(executed)
        pages = {name: site / "notebooks" / f"{name}.ipynb" for name in sources}
        for target in (REPO_ROOT / "scoreboard.md", site / "scoreboard.md"):
            write_scoreboard(pages, target)
        for target in (REPO_ROOT / "status.md", site / "status.md"):
            write_status(pages, sources, target)
        jb = Path(sys.executable).with_name("jupyter-book")
        # --all: every page is rendered from this build's staged notebooks, none from an earlier
        # build
        cmd = [
            str(jb) if jb.exists() else "jupyter-book",
            "build",
            str(site),
            "--path-output",
            str(paths.BUILD_DIR / "book"),
            "--all",
            "-W",
            "--keep-going",
        ]
        print("$ " + " ".join(cmd), file=out, flush=True)
        code = subprocess.call(cmd)
        html = paths.BUILD_DIR / "html"
        if code == 0:
            # the finished book replaces the old one in two renames: an interrupted copy is never
            # _build/html
            fresh, old = paths.BUILD_DIR / ".html.new", paths.BUILD_DIR / ".html.old"
            for leftover in (fresh, old):
                if leftover.exists():
                    shutil.rmtree(leftover)
            _copy_into_build(paths.BUILD_DIR / "book" / "_build" / "html", fresh, tree=True)
            with interrupts_deferred():
                if html.exists():
                    os.replace(html, old)
                os.replace(fresh, html)
            shutil.rmtree(old, ignore_errors=True)
            print(f"book written to {shown(html)}/index.html", file=out)
    return code


__all__ = ["ROOT_PAGES", "page_source", "check_sources", "stage_site", "build_html"]
