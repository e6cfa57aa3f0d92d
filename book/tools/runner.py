"""Execute chapters with papermill into `_build/`, summarise their ledgers, build the book.

The source notebooks are never written to, except by `--inplace`, which exists to refresh the
committed outputs (default parameters, i.e. quick mode) and must be asked for.

Failure semantics: a chapter runs into a temporary file, and only a complete, successful run is
renamed to `_build/executed/NAME.ipynb` (with `--inplace`: written back over the notebook, in one
rename). A failed, interrupted or killed run leaves its notebook and ledger in `_build/failed/` for
debugging and nothing under the names a later command reads. One command at a time uses `_build`
(a lock file); parameters, optional dependencies and a writable `_build` are checked before any
kernel starts.
"""
from __future__ import annotations

import ast
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from book.core.registry import CHAPTERS, REPO_ROOT, Chapter, available_chapters, get_chapter

BUILD_DIR = REPO_ROOT / "_build"
EXECUTED_DIR = BUILD_DIR / "executed"
LEDGER_DIR = BUILD_DIR / "ledgers"
SITE_DIR = BUILD_DIR / "site"      # the staged book source: root pages + the executed notebooks
FAILED_DIR = BUILD_DIR / "failed"  # the notebook and ledger of a failed or interrupted run, for debugging
LOCK_DIR = BUILD_DIR / ".locks"    # NAME.lock: held by the one command running chapter NAME; book.lock: building
# The kernel's own log (a warning about TCP on every start, a traceback when it is stopped mid-cell)
# is noise to a reader of the run; the chapter's errors are in its notebook and the summary.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=CRITICAL"]


class UsageError(ValueError):
    """Bad command-line input, reported before anything runs."""


class BookError(RuntimeError):
    """The machine stops a command before it starts: _build not writable, another command using it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (by `python -m book`) so that the same cleanup runs."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run; carries the outcomes so far (the last one is the stopped chapter)."""

    def __init__(self, outcomes: list["Outcome"], terminated: bool = False):
        super().__init__("terminated" if terminated else "interrupted")
        self.outcomes = outcomes
        self.terminated = terminated


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
            raise UsageError(f"chapter {c.name!r} has no notebook yet ({_shown(c.notebook)})")
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
        _check_value(name, value)
    _check_extras(chapters, explicit=bool(names))
    return chapters, per_chapter


def _check_value(name: str, value: Any) -> None:
    """The parameters every chapter shares, checked as the kernel would, but before one starts."""
    from book.core.device import check_seed, pick_device

    try:
        if name == "SEED":
            check_seed(value)
        elif name == "DEVICE":
            pick_device(value)
    except (TypeError, ValueError) as err:
        raise UsageError(str(err)) from None


def _check_extras(chapters: Sequence[Chapter], explicit: bool) -> None:
    """Refuse chapters whose optional dependencies are missing, with the pip command, before any runs."""
    from book.core.session import extras_message

    problems = [m for m in (extras_message(c) for c in chapters) if m]
    if problems:
        lacking = [c.name for c in chapters if extras_message(c)]
        rest = [c.name for c in chapters if c.name not in lacking]
        hint = "" if explicit or not rest else f"; or run the others: python -m book run {' '.join(rest)}"
        raise UsageError("; ".join(problems) + hint)


@dataclass
class Outcome:
    chapter: str
    ok: bool
    seconds: float
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""
    interrupted: bool = False


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
    """Run one chapter. A failing notebook never raises (the Outcome says so); Ctrl-C does, after the
    cleanup. Only a complete, successful run ends up under `_build/executed/NAME.ipynb` (or, with
    `inplace`, in the committed notebook); a failed or interrupted one under `_build/failed/`."""
    import papermill

    name = chapter.name
    executed = EXECUTED_DIR / chapter.notebook.name
    ledger = LEDGER_DIR / f"{name}.json"
    for stale in (ledger, executed, FAILED_DIR / chapter.notebook.name, FAILED_DIR / f"{name}.json"):
        stale.unlink(missing_ok=True)  # nothing of an earlier run may look like this run's
    partial = EXECUTED_DIR / f".{name}.{os.getpid()}.partial.ipynb"
    os.environ["BOOK_LEDGER_DIR"] = str(LEDGER_DIR)   # the kernel inherits it
    os.environ["BOOK_RUN_COMMAND"] = command_line(chapter, parameters, inplace)
    start = time.perf_counter()
    try:
        if not chapter.notebook.exists():
            raise FileNotFoundError(f"{_shown(chapter.notebook)} was removed before it could run")
        if inplace:
            _interruptible(lambda: _execute_inplace(chapter, partial))
        else:
            _interruptible(lambda: papermill.execute_notebook(
                str(chapter.notebook), str(partial),
                parameters=parameters, kernel_name="python3", progress_bar=progress,
                cwd=str(chapter.notebook.parent), extra_arguments=KERNEL_ARGUMENTS))
            os.replace(partial, executed)
        ok, error = True, ""
    except KeyboardInterrupt:
        _quarantine(chapter, partial)
        raise
    except Exception as err:  # a chapter's failure is reported, and the next chapter still runs
        ok, error = False, _short_error(err)
    counts = _ledger_counts(name)
    if not ok:
        _quarantine(chapter, partial)
    return Outcome(name, ok, time.perf_counter() - start, counts, error)


