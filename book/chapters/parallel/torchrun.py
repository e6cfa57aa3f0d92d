"""`python -m book.chapters.parallel.torchrun [torchrun options] CHECK...`: torchrun for the
chapters' checks, as safe across machines as the notebook's `Pool` is on one.

Takes torchrun's own options (`--nnodes`, `--nproc-per-node`, `--rdzv-backend`, `--rdzv-endpoint`,
`--rdzv-id`, `--rdzv-conf`, ...) and the checks of `python -m book.chapters.parallel` (gradients,
split, allreduce), and runs them as torchrun would, with these differences (torch 2.13's
torch.distributed.elastic; the option or method each one sets is named):

- a worker dies with its agent, from its first instruction: it starts as `python -c PRELUDE`,
  which asks the kernel for SIGKILL when the agent dies (prctl PR_SET_PDEATHSIG), checks the agent
  is still there and only then imports the book (`book.chapters.parallel.cli` adds a watchdog);
  torchrun puts its workers in sessions of their own, so without this they outlive a killed agent;
- the agents watch each other (`PeerWatch`), from the end of the rendezvous (the workers start
  only once every agent is watched) to the end: each holds a TCP connection to every other
  agent, which the kernel closes the moment that agent dies, however it dies; and each beats a
  counter in the run's store (the one rank 0's agent hosts for the workers) every `BEAT_S`, for
  a machine that goes silent (power, network) with its connections open: `LOST_AFTER_S` without
  a beat. A lost node, or a store that stops answering, ends the run: the agent prints one line
  naming the node (rank, host, address, agent pid, what it hosted), kills its own workers and
  exits with `EXIT_PEER_LOST`. A node whose workers failed says so in the store, so that the
  others report a failure, not a lost machine;
- torch's exit barrier (`SimpleElasticAgent._exit_barrier`, 300 s, which no option or variable
  changes) is replaced by one on the same store that ends as soon as every node is done, at
  once when a node is lost, and after `EXIT_BARRIER_S` at most;
- short rendezvous timeouts (`--rdzv-conf`; the user's own values win): `RDZV_DEFAULTS` for the
  c10d backend, `STATIC_DEFAULTS` for the static one; the workers' process-group timeout is
  `BOOK_PG_TIMEOUT_S` (30 s, not gloo's 30 minutes); `--shutdown-timeout` 5 s (not 30) between
  the agent's SIGTERM and SIGKILL to its own workers;
- quiet: torch's C++ store warnings (TORCH_CPP_LOG_LEVEL=ERROR) and the agent's log
  (LOGLEVEL=CRITICAL; a user's own values win) stay silent: this launcher says in one line what
  went wrong, instead of a traceback per process. Torch reads both when it loads, so the
  launcher starts itself again (same pid) when they are not set.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from datetime import timedelta
from typing import Sequence

from book.chapters.parallel.cli import AGENT_PID_ENV, CHECKS, EXIT_PEER_LOST

BEAT_S = 0.5           # how often an agent beats
LOST_AFTER_S = 5.0     # a node whose beat stops this long is lost
FAILED_GRACE_S = 2.0   # a node whose workers failed: ours get this long to fail as well
EXIT_BARRIER_S = 10.0  # the longest an agent whose workers finished waits for the others
SHUTDOWN_TIMEOUT_S = 5  # SIGTERM to SIGKILL for the agent's own workers
RDZV_DEFAULTS = {
    "join_timeout": 120,        # every machine must join within 2 min (torch: 600 s)
    "last_call_timeout": 5,     # with --nnodes=MIN:MAX, wait this long for more (torch: 30 s)
    "close_timeout": 5,         # (torch: 30 s)
    "heartbeat_timeout": 5,     # one keep-alive write (torch: 5 s)
    "keep_alive_interval": 1,   # (torch: 5 s)
    "keep_alive_max_attempt": 3,  # the rendezvous drops a silent node after 3 s (torch: 15 s)
    "read_timeout": 10,         # one store read of the c10d backend (torch: 60 s)
}
STATIC_DEFAULTS = {"timeout": 120}  # --rdzv-backend=static: the store's timeout (torch: 900 s)
QUIET_ENV = {"TORCH_CPP_LOG_LEVEL": "ERROR", "LOGLEVEL": "CRITICAL"}
PROG = "python -m book.chapters.parallel.torchrun"

# The workers' first instructions: the kernel's SIGKILL when the agent dies, then is it alive?
PRELUDE = (
    "import ctypes, os, runpy, sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL\n"
    "except (OSError, AttributeError):\n"
    "    pass  # not Linux: the watchdog in book.chapters.parallel.cli\n"
    f"if os.getppid() != int(os.environ['{AGENT_PID_ENV}']):\n"
    "    os._exit(3)\n"
    "runpy.run_module('book.chapters.parallel', run_name='__main__', alter_sys=True)\n"
)

_report_lock = threading.Lock()
_watching: list["PeerWatch"] = []  # this agent's current watch, for main's error paths


def say(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr, flush=True)


def _listens_here(port: int) -> bool:
    """Does this process hold the listening socket of `port` (Linux; False where unknown)?"""
    try:
        inodes = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            with open(table) as f:
                for row in f.read().splitlines()[1:]:
                    cols = row.split()
                    if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(cols[9])
        mine = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")}
        return any(f"socket:[{inode}]" in mine for inode in inodes)
    except (OSError, ValueError, IndexError):
        return False


class PeerWatch:
    """Each agent's view of the others. Through the store that rank 0's agent hosts: beats, who
    is done or failed, the exit barrier. And a TCP connection to every other agent, which its
    kernel closes the moment that agent dies however it dies: a killed agent is noticed at once,
    a machine that goes silent (power, network) after `LOST_AFTER_S` without a beat.
    `on_lost(line)` is called once when a node is lost or the store stops answering before
    every node is done."""

    def __init__(self, host: str, port: int, rank: int, world: int, prefix: str, me: dict,
                 on_lost):
        self.rank, self.world, self.prefix, self.on_lost = rank, world, prefix, on_lost
        self.host, self.port, self.me = host, port, me
        self.nodes: dict[int, dict] = {rank: me}
        self.done: set[int] = set()
        self.failed: dict[int, float] = {}  # rank: when its failure was seen
        self.self_done = False
        self.failed_self = False
        self.stopping = threading.Event()
        self.all_done = threading.Event()
        self.store = None
        self.links: dict[int, socket.socket] = {}
        self._lost_lock = threading.Lock()
        self.ready = threading.Event()  # every other agent is linked (or cannot be)
        self.resolved: set[int] = set()
        self.listener = self._listen()
        self.thread = threading.Thread(target=self._run, name="book-peer-watch", daemon=True)
        self.thread.start()

    def _listen(self) -> socket.socket | None:
        """A socket the others connect to; nothing is ever sent: its closing is the message."""
        for addr in (self.me["addr"], ""):
            try:
                listener = socket.create_server((addr, 0), backlog=64)
                break
            except OSError:
                continue
        else:
            return None
        self.me["watch_port"] = listener.getsockname()[1]
        held = []  # accepted connections live as long as this process

        def accept() -> None:
            while True:
                try:
                    held.append(listener.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, name="book-peer-accept", daemon=True).start()
        return listener

    def _link(self, rank: int) -> None:
        """Connect to `rank`'s agent and wait, in a thread, for the connection to close."""
        node = self.nodes[rank]
        self.resolved.add(rank)
        if len(self.resolved) == self.world - 1:
            self.ready.set()
        if not node.get("watch_port") or rank in self.links:
            return
        try:
            link = socket.create_connection((node["addr"], node["watch_port"]), timeout=2.0)
        except OSError:
            return  # a firewall between the machines: the beats alone decide
        link.settimeout(None)
        self.links[rank] = link

        def wait_for_close() -> None:
            try:
                closed = link.recv(1) == b""
            except OSError:
                closed = True
            if closed and not self.stopping.is_set():
                self._peer_closed(rank)

        threading.Thread(target=wait_for_close, name=f"book-peer-link-{rank}", daemon=True).start()

    def _peer_closed(self, rank: int) -> None:
        # a node that finished or failed closes too: only a node that did neither is lost
        time.sleep(0.2)  # its last words (done, failed) reach the store before its socket closes
        try:
            store = self._connect()
            if store.add(self._key("done", rank), 0):
                return
            if store.add(self._key("failed", rank), 0):
                return  # the watch thread gives our own workers a moment, then reports it
        except Exception:  # noqa: BLE001 - the store went with it: the watch thread says so
            if rank == 0:
                return
        self._lost(f"lost {self.describe(rank)}: its agent's connection closed (killed, crashed "
                   "or its machine went down)")

    def _key(self, what: str, rank: int | None = None) -> str:
        return f"{self.prefix}/{what}" + ("" if rank is None else f"/{rank}")

    def _connect(self):
        import torch.distributed as dist

        deadline = time.monotonic() + LOST_AFTER_S
        while True:
            try:
                return dist.TCPStore(self.host, self.port, is_master=False,
                                     timeout=timedelta(seconds=LOST_AFTER_S))
            except RuntimeError:
                if time.monotonic() > deadline or self.stopping.is_set():
                    raise
                time.sleep(0.2)

    def describe(self, rank: int) -> str:
        node = self.nodes.get(rank)
        if node is None:
            return f"node {rank} of {self.world}"
        roles = [r for r, yes in (("hosts the run's store", rank == 0),
                                  ("hosts the rendezvous", node.get("rendezvous_host")))
                 if yes]
        return (f"node {rank} of {self.world} ({node['hostname']}, {node['addr']}, "
                f"agent pid {node['pid']}{'; ' + ' and '.join(roles) if roles else ''})")

    def _lost(self, line: str) -> None:
        with self._lost_lock:  # the watch thread and the links' threads: one report
            if self.stopping.is_set():
                return
            self.stopping.set()
        self.on_lost(line)

    def _run(self) -> None:
        try:
            self.store = store = self._connect()
            store.set(self._key("node", self.rank), json.dumps(self.me))
        except Exception as e:  # noqa: BLE001 - any failure to reach it means it is gone
            return self._lost(f"lost {self.describe(0)}: its store at {self.host}:{self.port} "
                              f"does not answer ({type(e).__name__})")
        others = [r for r in range(self.world) if r != self.rank]
        last = {r: 0 for r in others}
        heard = {r: time.monotonic() for r in others}
        while not self.stopping.is_set():
            try:
                store.add(self._key("beat", self.rank), 1)
                for r in others:
                    beats = store.add(self._key("beat", r), 0)
                    if beats != last[r]:
                        if last[r] == 0:
                            self.nodes[r] = json.loads(store.get(self._key("node", r)))
                            self._link(r)
                        last[r], heard[r] = beats, time.monotonic()
                    if r not in self.done and store.add(self._key("done", r), 0):
                        self.done.add(r)
                    if r not in self.failed and store.add(self._key("failed", r), 0):
                        self.failed[r] = time.monotonic()
            except Exception as e:  # noqa: BLE001
                if self.all_done.is_set() or self.stopping.is_set():
                    return  # rank 0 left after everyone was done: a normal end
                return self._lost(f"lost {self.describe(0)}: its store at {self.host}:{self.port} "
                                  f"stopped answering ({type(e).__name__})")
            if len(self.done) == len(others) and self.self_done:
                self.all_done.set()
            now = time.monotonic()
            for r, since in self.failed.items():
                # our workers, in a collective with its, fail too in a moment (then main reports
                # this node's failure); workers that do not are ended here
                if not self.failed_self and now - since > FAILED_GRACE_S:
                    return self._lost(f"{self.describe(r)} stopped: its workers failed")
            for r in others:
                if r not in self.done and r not in self.failed and now - heard[r] > LOST_AFTER_S:
                    what = "no beat" if last[r] else "it never beat"
                    return self._lost(f"lost {self.describe(r)}: {what} for "
                                      f"{now - heard[r]:.1f} s")
            self.stopping.wait(BEAT_S if self.ready.is_set() else 0.02)

    def finish(self) -> None:
        """This node's workers succeeded: tell the others, wait until every node is done (or
        lost, which the watch thread reports), then leave; rank 0 (the store's host) leaves
        last, so that nobody mistakes its exit for a loss."""
        deadline = time.monotonic() + EXIT_BARRIER_S
        try:
            self.store.add(self._key("done", self.rank), 1)
        except Exception:  # noqa: BLE001 - the watch thread reports a lost store
            pass
        self.self_done = True
        while not self.all_done.wait(0.05):
            if time.monotonic() > deadline:
                say(f"node {self.rank}: the others did not finish within {EXIT_BARRIER_S:g} s "
                    "of this node's workers; leaving")
                break
        try:
            self.store.add(self._key("left"), 1)
            if self.rank == 0:
                end = time.monotonic() + 2.0
                while self.store.add(self._key("left"), 0) < self.world and time.monotonic() < end:
                    time.sleep(0.05)
        except Exception:  # noqa: BLE001
            pass
        self.stop()

    def failed_here(self) -> None:
        """This node's workers failed: say so, so that the others do not take it for a loss."""
        self.failed_self = True
        try:
            if self.store is not None:
                self.store.add(self._key("failed", self.rank), 1)
        except Exception:  # noqa: BLE001
            pass

    def stop(self) -> None:
        self.all_done.set()
        self.stopping.set()


