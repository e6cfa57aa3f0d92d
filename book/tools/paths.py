"""Where the runner writes (`_build/`), how it names a path to the reader, and the error it raises
when the machine stops a command before it starts."""

from __future__ import annotations

import errno
from pathlib import Path

from book.core.registry import REPO_ROOT

BUILD_DIR = REPO_ROOT / "_build"
EXECUTED_DIR = BUILD_DIR / "executed"
LEDGER_DIR = BUILD_DIR / "ledgers"
SITE_DIR = BUILD_DIR / "site"  # the staged book source: root pages + the executed notebooks
# the notebook and ledger of a failed or interrupted run, for debugging
FAILED_DIR = BUILD_DIR / "failed"
# NAME.lock: held by the one command running chapter NAME; book.lock: building the book
LOCK_DIR = BUILD_DIR / ".locks"


class BookError(RuntimeError):
    """The machine stops a command before it starts: _build not writable, another command using
    it."""


def shown(path: Path | str) -> str:
    """A path as the reader should see it: relative to the repository when inside it."""
    try:
        return str(Path(path).relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def unwritable(err: OSError, path: Path) -> BookError:
    """The error for a write into _build that failed. A copy's OSError names its source first
    (shutil sets `filename` to the source, `filename2` to the target): the target is what is full.
    """
    where = getattr(err, "filename2", None) or err.filename or path
    what = "no space left on the disk" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return BookError(
        f"cannot write {shown(where)}: {what} (the runner needs a writable {shown(BUILD_DIR)}/)"
    )


__all__ = [
    "BUILD_DIR",
    "EXECUTED_DIR",
    "LEDGER_DIR",
    "SITE_DIR",
    "FAILED_DIR",
    "LOCK_DIR",
    "BookError",
    "shown",
    "unwritable",
]
