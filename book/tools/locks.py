"""`_build`: one command per chapter at a time (advisory locks), and proven writable before a
run."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterable, Iterator

from book.core.registry import Chapter
from book.tools import paths
from book.tools.paths import BookError, unwritable

_held: dict[str, int] = {}  # lock name -> open file descriptor, in this process


@contextmanager
def build_lock(names: Iterable[str] = ("book",)) -> Iterator[None]:
    """Hold `_build/.locks/NAME.lock` for each name (a chapter, or "book" for the staged site and
    the HTML) while a command uses them: a second `python -m book` running the same chapter, or
    building at the same time, is refused at once (exit 2) instead of clobbering the first's files;
    runs of different chapters go on side by side. Reentrant within a process; a lock dies with its
    process, so a killed run never leaves a stale one."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; run one command at a time by hand
        fcntl = None
    taken: list[str] = []
    try:
        for name in dict.fromkeys(names):
            if name in _held:
                continue
            path = paths.LOCK_DIR / f"{name}.lock"
            try:
                paths.LOCK_DIR.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise unwritable(err, path) from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = (
                        os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another process"
                    )
                    os.close(fd)
                    what = "the book in _build" if name == "book" else f"chapter {name!r}"
                    raise BookError(
                        f"{what} is in use by another `python -m book` ({holder}); "
                        f"wait for it to finish"
                    ) from None
            try:
                os.ftruncate(fd, 0)
                command = " ".join(sys.argv[1:]).encode("utf-8", "replace")
                os.pwrite(fd, f"pid {os.getpid()}: python -m book ".encode() + command, 0)
            except OSError as err:
                os.close(fd)
                raise unwritable(err, path) from None
            _held[name] = fd
            taken.append(name)
        yield
    finally:
        for name in taken:
            os.close(_held.pop(name))  # releases the lock


def prepare_build(chapters: Iterable[Chapter]) -> None:
    """Make the folders a run writes to, prove they are writable, and sweep the temporary files a
    killed run of these chapters may have left (safe: we hold their locks)."""
    for folder in (paths.EXECUTED_DIR, paths.LEDGER_DIR, paths.FAILED_DIR):
        probe = folder / f".probe.{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise unwritable(err, folder) from None
    for chapter in chapters:
        for leftover in paths.EXECUTED_DIR.glob(f".{chapter.name}.*.partial.ipynb"):
            leftover.unlink(missing_ok=True)


__all__ = ["build_lock", "prepare_build"]