def _agent_class():
    from torch.distributed.elastic.agent.server.local_elastic_agent import LocalElasticAgent

    class GuardedAgent(LocalElasticAgent):
        """torchrun's agent with a peer watch and a short exit barrier (see the module)."""

        def __init__(self, *args, **kwargs):
            kwargs.setdefault("exit_barrier_timeout", EXIT_BARRIER_S)
            super().__init__(*args, **kwargs)
            self._watch: PeerWatch | None = None
            self._rounds = 0
            handler = self._worker_group.spec.rdzv_handler
            joined = handler.next_rendezvous

            def next_rendezvous():
                info = joined()
                self._start_watch(info, handler)
                return info

            handler.next_rendezvous = next_rendezvous

        def _start_watch(self, info, handler) -> None:
            if self._watch is not None:
                self._watch.stop()
                self._watch = None
            self._rounds += 1
            if info.world_size < 2:
                return
            store_info = info.bootstrap_store_info
            endpoint_port = _endpoint_port(self._worker_group.spec)
            me = {"hostname": socket.gethostname(), "addr": self._local_addr_or_host(),
                  "pid": os.getpid(),
                  "rendezvous_host": bool(endpoint_port) and _listens_here(endpoint_port)}
            prefix = f"book.watch/{handler.get_run_id()}/{self._rounds}"
            self._watch = PeerWatch(store_info.master_addr, store_info.master_port, info.rank,
                                    info.world_size, prefix, me, self._lost)
            _watching[:] = [self._watch]
            # the workers start once every agent watches every other: no phase is unwatched
            self._watch.ready.wait(LOST_AFTER_S)

        def _local_addr_or_host(self) -> str:
            return self._worker_group.spec.local_addr or socket.getfqdn()

        def _lost(self, line: str) -> None:
            with _report_lock:
                say(line + "; ending this node's workers")
                self._kill_workers()
                sys.stdout.flush()
                os._exit(EXIT_PEER_LOST)

        def _kill_workers(self) -> None:
            pcontext = getattr(self, "_pcontext", None)
            pids = pcontext.pids().values() if pcontext is not None else []
            for pid in pids:
                for kill in (os.killpg, os.kill):  # torchrun gives each worker its own session
                    try:
                        kill(pid, signal.SIGKILL)
                        break
                    except OSError:
                        continue

        def _exit_barrier(self):
            if self._watch is not None:
                self._watch.finish()

        def _shutdown(self, *args, **kwargs):
            watch = self._watch
            if watch is not None and not watch.all_done.is_set() and not watch.stopping.is_set():
                watch.failed_here()
            super()._shutdown(*args, **kwargs)

    return GuardedAgent


