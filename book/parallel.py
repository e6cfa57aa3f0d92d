"""Data and model parallelism on real worker processes (torch.distributed: gloo on CPU, nccl on GPUs).

`launch(fn, world_size, args)` starts `world_size` processes with torch.multiprocessing (spawn),
joins them into one process group and returns what `fn(worker, *args)` returned on each rank.
The same worker functions run under `torchrun` on several machines (`python -m book.parallel`).

Reliability: parameters are checked before any process starts; the rendezvous store is opened by
the launcher on a port the OS picks (no race for a "free" port) and closed at the end; a worker that
raises makes `launch` raise `WorkerFailed` with that worker's traceback after the other workers are
terminated; a run that exceeds its timeout is killed. No process outlives `launch`.

The parallel algorithms themselves are written here from the posts' description:
- `FlatGradients`: data parallelism — every gradient is a view into one flat buffer, so the
  gradient exchange is a single all-reduce of exactly the gradient's bytes;
- `SplitLinear`: model parallelism — a linear layer whose weight is split by its first dimension
  (partial products are added: all-reduce forward, deltas stacked: all-gather backward) or by its
  second (outputs stacked: all-gather forward, deltas added: all-reduce backward);
- `Traffic`: every collective goes through `all_reduce` / `all_gather_cat` below, which count the
  elements each worker sends (ring algorithms: 2(N-1)/N·n for an all-reduce of n elements,
  (N-1)·n for an all-gather of n-element blocks; with two workers: exactly the tensor handed over).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import shutil
import socket
import tempfile
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp
from torch import nn

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


# -- the worker's view of the run ---------------------------------------------------------------
@dataclass
class Worker:
    """What a worker function gets: its rank, the world size, its device and a traffic counter."""
    rank: int
    world_size: int
    device: torch.device
    traffic: "Traffic" = field(default_factory=lambda: Traffic())

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


class Traffic:
    """Elements and bytes this worker sent, per kind of collective (ring-algorithm volumes)."""

    def __init__(self) -> None:
        self.elements: dict[str, float] = defaultdict(float)
        self.bytes: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.enabled = True

    def add(self, kind: str, elements: float, element_size: int) -> None:
        if self.enabled:
            self.elements[kind] += elements
            self.bytes[kind] += elements * element_size
            self.calls[kind] += 1

    def reset(self) -> None:
        self.elements.clear(), self.bytes.clear(), self.calls.clear()

    def total_elements(self) -> float:
        return sum(self.elements.values())

    def total_bytes(self) -> float:
        return sum(self.bytes.values())

    def summary(self) -> dict[str, Any]:
        return {"elements": dict(self.elements), "bytes": dict(self.bytes), "calls": dict(self.calls)}


def all_reduce(tensor: torch.Tensor, traffic: Traffic | None = None) -> torch.Tensor:
    """Sum `tensor` over all workers in place; counts 2(N-1)/N·numel sent elements."""
    n = dist.get_world_size() if dist.is_initialized() else 1
    if n > 1:
        dist.all_reduce(tensor)
    if traffic is not None:
        traffic.add("all_reduce", 2 * (n - 1) / n * tensor.numel(), tensor.element_size())
    return tensor


def all_gather_cat(block: torch.Tensor, dim: int, traffic: Traffic | None = None) -> torch.Tensor:
    """Stack every worker's `block` along `dim` in rank order; counts (N-1)·numel sent elements."""
    n = dist.get_world_size() if dist.is_initialized() else 1
    if traffic is not None:
        traffic.add("all_gather", (n - 1) * block.numel(), block.element_size())
    if n == 1:
        return block
    blocks = [torch.empty_like(block) for _ in range(n)]
    dist.all_gather(blocks, block.contiguous())
    return torch.cat(blocks, dim=dim)


# -- launching ------------------------------------------------------------------------------------
def _open_store(timeout_s: float) -> dist.TCPStore:
    # Port 0: the OS picks a free port and the store holds it for the whole run, so no other
    # program can take it between "pick" and "use"; closing the store frees it.
    return dist.TCPStore(LOCALHOST, 0, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=timeout_s))


