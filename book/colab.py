"""The Colab install cell of every chapter, generated from the repository URL in _config.yml.

The URL lives in one place (_config.yml's `repository.url`, which the launch buttons use too);
`python -m book sync-install` rewrites each notebook's cell tagged `install` from it, and the tests
fail when a notebook's cell has drifted.
"""
from __future__ import annotations

import re
from pathlib import Path

from .chapters import REPO_ROOT, available_chapters

INSTALL_TAG = "install"


def repository_url(config: Path = REPO_ROOT / "_config.yml") -> str:
    """`repository.url` of the book's _config.yml (read without a YAML dependency)."""
    text = config.read_text(encoding="utf-8")
    match = re.search(r"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+url:\s*(\S+)", text, re.M)
    if not match:
        raise ValueError(f"{config} has no repository.url")
    return match.group(1).strip("'\"")


def install_cell_source(url: str | None = None, extras: tuple[str, ...] = ()) -> str:
    """The cell for a chapter needing the package's optional groups `extras` (e.g. ('int8',))."""
    url = url or repository_url()
    package = f"dettmers-book[{','.join(extras)}]" if extras else "dettmers-book"
    return ("# On Colab: install the book's package when it is not importable (a no-op locally and in CI).\n"
            "try:\n"
            "    import book\n"
            "except ImportError:\n"
            f'    %pip install -q "{package} @ git+{url}"')


def sync_install_cells() -> list[Path]:
    """Rewrite the install cell of every chapter notebook whose cell differs; returns those changed."""
    import nbformat

    url = repository_url()
    changed = []
    for chapter in available_chapters():
        source = install_cell_source(url, chapter.extras)
        nb = nbformat.read(chapter.notebook, as_version=4)
        cells = [c for c in nb.cells if INSTALL_TAG in c.get("metadata", {}).get("tags", [])]
        if not cells:
            raise ValueError(f"{chapter.notebook.name} has no cell tagged {INSTALL_TAG!r}")
        if cells[0].source != source:
            cells[0].source = source
            nbformat.write(nb, chapter.notebook)
            changed.append(chapter.notebook)
    return changed