def _endpoint_port(spec) -> int:
    try:
        return int(spec.rdzv_handler._store.port)  # the c10d backend's TCPStore
    except (AttributeError, ValueError, TypeError):
        return 0


def _merge_rdzv_conf(user_conf: str, defaults: dict = RDZV_DEFAULTS) -> str:
    conf = {k: str(v) for k, v in defaults.items()}
    for item in filter(None, (s.strip() for s in (user_conf or "").split(","))):
        key, _, value = item.partition("=")
        conf[key.strip()] = value.strip()
    return ",".join(f"{k}={v}" for k, v in conf.items())


def parse(argv: Sequence[str]):
    """torchrun's own parser; the script is one of our checks (or `-m book.chapters.parallel`)."""
    from torch.distributed.run import get_args_parser

    parser = get_args_parser()
    parser.prog = PROG
    parser.description = (__doc__ or "").split("\n\n")[0]
    args = parser.parse_args(list(argv))
    if args.module and args.training_script == "book.chapters.parallel":
        checks = list(args.training_script_args)
    elif not args.module and args.training_script in CHECKS:
        checks = [args.training_script, *args.training_script_args]
    else:
        parser.error(f"{PROG} runs the book's checks ({', '.join(CHECKS[:3])}), e.g. "
                     f"{PROG} --nnodes=2 --nproc-per-node=1 --rdzv-backend=c10d "
                     "--rdzv-endpoint=HOST:29500 --rdzv-id=JOB gradients; "
                     f"not {args.training_script!r}")
    if args.no_python or args.run_path:
        parser.error("--no-python and --run-path do not apply: the workers run the book's checks")
    if args.standalone or args.rdzv_backend == "c10d":
        args.rdzv_conf = _merge_rdzv_conf(args.rdzv_conf)
    elif args.rdzv_backend == "static":
        args.rdzv_conf = _merge_rdzv_conf(args.rdzv_conf, STATIC_DEFAULTS)
    if args.shutdown_timeout is None:
        args.shutdown_timeout = SHUTDOWN_TIMEOUT_S
    return args, checks


