"""book.chapters.parallel on real worker processes: split-matmul identities, gradient equality of data
parallelism with 2 and 3 processes, the traffic counters, clean failure and freed ports, and
workers that end with their launcher however and whenever it dies."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import torch

from book.chapters import parallel as P


def _batch(n=96, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 28, 28, generator=gen), torch.randint(0, 10, (n,), generator=gen)


@pytest.fixture(scope="module")
def pool2():
    with P.Pool(2, timeout_s=120) as pool:
        yield pool
    assert P.port_is_free(pool.port)


def test_collective_on_two_processes(pool2):
    assert pool2.run(P.rank_sum, 1.0) == [3.0, 3.0]  # 1·1 + 1·2 on both ranks


def test_split_identities_forward_backward_and_traffic(pool2):
    r = pool2.run(P.split_identities, 128, 1000, 500, 0)
    for rank in r:
        for split in ("first", "second"):
            assert rank[split]["forward_err"] < 1e-10
            assert rank[split]["backward_err"] < 1e-10
            assert rank[split]["weight_grad_err"] < 1e-10
    first, second = r[0]["first"], r[0]["second"]
    assert (first["sent_forward"], first["sent_backward"]) == (64_000, 64_000)
    assert (second["sent_forward"], second["sent_backward"]) == (32_000, 128_000)
    assert second["forward_block"] == [128, 250] and first["backward_block"] == [128, 500]
    assert r[0]["data"]["sent"] == 500_000


def _check_data_parallel(results, ref, world):
    for r in results:
        assert (r["first_grad"] - ref["first_grad"]).abs().max().item() <= 1e-6
        assert max(abs(a - b) for a, b in zip(r["losses"], ref["losses"])) <= 1e-5
    n = ref["first_grad"].numel()
    assert results[0]["traffic"]["elements"]["all_reduce"] == pytest.approx(2 * (world - 1) / world * n)


def _reference(x, y):
    return P.train_single(x, y, [784, 32, 10], batch_size=96, steps=3, lr=0.1, seed=0)


def test_data_parallel_gradient_equals_single_process_two_workers(pool2):
    x, y = _batch(96)
    _check_data_parallel(pool2.run(P.dp_train, x, y, [784, 32, 10], 96, 3, 0.1, 0), _reference(x, y), 2)


def test_three_workers_gradient_and_splits():
    x, y = _batch(96)
    with P.Pool(3, timeout_s=120) as pool:
        dp = pool.run(P.dp_train, x, y, [784, 32, 10], 96, 3, 0.1, 0)
        split = pool.run(P.split_identities, 12, 9, 6, 1)
    _check_data_parallel(dp, _reference(x, y), 3)
    for rank in split:
        for kind in ("first", "second"):
            assert rank[kind]["forward_err"] < 1e-10 and rank[kind]["backward_err"] < 1e-10
    assert P.port_is_free(pool.port)


def test_crashing_worker_fails_the_run_with_its_traceback():
    t0 = time.monotonic()
    pool = P.Pool(2, timeout_s=60)
    with pytest.raises(P.WorkerFailed) as err:
        with pool:
            pool.run(P.crash_on_rank, 1, "worker one breaks on purpose")
    assert "worker 1 of 2" in str(err.value)
    assert "RuntimeError: worker one breaks on purpose" in str(err.value)
    assert "crash_on_rank" in str(err.value)  # the worker's own traceback, not only a message
    assert time.monotonic() - t0 < 45  # no hang: the healthy worker blocked in a barrier is ended
    assert not pool._processes
    assert P.port_is_free(pool.port)


def test_bad_parameters_rejected_before_any_process_starts():
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="at least 1"):
        P.Pool(0)
    with pytest.raises(ValueError, match="larger than allowed"):
        P.Pool(P.max_world_size() + 1)
    with pytest.raises(TypeError, match="world_size must be an int"):
        P.launch(P.rank_sum, "2", (1.0,))
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        P.check_split(1000, 3)
    with pytest.raises(ValueError, match="module-level function"):
        P.launch(lambda w: 0, 2)
    with pytest.raises(ValueError, match="split must be"):
        P.SplitLinear(torch.zeros(4, 4), None, "diagonal", 0, 2)
    assert time.monotonic() - t0 < 1.0  # nothing was started


def test_flat_gradients_are_views_and_match_autograd():
    model = P.mlp([20, 8, 3], seed=0)
    grads = P.FlatGradients(model)
    x = torch.randn(5, 20)
    for _ in range(2):  # zero() then backward must land in the flat buffer every time
        grads.zero()
        model(x).sum().backward()
    ref = P.mlp([20, 8, 3], seed=0)
    ref(x).sum().backward()
    assert all(p.grad is v for p, v in zip(model.parameters(), grads.views))  # accumulated in place
    assert torch.equal(grads.average(), P.flat_grad(ref))
    model.zero_grad(set_to_none=True)  # someone drops the views: average() must still see the gradient
    model(x).sum().backward()
    assert torch.equal(grads.average(), P.flat_grad(ref))


def test_local_split_identities_match_the_post():
    # the algebra alone, in one process: the identities the distributed layers rely on
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(128, 1000, generator=gen, dtype=torch.float64), torch.randn(1000, 500, generator=gen, dtype=torch.float64)
    d = torch.randn(128, 500, generator=gen, dtype=torch.float64)
    assert torch.allclose(x[:, :500] @ w[:500] + x[:, 500:] @ w[500:], x @ w)
    assert torch.allclose(torch.cat([x @ w[:, :250], x @ w[:, 250:]], 1), x @ w)
    assert torch.allclose(torch.cat([d @ w[:500].T, d @ w[500:].T], 1), d @ w.T)
    assert torch.allclose(d[:, :250] @ w[:, :250].T + d[:, 250:] @ w[:, 250:].T, d @ w.T)


def test_the_same_workers_run_under_torchrun():
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    if not os.path.exists(torchrun):
        pytest.skip("torchrun is not installed next to this python")
    # --standalone: torchrun's own rendezvous on a free port; a new session so that a hang can be
    # ended with all of torchrun's workers (no orphans even when this test fails)
    proc = subprocess.Popen([torchrun, "--standalone", "--nproc-per-node=2", "-m", "book.chapters.parallel", "gradients",
                             "--batch", "32"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert proc.returncode == 0, stderr[-2000:]
    diff = float(stdout.rsplit("=", 1)[1])
    assert "2 workers, gloo" in stdout and diff <= 1e-6


def test_the_posts_arithmetic():
    assert P.transfer_ms_post(4e6, 40) == pytest.approx(0.745, abs=1e-3)
    assert P.transfer_ms_plain(4e6, 40) == pytest.approx(0.8)
    assert P.naive_exchange_ms(2, 3, 0.75, 0.25, serialised=False) == pytest.approx(2.25)
    assert P.naive_exchange_ms(2, 3, 0.75, 0.25, serialised=True) == pytest.approx(6.75)
    assert P.naive_exchange_ms(4, 3, 0.75, 0.25, serialised=True) == pytest.approx(20.25)
    assert P.ring_allreduce_ms(4e6, 2, 40) == pytest.approx(0.8)


def test_hybrid_traffic_by_hand():
    # conv part: Linear 4→6 (30 parameters); dense part: Linear 6→2 (14); 1 example per worker, 2 workers
    counts = P.hybrid_traffic(torch.nn.Sequential(torch.nn.Linear(4, 6)), torch.nn.Sequential(torch.nn.Linear(6, 2)),
                              (4,), 1, 2)
    assert counts["data"] == 44                # all 44 gradients, 2(N-1)/N = 1
    assert counts["model"] == 6 + 10           # layer 1: gather 6 outputs of 2 examples / 2; layer 2: 2·2 + 2·3
    assert counts["hybrid"] == 30 + 6 + 10     # conv gradients + gathered features + split dense layer


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


LAUNCHER = """
import os, signal, socket, sys, time
from book.chapters import parallel as P
if __name__ == '__main__':
    phase = sys.argv[1]
    if phase == "start-up":  # a store that accepts connections and never answers: the workers hang in connect
        mute = socket.create_server(("127.0.0.1", 0))
        P.pool._open_store = lambda timeout_s: type("Mute", (), {"port": mute.getsockname()[1]})()
    pool = P.Pool(2, timeout_s=60)
    pool.start()
    if phase == "start-up":
        mute.settimeout(50)
        peers = [mute.accept() for _ in range(2)]  # both workers are now inside the store's connect
    else:
        pool.run(P.rank_sum, 1.0)  # the group is up
    print(pool._outdir, *[p.pid for p in pool._processes], flush=True)
    if phase == "task":
        pool.run(P.busy_for, 60.0)  # killed while the workers compute
    elif phase == "exit":
        os._exit(1)  # ends with no cleanup at all, between tasks
    time.sleep(60)
