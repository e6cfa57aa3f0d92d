"""Execute chapters with papermill into `_build/`, summarise their ledgers, build the book.

The source notebooks are never written to, except by `--inplace`, which exists to refresh the
committed outputs (default parameters, i.e. quick mode) and must be asked for.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from .chapters import CHAPTERS, REPO_ROOT, Chapter, available_chapters, get_chapter

BUILD_DIR = REPO_ROOT / "_build"
EXECUTED_DIR = BUILD_DIR / "executed"
LEDGER_DIR = BUILD_DIR / "ledgers"
SITE_DIR = BUILD_DIR / "site"      # the staged book source: root pages + the executed notebooks


class UsageError(ValueError):
    """Bad command-line input, reported before anything runs."""


def parse_value(text: str) -> Any:
    """A command-line parameter value: a Python literal when it is one (5, 0.1, True, 'x'), else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def notebook_parameters(path: Path) -> dict[str, Any]:
    """Name -> default value of the cell tagged `parameters`."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise UsageError(f"{path.name} has no cell tagged 'parameters'")
    params: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                params[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                params[node.targets[0].id] = None  # computed default: any type accepted
    return params


def _same_kind(default: Any, value: Any) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def resolve(names: Sequence[str], raw_params: Sequence[tuple[str, str]], quick: bool | None
            ) -> tuple[list[Chapter], dict[str, dict[str, Any]]]:
    """Check chapter names and parameters before anything runs; returns the chapters and, for each,
    the parameters papermill should inject (only the ones that chapter declares)."""
    chapters = [get_chapter(n) for n in names] if names else available_chapters()
    if not chapters:
        raise UsageError("no chapter notebooks found in notebooks/")
    for c in chapters:
        if not c.notebook.exists():
            raise UsageError(f"chapter {c.name!r} has no notebook yet ({c.notebook.relative_to(REPO_ROOT)})")
    declared = {c.name: notebook_parameters(c.notebook) for c in chapters}
    given: dict[str, Any] = {}
    for name, text in raw_params:
        if name == "QUICK":
            raise UsageError("set QUICK with --quick or --full, not -p")
        given[name] = parse_value(text)
    if quick is not None:
        given["QUICK"] = quick
    per_chapter: dict[str, dict[str, Any]] = {c.name: {} for c in chapters}
    for name, value in given.items():
        owners = [c for c in chapters if name in declared[c.name]]
        if not owners:
            known = sorted({p for d in declared.values() for p in d})
            raise UsageError(f"unknown parameter {name!r} for {', '.join(c.name for c in chapters)}; "
                             f"known: {', '.join(known)}")
        for c in owners:
            default = declared[c.name][name]
            if not _same_kind(default, value):
                raise UsageError(f"parameter {name} of chapter {c.name!r} takes "
                                 f"{type(default).__name__} (default {default!r}), not {value!r}")
            per_chapter[c.name][name] = value
    return chapters, per_chapter


@dataclass
class Outcome:
    chapter: str
    ok: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""


def _ledger_counts(name: str) -> dict[str, int]:
    import json

    path = LEDGER_DIR / f"{name}.json"
    return json.loads(path.read_text())["counts"] if path.exists() else {}


def command_line(chapter: Chapter, parameters: dict[str, Any], inplace: bool = False) -> str:
    """The command that reproduces one chapter's run (stamped on its ledger as provenance)."""
    mode = {True: " --quick", False: " --full"}.get(parameters.get("QUICK"), "")
    extra = "".join(f" -p {k} {v!r}" for k, v in parameters.items() if k != "QUICK")
    return f"python -m book run {chapter.name}{mode}{extra}" + (" --inplace" if inplace else "")


def execute_chapter(chapter: Chapter, parameters: dict[str, Any], *, inplace: bool = False,
                    progress: bool = True) -> Outcome:
    """Run one chapter; never raises for a failing notebook (the Outcome says so)."""
    import papermill

    LEDGER_DIR.mkdir(parents=True, exist_ok=True)
    stale = LEDGER_DIR / f"{chapter.name}.json"
    if stale.exists():
        stale.unlink()  # a failed run must not leave the last run's ledger looking current
    os.environ["BOOK_LEDGER_DIR"] = str(LEDGER_DIR)   # the kernel inherits it
    os.environ["BOOK_RUN_COMMAND"] = command_line(chapter, parameters, inplace)
    start = time.perf_counter()
    try:
        if inplace:
            _execute_inplace(chapter)
        else:
            EXECUTED_DIR.mkdir(parents=True, exist_ok=True)
            papermill.execute_notebook(
                str(chapter.notebook), str(EXECUTED_DIR / chapter.notebook.name),
                parameters=parameters, kernel_name="python3", progress_bar=progress,
                cwd=str(chapter.notebook.parent))
        ok, error = True, ""
    except Exception as err:  # a chapter's failure is reported, and the next chapter still runs
        ok, error = False, _short_error(err)
    return Outcome(chapter.name, ok, time.perf_counter() - start, _ledger_counts(chapter.name), error)


def _short_error(err: Exception) -> str:
    text = str(err).strip().splitlines()
    tail = [line for line in text if line.strip()][-3:]
    return f"{type(err).__name__}: " + " | ".join(tail)


