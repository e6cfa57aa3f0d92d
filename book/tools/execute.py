"""One chapter's run: papermill into a temporary file, renamed to `_build/executed/NAME.ipynb` only
when complete and successful (with `--inplace`: written back over the notebook, in one rename); a
failed, interrupted or killed run goes to `_build/failed/`. The run's ledger is the one its notebook
carries: a ledger file in `_build/ledgers/` that differs from it (written meanwhile by another
process, say a notebook run by hand) fails the run instead of passing for its result."""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from book.core.registry import Chapter
from book.tools import paths
from book.tools.paths import shown
from book.tools.signals import interruptible, interrupts_deferred

# The kernel's own log (a warning about TCP on every start, a traceback when it is stopped mid-cell)
# is noise to a reader of the run; the chapter's errors are in its notebook and the summary.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


@dataclass
class Outcome:
    chapter: str
    ok: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""
    interrupted: bool = False


def command_line(chapter: Chapter, parameters: dict[str, Any], inplace: bool = False) -> str:
    """The command that reproduces one chapter's run (stamped on its ledger as provenance)."""
    mode = {True: " --quick", False: " --full"}.get(parameters.get("QUICK"), "")
    extra = "".join(f" -p {k} {v!r}" for k, v in parameters.items() if k != "QUICK")
    return f"python -m book run {chapter.name}{mode}{extra}" + (" --inplace" if inplace else "")


def absolute_paths_in_environment() -> None:
    """Kernels run in notebooks/, not in the caller's directory: a relative data cache or results
    folder would name another place there. Make them absolute before any kernel inherits them."""
    for var in ("DETTMERS_BOOK_DATA", "DETTMERS_BOOK_RESULTS"):
        value = os.environ.get(var)
        if value and not os.path.isabs(value):
            os.environ[var] = os.path.abspath(value)