def _entry(rank: int, world_size: int, tasks, done, port: int, backend: str, device: str,
           outdir: str, threads: int, timeout_s: float) -> None:
    """Each spawned process: join the group, then run the tasks the pool sends until told to stop.
    A task's result goes to a file (no pipe to fill up); its failure goes back as a traceback."""
    torch.set_num_threads(threads)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # loopback: the launch is on one machine
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", rank % torch.cuda.device_count())
        torch.cuda.set_device(dev)
    store = dist.TCPStore(LOCALHOST, port, is_master=False, timeout=timedelta(seconds=timeout_s))
    dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=timeout_s))
    parent = multiprocessing.parent_process()
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    break  # the launcher died without closing the pool: do not outlive it
                continue
            if task is None:
                break
            number, fn, args = task
            try:
                result = fn(Worker(rank, world_size, dev), *args)
                torch.save(result, os.path.join(outdir, f"task{number}-rank{rank}.pt"))
                done.put((number, rank, None))
            except BaseException:
                done.put((number, rank, traceback.format_exc()))
                raise  # the pool ends every worker; peers blocked in a collective are terminated
    finally:
        dist.destroy_process_group()


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
        self._outdir = tempfile.mkdtemp(prefix="book-parallel-")
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
                    self.device, self._outdir, self.threads, self.timeout_s))
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
        if getattr(self, "_outdir", None):
            shutil.rmtree(self._outdir, ignore_errors=True)
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


# -- data parallelism -------------------------------------------------------------------------
class FlatGradients:
    """Every parameter's .grad is a view into one flat buffer, so averaging the gradients of all
    workers is one all-reduce of exactly the gradient's bytes (no packing copies)."""

    def __init__(self, model: nn.Module):
        self.params = [p for p in model.parameters() if p.requires_grad]
        total = sum(p.numel() for p in self.params)
        ref = self.params[0]
        self.flat = torch.zeros(total, dtype=ref.dtype, device=ref.device)
        self.views, offset = [], 0
        for p in self.params:
            self.views.append(self.flat[offset:offset + p.numel()].view_as(p))
            p.grad = self.views[-1]
            offset += p.numel()

    def zero(self) -> None:
        self.flat.zero_()

    def _repair(self) -> None:
        # autograd accumulates into an existing .grad in place; if anything replaced a .grad
        # (e.g. zero_grad(set_to_none=True)), copy it back into the flat buffer and restore the view
        for p, view in zip(self.params, self.views):
            if p.grad is not view:
                if p.grad is None:
                    view.zero_()
                else:
                    view.copy_(p.grad)
                p.grad = view

    def average(self, traffic: Traffic | None = None, divide: bool = True) -> torch.Tensor:
        """Sum the flat gradient over workers and divide by their number; returns the buffer.
        `divide=False` when the loss was already multiplied by 1/N before backward (then the
        division costs nothing: it rides on the backward pass instead of a pass over the buffer)."""
        self._repair()
        all_reduce(self.flat, traffic)
        n = dist.get_world_size() if dist.is_initialized() else 1
        if n > 1 and divide:
            self.flat.div_(n)
        return self.flat


def mlp(widths: Sequence[int], *, seed: int, dtype=torch.float32, bias: bool = True) -> nn.Sequential:
    """An MLP with ReLU between layers, initialised from `seed` (same on every process)."""
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(a, b, bias=bias, dtype=dtype)
        with torch.no_grad():
            bound = 1 / a ** 0.5
            lin.weight.uniform_(-bound, bound, generator=gen)
            if bias:
                lin.bias.uniform_(-bound, bound, generator=gen)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def shard(batch_size: int, rank: int, world_size: int) -> slice:
    per = check_split(batch_size, world_size, "batch size")
    return slice(rank * per, (rank + 1) * per)


def train_single(x: torch.Tensor, y: torch.Tensor, widths: Sequence[int], *, batch_size: int,
                 steps: int, lr: float, seed: int) -> dict[str, Any]:
    """The reference: one process, whole batches, plain SGD. Returns first gradient and losses."""
    model = mlp(widths, seed=seed)
    losses, first_grad = [], None
    for step in range(steps):
        xb, yb = x[step * batch_size:(step + 1) * batch_size], y[step * batch_size:(step + 1) * batch_size]
        model.zero_grad()
        loss = nn.functional.cross_entropy(model(xb.flatten(1)), yb)
        loss.backward()
        if first_grad is None:
            first_grad = flat_grad(model).clone()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        losses.append(loss.item())
    return {"first_grad": first_grad, "losses": losses}


