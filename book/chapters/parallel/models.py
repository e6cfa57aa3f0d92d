"""The parallel algorithms, written from the posts' description, and the posts' arithmetic.

- `FlatGradients`: data parallelism — every gradient is a view into one flat buffer, so the
  gradient exchange is a single all-reduce of exactly the gradient's bytes;
- `SplitLinear`: model parallelism — a linear layer whose weight is split by its first dimension
  (partial products are added: all-reduce forward, deltas stacked: all-gather backward) or by its
  second (outputs stacked: all-gather forward, deltas added: all-reduce backward);
- `dp_train` / `mp_train` / `train_single`: the same MLP trained data-parallel, model-parallel
  and in one process (for the equality checks);
- the post's transfer-time model and the hybrid's traffic count for a concrete net.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist
from torch import nn

from book.chapters.parallel.collectives import Traffic, Worker, all_gather_cat, all_reduce
from book.chapters.parallel.pool import check_split

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


# -- the post's transfer-time arithmetic ----------------------------------------------------------
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


# -- why mini-batches: the gradient noise of a batch against the whole data set ---------------------
def _flat_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone()


def _step(model: nn.Module, grad: torch.Tensor, lr: float) -> None:
    with torch.no_grad():
        offset = 0
        for p in model.parameters():
            p -= lr * grad[offset:offset + p.numel()].view_as(p)
            offset += p.numel()


def gradient_noise(x: torch.Tensor, y: torch.Tensor, widths: Sequence[int], batches: Sequence[int],
                   draws: int, *, seed: int, train_steps: int, lr: float = 0.1, train_batch: int = 128,
                   eval_size: int = 2000, same_compute: tuple[int, int] = (128, 512)) -> dict[str, Any]:
    """How well a mini-batch gradient stands in for the gradient of the whole set `x` (a real MLP),
    at initialisation and after `train_steps` SGD steps of `train_batch`. Per state and batch size
    (`draws` random batches each): the cosine similarity with the full gradient and the loss
    decrease of one SGD step (`lr`) on `eval_size` examples of the set, as a fraction of the full
    gradient's step. And, for equal computation, the decrease of k steps of the small batch of
    `same_compute` against one step of the large one (k = large / small, the same examples)."""
    small, large = same_compute
    if large % small:
        raise ValueError("the large batch must be a multiple of the small one")
    x = x.flatten(1)
    model = mlp(widths, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    out: dict[str, Any] = {}
    for state in ("initialised", "trained"):
        if state == "trained":
            for _ in range(train_steps):
                idx = torch.randint(0, len(x), (train_batch,), generator=gen)
                _step(model, _flat_gradient(model, x[idx], y[idx]), lr)
        start = [p.detach().clone() for p in model.parameters()]
        held = torch.randperm(len(x), generator=gen)[:eval_size]

        def eval_loss() -> float:
            with torch.no_grad():
                return nn.functional.cross_entropy(model(x[held]), y[held]).item()

        def restore() -> None:
            with torch.no_grad():
                for p, p0 in zip(model.parameters(), start):
                    p.copy_(p0)

        def decrease(grad: torch.Tensor) -> float:
            _step(model, grad, lr)
            loss = eval_loss()
            restore()
            return before - loss

        before = eval_loss()
        full = _flat_gradient(model, x, y)
        full_decrease = decrease(full)
        rows = {}
        for b in batches:
            cosine, relative = [], []
            for _ in range(draws):
                idx = torch.randperm(len(x), generator=gen)[:b]
                grad = _flat_gradient(model, x[idx], y[idx])
                cosine.append(nn.functional.cosine_similarity(grad, full, dim=0).item())
                relative.append(decrease(grad) / full_decrease)
            rows[b] = {"cosine": cosine, "decrease": relative}
        equal = {"small": [], "large": []}
        for _ in range(draws):
            idx = torch.randperm(len(x), generator=gen)[:large]
            equal["large"].append(decrease(_flat_gradient(model, x[idx], y[idx])) / full_decrease)
            for k in range(large // small):
                part = idx[k * small:(k + 1) * small]
                _step(model, _flat_gradient(model, x[part], y[part]), lr)
            equal["small"].append((before - eval_loss()) / full_decrease)
            restore()
        out[state] = {"rows": rows, "equal_compute": equal, "loss": before,
                      "full_decrease": full_decrease}
    return out


# -- the hybrid on MNIST: data-parallel convolutions, model-parallel dense layers ---------------------
def mnist_convnet(seed: int, dense: Sequence[int] = (1024, 1024)) -> tuple[nn.Sequential, nn.Sequential]:
    """A small convolutional net for MNIST with large dense layers (the shape the hybrid is for):
    two 5×5 convolutions with max pooling (13 k weights, 512 features), then an `mlp` of `dense`."""
    with torch.random.fork_rng():  # torch's default initialisation, from `seed` alone
        torch.manual_seed(seed)
        conv = nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(16, 32, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    return conv, mlp([512, *dense, 10], seed=seed)


class _GatherRows(torch.autograd.Function):
    """Forward: every worker's block of rows stacked in rank order (all-gather). Backward: the
    split dense layers leave the whole batch's deltas on every worker; each keeps its own rows."""

    @staticmethod
    def forward(ctx, block, rank, traffic):
        ctx.rank, ctx.rows = rank, block.shape[0]
        return all_gather_cat(block, dim=0, traffic=traffic)

    @staticmethod
    def backward(ctx, delta):
        return delta[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows], None, None