def execute_chapter(
    chapter: Chapter,
    parameters: dict[str, Any],
    *,
    inplace: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> Outcome:
    """Run one chapter. A failing notebook never raises (the Outcome says so); Ctrl-C does, after
    the cleanup. Only a complete, successful run ends up under `_build/executed/NAME.ipynb` (or,
    with `inplace`, in the committed notebook); a failed or interrupted one under
    `_build/failed/`."""
    import papermill

    name = chapter.name
    executed = paths.EXECUTED_DIR / chapter.notebook.name
    ledger = paths.LEDGER_DIR / f"{name}.json"
    for stale in (
        ledger,
        executed,
        paths.FAILED_DIR / chapter.notebook.name,
        paths.FAILED_DIR / f"{name}.json",
    ):
        stale.unlink(missing_ok=True)  # nothing of an earlier run may look like this run's
    partial = paths.EXECUTED_DIR / f".{name}.{os.getpid()}.partial.ipynb"
    os.environ["BOOK_LEDGER_DIR"] = str(paths.LEDGER_DIR)  # the kernel inherits it
    os.environ["BOOK_RUN_COMMAND"] = command or command_line(chapter, parameters, inplace)
    start = time.perf_counter()
    counts: dict[str, int] = {}
    try:
        if not chapter.notebook.exists():
            raise FileNotFoundError(f"{shown(chapter.notebook)} was removed before it could run")
        if inplace:
            interruptible(lambda: _execute_inplace(chapter, partial))
            counts = own_ledger_counts(chapter.notebook, ledger)
        else:
            interruptible(
                lambda: papermill.execute_notebook(
                    str(chapter.notebook),
                    str(partial),
                    parameters=parameters,
                    kernel_name="python3",
                    progress_bar=progress,
                    cwd=str(chapter.notebook.parent),
                    extra_arguments=KERNEL_ARGUMENTS,
                )
            )
            counts = own_ledger_counts(partial, ledger)
            os.replace(partial, executed)
        ok, error = True, ""
    except KeyboardInterrupt:
        quarantine(chapter, partial)
        raise
    except Exception as err:  # a chapter's failure is reported, and the next chapter still runs
        ok, error = False, short_error(err)
    if not ok:
        counts = _side_counts(ledger)
        quarantine(chapter, partial)
    return Outcome(name, ok, time.perf_counter() - start, counts, error)


class ForeignLedger(RuntimeError):
    """The ledger file of a run is not the ledger its notebook carries."""


def own_ledger_counts(notebook: Path, ledger_file: Path) -> dict[str, int]:
    """The verdict counts of the ledger `notebook` carries, after checking that `ledger_file` (which
    the kernel wrote, and any other process may write too) is that same ledger; a missing file is
    written from the notebook. A notebook that finishes no ledger: {}."""
    from book.core.ledger import LEDGER_METADATA_KEY

    own = notebook_ledger(notebook)
    if own is None:
        return {}
    try:
        side = json.loads(ledger_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        side = None
    except (OSError, ValueError):
        side = "unreadable"
    if side is None:
        from book.core.evidence import write_atomic

        write_atomic(ledger_file, json.dumps(own, indent=1, ensure_ascii=False) + "\n")
    elif side != own:
        raise ForeignLedger(
            f"{shown(ledger_file)} is not the ledger this run's notebook carries (its output "
            f"metadata {LEDGER_METADATA_KEY!r}): another process wrote it while the chapter ran "
            f"(a notebook run by hand?); nothing of this run is kept: run it again"
        )
    return dict(own.get("counts", {}))


def notebook_ledger(notebook: Path) -> dict[str, Any] | None:
    """The ledger a notebook carries in its outputs (the last one shown), naming the file if the
    notebook cannot be read."""
    from book.core import evidence

    return evidence.notebook_ledger(evidence.read_notebook(notebook))


def _side_counts(path: Path) -> dict[str, int]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))["counts"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def quarantine(chapter: Chapter, partial: Path) -> None:
    """Move a failed or interrupted run's notebook and ledger to _build/failed/ (kept for debugging,
    never read by a later command). Best effort: an error here must not hide the run's own error."""
    with interrupts_deferred():
        try:
            paths.FAILED_DIR.mkdir(parents=True, exist_ok=True)
            if partial.exists():
                os.replace(partial, paths.FAILED_DIR / chapter.notebook.name)
            ledger = paths.LEDGER_DIR / f"{chapter.name}.json"
            if ledger.exists():
                os.replace(ledger, paths.FAILED_DIR / ledger.name)
        except OSError:
            for path in (partial, paths.LEDGER_DIR / f"{chapter.name}.json"):
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass


def short_error(err: BaseException) -> str:
    """One line for the summary: the cause, and the file where the machine's error names one."""
    from nbclient.exceptions import DeadKernelError

    if isinstance(err, DeadKernelError):
        return (
            "the kernel died mid-chapter (killed, or out of memory?); "
            "its notebook so far is in _build/failed/"
        )
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        where = getattr(err, "filename2", None) or err.filename
        return f"no space left on the disk writing {shown(where) if where else 'the notebook'}"
    if isinstance(err, ForeignLedger):
        return str(err)
    text = str(err).strip().splitlines()
    tail = [line for line in text if line.strip()][-3:]
    return f"{type(err).__name__}: " + " | ".join(tail)


def _execute_inplace(chapter: Chapter, partial: Path) -> None:
    """Execute the committed notebook with its defaults and write the outputs back into it: only a
    complete, successful run, in one rename, and only when nobody changed the notebook meanwhile. A
    failed or interrupted run is written to `partial` (for _build/failed/) and the notebook is
    untouched.
    """
    import nbformat
    from nbclient import NotebookClient

    before = chapter.notebook.read_bytes()
    nb = nbformat.reads(before.decode("utf-8"), as_version=4)
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=3600,
        extra_arguments=KERNEL_ARGUMENTS,
        resources={"metadata": {"path": str(chapter.notebook.parent)}},
    )
    try:
        client.execute()
    except BaseException:
        try:
            nbformat.write(nb, partial)
        except OSError:
            pass
        raise
    # Strip volatile metadata so a refresh only changes what really changed.
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    tmp = chapter.notebook.with_name(f".{chapter.notebook.name}.{os.getpid()}.tmp")
    try:
        nbformat.write(nb, tmp)
        shutil.copymode(chapter.notebook, tmp)
        with interrupts_deferred():
            if not chapter.notebook.exists() or chapter.notebook.read_bytes() != before:
                os.replace(tmp, partial)
                raise RuntimeError(
                    f"{shown(chapter.notebook)} changed while it ran: its outputs were not "
                    f"written back (this run is in {shown(paths.FAILED_DIR)}/)"
                )
            os.replace(tmp, chapter.notebook)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = [
    "Outcome",
    "execute_chapter",
    "command_line",
    "own_ledger_counts",
    "notebook_ledger",
    "quarantine",
    "short_error",
    "absolute_paths_in_environment",
    "KERNEL_ARGUMENTS",
]