def dp_train(w: Worker, x: torch.Tensor, y: torch.Tensor, widths: Sequence[int], batch_size: int,
             steps: int, lr: float, seed: int) -> dict[str, Any]:
    """Data-parallel SGD: this worker takes its shard of each batch; gradients are averaged by one
    all-reduce. Returns the first averaged gradient, the loss curve (mean over shards = loss of the
    whole batch) and the traffic of one step."""
    model = mlp(widths, seed=seed).to(w.device)
    grads = FlatGradients(model)
    part = shard(batch_size, w.rank, w.world_size)
    losses, first_grad, traffic = [], None, None
    for step in range(steps):
        lo = step * batch_size
        xb = x[lo:lo + batch_size][part].to(w.device)
        yb = y[lo:lo + batch_size][part].to(w.device)
        grads.zero()
        loss = nn.functional.cross_entropy(model(xb.flatten(1)), yb)
        (loss / w.world_size).backward()  # the 1/N of the average, folded into backward
        w.traffic.reset()
        grads.average(w.traffic, divide=False)
        if first_grad is None:
            first_grad, traffic = grads.flat.detach().cpu().clone(), w.traffic.summary()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        mean_loss = loss.detach().reshape(1).clone()
        all_reduce(mean_loss)
        losses.append(mean_loss.item() / w.world_size)
    return {"first_grad": first_grad, "losses": losses, "traffic": traffic}


# -- model parallelism ---------------------------------------------------------------------------
class _SplitFirst(torch.autograd.Function):
    """Weight split by its first dimension (rows = input features): each worker multiplies its
    columns of the input by its rows of the weight; forward adds the partial products
    (all-reduce), backward stacks the deltas' blocks (all-gather)."""

    @staticmethod
    def forward(ctx, x, w_block, lo, hi, traffic):
        x_block = x[:, lo:hi]
        ctx.save_for_backward(x_block, w_block)
        ctx.traffic = traffic
        return all_reduce(x_block @ w_block, traffic)

    @staticmethod
    def backward(ctx, delta):
        x_block, w_block = ctx.saved_tensors
        delta_in = None
        if ctx.needs_input_grad[0]:  # the network's input (the data) needs no deltas: nothing to send
            delta_in = all_gather_cat(delta @ w_block.T, dim=1, traffic=ctx.traffic)
        return delta_in, x_block.T @ delta, None, None, None


class _SplitSecond(torch.autograd.Function):
    """Weight split by its second dimension (columns = output features): each worker computes its
    block of outputs; forward stacks them (all-gather), backward adds the deltas (all-reduce)."""

    @staticmethod
    def forward(ctx, x, w_block, lo, hi, traffic):
        ctx.save_for_backward(x, w_block)
        ctx.lo, ctx.hi, ctx.traffic = lo, hi, traffic
        return all_gather_cat(x @ w_block, dim=1, traffic=traffic)

    @staticmethod
    def backward(ctx, delta):
        x, w_block = ctx.saved_tensors
        delta_block = delta[:, ctx.lo:ctx.hi]
        delta_in = all_reduce(delta_block @ w_block.T, ctx.traffic) if ctx.needs_input_grad[0] else None
        return delta_in, x.T @ delta_block, None, None, None


