"""`torchrun --nproc-per-node=N -m book.chapters.parallel {gradients,split,allreduce}`: the
chapters' checks on processes that torchrun started (on one machine or several) instead of a `Pool`.

Across machines, start it with `python -m book.chapters.parallel.torchrun` (same options): that
launcher adds the agent-side protections (see `book.chapters.parallel.torchrun`). Whatever started
it, a worker here
- dies with its agent: the kernel's parent-death signal (Linux) and a watchdog thread that polls
  the parent, as the `Pool`'s workers do; a worker whose agent is already gone when it starts ends;
- waits at most `BOOK_PG_TIMEOUT_S` (default 30 s, not gloo's 30 minutes) for its peers, in the
  group's start-up and in every collective;
- ends, when it loses its peers, with one line (which goes to torchrun's error file too) and
  exit code 75, not a traceback per process;
- meets the others in a last barrier before it exits, so that the agents finish together.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Sequence

import torch
import torch.distributed as dist

from book.chapters.parallel.collectives import Worker, allreduce_sweep
from book.chapters.parallel.models import dp_train, split_identities, train_single
from book.chapters.parallel.pool import ask_kernel_for_death_signal

CHECKS = ("gradients", "split", "allreduce", "hold")
AGENT_PID_ENV = "BOOK_AGENT_PID"      # set by book.chapters.parallel.torchrun for its workers
PG_TIMEOUT_ENV = "BOOK_PG_TIMEOUT_S"  # the process group's timeout (start-up and each collective)
PG_TIMEOUT_S = 30.0
EXIT_PEER_LOST = 75                   # a worker that lost its peers (the agent reports which)
EXIT_AGENT_GONE = 3                   # a worker whose agent died
WATCH_INTERVAL_S = 0.2


def _parent_is_gone(agent_pid: int, from_env: bool) -> bool:
    parent = os.getppid()
    if parent != agent_pid or parent == 1:
        return True
    if not from_env and sys.platform.startswith("linux"):
        # under a plain torchrun we only know the parent we have now: if the agent died while this
        # process imported torch, that is init or a subreaper, which is not a torch launcher
        try:
            with open(f"/proc/{parent}/cmdline", "rb") as f:
                return b"torch" not in f.read()
        except OSError:
            return False
    return False


def die_with_agent() -> int:
    """End this worker when its agent (the parent torchrun started it from) dies: the kernel's
    SIGKILL on parent death (Linux), a watchdog thread everywhere, and at once when the agent is
    already gone. Returns the agent's pid."""
    from_env = bool(os.environ.get(AGENT_PID_ENV))
    agent_pid = int(os.environ[AGENT_PID_ENV]) if from_env else os.getppid()
    ask_kernel_for_death_signal(signal.SIGKILL)  # first the signal, then the check: no gap
    if _parent_is_gone(agent_pid, from_env):
        os._exit(EXIT_AGENT_GONE)

    def watch() -> None:
        while os.getppid() == agent_pid:
            time.sleep(WATCH_INTERVAL_S)
        os._exit(EXIT_AGENT_GONE)

    threading.Thread(target=watch, name="agent-watchdog", daemon=True).start()
    return agent_pid