def _interruptible(execute: Callable[[], Any]) -> Any:
    """Run `execute` (a kernel's whole run) in a worker thread, so that Ctrl-C and SIGTERM reach this,
    the main thread: in nbclient's event loop they would be swallowed and come out as "Kernel died",
    indistinguishable from a crash. On Ctrl-C the kernels started meanwhile (and their children) are
    stopped, the worker is given a moment to save what it has, and the KeyboardInterrupt goes on."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return execute()
    before = set(_child_pids())
    result: dict[str, Any] = {}
    finished = threading.Event()   # not Thread.join: a join cut by Ctrl-C may return early ever after

    def work() -> None:
        try:
            result["value"] = execute()
        except BaseException as err:  # handed to the main thread
            result["error"] = err
        finally:
            finished.set()

    threading.Thread(target=work, name="chapter-kernel", daemon=True).start()
    try:
        while not finished.wait(0.25):
            pass
    except KeyboardInterrupt:
        _stop_processes(set(_child_pids()) - before)
        finished.wait(20)
        raise
    if "error" in result:
        raise result["error"]
    return result.get("value")


def _child_pids() -> list[int]:
    """This process's children (the kernels it started)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        return [p.pid for p in psutil.Process().children()]
    me, found = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.append(int(stat.parent.name))
    return found


def _stop_processes(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM each process's group (a kernel leads its own session, with whatever it started), then
    SIGKILL what is still there after `grace` seconds."""
    pids = list(pids)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.killpg(pid, sig) if os.getpgid(pid) == pid else os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.time() + grace
        while time.time() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)
        pids = [pid for pid in pids if _alive(pid)]
        if not pids:
            return


def _alive(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)   # reap it, if it is our child and has ended
        if done:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _quarantine(chapter: Chapter, partial: Path) -> None:
    """Move a failed or interrupted run's notebook and ledger to _build/failed/ (kept for debugging,
    never read by a later command). Best effort: an error here must not hide the run's own error."""
    with _interrupts_deferred():
        try:
            FAILED_DIR.mkdir(parents=True, exist_ok=True)
            if partial.exists():
                os.replace(partial, FAILED_DIR / chapter.notebook.name)
            ledger = LEDGER_DIR / f"{chapter.name}.json"
            if ledger.exists():
                os.replace(ledger, FAILED_DIR / ledger.name)
        except OSError:
            for path in (partial, LEDGER_DIR / f"{chapter.name}.json"):
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _short_error(err: BaseException) -> str:
    from nbclient.exceptions import DeadKernelError

    if isinstance(err, DeadKernelError):
        return ("the kernel died mid-chapter (killed, or out of memory?); "
                "its notebook so far is in _build/failed/")
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return f"no space left on the disk writing {err.filename or 'the notebook'}"
    text = str(err).strip().splitlines()
    tail = [line for line in text if line.strip()][-3:]
    return f"{type(err).__name__}: " + " | ".join(tail)


def _execute_inplace(chapter: Chapter, partial: Path) -> None:
    """Execute the committed notebook with its defaults and write the outputs back into it: only a
    complete, successful run, in one rename, and only when nobody changed the notebook meanwhile. A
    failed or interrupted run is written to `partial` (for _build/failed/) and the notebook is untouched."""
    import nbformat
    from nbclient import NotebookClient

    before = chapter.notebook.read_bytes()
    nb = nbformat.reads(before.decode("utf-8"), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=3600, extra_arguments=KERNEL_ARGUMENTS,
                            resources={"metadata": {"path": str(chapter.notebook.parent)}})
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
        with _interrupts_deferred():
            if not chapter.notebook.exists() or chapter.notebook.read_bytes() != before:
                os.replace(tmp, partial)
                raise RuntimeError(f"{_shown(chapter.notebook)} changed while it ran: its outputs were not "
                                   f"written back (this run is in {_shown(FAILED_DIR)}/)")
            os.replace(tmp, chapter.notebook)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM) until the block is done, so a rename pair or a cleanup is never cut in
    half; the signal is then delivered as usual. Only in the main thread (elsewhere a no-op)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if received:
            handler = previous[received[0]]
            if callable(handler):
                handler(received[0], None)
            elif received[0] == signal.SIGINT and handler == signal.default_int_handler:
                raise KeyboardInterrupt
            else:
                os.kill(os.getpid(), received[0])


