"""Worker processes for the parallel chapters: a pool of `torch.distributed` workers on one machine.

`Pool(n)` starts `n` processes with torch.multiprocessing (spawn), joins them into one process
group (gloo on CPU, nccl with one GPU per rank) and runs module-level worker functions
`fn(worker, *args)` on all of them; `launch(fn, n, args)` is a pool used for one task.

Reliability: parameters are checked before any process starts; the rendezvous store is opened by
the launcher on a port the OS picks (no race for a "free" port) and closed at the end; a worker that
raises makes `run` raise `WorkerFailed` with that worker's traceback after the other workers are
terminated; a run that exceeds its timeout is killed. No worker outlives its launcher, whatever
phase it is in and however the launcher ends (closed, crashed, SIGKILLed):
- each worker watches its launcher from a thread (`os.getppid()` every 0.2 s) and, on Linux,
  asks the kernel for a signal when the launcher dies (prctl PR_SET_PDEATHSIG);
- joining the group, a worker connects to the store in short attempts and gives up as soon as
  the launcher is gone (not after the whole timeout);
- an orphaned worker removes the pool's result folder before it exits; the folder's name carries
  the launcher's pid, so a folder whose launcher died before any worker existed is removed by
  the next pool that starts.
"""
from __future__ import annotations

import contextlib
import ctypes
import glob
import os
import queue
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
import weakref
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from book.chapters.parallel.collectives import Worker, all_reduce

LOCALHOST = "127.0.0.1"


class WorkerFailed(RuntimeError):
    """A worker process raised (its traceback is in the message) or the run timed out."""


def max_world_size() -> int:
    """How many worker processes a local launch may start: twice the CPU cores (at least 4).
    More would only measure the scheduler; on GPUs nccl additionally needs one GPU per rank."""
    return max(4, 2 * (os.cpu_count() or 1))


def check_world_size(world_size: Any, limit: int | None = None) -> int:
    """A clear error for a world size that is not an int in [1, limit]."""
    limit = max_world_size() if limit is None else limit
    if not isinstance(world_size, int) or isinstance(world_size, bool):
        raise TypeError(f"world_size must be an int, not {type(world_size).__name__} {world_size!r}")
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, not {world_size}")
    if world_size > limit:
        raise ValueError(f"world_size {world_size} is larger than allowed here ({limit} processes "
                         f"on {os.cpu_count()} CPU cores)")
    return world_size


def check_split(size: int, world_size: int, what: str = "width") -> int:
    """The block each worker gets when `size` is split into `world_size` equal parts."""
    check_world_size(world_size)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"{what} must be a positive int, not {size!r}")
    if size % world_size:
        raise ValueError(f"{what} {size} is not divisible by the world size {world_size}; "
                         "the split needs equal blocks")
    return size // world_size


def pick_backend(device: str | torch.device, world_size: int) -> str:
    """nccl when every rank can have its own GPU, else gloo (which also handles CUDA tensors)."""
    device = torch.device(device)
    if device.type == "cuda" and dist.is_nccl_available() and world_size <= torch.cuda.device_count():
        return "nccl"
    return "gloo"




# -- a worker never outlives its launcher -------------------------------------------------------
RESULT_DIR_PREFIX = "book-parallel-"
WATCH_INTERVAL_S = 0.2   # how often a worker looks for its launcher
CONNECT_ATTEMPT_S = 2.0  # one attempt to reach the launcher's store; between attempts: is it alive?
_PR_SET_PDEATHSIG = 1    # from <linux/prctl.h>
ORPHAN_EXIT_CODE = 3


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _launcher_gone(launcher_pid: int) -> bool:
    # an orphan is re-parented (to init or a subreaper): its parent is no longer the launcher
    return os.getppid() != launcher_pid


def _exit_orphaned(outdir: str) -> None:
    """The launcher is gone: nobody will read results or remove the folder; do both and end now."""
    shutil.rmtree(outdir, ignore_errors=True)
    os._exit(ORPHAN_EXIT_CODE)