class SplitLinear(nn.Module):
    """y = x @ W + b with W (in × out) split over the workers by its first or second dimension.
    Input and output are whole (the same on every worker), as in the post."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, split: str, rank: int,
                 world_size: int, traffic: Traffic | None = None):
        super().__init__()
        if split not in ("first", "second"):
            raise ValueError(f"split must be 'first' or 'second', not {split!r}")
        dim = 0 if split == "first" else 1
        block = check_split(weight.shape[dim], world_size, f"weight dimension {dim}")
        self.split, self.lo, self.hi = split, rank * block, (rank + 1) * block
        self.weight = nn.Parameter(weight.narrow(dim, self.lo, block).clone())
        self.bias = nn.Parameter(bias.clone()) if bias is not None else None
        self.traffic = traffic

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        op = _SplitFirst if self.split == "first" else _SplitSecond
        y = op.apply(x, self.weight, self.lo, self.hi, self.traffic)
        return y + self.bias if self.bias is not None else y


def split_mlp(full: nn.Sequential, split: str, w: Worker) -> nn.Sequential:
    """The model-parallel twin of `full` (an `mlp`): every Linear becomes a SplitLinear."""
    layers = []
    for m in full:
        if isinstance(m, nn.Linear):
            layers.append(SplitLinear(m.weight.detach().T.to(w.device), None if m.bias is None else
                                      m.bias.detach().to(w.device), split, w.rank, w.world_size, w.traffic))
        else:
            layers.append(m)
    return nn.Sequential(*layers)


def split_identities(w: Worker, batch: int, n_in: int, n_out: int, seed: int,
                     dtype=torch.float64) -> dict[str, Any]:
    """The post's example on real processes: forward X·W (batch×n_in · n_in×n_out) and backward
    delta·Wᵀ with W split by its first and by its second dimension, against the unsplit products.
    Returns the largest differences, the shapes each worker computed and the elements it sent."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, n_in, generator=gen, dtype=dtype).to(w.device)
    weight = torch.randn(n_in, n_out, generator=gen, dtype=dtype).to(w.device)
    delta = torch.randn(batch, n_out, generator=gen, dtype=dtype).to(w.device)
    out = {}
    for split in ("first", "second"):
        layer = SplitLinear(weight, None, split, w.rank, w.world_size, w.traffic)
        xin = x.clone().requires_grad_(True)
        w.traffic.reset()
        y = layer(xin)
        fwd_sent = w.traffic.total_elements()
        y.backward(delta)
        bwd_sent = w.traffic.total_elements() - fwd_sent
        dim = 0 if split == "first" else 1
        block_shape = (batch, layer.hi - layer.lo) if split == "second" else (batch, n_out)
        out[split] = {
            "forward_err": (y - x @ weight).abs().max().item(),
            "backward_err": (xin.grad - delta @ weight.T).abs().max().item(),
            "weight_grad_err": (layer.weight.grad - (x.T @ delta).narrow(dim, layer.lo, layer.hi - layer.lo)).abs().max().item(),
            "forward_block": list(block_shape),
            "backward_block": [batch, n_in // w.world_size] if split == "first" else [batch, n_in],
            "sent_forward": fwd_sent, "sent_backward": bwd_sent,
            "traffic": w.traffic.summary(),
        }
    # data parallelism on the same layer: the whole weight gradient is all-reduced once
    grad = (x.T @ delta).contiguous()
    w.traffic.reset()
    all_reduce(grad, w.traffic)
    out["data"] = {"sent": w.traffic.total_elements()}
    return out


def mp_train(w: Worker, x: torch.Tensor, y: torch.Tensor, widths: Sequence[int], batch_size: int,
             steps: int, lr: float, seed: int, split: str) -> dict[str, Any]:
    """Model-parallel SGD of the same MLP as `dp_train`: every worker sees whole batches and holds
    1/N of every weight. Returns the loss curve and the traffic of one step."""
    model = split_mlp(mlp(widths, seed=seed), split, w)
    losses, traffic = [], None
    for step in range(steps):
        lo = step * batch_size
        xb, yb = x[lo:lo + batch_size].to(w.device), y[lo:lo + batch_size].to(w.device)
        model.zero_grad()
        w.traffic.reset()
        loss = nn.functional.cross_entropy(model(xb.flatten(1)), yb)
        loss.backward()
        if traffic is None:
            traffic = w.traffic.summary()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        losses.append(loss.item())
    return {"losses": losses, "traffic": traffic}


# -- measurements --------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], Any], device: torch.device, reps: int, warmup: int = 2) -> float:
    """Fastest of `reps` timed calls after `warmup`: on a machine shared with other jobs the
    minimum is the least disturbed estimate of what the code itself costs."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def _timed_step(w: "Worker", fn: Callable[[], Any]) -> float:
    """Seconds one call of `fn` takes on every rank, started together: the slowest rank's time."""
    w.barrier()
    _sync(w.device)
    t0 = time.perf_counter()
    fn()
    _sync(w.device)
    return _agree(time.perf_counter() - t0)


def _agree(value: float) -> float:
    """The largest of every rank's value (a step is as slow as its slowest worker)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    on_gpu = dist.get_backend() == "nccl"  # nccl reduces GPU tensors only
    t = torch.tensor([value], dtype=torch.float64, device="cuda" if on_gpu else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.item()


def allreduce_sweep(w: Worker, sizes_bytes: Sequence[int], reps: int) -> list[float]:
    """Seconds (best of `reps`) of a bare dist.all_reduce of float32 tensors of each size (slowest rank)."""
    times = []
    for nbytes in sizes_bytes:
        t = torch.ones(max(1, nbytes // 4), device=w.device)
        w.barrier()
        times.append(_agree(_best_time(lambda: dist.all_reduce(t), w.device, reps)))
    return times


def dp_step_timing(w: Worker, widths: Sequence[int], per_worker_batch: int, reps: int,
                   bucket_mb: float | None = None, parts: Sequence[str] = ("compute", "allreduce", "bare")
                   ) -> dict[str, float]:
    """Time (best of `reps`) of a data-parallel step (forward, backward, gradient average) with this
    worker's batch of `per_worker_batch`, the time of its all-reduce alone and of a bare
    dist.all_reduce of the same bytes (`parts` picks which of these besides the step). With `bucket_mb`, the step is torch's
    DistributedDataParallel with buckets of that size, overlapping all-reduce with backward."""
    gen = torch.Generator().manual_seed(1234 + w.rank)
    x = torch.randn(per_worker_batch, widths[0], generator=gen).to(w.device)
    y = torch.randint(0, widths[-1], (per_worker_batch,), generator=gen).to(w.device)
    model = mlp(widths, seed=0).to(w.device)
    result: dict[str, float] = {}
    if bucket_mb is None:
        grads = FlatGradients(model)

        def step():
            grads.zero()
            (nn.functional.cross_entropy(model(x), y) / w.world_size).backward()
            grads.average(divide=False)

        def compute():
            grads.zero()
            nn.functional.cross_entropy(model(x), y).backward()

        w.barrier()
        result["step"] = _agree(_best_time(step, w.device, reps))
        if "compute" in parts:
            w.barrier()
            result["compute"] = _agree(_best_time(compute, w.device, reps))
        if "allreduce" in parts:
            w.barrier()
            result["allreduce_in_step"] = _agree(_best_time(lambda: grads.average(divide=False), w.device, reps))
        if "bare" in parts:
            bare = torch.ones_like(grads.flat)
            w.barrier()
            result["bare_allreduce"] = (_agree(_best_time(lambda: dist.all_reduce(bare), w.device, reps))
                                        if w.world_size > 1 else 0.0)
        result["bytes"] = grads.flat.numel() * grads.flat.element_size()
    else:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(model, bucket_cap_mb=bucket_mb, device_ids=[w.device.index] if w.device.type == "cuda" else None)

        def step():
            ddp.zero_grad(set_to_none=False)
            nn.functional.cross_entropy(ddp(x), y).backward()

        w.barrier()
        result["step"] = _agree(_best_time(step, w.device, reps))
    return result


def overlap_timing(w: Worker, widths: Sequence[int], per_worker_batch: int, reps: int,
                   bucket_mb: float) -> dict[str, list[float]]:
    """Step times (forward, backward, gradient average) without overlap — one all-reduce of the
    flat gradient after backward — and with overlap — torch's DistributedDataParallel, whose
    buckets of `bucket_mb` are all-reduced while backward goes on. The two steps alternate, one
    each per repetition, so both see the same background load. Returns every repetition's time."""
    from torch.nn.parallel import DistributedDataParallel as DDP

    gen = torch.Generator().manual_seed(1234 + w.rank)
    x = torch.randn(per_worker_batch, widths[0], generator=gen).to(w.device)
    y = torch.randint(0, widths[-1], (per_worker_batch,), generator=gen).to(w.device)
    plain = mlp(widths, seed=0).to(w.device)
    grads = FlatGradients(plain)
    ddp = DDP(mlp(widths, seed=0).to(w.device), bucket_cap_mb=bucket_mb,
              device_ids=[w.device.index] if w.device.type == "cuda" else None)

    def off():
        grads.zero()
        (nn.functional.cross_entropy(plain(x), y) / w.world_size).backward()
        grads.average(divide=False)

    def on():
        ddp.zero_grad(set_to_none=False)
        nn.functional.cross_entropy(ddp(x), y).backward()

    times: dict[str, list[float]] = {"off": [], "on": []}
    for i in range(reps + 2):
        for name, step in (("off", off), ("on", on)):
            elapsed = _timed_step(w, step)
            if i >= 2:  # two warm-up rounds (DDP builds its buckets in the first iterations)
                times[name].append(elapsed)
    return times


def exchange_vs_bare(w: Worker, widths: Sequence[int], reps: int) -> dict[str, float]:
    """The data-parallel step's gradient exchange (`FlatGradients.average` as the step calls it:
    one all-reduce of the flat gradient, the 1/N folded into backward), the same with a separate
    division pass, and a bare dist.all_reduce of a tensor of the same bytes, alternating one of
    each per repetition; the best time of each, and the bytes."""
    model = mlp(widths, seed=0).to(w.device)
    grads = FlatGradients(model)
    bare = torch.ones_like(grads.flat)
    contenders = (("step_exchange", lambda: grads.average(divide=False)),
                  ("with_division", grads.average),
                  ("bare_allreduce", lambda: dist.all_reduce(bare)))
    times: dict[str, float] = {name: float("inf") for name, _ in contenders}
    for i in range(reps + 2):
        for name, fn in contenders:
            elapsed = _timed_step(w, fn)
            if i >= 2:
                times[name] = min(times[name], elapsed)
    times["bytes"] = grads.flat.numel() * grads.flat.element_size()
    return times


def dp_vs_mp_timing(w: Worker, widths_list: Sequence[int], depth: int, batches: Sequence[int],
                    reps: int) -> list[dict[str, Any]]:
    """For an MLP of `depth` square layers of each width and each (global) batch size: the step
    time and elements sent per worker of data parallelism (batch split, gradient all-reduced)
    and of model parallelism (weights split by the first dimension, whole batch everywhere)."""
    rows = []
    for batch in batches:
        for width in widths_list:
            widths = [width] * (depth + 1)
            gen = torch.Generator().manual_seed(7)
            x = torch.randn(batch, width, generator=gen).to(w.device)
            full = mlp(widths, seed=0, bias=False).to(w.device)
            part = shard(batch, w.rank, w.world_size)
            grads = FlatGradients(full)

            def dp_step():
                grads.zero()
                full(x[part]).square().mean().backward()
                grads.average(w.traffic)

            split = split_mlp(full, "first", w)

            def mp_step():
                split.zero_grad(set_to_none=False)
                split(x).square().mean().backward()

            row = {"batch": batch, "width": width}
            steps = (("dp", dp_step), ("mp", mp_step))
            for name, step in steps:  # one counted step each (also the warm-up)
                w.traffic.reset()
                step()
                row[f"{name}_elements"] = w.traffic.total_elements()
                row[f"{name}_time"] = float("inf")
            w.traffic.enabled = False
            for _ in range(reps):  # alternate the two so that both see the same background load
                for name, step in steps:
                    row[f"{name}_time"] = min(row[f"{name}_time"], _timed_step(w, step))
            w.traffic.enabled = True
            rows.append(row)
    return rows


def matmul_throughput(batches: Sequence[int], n: int = 1000, *, device: str | torch.device = "cpu",
                      reps: int = 20, dtype=torch.float32, cpu_threads: int | None = 1) -> list[float]:
    """Best-of-`reps` GFLOP/s of (batch × n) · (n × n) for each batch size, in this process.
    Each sample repeats the product until it lasts ≥ 2 ms (timer resolution, launch overhead).
    On the CPU it runs on `cpu_threads` threads (default one: on a shared machine, timings of
    several threads measure the other jobs as much as the matrix multiply)."""
    device = torch.device(device)
    if any(not isinstance(b, int) or b < 1 for b in batches):
        raise ValueError(f"batch sizes must be positive ints, not {list(batches)!r}")
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(n, n, generator=gen, dtype=dtype).to(device)
    previous = torch.get_num_threads()
    if device.type == "cpu" and cpu_threads:
        torch.set_num_threads(cpu_threads)
    try:
        inputs, inner = [], []
        for b in batches:
            x = torch.randn(b, n, generator=gen, dtype=dtype).to(device)
            k = 1
            while True:  # calibrate: enough products per sample to last ≥ 2 ms
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(k):
                    x @ w
                _sync(device)
                if time.perf_counter() - t0 >= 2e-3 or k >= 2 ** 16:
                    break
                k *= 2
            inputs.append(x)
            inner.append(k)
        best = [float("inf")] * len(batches)
        for _ in range(reps):  # sweep all sizes per repetition: a burst of load hits every size alike
            for i, (x, k) in enumerate(zip(inputs, inner)):
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(k):
                    x @ w
                _sync(device)
                best[i] = min(best[i], (time.perf_counter() - t0) / k)
        return [2 * b * n * n / t / 1e9 for b, t in zip(batches, best)]
    finally:
        torch.set_num_threads(previous)


def transfer_ms_post(nbytes: float, gbit_per_s: float) -> float:
    """Milliseconds to send `nbytes` the way the post's 0.75 ms comes out: the card's Gbit/s
    divided by 8 and read as binary gigabytes (1024³ bytes) per second."""
    return nbytes / (gbit_per_s / 8 * 1024 ** 3) * 1e3


def transfer_ms_plain(nbytes: float, gbit_per_s: float) -> float:
    """Milliseconds to send `nbytes` over `gbit_per_s` in SI units (1 Gbit = 10⁹ bit)."""
    return nbytes * 8 / (gbit_per_s * 1e9) * 1e3


def naive_exchange_ms(nodes: int, gpus_per_node: int, network_ms: float, pcie_ms: float,
                      serialised: bool) -> float:
    """The post's model of data parallelism without all-reduce: every GPU sends its whole gradient
    to every other GPU. Peers on other nodes go through the network card, peers on the same node
    over PCIe, both at once; `serialised`: only one GPU per node can use the card at a time."""
    network_peers = (nodes - 1) * gpus_per_node
    pcie_peers = gpus_per_node - 1
    per_gpu = max(network_peers * network_ms, pcie_peers * pcie_ms)
    return per_gpu * gpus_per_node if serialised else per_gpu


def ring_allreduce_ms(nbytes: float, workers: int, gbit_per_s: float) -> float:
    """A ring all-reduce sends 2(N-1)/N of the gradient per worker, whatever N (plain units)."""
    return transfer_ms_plain(2 * (workers - 1) / workers * nbytes, gbit_per_s)


# -- the hybrid: data-parallel convolutions, model-parallel dense layers -----------------------------
def alexnet_like(classes: int = 1000) -> tuple[nn.Sequential, nn.Sequential]:
    """A single-column AlexNet (the net of Krizhevsky's 'one weird trick' paper, 224×224 inputs):
    the convolutional part and the dense part, as real torch modules whose shapes we count."""
    conv = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2), nn.Flatten())
    dense = nn.Sequential(nn.Linear(9216, 4096), nn.ReLU(), nn.Linear(4096, 4096), nn.ReLU(),
                          nn.Linear(4096, classes))
    return conv, dense