def _failure_line(error) -> str:
    parts = []
    for rank, failure in sorted(getattr(error, "failures", {}).items()):
        message = str(failure.message).strip().splitlines()[0] if failure.message else ""
        if message.startswith("To enable traceback"):  # torch's text when there is no error file
            message = ""
        parts.append(f"rank {rank} exit code {failure.exitcode}"
                     + (f": {message}" if message else ""))
    return "workers failed: " + "; ".join(parts) if parts else f"workers failed: {error}"


def _give_the_watch_time() -> None:
    """A failure here may be a lost machine's doing: wait until the watch has named it (it ends
    the process) or has seen every node alive long enough to rule a loss out."""
    watch = _watching[0] if _watching else None
    if watch is None:
        return
    deadline = time.monotonic() + LOST_AFTER_S + 2 * BEAT_S
    while time.monotonic() < deadline and not watch.stopping.is_set():
        if len(watch.done) + len(watch.failed) == watch.world - 1:
            return  # every other node is accounted for: nothing is lost
        time.sleep(0.05)
    if watch.stopping.is_set() and not watch.all_done.is_set():
        time.sleep(LOST_AFTER_S)  # it is reporting, and ends this process


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(os.environ.get(k) is None for k in QUIET_ENV):
        # torch reads these when it loads, which has happened here already: start again (same pid)
        env = {**os.environ, **{k: v for k, v in QUIET_ENV.items() if k not in os.environ}}
        os.execve(sys.executable, [sys.executable, "-m", __spec__.name if __spec__ else
                                   "book.chapters.parallel.torchrun", *argv], env)
    import torch.distributed.launcher.api as launcher_api
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import config_from_args

    args, checks = parse(argv)
    if os.environ.get("LOGLEVEL", "").upper() == "CRITICAL":  # ours (a user's LOGLEVEL wins)
        import logging

        for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ[AGENT_PID_ENV] = str(os.getpid())  # the workers' environment: who their agent is
    os.environ.pop("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", None)  # the watch needs the agent's store
    if args.standalone:
        args.rdzv_backend, args.rdzv_endpoint = "c10d", "localhost:0"
        args.rdzv_id = args.rdzv_id if args.rdzv_id != "none" else str(os.getpid())
    config, _, _ = config_from_args(args)
    launcher_api.LocalElasticAgent = _agent_class()  # launch_agent builds its agent from this name
    try:
        launcher_api.launch_agent(config, sys.executable, ["-u", "-c", PRELUDE, *checks])
    except ChildFailedError as e:
        _give_the_watch_time()  # a lost peer makes our workers fail first; the watch names it
        with _report_lock:
            say(_failure_line(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - rendezvous and store errors: one line, not a traceback
        name = type(e).__name__
        _give_the_watch_time()
        with _report_lock:
            first = (str(e).strip().splitlines() or [""])[0]
            say(f"{name}: {first} (rendezvous {args.rdzv_backend} at {config.rdzv_endpoint})")
        return 1
    return 0


if __name__ == "__main__":
    code = main()
    # done: skip the interpreter's teardown (torch's stores and threads take seconds to go)
    sys.stdout.flush(), sys.stderr.flush()
    os._exit(code)
