"""Ctrl-C and SIGTERM while a chapter runs: a kernel's run in a worker thread so the signal reaches
the main thread, the processes it started stopped (psutil), and blocks that must not be cut in half.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import psutil


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (by `python -m book`) so that the same cleanup runs."""


def child_pids() -> set[int]:
    """This process's direct children (the kernels it started)."""
    return {p.pid for p in psutil.Process().children()}


def interruptible(execute: Callable[[], Any]) -> Any:
    """Run `execute` (a kernel's whole run) in a worker thread, so that Ctrl-C and SIGTERM reach
    this, the main thread: in nbclient's event loop they would be swallowed and come out as "Kernel
    died", indistinguishable from a crash. On Ctrl-C the kernels started meanwhile (and their
    children) are stopped, the worker is given a moment to save what it has, and the
    KeyboardInterrupt goes on."""
    if threading.current_thread() is not threading.main_thread():
        return execute()
    before = child_pids()
    result: dict[str, Any] = {}
    # an Event, not Thread.join: a join cut by Ctrl-C may return early ever after
    finished = threading.Event()

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
        stop_processes(child_pids() - before)
        finished.wait(20)
        raise
    if "error" in result:
        raise result["error"]
    return result.get("value")


def stop_processes(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGTERM each process and everything it started (a kernel leads its own session, with whatever
    it started), then SIGKILL what is still there after `grace` seconds; the ended are reaped."""
    pids = list(pids)
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            procs += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:  # a group leader's group: also what it started and then left
            try:
                if os.getpgid(pid) == pid:
                    os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        for p in procs:
            try:
                p.send_signal(sig)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        _, procs = psutil.wait_procs(procs, timeout=grace)  # reaps our own children
        if not procs:
            return


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (and SIGTERM) until the block is done, so a rename pair or a cleanup is never
    cut in half; the signal is then delivered as usual. Only in the main thread (elsewhere a
    no-op)."""
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


__all__ = ["Terminated", "interruptible", "interrupts_deferred", "stop_processes", "child_pids"]
