"""What a chapter's Colab install cell runs, from the clone it has just made.

The cell itself is a few lines (book.tools.colab writes it): it clones the repository and runs this
file with `runpy.run_path`, so the logic lives here, in the code readers fetch, and it imports
nothing of `book` (the package is not importable yet; importing it would also load torch before
the right commit is checked out). `setup` checks out the commit the page was run from (the branch's
head, with a warning, when that commit is not on the repository), pip-installs only what the
runtime lacks, holding its torch and numpy at their versions (Colab never asks to restart), and puts
the clone on sys.path and PYTHONPATH (for `!python -m book ...` in cells).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

CLONE = Path(__file__).resolve().parents[2]   # the clone this file was run from
HELD = ("torch", "numpy")   # never changed by the cell's pip: the runtime's builds stay


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(CLONE), *args], capture_output=True, text=True)


def check_out(commit: str | None) -> bool:
    """Check out `commit` in the clone; False (the branch's head stays, with a warning) when it
    cannot be had."""
    if commit and _git("checkout", "--quiet", commit).returncode == 0:
        return True
    branch = _git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip() or "the default branch"
    warnings.warn(f"the code at commit {commit} (this page's run) could not be fetched: using the head "
                  f"of {branch}, whose code and outputs may differ from the page's", stacklevel=2)
    return False


def requirements(extras: tuple[str, ...] | list[str] = (), pyproject: Path | None = None) -> list[str]:
    """The package's dependencies plus its optional groups `extras`, as the clone's pyproject says."""
    project = tomllib.loads((pyproject or CLONE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise ValueError(f"pyproject.toml has no optional dependency group {unknown}")
    return list(project["dependencies"]) + [req for e in extras for req in optional[e]]


def module_name(requirement: str) -> str:
    """The import name of a requirement's distribution (the book's dependencies import as their
    name, with - and . as _)."""
    name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement).group(0)
    return name.lower().replace("-", "_").replace(".", "_")


def missing(reqs: list[str]) -> list[str]:
    """The requirements whose module this runtime cannot import."""
    return [r for r in reqs if importlib.util.find_spec(module_name(r)) is None]


def held_versions() -> list[str]:
    """`dist==version` for each HELD distribution the runtime has."""
    held = []
    for dist in HELD:
        try:
            held.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            pass
    return held


def setup(commit: str | None, extras: tuple[str, ...] | list[str] = ()) -> bool:
    """The install cell's work (see the module docstring). Returns whether the page's commit was
    checked out."""
    at_commit = check_out(commit)
    needed = missing(requirements(extras))
    if needed:
        constraints = Path(tempfile.gettempdir()) / "dettmers-book-held-versions.txt"
        constraints.write_text("\n".join(held_versions()) + "\n", encoding="utf-8")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *needed, "-c", str(constraints)],
                       check=True)
    if str(CLONE) not in sys.path:
        sys.path.insert(0, str(CLONE))
    os.environ["PYTHONPATH"] = str(CLONE) + os.pathsep + os.environ.get("PYTHONPATH", "")
    importlib.invalidate_caches()
    return at_commit