"""


def _kill_launcher_in(phase: str, wait_s: float) -> tuple[float, list[int], str]:
    """Start a launcher, SIGKILL it (only it) `wait_s` seconds after it reported its workers, and
    return how long the workers outlived it, their pids (any still alive are killed) and its folder."""
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, phase], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        outdir, *pids = proc.stdout.readline().split() or [""]  # not communicate(): orphans would hold the pipe
        pids = [int(p) for p in pids]
        time.sleep(wait_s)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        died = time.monotonic()
        deadline = died + 20
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        outlived = time.monotonic() - died
    finally:
        proc.stdout.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for p in pids:  # never leave them behind, even when the test fails
        if _alive(p):
            os.kill(p, signal.SIGKILL)
    assert len(pids) == 2, "the launcher did not report its workers"
    return outlived, pids, outdir


def _assert_gone(outlived: float, outdir: str, within_s: float) -> None:
    assert outlived <= within_s, f"workers outlived their launcher by {outlived:.1f} s"
    leftover = os.path.isdir(outdir)
    if leftover and outdir.startswith(tempfile.gettempdir()):
        shutil.rmtree(outdir, ignore_errors=True)
    assert not leftover, f"the result folder {outdir} was left behind"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_workers_end_when_the_launcher_is_killed_during_start_up():
    # killed while both workers wait in the store's connect (the store accepted and never answers);
    # before the fix they waited there for the whole 60 s timeout
    outlived, _, outdir = _kill_launcher_in("start-up", 0.0)
    _assert_gone(outlived, outdir, within_s=2.0)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_workers_end_when_the_launcher_is_killed_while_a_task_runs():
    outlived, _, outdir = _kill_launcher_in("task", 0.5)
    _assert_gone(outlived, outdir, within_s=2.0)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_workers_end_when_the_launcher_exits_between_tasks_without_cleanup():
    outlived, _, outdir = _kill_launcher_in("exit", 0.0)
    _assert_gone(outlived, outdir, within_s=2.0)


def test_result_folders_of_dead_launchers_are_removed_by_the_next_pool(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs (reaped)
    orphan = tmp_path / f"{P.RESULT_DIR_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{P.RESULT_DIR_PREFIX}{os.getpid()}-def"
    other = tmp_path / f"{P.RESULT_DIR_PREFIX}x-ghi"
    for d in (orphan, live, other):
        d.mkdir()
        (d / "task0-rank0.pt").write_bytes(b"0")
    assert P.remove_stale_result_dirs(str(tmp_path)) == [str(orphan)]
    assert not orphan.exists() and live.exists() and other.exists()


def test_model_parallel_training_equals_single_process(pool2):
    x, y = _batch(64)
    ref = P.train_single(x, y, [784, 32, 10], batch_size=32, steps=2, lr=0.1, seed=0)
    for split in ("first", "second"):
        r = pool2.run(P.mp_train, x, y, [784, 32, 10], 32, 2, 0.1, 0, split)[0]
        assert max(abs(a - b) for a, b in zip(r["losses"], ref["losses"])) <= 1e-5
    first = pool2.run(P.mp_train, x, y, [784, 32, 10], 32, 1, 0.1, 0, "first")[0]["traffic"]["elements"]
    # layer 1: forward partial sums 32×32, no deltas for the data; layer 2: 32×10 sums, 32×16 delta blocks
    assert first == {"all_reduce": 32 * 32 + 32 * 10, "all_gather": 32 * 16}


def test_rmsprop_overlap_leaves_the_weights_bit_identical(pool2):
    """The post's overlap (an all-reduce in flight while another layer's RMSProp update runs)
    only reorders independent work: both copies end with the same weights."""
    res = pool2.run(P.rmsprop_overlap_trials, [20, 16, 16, 4], 8, 3)
    for r in res:
        assert r["weight_difference"] == 0.0
        assert len(r["sequential"]) == len(r["overlapped"]) == 3


def test_hybrid_trains_the_same_net_as_one_process_and_sends_less(pool2):
    x, y = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0)), \
        torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    single = P.convnet_train_single(x, y, 32, 2, 0.1, 0)
    res = pool2.run(P.hybrid_train, x, y, 32, 2, 0.1, 0)
    for r in res:
        assert max(abs(a - b) for a, b in zip(r["losses"], single["losses"])) < 1e-5
    conv, dense = P.mnist_convnet(0)
    params = sum(p.numel() for p in [*conv.parameters(), *dense.parameters()])
    assert sum(res[0]["traffic"]["elements"].values()) < params  # data parallel: 2(N-1)/N·params
    timed = pool2.run(P.hybrid_vs_dp_trials, 8, 2)[0]
    assert timed["hybrid_elements"] < timed["data_elements"] and len(timed["hybrid"]) == 2


def test_hybrid_fails_without_the_convolution_gradient_exchange(pool2):
    """The check can fail: a hybrid that forgets to sum its convolution gradients drifts away."""
    res = pool2.run(_hybrid_without_exchange)
    assert res[0] > 1e-4


def _hybrid_without_exchange(w):
    x = torch.randn(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))
    single = P.convnet_train_single(x, y, 32, 2, 0.5, 0)
    net = P.HybridNet(*P.mnist_convnet(0), "first", w)
    part = P.shard(32, w.rank, w.world_size)
    losses = []
    for step in range(2):
        xb, yb = x[step * 32:(step + 1) * 32][part], y[step * 32:(step + 1) * 32]
        net.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xb), yb)
        loss.backward()  # no net.average_conv_gradients(): each worker keeps only its share
        with torch.no_grad():
            for p in net.parameters():
                p -= 0.5 * p.grad
        losses.append(loss.item())
    # the second step's loss depends on the first update of the convolutions
    return abs(losses[1] - single["losses"][1])


# -- the data-parallelism chapter's measurements (book.chapters.parallel.data_parallel) -----------
def test_chapter_measurements_run_on_the_workers(pool2):
    """dp-4, dp-7, dp-5, dp-11 on tiny sizes: the averaged gradient is the whole batch's, the
    all-reduce is timed at every size and the overlapped RMSProp copy keeps identical weights."""
    x, y = _batch(96)
    dp = P.train_data_parallel({2: pool2}, [2], x, y, [784, 32, 10], 48, 2, 0.1, 0)
    assert dp.grad_err <= 1e-6 and dp.loss_err <= 1e-5 and dp.steps == 2
    assert dp.sent[2] == pytest.approx(4 * sum(p.numel() for p in P.mlp([784, 32, 10], seed=0).parameters()))
    with pytest.raises(ValueError, match="batch size"):
        P.train_data_parallel({3: pool2}, [3], x, y, [784, 32, 10], 50, 2, 0.1, 0)  # checked first
    link = P.measure_link({1: None, 2: pool2}, [1024, 4096], 2, [8, 8, 4], 4)
    assert list(link.allreduce_s) == [2] and len(link.allreduce_s[2]) == 2  # only multi-worker pools
    assert len(link.step_trials[2]["step"]) == 4
    ddp = P.time_ddp_overlap(pool2, [8, 8, 4], 4, 2, bucket_mb=1.0)
    assert len(ddp.without) == len(ddp.with_) == 2
    rms = P.time_rmsprop_overlap(pool2, [8, 8, 4], 4, 2)
    assert rms.weight_difference == 0.0 and len(rms.with_) == 2


# -- the model-parallelism chapter's measurements (book.chapters.parallel.model_parallel) ---------
def test_model_parallel_chapter_measurements_run_on_the_workers(pool2):
    """mp-1..mp-3, the trained identities, mp-4, mp-6 and mp-8 on tiny sizes."""
    split = P.SplitChecks(pool2.run(P.split_identities, 128, 1000, 500, 0))
    assert max(split.forward_errors + split.backward_errors) < 1e-10
    assert split.counted == [500_000, 128_000, 160_000]
    x, y = _batch(64)
    mp = P.train_model_parallel(pool2, x, y, [784, 32, 10], 32, 2, 0.1, 0)
    assert list(mp.runs) == ["first", "second"] and mp.loss_err() <= 1e-5
    with pytest.raises(ValueError, match="layer width"):
        P.train_model_parallel(pool2, x, y, [784, 33, 10], 32, 2, 0.1, 0)  # checked before any work
    sweep = P.time_dp_vs_mp(pool2, [8, 16], [8], rounds=2)
    assert [row["width"] for row in sweep.at(8)] == [8, 16] and len(sweep.at(8)[0]["dp_times"]) == 2
    hybrid = P.train_hybrid(pool2, torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,)), steps=2,
                            lr=0.1, seed=0, batch=32, judged_steps=2)
    assert hybrid.error < 1e-5 and hybrid.sent < hybrid.data_sent
    timed = P.time_hybrid(pool2, batch=8, rounds=2, seed=0)
    assert len(timed.trials["hybrid"]) == 2 and timed.ratio[1] <= timed.ratio[0] <= timed.ratio[2]
    pipe = P.time_pipeline(pool2, width=16, depth=2, batch=8, chunks=4, rounds=2, seed=0)
    assert pipe.difference < 1e-12 and len(pipe.trials["pipelined"]) == 2


def test_micro_batch_pipeline_gives_the_blocking_outputs(pool2):
    res = pool2.run(P.mp_overlap_trials, 16, 2, 8, 4, 2)
    assert all(r["difference"] < 1e-12 and len(r["pipelined"]) == 2 for r in res)
    with pytest.raises(Exception):
        pool2.run(P.mp_overlap_trials, 16, 2, 9, 4, 2)  # 9 does not split into 4 micro-batches


def test_gradient_noise_falls_with_the_batch_and_compares_equal_computation():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(600, 1, 28, 28, generator=gen), torch.randint(0, 10, (600,), generator=gen)
    out = P.gradient_noise(x, y, [784, 16, 10], [8, 512], 4, seed=0, train_steps=5,
                           eval_size=200, same_compute=(128, 512))
    for state in ("initialised", "trained"):
        rows = out[state]["rows"]
        assert sum(rows[512]["cosine"]) > sum(rows[8]["cosine"])  # more examples, closer to full
        assert all(-1 <= c <= 1 for c in rows[8]["cosine"])
        assert len(out[state]["equal_compute"]["small"]) == 4
    with pytest.raises(ValueError):
        P.gradient_noise(x, y, [784, 16, 10], [8], 1, seed=0, train_steps=0, same_compute=(100, 512))