def pg_timeout_s() -> float:
    raw = os.environ.get(PG_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else PG_TIMEOUT_S
    except ValueError:
        raise SystemExit(f"{PG_TIMEOUT_ENV} must be a number of seconds, not {raw!r}")
    if value <= 0:
        raise SystemExit(f"{PG_TIMEOUT_ENV} must be positive, not {raw!r}")
    return value


def _torchrun_worker() -> Worker:
    backend = os.environ.get("BOOK_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    # env:// — torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    dist.init_process_group(backend, timeout=timedelta(seconds=pg_timeout_s()))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return Worker(rank, world, device)


def _peer_lost(error: BaseException) -> None:
    """One line instead of a traceback: here, in torchrun's error file (its summary shows it)
    and, under our launcher, for the agent, which names the machine that is gone."""
    first = (str(error).strip().splitlines() or [""])[0][:300]
    rank = os.environ.get("RANK", "?")
    line = (f"rank {rank}: lost contact with the other workers ({type(error).__name__}: {first}); "
            "a machine or its agent is gone, or did not start")
    error_file = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if error_file:
        try:
            with open(error_file, "w") as f:
                json.dump({"message": line, "timestamp": int(time.time())}, f)
        except OSError:
            pass
    if not os.environ.get(AGENT_PID_ENV):  # our launcher prints the agent's line instead
        print(line, file=sys.stderr, flush=True)
    sys.stdout.flush()
    os._exit(EXIT_PEER_LOST)  # not through destroy_process_group: the group is broken


_PEER_ERROR_SIGNS = ("gloo", "connection", "socket", "timed out", "timeout", "nccl", "store")


def is_peer_error(error: BaseException) -> bool:
    """An error from losing the other processes (gloo raises plain RuntimeErrors for a closed
    or reset connection), not one in the checks' own code."""
    if isinstance(error, dist.DistError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(sign in text for sign in _PEER_ERROR_SIGNS)


def hold(w: Worker, seconds: float) -> int:
    """All-reduce in a loop for `seconds` (rank 0's clock decides): a run to lose a machine in."""
    steps, t = 0, torch.ones(1024)
    end = time.monotonic() + seconds
    while True:
        stop = torch.tensor([1.0 if w.rank == 0 and time.monotonic() > end else 0.0])
        dist.all_reduce(stop, op=dist.ReduceOp.MAX)
        if stop.item():
            return steps
        dist.all_reduce(t)
        steps += 1
        time.sleep(0.02)


def _run_check(what: str, w: Worker, opts) -> tuple[str, object]:
    if what == "gradients":
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(opts.batch, 784, generator=gen)
        y = torch.randint(0, 10, (opts.batch,), generator=gen)
        got = dp_train(w, x, y, [784, 256, 10], opts.batch, 1, 0.1, 0)["first_grad"]
        ref = train_single(x, y, [784, 256, 10], batch_size=opts.batch, steps=1, lr=0.1,
                           seed=0)["first_grad"]
        diff = (got - ref).abs().max().item()
        return f"max |averaged gradient - single-process gradient| = {diff:.2e}", got
    if what == "split":
        r = split_identities(w, opts.batch, 1000, 500, 0)
        msg = "; ".join(f"{k}: forward err {v['forward_err']:.1e}, "
                        f"backward err {v['backward_err']:.1e}"
                        for k, v in r.items() if k != "data")
        return msg, r
    if what == "allreduce":
        sizes = [2 ** k for k in range(10, 27, 2)]
        times = allreduce_sweep(w, sizes, 10)
        msg = "\n".join(f"{s / 2**20:10.3f} MiB  {t * 1e3:8.3f} ms  {s / t / 1e9:6.2f} GB/s"
                        for s, t in zip(sizes, times))
        return msg, dict(zip(sizes, times))
    if w.rank == 0:
        print(f"hold: {w.world_size} workers all-reducing for {opts.seconds:g} s", flush=True)
    steps = hold(w, opts.seconds)
    return f"hold: {steps} all-reduces", steps


def main(argv: Sequence[str] | None = None) -> None:
    """`torchrun --nproc-per-node=N -m book.chapters.parallel {gradients,split,allreduce}`: the
    chapter's checks on processes that torchrun started (on one machine or several)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m book.chapters.parallel")
    parser.add_argument("what", nargs="+", choices=CHECKS,
                        help="the checks to run, in order (hold: all-reduce for --seconds; "
                             "the tests lose a machine in it)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0, help="how long `hold` runs")
    parser.add_argument("--out", help="rank 0 saves the checks' results here (torch.save)")
    opts = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run me under torchrun, e.g. torchrun --nproc-per-node=2 -m "
                     "book.chapters.parallel gradients, or across machines with "
                     "python -m book.chapters.parallel.torchrun (see its --help)")
    die_with_agent()
    try:
        w = _torchrun_worker()
    except RuntimeError as e:  # a peer that never came, a store that is gone
        if not is_peer_error(e):
            raise
        _peer_lost(e)
    try:
        results, lines = {}, []
        for what in opts.what:
            msg, results[what] = _run_check(what, w, opts)
            lines.append(msg)
        if w.world_size > 1:
            dist.barrier()  # everyone has finished: the agents leave together
    except RuntimeError as e:
        if not is_peer_error(e):
            raise
        _peer_lost(e)
    if w.rank == 0:
        print(f"{w.world_size} workers, {dist.get_backend()}:\n" + "\n".join(lines), flush=True)
        if opts.out:
            torch.save(results, opts.out)
    dist.destroy_process_group()
