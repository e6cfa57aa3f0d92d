"""The Colab install cell of every chapter, generated from the repository URL in _config.yml.

The URL lives in one place (_config.yml's `repository.url`, which the launch buttons use too);
`python -m book sync-install` rewrites each notebook's cell tagged `install` from it, and the tests
fail when a notebook's cell has drifted.

The cell clones the repository (shallow) and imports the package from the clone rather than
pip-installing the package: Colab's own torch and numpy are never replaced, so Colab never asks to
restart the runtime, and the committed evidence in `results/` comes along. pip installs only the
libraries the runtime lacks (the package's dependencies and the chapter's extras, read from
pyproject.toml), with the runtime's torch and numpy held at their versions.
"""
from __future__ import annotations

import re
from pathlib import Path

from book.core.registry import REPO_ROOT, available_chapters

INSTALL_TAG = "install"
CLONE_DIR = "dettmers-book"   # where the cell clones to, relative to the notebook's working directory
HELD = ("torch", "numpy")     # never changed by the cell's pip: Colab's builds stay


def _config_value(key: str, config: Path) -> str | None:
    text = config.read_text(encoding="utf-8")
    match = re.search(rf"^repository:\s*\n(?:[ \t]+.*\n)*?[ \t]+{key}:\s*(\S+)", text, re.M)
    return match.group(1).strip("'\"") if match else None


def repository_url(config: Path = REPO_ROOT / "_config.yml") -> str:
    """`repository.url` of the book's _config.yml (read without a YAML dependency)."""
    url = _config_value("url", config)
    if not url:
        raise ValueError(f"{config} has no repository.url")
    return url


def repository_branch(config: Path = REPO_ROOT / "_config.yml") -> str:
    """`repository.branch` of _config.yml (main when unset)."""
    return _config_value("branch", config) or "main"


def requirements(extras: tuple[str, ...] = (), pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The package's dependencies plus those of the optional groups `extras`, as pyproject says."""
    import tomllib

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise ValueError(f"pyproject.toml has no optional dependency group {unknown}")
    return list(project["dependencies"]) + [req for e in extras for req in optional[e]]


def _module(requirement: str) -> str:
    """The import name of a requirement's distribution (dists here import as their name, - → _)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)
    return name.lower().replace("-", "_").replace(".", "_")


def _q(text: str) -> str:
    """A Python string literal in double quotes (the cell's style)."""
    import json

    return json.dumps(text)


def install_cell_source(url: str | None = None, extras: tuple[str, ...] = (), branch: str | None = None) -> str:
    """The cell for a chapter needing the package's optional groups `extras` (e.g. ('int8',))."""
    url = url or repository_url()
    branch = branch or repository_branch()
    needs = [(_module(r), r) for r in requirements(extras)]
    need_lines = "\n".join(f"        {_q(m)}: {_q(r)}," for m, r in needs)
    return f'''\
# On Colab, or any Jupyter without the book's package (a no-op locally and in CI, where it imports):
# clone the book's repository (shallow) and import the package from the clone. Nothing is
# pip-installed over Colab's own torch and numpy, so Colab never asks to restart the runtime, and the
# clone brings the committed full-mode evidence (results/) the chapter reads. pip adds only what the
# runtime lacks, holding its torch and numpy at their versions.
import importlib, importlib.util, os, subprocess, sys, tempfile
if importlib.util.find_spec("book") is None:
    clone = os.path.abspath({_q(CLONE_DIR)})
    if not os.path.isdir(os.path.join(clone, "book")):
        subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", {_q(branch)},
                        {_q(url)}, clone], check=True)
    sys.path.insert(0, clone)
    needed = {{
{need_lines}
    }}
    missing = [req for module, req in needed.items() if importlib.util.find_spec(module) is None]
    if missing:
        from importlib.metadata import PackageNotFoundError, version
        held = []
        for dist in ({", ".join(_q(d) for d in HELD)}):
            try:
                held.append(f"{{dist}}=={{version(dist)}}")
            except PackageNotFoundError:
                pass
        constraints = os.path.join(tempfile.gettempdir(), "dettmers-book-held-versions.txt")
        with open(constraints, "w") as f:
            f.write("\\n".join(held) + "\\n")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing, "-c", constraints], check=True)
    importlib.invalidate_caches()'''


def sync_install_cells() -> list[Path]:
    """Rewrite the install cell of every chapter notebook — the committed quick run and the committed
    full run in results/ (the page readers launch on Colab) — whose cell differs; returns those
    changed. Only the cell's source changes: its (empty) output stays, so nothing is re-executed."""
    import nbformat

    from book.core.evidence import page_notebook

    url, branch = repository_url(), repository_branch()
    changed = []
    for chapter in available_chapters():
        source = install_cell_source(url, chapter.extras, branch)
        for path in (chapter.notebook, page_notebook(chapter.name)):
            if path is None:
                continue
            nb = nbformat.read(path, as_version=4)
            cells = [c for c in nb.cells if INSTALL_TAG in c.get("metadata", {}).get("tags", [])]
            if not cells:
                raise ValueError(f"{path.name} has no cell tagged {INSTALL_TAG!r}")
            tags = cells[0].setdefault("metadata", {}).setdefault("tags", [])
            if cells[0].source != source or "hide-input" not in tags:
                cells[0].source = source
                if "hide-input" not in tags:
                    tags.append("hide-input")  # the rendered page folds it away: it matters on Colab only
                nbformat.write(nb, path)
                changed.append(path)
    return changed
