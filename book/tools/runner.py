"""Execute chapters into `_build/`, summarise their ledgers, store full runs as evidence.

The source notebooks are never written to, except by `--inplace`, which exists to refresh the
committed outputs (default parameters, i.e. quick mode) and must be asked for. The jobs live in
their own modules: parameters (`params`), one chapter's run and its supervision (`execute`,
`signals`), `_build`'s locks (`locks`), the site (`site`); this module runs chapters in book order,
prints the summary and stores evidence.

Failure semantics: only a complete, successful run is `_build/executed/NAME.ipynb`; a failed,
interrupted or killed run leaves its notebook and ledger in `_build/failed/` and nothing under the
names a later command reads. One command at a time runs a chapter (a lock file); parameters,
optional dependencies and a writable `_build` are checked before any kernel starts.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

from book.core.registry import get_chapter
from book.tools import execute, paths
from book.tools.execute import Outcome
from book.tools.locks import build_lock, prepare_build
from book.tools.params import UsageError, resolve
from book.tools.paths import shown
from book.tools.signals import Terminated, interrupts_deferred


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a run; carries the outcomes so far (the last one is the stopped
    chapter)."""

    def __init__(self, outcomes: list[Outcome], terminated: bool = False):
        super().__init__("terminated" if terminated else "interrupted")
        self.outcomes = outcomes
        self.terminated = terminated


def run(
    names: Sequence[str] = (),
    raw_params: Sequence[tuple[str, str]] = (),
    *,
    quick: bool | None = None,
    inplace: bool = False,
    progress: bool = True,
    out=None,
    command: str | None = None,
) -> list[Outcome]:
    """Execute chapters in book order; print a summary; return the outcomes. Everything is checked
    before the first kernel starts. On Ctrl-C: prints "interrupted" and the summary so far, then
    raises `Interrupted` (the command line exits 130). `command`: what to stamp on the ledgers as
    the command that made them (default: each chapter's `python -m book run` line)."""
    from tqdm.auto import tqdm

    if inplace and (raw_params or quick is False):
        raise UsageError(
            "--inplace refreshes the committed outputs, which are the default (quick) run: "
            "it takes no -p and no --full"
        )
    chapters, per_chapter = resolve(names, raw_params, quick)
    out = out or sys.stdout
    outcomes: list[Outcome] = []
    with build_lock(c.name for c in chapters):
        prepare_build(chapters)
        execute.absolute_paths_in_environment()
        current, start = None, time.perf_counter()
        try:
            with tqdm(
                chapters, desc="chapters", unit="chapter", disable=not progress, file=sys.stderr
            ) as bar:
                for chapter in bar:
                    current, start = chapter, time.perf_counter()
                    bar.set_postfix_str(chapter.name)
                    outcomes.append(
                        execute.execute_chapter(
                            chapter,
                            per_chapter[chapter.name],
                            inplace=inplace,
                            progress=progress,
                            command=command,
                        )
                    )
                    current = None
        except KeyboardInterrupt as err:
            word = "terminated" if isinstance(err, Terminated) else "interrupted"
            if current is not None:
                outcomes.append(
                    Outcome(
                        current.name,
                        False,
                        time.perf_counter() - start,
                        {},
                        f"{word}: nothing of this run is kept"
                        + (", the notebook is untouched" if inplace else "")
                        + f" (its notebook so far: {shown(paths.FAILED_DIR)}/"
                        f"{current.notebook.name})",
                        interrupted=True,
                    )
                )
            not_run = [c.name for c in chapters[len(outcomes) :]]
            print(word, file=out)
            print(summary(outcomes, not_run), file=out, flush=True)
            raise Interrupted(outcomes, terminated=word == "terminated") from None
    print(summary(outcomes), file=out)
    return outcomes


def summary(outcomes: Iterable[Outcome], not_run: Sequence[str] = ()) -> str:
    from book.core.verdicts import NAMES

    head = f"{'chapter':<12} {'status':<7} {'seconds':>8}  verdicts"
    lines = [head, "-" * 72]
    outcomes = list(outcomes)
    for o in outcomes:
        counts = ", ".join(f"{o.counts[v]} {v}" for v in NAMES if o.counts.get(v)) or "-"
        status = "ok" if o.ok else "STOPPED" if o.interrupted else "FAILED"
        lines.append(f"{o.chapter:<12} {status:<7} {o.seconds:>8.1f}  {counts}")
        if o.error:
            lines.append(f"             {o.error}")
    failed = [o.chapter for o in outcomes if not o.ok and not o.interrupted]
    stopped = [o.chapter for o in outcomes if o.interrupted]
    if stopped:
        lines.append(f"stopped during: {', '.join(stopped)}")
    lines.append(
        f"{len(failed)} chapter(s) failed: {', '.join(failed)}"
        if failed
        else "no chapter failed" if stopped or not_run else "all chapters ran"
    )
    if not_run:
        lines.append(f"not run: {', '.join(not_run)}")
    return "\n".join(lines)


def evidence_command(names: Sequence[str], raw_params: Sequence[tuple[str, str]]) -> str:
    """The command line of `python -m book evidence` as a reader would retype it."""
    import shlex

    parts = ["python -m book evidence", *names] + [
        f"-p {n} {shlex.quote(v)}" for n, v in raw_params
    ]
    return " ".join(parts)


def store_evidence(outcomes: Iterable[Outcome], out=None, command: str = "") -> list[Path]:
    """After full runs: store each successful chapter's executed notebook, the ledger it carries and
    the manifest in results/NAME/. A run whose ledger file another process rewrote is refused (said
    on `out`), and results/NAME/ is left as it was. Returns the folders stored."""
    from book.core.evidence import EvidenceError, publish_run

    out = out or sys.stdout
    stored = []
    for o in outcomes:
        if not o.ok:
            print(f"{o.chapter}: failed, its evidence in results/ is left as it was", file=out)
            continue
        try:
            with (
                interrupts_deferred()
            ):  # a chapter's ledger, notebook and manifest are stored together
                folder = publish_run(
                    o.chapter,
                    paths.EXECUTED_DIR / f"{o.chapter}.ipynb",
                    paths.LEDGER_DIR / f"{o.chapter}.json",
                    command=command,
                )
        except EvidenceError as err:
            o.ok, o.error = False, str(err)
            print(f"{o.chapter}: NOT stored: {err}", file=out)
            continue
        print(f"{o.chapter}: evidence stored in {shown(folder)}", file=out)
        stored.append(folder)
    return stored


__all__ = [
    "run",
    "summary",
    "store_evidence",
    "evidence_command",
    "Interrupted",
    "Outcome",
    "get_chapter",
]