def ask_kernel_for_death_signal(signum: int) -> bool:
    """Linux: have the kernel send `signum` to this process the moment its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _die_with_launcher(launcher_pid: int, outdir: str, death_signal: bool) -> None:
    """Make this worker end within a fraction of a second of its launcher, in every phase: on
    Linux the kernel's parent-death signal (SIGUSR1, whose handler removes the result folder and
    exits), and everywhere a watchdog thread that polls the parent (it runs while the main thread
    computes or waits in torch, which releases the GIL). `death_signal` only when the launcher
    started the pool from its main thread: the kernel's signal follows the thread that spawned us.
    SIGTERM keeps its default (immediate) action: that is how Pool.close ends a stuck worker."""
    def on_parent_death(signum, frame):
        if _launcher_gone(launcher_pid):
            _exit_orphaned(outdir)

    if death_signal:
        signal.signal(signal.SIGUSR1, on_parent_death)
        ask_kernel_for_death_signal(signal.SIGUSR1)
    if _launcher_gone(launcher_pid):  # it died while this process was still starting up
        _exit_orphaned(outdir)

    def watch() -> None:
        while not _launcher_gone(launcher_pid):
            time.sleep(WATCH_INTERVAL_S)
        _exit_orphaned(outdir)

    threading.Thread(target=watch, name="launcher-watchdog", daemon=True).start()


def _connect_store(port: int, timeout_s: float, launcher_pid: int, outdir: str) -> dist.TCPStore:
    """The launcher's store, reached in short attempts: between them, a dead launcher ends the
    worker (a single long attempt would wait out the whole timeout for a store that is gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        attempt = max(0.1, min(CONNECT_ATTEMPT_S, deadline - time.monotonic()))
        try:
            store = dist.TCPStore(LOCALHOST, port, is_master=False, timeout=timedelta(seconds=attempt))
            store.set_timeout(timedelta(seconds=timeout_s))
            return store
        except RuntimeError:  # DistNetworkError / DistStoreError are RuntimeErrors
            if _launcher_gone(launcher_pid):
                _exit_orphaned(outdir)
            if time.monotonic() >= deadline:
                raise


def remove_stale_result_dirs(root: str | None = None) -> list[str]:
    """Remove the result folders of launchers that died without cleaning up (their name carries
    the launcher's pid); returns what was removed. Folders of live launchers are left alone."""
    removed = []
    for path in glob.glob(os.path.join(root or tempfile.gettempdir(), RESULT_DIR_PREFIX + "*")):
        pid = os.path.basename(path)[len(RESULT_DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


# -- launching ------------------------------------------------------------------------------------
def _open_store(timeout_s: float) -> dist.TCPStore:
    # Port 0: the OS picks a free port and the store holds it for the whole run, so no other
    # program can take it between "pick" and "use"; closing the store frees it.
    return dist.TCPStore(LOCALHOST, 0, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=timeout_s))


def _entry(rank: int, world_size: int, tasks, done, port: int, backend: str, device: str,
           outdir: str, threads: int, timeout_s: float, launcher_pid: int, death_signal: bool) -> None:
    """Each spawned process: join the group, then run the tasks the pool sends until told to stop.
    A task's result goes to a file (no pipe to fill up); its failure goes back as a traceback."""
    # Ctrl-C (a terminal's, or Jupyter's interrupt, sent to the whole process group) is the
    # launcher's to handle: it ends the pool, so a worker prints no KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_launcher(launcher_pid, outdir, death_signal)
    torch.set_num_threads(threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback: the launch is on one machine
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    store = _connect_store(port, timeout_s, launcher_pid, outdir)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                continue  # the watchdog ends this process if the launcher is gone
            if task is None:
                break
            number, fn, args = task
            try:
                result = fn(Worker(rank, world_size, dev), *args)
                torch.save(result, os.path.join(outdir, f"task{number}-rank{rank}.pt"))
                done.put((number, rank, None))
            except BaseException:
                done.put((number, rank, traceback.format_exc()))
                # the launcher reports this traceback once (WorkerFailed) and ends every worker
                # (peers blocked in a collective are terminated); exit without printing it again
                sys.exit(1)
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def _sigint_ignored_by_child(main_thread: bool):
    """A process started in this block inherits SIGINT ignored, so a Ctrl-C while it is still
    importing torch gives no traceback either (the launcher's own handler is back right after)."""
    if not main_thread:
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Pool:
    """`world_size` worker processes in one process group, started once and reused for several
    tasks (starting a process that imports torch costs seconds). Use as a context manager:

        with Pool(2) as pool:
            results = pool.run(dp_train, x, y, ...)   # one result per rank

    A task that raises on any worker ends the pool: every worker is terminated, the store's port
    closed, and `run` raises `WorkerFailed` carrying that worker's traceback."""

    def __init__(self, world_size: int, *, device: str | torch.device = "cpu", backend: str | None = None,
                 timeout_s: float = 300.0, threads: int | None = None):
        check_world_size(world_size)
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or timeout_s <= 0:
            raise ValueError(f"timeout_s must be a positive number, not {timeout_s!r}")
        self.device = str(torch.device(device))
        self.backend = backend or pick_backend(self.device, world_size)
        if self.backend not in ("gloo", "nccl"):
            raise ValueError(f"backend must be 'gloo' or 'nccl', not {self.backend!r}")
        if self.backend == "nccl" and world_size > torch.cuda.device_count():
            raise ValueError(f"nccl needs one GPU per rank: {world_size} ranks, "
                             f"{torch.cuda.device_count()} GPUs")
        self.world_size, self.timeout_s = world_size, float(timeout_s)
        self.threads = threads or max(1, (os.cpu_count() or 1) // world_size)
        self.port: int | None = None
        self._tasks_run = 0

    def __enter__(self) -> "Pool":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close(graceful=exc[0] is None)

    def start(self) -> None:
        ctx = tmp.get_context("spawn")
        remove_stale_result_dirs()
        # the folder is named after this launcher, so it can be found and removed if we are killed
        self._outdir = tempfile.mkdtemp(prefix=f"{RESULT_DIR_PREFIX}{os.getpid()}-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._outdir, True)  # at exit, at the latest
        death_signal = threading.current_thread() is threading.main_thread()
        self._store = _open_store(self.timeout_s)
        self.port = self._store.port
        self._queues = [ctx.Queue() for _ in range(self.world_size)]
        self._done = ctx.Queue()
        try:
            # one Process per rank (not torch's start_processes): each rank needs its own queue
            self._processes = []
            for rank in range(self.world_size):
                p = ctx.Process(target=_entry, daemon=True, args=(
                    rank, self.world_size, self._queues[rank], self._done, self.port, self.backend,
                    self.device, self._outdir, self.threads, self.timeout_s, os.getpid(), death_signal))
                with _sigint_ignored_by_child(death_signal):
                    p.start()
                self._processes.append(p)
        except BaseException:
            self.close(graceful=False)
            raise

    def run(self, fn: Callable, *args: Any) -> list:
        """Run `fn(worker, *args)` on every worker; the results in rank order."""
        if not callable(fn) or getattr(fn, "__module__", "__main__") in ("__main__", None) \
                or "<locals>" in getattr(fn, "__qualname__", ""):
            raise ValueError(f"{fn!r} must be a module-level function of an importable module "
                             "(spawned workers import it)")
        if not getattr(self, "_processes", None):
            raise RuntimeError("the pool is not running (use `with Pool(n) as pool:`)")
        number = self._tasks_run
        self._tasks_run += 1
        for q in self._queues:
            q.put((number, fn, args))
        finished: set[int] = set()
        deadline = time.monotonic() + self.timeout_s
        try:
            while len(finished) < self.world_size:
                try:
                    task, rank, error = self._done.get(timeout=0.1)
                except queue.Empty:
                    dead = [r for r, p in enumerate(self._processes) if p.exitcode is not None]
                    if dead:
                        self._raise_from(dead, fn)
                    if time.monotonic() > deadline:
                        raise WorkerFailed(f"{fn.__name__} on {self.world_size} workers did not "
                                           f"finish within {self.timeout_s:.0f} s; all workers were killed")
                    continue
                if error is not None:
                    raise WorkerFailed(f"worker {rank} of {self.world_size} raised in {fn.__name__}:\n{error}")
                finished.add(rank)
        except BaseException:
            self.close(graceful=False)  # also on KeyboardInterrupt: no worker outlives the pool
            raise
        return [torch.load(os.path.join(self._outdir, f"task{number}-rank{r}.pt"), weights_only=False)
                for r in range(self.world_size)]

    def _raise_from(self, dead: list[int], fn: Callable) -> None:
        # a worker died without reporting (killed, segfault): give it a moment to report first
        try:
            task, rank, error = self._done.get(timeout=1.0)
            if error is not None:
                raise WorkerFailed(f"worker {rank} of {self.world_size} raised in {fn.__name__}:\n{error}")
        except queue.Empty:
            pass
        codes = ", ".join(f"worker {r}: exit code {self._processes[r].exitcode}" for r in dead)
        raise WorkerFailed(f"{fn.__name__}: worker process ended without a result ({codes})")

    def close(self, graceful: bool = True) -> None:
        """Stop the workers (politely when `graceful`, else terminate), free the port and files."""
        processes = getattr(self, "_processes", [])
        if graceful:
            for q, p in zip(self._queues, processes):
                if p.is_alive():
                    q.put(None)
            for p in processes:
                p.join(10)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join()
        self._processes = []
        for q in getattr(self, "_queues", []):
            q.close()
            q.cancel_join_thread()  # a stopped worker never reads its last message; do not wait on it
        self._queues = []
        if getattr(self, "_done", None) is not None:
            self._done.close()
            self._done.join_thread()
            self._done = None
        if getattr(self, "_store", None) is not None:
            self._store = None  # the store's destructor closes its listening socket
        if getattr(self, "_cleanup", None) is not None:
            self._cleanup()  # removes the result folder (once)
        self._outdir = None


def launch(fn: Callable, world_size: int, args: Sequence = (), **pool_options: Any) -> list:
    """Run `fn(worker, *args)` once on `world_size` new processes (a `Pool` used for one task)."""
    with Pool(world_size, **pool_options) as pool:
        return pool.run(fn, *args)


def run_here(fn: Callable, *args: Any, device: str | torch.device = "cpu", threads: int = 1) -> Any:
    """Run a worker function as the only worker (world size 1) in this process, on `threads`
    threads like one pool worker of two on two cores — the single-worker baseline of a sweep."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return fn(Worker(0, 1, torch.device(device)), *args)
    finally:
        torch.set_num_threads(previous)


def port_is_free(port: int) -> bool:
    """True when nothing listens on `port` of the loopback interface (used by the tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOCALHOST, port))
            return True
        except OSError:
            return False


# -- worker functions used by the tests (module level: spawn imports them) -----------------------
def rank_sum(w: Worker, value: float) -> float:
    t = torch.tensor([value * (w.rank + 1)], dtype=torch.float64)
    all_reduce(t)
    return t.item()


def crash_on_rank(w: Worker, bad_rank: int, message: str) -> int:
    if w.rank == bad_rank:
        raise RuntimeError(message)
    w.barrier()  # the healthy workers wait here for the crashed one: launch must not hang
    return w.rank


def busy_for(w: Worker, seconds: float) -> int:
    """Compute for `seconds` (matrix products, as a real task would): a task to kill a launcher in."""
    x = torch.randn(256, 256)
    end = time.monotonic() + seconds
    steps = 0
    while time.monotonic() < end:
        x = torch.tanh(x @ x)
        steps += 1
    return steps