# -- _build: one command per chapter at a time, and writable ------------------------------------------
_held: dict[str, int] = {}   # lock name -> open file descriptor, in this process


@contextmanager
def build_lock(names: Iterable[str] = ("book",)) -> Iterator[None]:
    """Hold `_build/.locks/NAME.lock` for each name (a chapter, or "book" for the staged site and the
    HTML) while a command uses them: a second `python -m book` running the same chapter, or building
    at the same time, is refused at once (exit 2) instead of clobbering the first's files; runs of
    different chapters go on side by side. Reentrant within a process; a lock dies with its process,
    so a killed run never leaves a stale one."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; run one command at a time by hand
        fcntl = None
    taken: list[str] = []
    try:
        for name in dict.fromkeys(names):
            if name in _held:
                continue
            path = LOCK_DIR / f"{name}.lock"
            try:
                LOCK_DIR.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise _unwritable(err, path) from None
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.pread(fd, 400, 0).decode("utf-8", "replace").strip() or "another process"
                    os.close(fd)
                    what = "the book in _build" if name == "book" else f"chapter {name!r}"
                    raise BookError(f"{what} is in use by another `python -m book` ({holder}); "
                                    f"wait for it to finish") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}: python -m book {' '.join(sys.argv[1:])}".encode(), 0)
            _held[name] = fd
            taken.append(name)
        yield
    finally:
        for name in taken:
            os.close(_held.pop(name))   # releases the lock


def _unwritable(err: OSError, path: Path) -> BookError:
    where = err.filename or path
    return BookError(f"cannot write {where}: {err.strerror or err} "
                     f"(the runner needs a writable {_shown(BUILD_DIR)}/)")


def _prepare_build(chapters: Iterable[Chapter]) -> None:
    """Make the folders a run writes to, prove they are writable, and sweep the temporary files a
    killed run of these chapters may have left (safe: we hold their locks)."""
    for folder in (EXECUTED_DIR, LEDGER_DIR, FAILED_DIR):
        probe = folder / f".probe.{os.getpid()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            raise _unwritable(err, folder) from None
    for chapter in chapters:
        for leftover in EXECUTED_DIR.glob(f".{chapter.name}.*.partial.ipynb"):
            leftover.unlink(missing_ok=True)


def _absolute_paths_in_environment() -> None:
    """Kernels run in notebooks/, not in the caller's directory: a relative data cache or results
    folder would name another place there. Make them absolute before any kernel inherits them."""
    for var in ("DETTMERS_BOOK_DATA", "DETTMERS_BOOK_RESULTS"):
        value = os.environ.get(var)
        if value and not os.path.isabs(value):
            os.environ[var] = os.path.abspath(value)


def run(names: Sequence[str] = (), raw_params: Sequence[tuple[str, str]] = (), *, quick: bool | None = None,
        inplace: bool = False, progress: bool = True, out=None) -> list[Outcome]:
    """Execute chapters in book order; print a summary; return the outcomes. Everything is checked
    before the first kernel starts. On Ctrl-C: prints "interrupted" and the summary so far, then
    raises `Interrupted` (the command line exits 130)."""
    from tqdm.auto import tqdm

    if inplace and (raw_params or quick is False):
        raise UsageError("--inplace refreshes the committed outputs, which are the default (quick) run: "
                         "it takes no -p and no --full")
    chapters, per_chapter = resolve(names, raw_params, quick)
    out = out or sys.stdout
    outcomes: list[Outcome] = []
    with build_lock(c.name for c in chapters):
        _prepare_build(chapters)
        _absolute_paths_in_environment()
        current, start = None, time.perf_counter()
        try:
            with tqdm(chapters, desc="chapters", unit="chapter", disable=not progress, file=sys.stderr) as bar:
                for chapter in bar:
                    current, start = chapter, time.perf_counter()
                    bar.set_postfix_str(chapter.name)
                    outcomes.append(execute_chapter(chapter, per_chapter[chapter.name], inplace=inplace,
                                                    progress=progress))
                    current = None
        except KeyboardInterrupt as err:
            word = "terminated" if isinstance(err, Terminated) else "interrupted"
            if current is not None:
                outcomes.append(Outcome(
                    current.name, False, time.perf_counter() - start, {},
                    f"{word}: nothing of this run is kept" + (", the notebook is untouched" if inplace else "")
                    + f" (its notebook so far: {_shown(FAILED_DIR)}/{current.notebook.name})", interrupted=True))
            not_run = [c.name for c in chapters[len(outcomes):]]
            print(word, file=out)
            print(summary(outcomes, not_run), file=out, flush=True)
            raise Interrupted(outcomes, terminated=word == "terminated") from None
    print(summary(outcomes), file=out)
    return outcomes


def summary(outcomes: Iterable[Outcome], not_run: Sequence[str] = ()) -> str:
    from book.core.ledger import VERDICTS

    head = f"{'chapter':<12} {'status':<7} {'seconds':>8}  verdicts"
    lines = [head, "-" * 72]
    outcomes = list(outcomes)
    for o in outcomes:
        counts = ", ".join(f"{o.counts[v]} {v}" for v in VERDICTS if o.counts.get(v)) or "-"
        status = "ok" if o.ok else "STOPPED" if o.interrupted else "FAILED"
        lines.append(f"{o.chapter:<12} {status:<7} {o.seconds:>8.1f}  {counts}")
        if o.error:
            lines.append(f"             {o.error}")
    failed = [o.chapter for o in outcomes if not o.ok and not o.interrupted]
    stopped = [o.chapter for o in outcomes if o.interrupted]
    if stopped:
        lines.append(f"stopped during: {', '.join(stopped)}")
    lines.append(f"{len(failed)} chapter(s) failed: {', '.join(failed)}" if failed else
                 "no chapter failed" if stopped or not_run else "all chapters ran")
    if not_run:
        lines.append(f"not run: {', '.join(not_run)}")
    return "\n".join(lines)


# -- the book ------------------------------------------------------------------------------------
ROOT_PAGES = ("_config.yml", "_toc.yml", "intro.md", "scoreboard.md", "status.md", "references.bib", "_static")


def page_source(chapter: Chapter, executed: Iterable[str] = ()) -> Path:
    """The notebook the book shows for a chapter: this build's executed copy when the chapter ran in
    this build, else its committed full-mode evidence (results/NAME/NAME.ipynb), else the committed
    quick run in notebooks/."""
    from book.core.evidence import page_notebook

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
        # copyfile, not copy2: a fresh mtime, so Sphinx never keeps an earlier build's page of a chapter
        # whose source changed to an older file (say from this build's run back to the committed one)
        shutil.copyfile(sources[chapter.name], SITE_DIR / "notebooks" / chapter.notebook.name)
    return SITE_DIR, sources


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
        # --all: every page is rendered from this build's staged notebooks, none from an earlier build
        cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(site), "--path-output",
               str(BUILD_DIR / "book"), "--all", "-W", "--keep-going"]
        print("$ " + " ".join(cmd), file=out, flush=True)
        code = subprocess.call(cmd)
        html = BUILD_DIR / "html"
        if code == 0:
            # the finished book replaces the old one in two renames: an interrupted copy is never _build/html
            fresh, old = BUILD_DIR / ".html.new", BUILD_DIR / ".html.old"
            for leftover in (fresh, old):
                if leftover.exists():
                    shutil.rmtree(leftover)
            shutil.copytree(BUILD_DIR / "book" / "_build" / "html", fresh)
            with _interrupts_deferred():
                if html.exists():
                    os.replace(html, old)
                os.replace(fresh, html)
            shutil.rmtree(old, ignore_errors=True)
            print(f"book written to {_shown(html)}/index.html", file=out)
    return code


def store_evidence(outcomes: Iterable[Outcome], out=None) -> list[Path]:
    """After full runs: store each successful chapter's executed notebook and ledger in results/."""
    from book.core.evidence import publish_run

    stored = []
    for o in outcomes:
        if not o.ok:
            print(f"{o.chapter}: failed, its evidence in results/ is left as it was", file=out or sys.stdout)
            continue
        with _interrupts_deferred():  # a chapter's ledger and notebook are stored together or not at all
            folder = publish_run(o.chapter, EXECUTED_DIR / f"{o.chapter}.ipynb", LEDGER_DIR / f"{o.chapter}.json")
        print(f"{o.chapter}: evidence stored in {_shown(folder)}", file=out or sys.stdout)
        stored.append(folder)
    return stored


__all__ = ["run", "resolve", "summary", "build_html", "stage_site", "page_source", "store_evidence",
           "command_line", "build_lock", "UsageError", "BookError", "Interrupted", "CHAPTERS"]