def _execute_inplace(chapter: Chapter) -> None:
    """Execute the committed notebook with its defaults and write the outputs back into it."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(chapter.notebook, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=3600,
                            resources={"metadata": {"path": str(chapter.notebook.parent)}})
    try:
        client.execute()
    finally:
        # Strip volatile metadata so a refresh only changes what really changed.
        for cell in nb.cells:
            cell.get("metadata", {}).pop("execution", None)
        nbformat.write(nb, chapter.notebook)


def run(names: Sequence[str] = (), raw_params: Sequence[tuple[str, str]] = (), *, quick: bool | None = None,
        inplace: bool = False, progress: bool = True, out=None) -> list[Outcome]:
    """Execute chapters in book order; print a summary; return the outcomes."""
    from tqdm.auto import tqdm

    if inplace and (raw_params or quick is False):
        raise UsageError("--inplace refreshes the committed outputs, which are the default (quick) run: "
                         "it takes no -p and no --full")
    chapters, per_chapter = resolve(names, raw_params, quick)
    outcomes = []
    bar = tqdm(chapters, desc="chapters", unit="chapter", disable=not progress, file=sys.stderr)
    for chapter in bar:
        bar.set_postfix_str(chapter.name)
        outcomes.append(execute_chapter(chapter, per_chapter[chapter.name], inplace=inplace,
                                        progress=progress))
    print(summary(outcomes), file=out or sys.stdout)
    return outcomes


def summary(outcomes: Iterable[Outcome]) -> str:
    from .ledger import VERDICTS

    head = f"{'chapter':<12} {'status':<7} {'seconds':>8}  verdicts"
    lines = [head, "-" * 72]
    for o in outcomes:
        counts = ", ".join(f"{o.counts[v]} {v}" for v in VERDICTS if o.counts.get(v)) or "-"
        lines.append(f"{o.chapter:<12} {'ok' if o.ok else 'FAILED':<7} {o.seconds:>8.1f}  {counts}")
        if o.error:
            lines.append(f"             {o.error}")
    failed = [o.chapter for o in outcomes if not o.ok]
    lines.append(f"{len(failed)} chapter(s) failed: {', '.join(failed)}" if failed else "all chapters ran")
    return "\n".join(lines)


# -- the book ------------------------------------------------------------------------------------
ROOT_PAGES = ("_config.yml", "_toc.yml", "intro.md", "scoreboard.md", "status.md", "references.bib", "_static")


def page_source(chapter: Chapter, executed: Iterable[str] = ()) -> Path:
    """The notebook the book shows for a chapter: this build's executed copy when the chapter ran in
    this build, else its committed full-mode evidence (results/NAME/NAME.ipynb), else the committed
    quick run in notebooks/."""
    from .evidence import page_notebook

    copy = EXECUTED_DIR / chapter.notebook.name
    if chapter.name in executed and copy.exists():
        return copy
    return page_notebook(chapter.name) or chapter.notebook


def stage_site(executed: Iterable[str] = ()) -> tuple[Path, dict[str, Path]]:
    """Lay out the book's source in _build/site: the root pages plus one notebook per chapter (see
    `page_source`). Returns the site and, per chapter, where its page came from."""
    executed = set(executed)
    if SITE_DIR.exists():
        shutil.rmtree(SITE_DIR)
    (SITE_DIR / "notebooks").mkdir(parents=True)
    for name in ROOT_PAGES:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, SITE_DIR / name)
        elif src.exists():
            shutil.copy2(src, SITE_DIR / name)
    sources = {}
    for chapter in available_chapters():
        sources[chapter.name] = page_source(chapter, executed)
        shutil.copy2(sources[chapter.name], SITE_DIR / "notebooks" / chapter.notebook.name)
    return SITE_DIR, sources


def build_html(executed: Iterable[str] = (), out=None) -> int:
    """Stage the site, write the scoreboard and the status page from the very notebooks staged (one
    build, one truth), and render it with Jupyter Book into _build/html. Warnings are errors (-W),
    so a broken page fails the build."""
    from .scoreboard import write_scoreboard, write_status

    out = out or sys.stdout
    site, sources = stage_site(executed)
    pages = {name: site / "notebooks" / f"{name}.ipynb" for name in sources}
    for target in (REPO_ROOT / "scoreboard.md", site / "scoreboard.md"):
        write_scoreboard(pages, target)
    for target in (REPO_ROOT / "status.md", site / "status.md"):
        write_status(pages, sources, target)
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(site), "--path-output", str(BUILD_DIR / "book"),
           "-W", "--keep-going"]
    print("$ " + " ".join(cmd), file=out, flush=True)
    code = subprocess.call(cmd)
    html = BUILD_DIR / "html"
    if code == 0:
        if html.exists():
            shutil.rmtree(html)
        shutil.copytree(BUILD_DIR / "book" / "_build" / "html", html)
        print(f"book written to {html.relative_to(REPO_ROOT)}/index.html", file=out)
    return code


def store_evidence(outcomes: Iterable[Outcome], out=None) -> list[Path]:
    """After full runs: store each successful chapter's executed notebook and ledger in results/."""
    from .evidence import publish_run

    stored = []
    for o in outcomes:
        if not o.ok:
            print(f"{o.chapter}: failed, its evidence in results/ is left as it was", file=out or sys.stdout)
            continue
        folder = publish_run(o.chapter, EXECUTED_DIR / f"{o.chapter}.ipynb", LEDGER_DIR / f"{o.chapter}.json")
        print(f"{o.chapter}: evidence stored in {folder.relative_to(REPO_ROOT)}", file=out or sys.stdout)
        stored.append(folder)
    return stored


__all__ = ["run", "resolve", "summary", "build_html", "stage_site", "page_source", "store_evidence",
           "command_line", "UsageError", "CHAPTERS"]