class HybridNet(nn.Module):
    """Krizhevsky's hybrid on one worker: its own images through the (replicated) convolutions,
    the features of the whole batch gathered, the dense layers split by `split` (`SplitLinear`)."""

    def __init__(self, conv: nn.Sequential, dense: nn.Sequential, split: str, w: Worker):
        super().__init__()
        self.conv, self.dense, self.worker = conv.to(w.device), split_mlp(dense, split, w), w

    def forward(self, x_own: torch.Tensor) -> torch.Tensor:
        features = self.conv(x_own)
        return self.dense(_GatherRows.apply(features, self.worker.rank, self.worker.traffic))

    def average_conv_gradients(self) -> None:
        """The loss is the whole batch's on every worker, so each worker's convolution gradient is
        its images' share of it: the workers' shares are summed (all-reduce, no 1/N)."""
        for p in self.conv.parameters():
            all_reduce(p.grad, self.worker.traffic)


def _sgd(model: nn.Module, lr: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad


def convnet_train_single(x: torch.Tensor, y: torch.Tensor, batch_size: int, steps: int, lr: float,
                         seed: int) -> dict[str, Any]:
    """The reference for the hybrid: `mnist_convnet` trained by one process on whole batches."""
    conv, dense = mnist_convnet(seed)
    net = nn.Sequential(conv, dense)
    losses = []
    for step in range(steps):
        xb, yb = x[step * batch_size:(step + 1) * batch_size], y[step * batch_size:(step + 1) * batch_size]
        net.zero_grad()
        loss = nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        _sgd(net, lr)
        losses.append(loss.item())
    return {"losses": losses}


def hybrid_train(w: Worker, x: torch.Tensor, y: torch.Tensor, batch_size: int, steps: int, lr: float,
                 seed: int, split: str = "first") -> dict[str, Any]:
    """SGD of `mnist_convnet` by the hybrid on the workers: this worker's shard of each batch
    through the convolutions, the dense layers split. Returns the loss curve (the whole batch's,
    the same on every worker) and the traffic of one step."""
    net = HybridNet(*mnist_convnet(seed), split, w)
    part = shard(batch_size, w.rank, w.world_size)
    losses, traffic = [], None
    for step in range(steps):
        lo = step * batch_size
        xb, yb = x[lo:lo + batch_size][part].to(w.device), y[lo:lo + batch_size].to(w.device)
        net.zero_grad()
        w.traffic.reset()
        loss = nn.functional.cross_entropy(net(xb), yb)
        loss.backward()
        net.average_conv_gradients()
        if traffic is None:
            traffic = w.traffic.summary()
        _sgd(net, lr)
        losses.append(loss.item())
    return {"losses": losses, "traffic": traffic}
