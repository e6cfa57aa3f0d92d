"""The Colab install cell of every chapter, generated from the repository URL in _config.yml.

The URL lives in one place (_config.yml's `repository.url`, which the launch buttons use too);
`python -m book sync-install` rewrites each notebook's cell tagged `install` from it, and the tests
fail when a notebook's cell has drifted. The cell opens with a note on the runtime the chapter wants
(a GPU where its code has a CUDA path) and how long its committed runs took, and the notebooks Colab
opens carry Colab's GPU accelerator metadata where the chapter uses one.

The cell is a few lines: it clones the repository and runs `book/tools/colab_bootstrap.py` from the
clone, which checks out the commit the notebook's outputs were run from (its ledger's provenance;
the branch's head, with a warning, when that commit is gone) and pip-installs only what the runtime
lacks, holding Colab's torch and numpy. `python -m book.tools.colab check NAME` runs a chapter that
way (colab.yml, in Colab's runtime image).
"""

from __future__ import annotations

import re
from pathlib import Path

from book.core.registry import REPO_ROOT, Chapter, available_chapters
from book.tools.colab_bootstrap import requirements

INSTALL_TAG = "install"
GPU_TYPE = "T4"  # the GPU Colab's free tier offers; the notebook asks for it
CLONE_DIR = (
    "dettmers-book"  # where the cell clones to, relative to the notebook's working directory
)
BOOTSTRAP = "book/tools/colab_bootstrap.py"  # what the cell runs from its clone


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


def _q(text: str) -> str:
    """A Python string literal in double quotes (the cell's style)."""
    import json

    return json.dumps(text)


def uses_gpu(chapter: Chapter) -> bool:
    """A chapter uses a GPU when its code has a CUDA path (it measures on one when there is one) or
    a committed ledger of it has a needs-gpu row."""
    from book.core.evidence import page_notebook
    from book.core.ledger import ledger_from_notebook

    package = REPO_ROOT / "book" / "chapters" / (chapter.package or chapter.name)
    files = list(package.rglob("*.py")) if package.is_dir() else [package.with_suffix(".py")]
    if any("cuda" in f.read_text(encoding="utf-8") for f in files if f.exists()):
        return True
    for path in (chapter.notebook, page_notebook(chapter.name)):
        led = ledger_from_notebook(path) if path and path.exists() else None
        if led and any(row.get("verdict") == "needs-gpu" for row in led.get("claims", [])):
            return True
    return False


def _seconds(value) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    return f"{value:.0f} s" if value < 90 else f"{value / 60:.0f} min"


def runtime_note(chapter: Chapter) -> str:
    """One line: which Colab runtime the chapter wants and how long its runs took (from the
    committed ledgers' wall times, on the machine named in their provenance)."""
    from book.core.evidence import page_notebook
    from book.core.ledger import ledger_from_notebook

    times = {}
    for mode, path in (("quick", chapter.notebook), ("full", page_notebook(chapter.name))):
        led = ledger_from_notebook(path) if path and path.exists() else None
        if led:
            times[mode] = (
                led.get("wall_s"),
                str((led.get("provenance") or {}).get("device_name") or led.get("device")),
            )
    runtime = (
        f"Colab runtime: GPU (this notebook asks for a {GPU_TYPE}: Runtime > Change runtime type); "
        "a CPU runtime also works (what needs a GPU then says needs-gpu)."
        if uses_gpu(chapter)
        else "Colab runtime: CPU is enough (this chapter measures nothing on a GPU)."
    )
    where = next((d for _, d in times.values()), "the book's CPU")
    runs = ", ".join(f"{mode} run {_seconds(wall)}" for mode, (wall, _) in times.items())
    runs = runs or "not measured yet"
    return f"{runtime} Run time: {runs} on {where}, plus the first cell's clone and installs."