def _weighted_layers(net: nn.Sequential, example: torch.Tensor) -> list[dict[str, int]]:
    """Per layer with weights: parameters, input and output elements per example (by running it)."""
    rows, x = [], example
    for m in net:
        y = m(x)
        if any(True for _ in m.parameters()):
            rows.append({"params": sum(p.numel() for p in m.parameters()),
                         "inputs": x[0].numel(), "outputs": y[0].numel()})
        x = y
    return rows


def hybrid_traffic(conv: nn.Sequential, dense: nn.Sequential, image_shape: Sequence[int],
                   batch_per_worker: int, workers: int) -> dict[str, float]:
    """Elements each worker sends per training step (ring volumes, as `Traffic` counts them) for
    a net of a convolutional and a dense part, with the global batch workers × batch_per_worker:
    - data: every parameter's gradient all-reduced;
    - model: every weighted layer split (the cheaper of the two splits per layer), whole batch on
      every worker: per layer an all-reduce of one activation and an all-gather of 1/N of another;
    - hybrid: convolution gradients all-reduced; the features at the boundary all-gathered so the
      dense layers see the whole batch (and their deltas sent back the same way); dense layers split.
    """
    n, batch = workers, workers * batch_per_worker
    with torch.no_grad():
        conv_rows = _weighted_layers(conv, torch.zeros(1, *image_shape))
        features = conv(torch.zeros(1, *image_shape))[0].numel()
        dense_rows = _weighted_layers(dense, torch.zeros(1, features))
    reduce, gather = 2 * (n - 1) / n, (n - 1) / n  # all-gather of 1/N blocks: (N-1)·(total/N)

    def model_parallel(rows, first_needs_deltas):
        total = 0.0
        for i, r in enumerate(rows):
            deltas = 1.0 if (i > 0 or first_needs_deltas) else 0.0  # the image needs no deltas
            total += min(batch * (reduce * r["outputs"] + deltas * gather * r["inputs"]),   # first-dim split
                         batch * (gather * r["outputs"] + deltas * reduce * r["inputs"]))   # second-dim split
        return total

    conv_params = sum(r["params"] for r in conv_rows)
    dense_params = sum(r["params"] for r in dense_rows)
    data = reduce * (conv_params + dense_params)
    model = model_parallel(conv_rows + dense_rows, first_needs_deltas=False)
    # the dense part needs the whole batch's features: all-gather each worker's block; backward,
    # its first layer's exchange leaves the whole batch's feature deltas on every worker, and each
    # worker takes its own rows back into its convolutions (no further traffic)
    boundary = (n - 1) * batch_per_worker * features
    hybrid = reduce * conv_params + boundary + model_parallel(dense_rows, first_needs_deltas=True)
    return {"data": data, "model": model, "hybrid": hybrid, "conv_params": conv_params,
            "dense_params": dense_params, "features": features, "boundary": boundary}


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


