"""Command line: `python -m book {list,run,build,evidence,full-check,gpu-check,scoreboard,data}`;
see `python -m book -h`.

Exit status: 0 done; 1 a chapter failed; 2 refused (bad input, a missing dependency, an unwritable
or busy _build, a corrupt data file); 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys

from book.core.registry import CHAPTERS, REPO_ROOT, available_chapters, get_chapter
from book.tools import runner
from book.tools.locks import build_lock
from book.tools.params import UsageError
from book.tools.signals import Terminated


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m book", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="the chapters, their posts and notebooks")

    def parameter_args(q: argparse.ArgumentParser, help: str) -> None:
        q.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                       metavar=("NAME", "VALUE"), help=help)
        q.add_argument("--no-progress", action="store_true", help="no progress bars")

    def chapter_args(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "chapters",
            nargs="*",
            metavar="CHAPTER",
            help=f"chapters to run (default: all): {', '.join(CHAPTERS)}",
        )
        mode = q.add_mutually_exclusive_group()
        mode.add_argument(
            "--quick",
            dest="quick",
            action="store_const",
            const=True,
            help="small sizes, what CI runs (QUICK=True)",
        )
        mode.add_argument(
            "--full",
            dest="quick",
            action="store_const",
            const=False,
            help="the real experiments (QUICK=False)",
        )
        parameter_args(q, "set a notebook parameter (a Python literal), e.g. -p SEED 1")

    r = sub.add_parser("run", help="execute chapters with papermill into _build/executed")
    chapter_args(r)
    r.add_argument(
        "--inplace",
        action="store_true",
        help="execute the committed notebooks with their defaults and save the outputs into them",
    )

    b = sub.add_parser(
        "build",
        help="render the book to _build/html (with --execute, or chapters, -p, "
        "--quick or --full: execute those chapters first and show the fresh runs)",
    )
    chapter_args(b)
    b.add_argument(
        "--execute",
        action="store_true",
        help="execute the chapters (default all) before rendering, and show those runs",
    )
    b.add_argument(
        "--no-execute",
        action="store_true",
        help="render the committed pages only (the default without --execute)",
    )

    e = sub.add_parser(
        "evidence", help="run chapters in full mode and store each successful run in results/NAME/"
    )
    e.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters (default: all)")
    parameter_args(e, "set a notebook parameter, e.g. -p RERUN_SWEEPS True")

    f = sub.add_parser(
        "full-check",
        help="run chapters in full mode and compare every verdict with the "
        "committed evidence in results/ (make test-full)",
    )
    f.add_argument("chapters", nargs="*", metavar="CHAPTER", help="chapters (default: all)")
    f.add_argument("--no-progress", action="store_true", help="no progress bars")

    g = sub.add_parser(
        "gpu-check",
        help="on a CUDA machine: run every chapter on the GPU and compare its "
        "verdicts with the committed ones (make test-gpu)",
        add_help=False,
    )
    g.add_argument("rest", nargs=argparse.REMAINDER)

    sub.add_parser("scoreboard", help="write scoreboard.md and status.md from the committed pages")
    sub.add_parser(
        "sync-install",
        help="rewrite each notebook's Colab install cell from _config.yml's repository url",
    )

    d = sub.add_parser("data", help="the data cache")
    d.add_argument(
        "--seed", metavar="DIR", help="copy the MNIST files from DIR into the cache (checked)"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    previous_term = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave SIGTERM alone
        previous_term = None
    try:
        if args.command == "list":
            from book.core.registry import NOTEBOOK_DIR

            have = {c.name for c in available_chapters()}
            checkout = NOTEBOOK_DIR.is_dir()  # a pip install has the package, not the notebooks
            for c in CHAPTERS.values():
                state = (
                    f"notebooks/{c.name}.ipynb"
                    if c.name in have
                    else (
                        "(not written yet)"
                        if checkout
                        else "(notebook in the repository, not in this install)"
                    )
                )
                print(f"{c.name:<12} {c.year}  {c.title:<36} {state}\n             {c.post_url}")
            if not checkout:
                print(
                    "To run chapters, clone the repository (the notebooks and results/ live there)."
                )
            return 0
        if args.command == "data":
            from book.core.data import data_dir, seed_cache, verify_mnist

            if args.seed:
                for path in seed_cache(args.seed):
                    print(f"cached {path}")
            sizes = verify_mnist()
            print(
                f"MNIST ready in {data_dir() / 'mnist'}: all four files pass their sha256 check "
                f"({sizes['train']} training and {sizes['test']} test images)"
            )
            return 0
        if args.command == "scoreboard":
            from book.tools.scoreboard import write_scoreboard, write_status
            from book.tools.site import check_sources, page_source

            with build_lock(["book"]):
                sources = {c.name: page_source(c) for c in available_chapters()}
                check_sources(sources)
                print(f"wrote {write_scoreboard(sources, REPO_ROOT / 'scoreboard.md')}")
                print(f"wrote {write_status(sources, sources, REPO_ROOT / 'status.md')}")
            return 0
        if args.command == "full-check":
            from book.tools import fullcheck

            return fullcheck.main(args.chapters, progress=not args.no_progress)
        if args.command == "gpu-check":
            from book.tools import gpucheck

            return gpucheck.main(args.rest)
        if args.command == "sync-install":
            from book.tools.colab import sync_install_cells

            changed = sync_install_cells()
            print(
                "\n".join(f"updated {p.relative_to(REPO_ROOT)}" for p in changed)
                or "every install cell is up to date"
            )
            return 0
        params = [tuple(p) for p in args.parameter]
        if args.command == "run":
            outcomes = runner.run(
                args.chapters,
                params,
                quick=args.quick,
                inplace=args.inplace,
                progress=not args.no_progress,
            )
            return 0 if all(o.ok for o in outcomes) else 1
        if args.command == "evidence":
            names = [get_chapter(n).name for n in args.chapters] or [
                c.name for c in available_chapters()
            ]
            command = runner.evidence_command(args.chapters, params)
            with build_lock(names):  # nobody may rerun these between their runs and the storing
                outcomes = runner.run(
                    args.chapters,
                    params,
                    quick=False,
                    progress=not args.no_progress,
                    command=command,
                )
                runner.store_evidence(outcomes, command=command)
            return 0 if all(o.ok for o in outcomes) else 1
        if args.command == "build":
            ok, executed = True, []
            execute = args.execute or bool(args.chapters or params or args.quick is not None)
            if args.no_execute and execute:
                raise UsageError("--no-execute takes no --execute, chapters, -p, --quick or --full")
            from book.tools.site import build_html

            with build_lock(["book"]):
                if execute:  # the pages this build will not replace are checked before any run
                    from book.core.evidence import check_pages

                    every = [c.name for c in available_chapters()]
                    running = {get_chapter(n).name for n in args.chapters} or set(every)
                    check_pages([name for name in every if name not in running])
                    outcomes = runner.run(
                        args.chapters, params, quick=args.quick, progress=not args.no_progress
                    )
                    ok = all(o.ok for o in outcomes)
                    executed = [o.chapter for o in outcomes if o.ok]
                code = build_html(executed=executed)
            return 0 if ok and code == 0 else 1
    except KeyboardInterrupt as err:
        terminated = isinstance(err, Terminated) or getattr(err, "terminated", False)
        if not isinstance(err, runner.Interrupted):  # a run has already said so, with its summary
            print("terminated" if terminated else "interrupted", file=sys.stderr)
        return 143 if terminated else 130
    except (UsageError, ValueError, FileNotFoundError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:  # the machine's: a read-only folder, a full disk
        print(f"error: {_os_error(err)}", file=sys.stderr)
        return 2
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    return 2


def _on_sigterm(signum, frame):
    raise Terminated("terminated")  # like Ctrl-C, so the same cleanup runs


def _os_error(err: OSError) -> str:
    """The machine's error in one line, naming the file: for a copy the target (`filename2`: a
    copy's error names its source first, and a full disk is the target's)."""
    what = err.strerror or str(err)
    if err.errno == errno.ENOSPC:
        what = "no space left on the disk"
    where = getattr(err, "filename2", None) or err.filename
    return f"{where}: {what}" if where else what


if __name__ == "__main__":
    sys.exit(main())
