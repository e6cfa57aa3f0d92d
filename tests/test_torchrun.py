"""book.chapters.parallel.torchrun: two torchrun agents on 127.0.0.1 (two "machines", c10d
rendezvous) give exactly the standalone answers, and when one machine is lost (its agent
SIGKILLed: the rendezvous store's host or the other one, while the workers start up or mid-run)
every other process ends within 10 s, the survivor says which node it lost in one line, and no
worker is left behind (psutil: by the run id in the processes' environment)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import book  # noqa: F401 - the numerics profile before torch
import psutil
import pytest
import torch

from book.chapters.parallel import torchrun as T
from book.chapters.parallel.cli import EXIT_PEER_LOST

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GONE_WITHIN_S = 10.0
LOST_LINE = f"{T.PROG}: lost node"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT, **extra}
    env.pop("BOOK_AGENT_PID", None)
    return env


class Run:
    """Agents started by a test, their workers (seen while alive) and their output files."""

    def __init__(self, tmp_path, run_id: str):
        self.tmp, self.run_id = tmp_path, run_id
        self.agents: list[subprocess.Popen] = []
        self.workers: dict[int, set[int]] = {}

    def start(self, node: int, args: list[str], env: dict) -> subprocess.Popen:
        out = open(self.tmp / f"agent{node}.out", "w")
        err = open(self.tmp / f"agent{node}.err", "w")
        proc = subprocess.Popen([sys.executable, "-m", "book.chapters.parallel.torchrun", *args],
                                cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        out.close(), err.close()
        self.agents.append(proc)
        self.workers[proc.pid] = set()
        return proc

    def output(self, node: int, stream: str = "err") -> str:
        return (self.tmp / f"agent{node}.{stream}").read_text()

    def look(self) -> None:
        for agent in self.agents:
            try:
                self.workers[agent.pid] |= {c.pid for c in psutil.Process(agent.pid).children()}
            except psutil.NoSuchProcess:
                pass

    def wait_until(self, condition, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self.look()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n" + self.outputs())
            time.sleep(0.02)
        self.look()

    def alive(self) -> list[int]:
        for agent in self.agents:
            agent.poll()  # reap our own children
        pids = [a.pid for a in self.agents if a.returncode is None]
        for workers in self.workers.values():
            pids += [pid for pid in workers if _running(pid)]
        return sorted(set(pids) | set(self.strays()))

    def strays(self) -> list[int]:
        """Any process on this machine that belongs to the run (torchrun puts the run id in its
        workers' environment): what an orphan would look like."""
        found = []
        for p in psutil.process_iter(["pid"]):
            try:
                if p.environ().get("TORCHELASTIC_RUN_ID") == self.run_id and _running(p.pid):
                    found.append(p.pid)
            except (psutil.Error, OSError):
                continue
        return found

    def outputs(self) -> str:
        return "\n".join(f"--- agent {n} {s}:\n{self.output(n, s)[-3000:]}"
                         for n in range(len(self.agents)) for s in ("out", "err"))

    def cleanup(self) -> None:
        self.look()
        for pid in self.alive():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for agent in self.agents:
            agent.wait(10)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _listener(pid: int, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                   for c in psutil.Process(pid).net_connections(kind="tcp"))
    except psutil.Error:
        return False


def _two_agents(tmp_path, checks: list[str], env: dict) -> tuple[Run, int]:
    port, run_id = _free_port(), f"book-test-{uuid.uuid4().hex[:12]}"
    run = Run(tmp_path, run_id)
    common = ["--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
              f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={run_id}", "--local-addr=127.0.0.1"]
    for node in (0, 1):  # node 0 hosts the rendezvous and, started first (lower pid), is rank 0,
        # whose agent hosts the workers' store: "the store host"; node 1 hosts nothing
        run.start(node, [*common, f"--rdzv-conf=is_host={int(node == 0)}", *checks], env)
    return run, port


def _results_equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(
            _results_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_results_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_two_agents_give_exactly_the_standalone_answers(tmp_path):
    # no quiet variables in the environment: the launcher's own path (it restarts itself)
    env = {k: v for k, v in _env().items() if k not in T.QUIET_ENV}
    checks = ["gradients", "split", "--batch", "32"]
    run, _ = _two_agents(tmp_path, [*checks, "--out", str(tmp_path / "two.pt")], env)
    try:
        for agent in run.agents:
            agent.wait(120)
    finally:
        run.cleanup()
    assert [a.returncode for a in run.agents] == [0, 0], run.outputs()
    assert not run.strays()
    two_agents_out = run.output(0, "out") + run.output(1, "out")

    standalone = subprocess.run(  # (the quiet variables set: it need not restart itself)
        [sys.executable, "-m", "book.chapters.parallel.torchrun", "--standalone",
         "--nproc-per-node=2", *checks, "--out", str(tmp_path / "one.pt")],
        cwd=ROOT, env=_env(**T.QUIET_ENV), capture_output=True, text=True, timeout=120)
    assert standalone.returncode == 0, standalone.stderr[-3000:]
    assert two_agents_out == standalone.stdout  # the same lines, digit for digit
    assert "2 workers, gloo" in standalone.stdout
    two = torch.load(tmp_path / "two.pt", weights_only=False)
    one = torch.load(tmp_path / "one.pt", weights_only=False)
    assert two.keys() == one.keys() == {"gradients", "split"}
    assert _results_equal(two, one)  # bit for bit: gradients and both splits' errors and shapes


@pytest.mark.parametrize("phase", ["start-up", "mid-run"])
@pytest.mark.parametrize("victim", ["store host", "other"])
def test_a_lost_machine_ends_every_process_within_seconds(tmp_path, victim, phase):
    env = _env(**T.QUIET_ENV)  # set here: the launcher need not restart itself (saves a second)
    run, port = _two_agents(tmp_path, ["hold", "--seconds", "60"], env)
    try:
        run.wait_until(lambda: _listener(run.agents[0].pid, port), 60, "the rendezvous store")
        target = run.agents[0] if victim == "store host" else run.agents[1]
        if phase == "start-up":  # its worker exists (it is importing torch), nobody computes yet
            run.wait_until(lambda: run.workers[target.pid], 60, "the victim's worker")
        else:
            run.wait_until(lambda: "hold: 2 workers" in run.output(0, "out") + run.output(1, "out"),
                           90, "the run to start")
            assert all(run.workers.values()), "both machines have a worker"
        os.kill(target.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while run.alive() and time.monotonic() - killed_at < GONE_WITHIN_S:
            time.sleep(0.05)
        left = run.alive()
        took = time.monotonic() - killed_at
        assert not left, f"{left} still running {took:.1f} s after the kill\n" + run.outputs()
        print(f"{victim}, {phase}: every process gone {took:.2f} s after the kill")
    finally:
        run.cleanup()
    survivor = next(n for n, a in enumerate(run.agents) if a is not target)
    err = run.output(survivor)
    lost_lines = [line for line in err.splitlines() if line.startswith(LOST_LINE)]
    assert len(lost_lines) == 1, run.outputs()
    assert f"lost node {0 if victim == 'store host' else 1} of 2" in lost_lines[0], lost_lines[0]
    assert f"agent pid {target.pid}" in lost_lines[0] or "store at 127.0.0.1:" in lost_lines[0]
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert run.agents[survivor].returncode == EXIT_PEER_LOST, run.outputs()
    assert not run.strays()


def test_a_machine_that_goes_silent_is_lost_after_its_beats_stop(tmp_path):
    # SIGSTOP: the agent's sockets stay open, as a machine's do when its power or network goes;
    # only the missing beats can tell. The survivor ends within LOST_AFTER_S and a beat or two.
    env = _env(**T.QUIET_ENV)
    run, port = _two_agents(tmp_path, ["hold", "--seconds", "60"], env)
    frozen = run.agents[1]
    try:
        run.wait_until(lambda: "hold: 2 workers" in run.output(0, "out"), 90, "the run to start")
        os.kill(frozen.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        survivor = run.agents[0]
        survivor.wait(GONE_WITHIN_S)
        took = time.monotonic() - stopped_at
        assert T.LOST_AFTER_S <= took + 2 * T.BEAT_S and took < GONE_WITHIN_S
        assert survivor.returncode == EXIT_PEER_LOST
        lost = [line for line in run.output(0).splitlines() if line.startswith(LOST_LINE)]
        assert len(lost) == 1 and "lost node 1 of 2" in lost[0] and "no beat" in lost[0], lost
        assert not [pid for pid in run.workers[survivor.pid] if _running(pid)]
        print(f"silent machine: the survivor gone {took:.2f} s after it went silent")
        os.kill(frozen.pid, signal.SIGKILL)  # the machine is gone for good: so is its worker
        killed_at = time.monotonic()
        while run.alive() and time.monotonic() - killed_at < GONE_WITHIN_S:
            time.sleep(0.05)
        assert not run.alive(), run.outputs()
    finally:
        run.cleanup()


def test_rendezvous_options_keep_the_users_values():
    merged = T._merge_rdzv_conf("join_timeout=900, read_timeout=3")
    conf = dict(item.split("=") for item in merged.split(","))
    assert conf["join_timeout"] == "900" and conf["read_timeout"] == "3"
    assert conf["close_timeout"] == str(T.RDZV_DEFAULTS["close_timeout"])
    args, checks = T.parse(["--nnodes=2", "--rdzv-backend=c10d", "--rdzv-endpoint=h:1",
                            "gradients", "--batch", "8"])
    assert checks == ["gradients", "--batch", "8"] and args.shutdown_timeout == 5
    args, checks = T.parse(["--standalone", "-m", "book.chapters.parallel", "split"])
    assert checks == ["split"] and "keep_alive_interval=1" in args.rdzv_conf
    with pytest.raises(SystemExit):
        T.parse(["--nnodes=2", "train.py"])