# -- torchrun ------------------------------------------------------------------------------------
def _torchrun_worker() -> Worker:
    backend = os.environ.get("BOOK_BACKEND") or ("nccl" if torch.cuda.is_available() else "gloo")
    dist.init_process_group(backend)  # env:// — torchrun sets RANK, WORLD_SIZE, MASTER_ADDR/PORT
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if backend == "nccl":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return Worker(rank, world, device)


def main(argv: Sequence[str] | None = None) -> None:
    """`torchrun --nproc-per-node=N -m book.parallel {gradients,split,allreduce}`: the chapter's
    checks on processes that torchrun started (on one machine or several)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m book.parallel")
    parser.add_argument("what", choices=["gradients", "split", "allreduce"])
    parser.add_argument("--batch", type=int, default=128)
    opts = parser.parse_args(argv)
    if "RANK" not in os.environ:
        parser.error("run me under torchrun, e.g. torchrun --nproc-per-node=2 -m book.parallel gradients")
    w = _torchrun_worker()
    try:
        if opts.what == "gradients":
            gen = torch.Generator().manual_seed(0)
            x, y = torch.randn(opts.batch, 784, generator=gen), torch.randint(0, 10, (opts.batch,), generator=gen)
            got = dp_train(w, x, y, [784, 256, 10], opts.batch, 1, 0.1, 0)["first_grad"]
            ref = train_single(x, y, [784, 256, 10], batch_size=opts.batch, steps=1, lr=0.1, seed=0)["first_grad"]
            msg = f"max |averaged gradient - single-process gradient| = {(got - ref).abs().max().item():.2e}"
        elif opts.what == "split":
            r = split_identities(w, opts.batch, 1000, 500, 0)
            msg = "; ".join(f"{k}: forward err {v['forward_err']:.1e}, backward err {v['backward_err']:.1e}"
                            for k, v in r.items() if k != "data")
        else:
            sizes = [2 ** k for k in range(10, 27, 2)]
            times = allreduce_sweep(w, sizes, 10)
            msg = "\n".join(f"{s / 2**20:10.3f} MiB  {t * 1e3:8.3f} ms  {s / t / 1e9:6.2f} GB/s"
                            for s, t in zip(sizes, times))
        if w.rank == 0:
            print(f"{w.world_size} workers, {dist.get_backend()}:\n{msg}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