def full_commit(commit: str | None) -> str | None:
    """The full hash of a (short) commit of this repository, or None when this checkout lacks it
    (git fetches a commit by its full hash only)."""
    import subprocess

    if not commit:
        return None
    try:
        out = subprocess.run(
            [
                "git",
                "-C",
                str(REPO_ROOT),
                "rev-parse",
                "--verify",
                "--quiet",
                f"{commit}^{{commit}}",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def page_commit(path: Path | None) -> str | None:
    """The commit the notebook's outputs were run from (its ledger's provenance), in full."""
    from book.core.ledger import ledger_from_notebook

    led = ledger_from_notebook(path) if path and Path(path).exists() else None
    prov = (led or {}).get("provenance") or {}
    return full_commit(prov.get("commit_at_start") or prov.get("commit"))


def install_cell_source(
    url: str | None = None,
    extras: tuple[str, ...] = (),
    commit: str | None = None,
    note: str = "",
) -> str:
    """The cell for a chapter needing the package's optional groups `extras` (e.g. ('int8',)),
    taking the code at `commit` (the one the page was run from). Its work is
    book.tools.colab_bootstrap.setup, run from the clone."""
    url = url or repository_url()
    requirements(extras)  # an unknown group fails here, not on Colab
    note_lines = "".join(f"# {line}\n" for line in _wrap(note)) if note else ""
    return f'''\
{note_lines}# Where `book` does not import (Colab): clone the book, check out the commit this page was run
# from and pip-install only what the runtime lacks (its torch and numpy stay). A no-op in CI.
import importlib.util, runpy, subprocess
BOOK_COMMIT = {_q(commit) if commit else "None"}  # the run behind this page's outputs
if importlib.util.find_spec("book") is None:
    subprocess.run(["git", "clone", "-q", "--filter=blob:none",
                    {_q(url)}, {_q(CLONE_DIR)}])
    setup = runpy.run_path({_q(CLONE_DIR + "/" + BOOTSTRAP)})["setup"]
    setup(BOOK_COMMIT, extras=[{", ".join(_q(e) for e in extras)}])'''


def _wrap(text: str, width: int = 98) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)


def chapter_install_source(chapter: Chapter, path: Path) -> str:
    """The install cell `path` (a chapter's notebook, or its committed page in results/) must
    carry."""
    return install_cell_source(
        extras=chapter.extras, commit=page_commit(path), note=runtime_note(chapter)
    )


def colab_metadata(chapter: Chapter) -> dict:
    """Notebook metadata Colab reads: a GPU accelerator for a chapter that uses one."""
    return (
        {"accelerator": "GPU", "colab": {"gpuType": GPU_TYPE, "provenance": []}}
        if uses_gpu(chapter)
        else {}
    )


def sync_install_cells() -> list[Path]:
    """Rewrite the install cell of every chapter notebook — the committed quick run and the
    committed full run in results/ — whose cell differs (code pinned to the commit that notebook's
    outputs were run from, the runtime note at its top), and set the Colab GPU accelerator metadata
    on the notebooks Colab opens (notebooks/NAME.ipynb). Returns the notebooks changed. Only the
    cell's source and the notebook's metadata change: outputs stay, so nothing is re-executed."""
    import nbformat

    from book.core.evidence import page_notebook

    changed = []
    for chapter in available_chapters():
        for path in (chapter.notebook, page_notebook(chapter.name)):
            if path is None:
                continue
            source = chapter_install_source(chapter, path)
            nb = nbformat.read(path, as_version=4)
            cells = [c for c in nb.cells if INSTALL_TAG in c.get("metadata", {}).get("tags", [])]
            if not cells:
                raise ValueError(f"{path.name} has no cell tagged {INSTALL_TAG!r}")
            dirty = False
            tags = cells[0].setdefault("metadata", {}).setdefault("tags", [])
            if cells[0].source != source or "hide-input" not in tags:
                cells[0].source = source
                if "hide-input" not in tags:
                    tags.append(
                        "hide-input"
                    )  # the rendered page folds it away: it matters on Colab only
                dirty = True
            if (
                path == chapter.notebook
            ):  # results/ notebooks keep their metadata (their manifest digests it)
                wanted = colab_metadata(chapter)
                for key in ("accelerator", "colab"):
                    if key in wanted and nb.metadata.get(key) != wanted[key]:
                        nb.metadata[key] = wanted[key]
                        dirty = True
                    elif key not in wanted and key in nb.metadata:
                        del nb.metadata[key]
                        dirty = True
            if dirty:
                nbformat.write(nb, path)
                changed.append(path)
    return changed


def check(name: str, out: Path, timeout_s: int = 7200) -> int:
    """Run chapter `name` as a Colab reader does (colab.yml runs this inside Colab's runtime image):
    its notebook copied to a scratch folder where `book` is not importable, executed top to bottom
    (the install cell fetches the code at BOOK_COMMIT and pip-installs what the runtime lacks; then
    the chapter in QUICK mode, its default). Fails when a cell raises, when the install cell fell
    back from the page's commit to the branch, or when the ledger is not finished. Returns an exit
    code.

    """
    import json
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    from book.core.ledger import ledger_from_notebook
    from book.core.registry import get_chapter

    chapter = get_chapter(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"colab-{name}-"))
    notebook = scratch / chapter.notebook.name
    shutil.copyfile(chapter.notebook, notebook)
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    install = next(c for c in nb["cells"] if INSTALL_TAG in c.get("metadata", {}).get("tags", []))
    source = (
        "".join(install["source"]) if isinstance(install["source"], list) else install["source"]
    )
    pinned = re.search(r'^BOOK_COMMIT = "([0-9a-f]{40})"', source, re.M)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BOOK_LEDGER_DIR")}
    executed = out / chapter.notebook.name
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "nbconvert",
        "--to",
        "notebook",
        "--execute",
        f"--ExecutePreprocessor.timeout={timeout_s}",
        "--ExecutePreprocessor.kernel_name=python3",
        "--output",
        str(executed.resolve()),
        str(notebook),
    ]
    print("$ " + " ".join(cmd), flush=True)
    code = subprocess.call(cmd, cwd=scratch, env=env)
    problems = []
    if code != 0:
        problems.append(f"the notebook failed (exit {code}); its executed copy is {executed}")
    clone = scratch / CLONE_DIR
    if pinned and clone.is_dir():
        head = subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        if head != pinned.group(1):
            problems.append(
                f"the install cell ran {head[:12] or 'no commit'}, not the page's commit "
                f"{pinned.group(1)[:12]} (not pushed?)"
            )
    elif not pinned:
        problems.append("the install cell pins no commit: run python -m book sync-install")
    if code == 0 and executed.exists() and ledger_from_notebook(executed) is None:
        problems.append("the notebook ran but displays no finished ledger")
    for line in problems:
        print(f"error: {name}: {line}", file=sys.stderr)
    if not problems:
        print(f"{name}: the install cell and the QUICK run passed in this runtime")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m book.tools.colab")
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("check", help="run a chapter's install cell and QUICK run as on Colab")
    c.add_argument("chapter")
    c.add_argument("--out", default=str(REPO_ROOT / "_build" / "colab"))
    args = parser.parse_args(argv)
    return check(args.chapter, Path(args.out))


if __name__ == "__main__":
    import sys

    sys.exit(main())
