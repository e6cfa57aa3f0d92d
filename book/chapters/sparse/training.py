"""The MNIST nets (LeNet-300-100, LeNet-5-Caffe), the paper's MNIST training setup, sweeps over
densities and seeds, and the command line that runs the full-mode sweeps (`python -m book.chapters.sparse`)."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


from book.chapters.sparse import conv1, pooling
from book.chapters.sparse.fused_sgd import NesterovSGD
from book.chapters.sparse.algorithm import GROWTH_MODES, REDISTRIBUTION_MODES, SparseMomentum


# ----------------------------------------------------------------------------------------------
# The MNIST nets and the paper's MNIST training setup
# ----------------------------------------------------------------------------------------------
def lenet_300_100() -> nn.Sequential:
    """LeNet-300-100: 784-300-100-10, ReLU."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                         nn.Linear(100, 10))


class _GradientChannelsLast(torch.autograd.Function):
    """Identity forward; hands the incoming gradient on in channels-last layout."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous(memory_format=torch.channels_last)


class FlattenChannelsLast(nn.Flatten):
    """`nn.Flatten` (same output, in the usual channel-major order) whose backward gives the conv
    part of the net its gradient in channels-last layout, the layout of its activations. Without it
    the gradient comes back channel-major and every ReLU/pooling backward mixes two layouts, which
    torch handles on a slow strided path (measured: `benchmarks/bench_sparse.py`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_GradientChannelsLast.apply(x) if x.dim() == 4 else x)


class LeNet5Caffe(nn.Sequential):
    """LeNet-5-Caffe's layers in order (so its parameters are named as in any nn.Sequential: 0.weight,
    3.weight, 7.weight, 9.weight), run on a CPU as stages: the first conv with its 2×2 max-pooling and
    ReLU as one compiled kernel (`conv1`), the second pooling with its ReLU as another (`pooling`),
    handing the fully connected layer its input channel-major so the flatten is a view. The
    stages compute the same bits as the layers one by one (`tests/test_sparse_pooling.py`,
    `tests/test_sparse_conv1.py`); on a GPU, without a C compiler, or with `fused = False`, the layers
    run one by one, and so they do while a hook is registered on any of them."""

    fused = True

    def __init__(self, *layers: Any):
        super().__init__(*layers)
        # a tuple, so the stages are not registered as layers of the net (nor in its state_dict); none
        # where the layers are not LeNet-5-Caffe's (a slice of the net, say): they then run one by one
        self.stages = None
        mods = list(self)
        kinds = (nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Conv2d, nn.MaxPool2d, nn.ReLU, nn.Flatten)
        if len(mods) > len(kinds) and all(isinstance(m, k) for m, k in zip(mods, kinds)) and all(
                p.kernel_size in (2, (2, 2)) and p.stride in (2, (2, 2)) and p.padding in (0, (0, 0))
                and p.dilation in (1, (1, 1)) and not p.ceil_mode for p in (mods[1], mods[4])):
            self.stages = (conv1.Conv1PoolReLUStage(mods[0]), mods[3], pooling.MaxPool2ReLU(channel_major=True),
                           nn.Flatten(), *mods[7:])

    def _runs_in_stages(self, x: torch.Tensor) -> bool:
        return (self.fused and self.stages is not None and x.device.type == "cpu" and not self._hooked()
                and pooling.status().startswith("compiled"))

    def _hooked(self) -> bool:
        """Whether a hook waits on one of the layers the stages do not call (the first conv, the
        poolings, their ReLUs, the flatten): then the layers run one by one."""
        glob = torch.nn.modules.module
        return bool(glob._global_forward_hooks or glob._global_forward_pre_hooks or glob._global_backward_hooks
                    or getattr(glob, "_global_backward_pre_hooks", None)) or any(
            m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None)
            for m in (self[0], self[1], self[2], self[4], self[5], self[6]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._runs_in_stages(x):
            return super().forward(x)
        for stage in self.stages:
            x = stage(x)
        return x


def lenet5_caffe() -> LeNet5Caffe:
    """LeNet-5-Caffe: conv 1→20 5×5, pool, conv 20→50 5×5, pool, fc 800→500, fc 500→10 (ReLU).

    The conv weights are held channels-last (NHWC): oneDNN's kernels for these small channel counts
    are several times faster in that layout on a CPU (the function is the same, the float bits of
    training differ from the channel-major layout's).

    Each conv's ReLU comes after its 2×2 max-pooling, on a quarter of the values. ReLU and max commute
    (both are monotone), so the forward pass is the same; backward, ReLU and pooling only copy or zero
    gradients, never add them, so every gradient has the same bits as with ReLU first: training is
    bit-identical to the conv-ReLU-pool order (`tests/test_sparse_training.py`), about a quarter faster
    (`benchmarks/bench_sparse.py`). The first conv, and each pooling with its ReLU, then run as compiled
    kernels with the same bits (`LeNet5Caffe`).
    The conv layers' class specialization is still measured on the ReLU of the unpooled map
    (`analysis.class_specialization`)."""
    net = LeNet5Caffe(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2), nn.ReLU(), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
                      nn.ReLU(), FlattenChannelsLast(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    return net.to(memory_format=torch.channels_last)


def lenet5_caffe_relu_first() -> nn.Sequential:
    """LeNet-5-Caffe in the textbook order, conv-ReLU-pool, as the runs before the reorder were made:
    kept to show that `lenet5_caffe` trains to the same bits."""
    net = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                        nn.MaxPool2d(2), FlattenChannelsLast(), nn.Linear(800, 500), nn.ReLU(),
                        nn.Linear(500, 10))
    return net.to(memory_format=torch.channels_last)


MODELS = {"lenet300": lenet_300_100, "lenet5": lenet5_caffe}
MODEL_TITLES = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5-Caffe"}
PAPER_ITERATIONS = 100 * 600   # the paper's MNIST run: 100 epochs of 600 batches of 100
PAPER_LR_DROP_EVERY = 25_000   # iterations between learning-rate drops (÷10)


@dataclass
class RunConfig:
    model: str = "lenet300"
    density: float = 0.05
    epochs: int = 100
    seed: int = 0
    growth: str = "momentum"
    redistribution: str = "momentum"
    batch_size: int = 100
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    prune_rate: float = 0.5
    prune_rate_floor: float = 0.005
    train_subset: int | None = None   # first N training images (quick runs)
    test_subset: int | None = None    # first N test images (quick runs of the conv net)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, not {self.model!r}")
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive int, not {self.epochs!r}")


@dataclass
class RunResult:
    config: RunConfig
    test_error: float
    model: nn.Module
    sparse: SparseMomentum
    epoch_seconds: list[float] = field(default_factory=list)
    layer_density: list[dict[str, float]] = field(default_factory=list)  # after each epoch


@dataclass
class MnistData:
    """MNIST held as tensors on one device, so no epoch ever decodes a file again."""
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    @classmethod
    def load(cls, device: torch.device | str = "cpu") -> "MnistData":
        from book.core.data import mnist_tensors

        x, y = mnist_tensors("train", device=device)
        xt, yt = mnist_tensors("test", device=device)
        return cls(x, y, xt, yt)


def lr_drop_every(epochs: int, steps_per_epoch: int) -> int:
    """Iterations between the ÷10 learning-rate drops: the paper's 25,000, whatever the run's length.
    A shorter run (quick mode) is the start of the paper's schedule, not a compressed copy of it
    (compressing it would spend most of a short run at a learning rate too small to learn)."""
    return PAPER_LR_DROP_EVERY


def sgd(params: Iterable[torch.Tensor], *, lr: float, momentum: float, weight_decay: float) -> NesterovSGD:
    """The paper's optimizer: SGD with Nesterov momentum and weight decay, torch's `foreach` SGD (on a
    CPU the same per-tensor kernels in the same order as its default loop, with less Python), whose CPU
    step runs as one compiled pass a tensor with the same bits (`fused_sgd`). Trains to the bits of
    torch's default SGD loop (`tests/test_sparse_training.py`)."""
    return NesterovSGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


@torch.no_grad()
def test_error(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2000) -> float:
    model.eval()
    wrong = 0
    for i in range(0, len(x), batch):
        wrong += int((model(x[i:i + batch]).argmax(1) != y[i:i + batch]).sum())
    model.train()
    return wrong / len(x)


CHECKPOINT_FORMAT = 1


def _save_atomic(obj: Any, path: Path) -> None:
    """torch.save via a temporary file in the same folder and a rename: a run killed while saving
    leaves the previous checkpoint whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def train(config: RunConfig, data: MnistData, *, device: torch.device | str = "cpu",
          progress: Callable[[int, float], None] | None = None,
          checkpoint: str | os.PathLike | None = None, epochs_run: int | None = None,
          step_losses: list[float] | None = None, epoch_errors: list[float] | None = None,
          regrown_momentum: str = "kept") -> RunResult:
    """Train one net from scratch with sparse momentum (density 1: the dense baseline).

    With `checkpoint` (a file path) the run saves its whole state there after every epoch (model,
    optimizer with its momentum, masks and sparse-momentum state, learning-rate schedule, the batch
    order's generator and torch's global generator, epoch times), atomically, and a run started with
    an existing checkpoint of the same configuration resumes after its last finished epoch. A run
    killed and resumed ends with the same bits as one never interrupted (tested).

    The divergence study's options: `epochs_run` stops after that many epochs of the run's schedule
    (the test error is then of that net), `step_losses` collects every step's loss, `epoch_errors` the
    test error after every epoch and its cycle, and `regrown_momentum` is `SparseMomentum`'s (not part of a
    `RunConfig`: no checkpoint with it)."""
    if regrown_momentum != "kept" and checkpoint is not None:
        raise ValueError("checkpoints hold RunConfig runs, whose regrown weights keep their momentum")
    if epochs_run is not None and not 1 <= epochs_run <= config.epochs:
        raise ValueError(f"epochs_run must be in [1, {config.epochs}], not {epochs_run}")
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = MODELS[config.model]().to(device)
    optimizer = sgd(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    sparse = SparseMomentum(model, optimizer, config.density, epochs=config.epochs,
                            prune_rate=config.prune_rate, prune_rate_floor=config.prune_rate_floor,
                            growth=config.growth, redistribution=config.redistribution, seed=config.seed,
                            regrown_momentum=regrown_momentum)
    x, y = data.x_train, data.y_train
    if config.train_subset:
        x, y = x[:config.train_subset], y[:config.train_subset]
    steps = len(x) // config.batch_size
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, lr_drop_every(config.epochs, steps), gamma=0.1)
    order_gen = torch.Generator().manual_seed(config.seed)
    result = RunResult(config, float("nan"), model, sparse)
    first_epoch = 0
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.exists():
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("config") != asdict(config):
            raise ValueError(f"checkpoint {path} is of another run ({state.get('config')}), not {asdict(config)}: "
                             "delete it or give this run another checkpoint path")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        sparse.load_state_dict(state["sparse"])
        scheduler.load_state_dict(state["scheduler"])
        order_gen.set_state(state["order_generator"])
        torch.set_rng_state(state["torch_generator"])
        result.epoch_seconds, result.layer_density = list(state["epoch_seconds"]), list(state["layer_density"])
        first_epoch = state["epochs_done"]
    for epoch in range(first_epoch, epochs_run or config.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x), generator=order_gen).to(x.device)
        for s in range(steps):
            idx = order[s * config.batch_size:(s + 1) * config.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            if step_losses is not None:
                step_losses.append(float(loss.detach()))
            sparse.step()
            scheduler.step()
        sparse.end_epoch()
        result.epoch_seconds.append(time.perf_counter() - start)
        if epoch_errors is not None:
            epoch_errors.append(test_error(model, data.x_test, data.y_test))
        result.layer_density.append(sparse.layer_densities())
        if path is not None:
            _save_atomic({"format": CHECKPOINT_FORMAT, "config": asdict(config), "epochs_done": epoch + 1,
                          "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                          "sparse": sparse.state_dict(), "scheduler": scheduler.state_dict(),
                          "order_generator": order_gen.get_state(), "torch_generator": torch.get_rng_state(),
                          "epoch_seconds": result.epoch_seconds, "layer_density": result.layer_density}, path)
        if progress is not None:
            progress(epoch, result.epoch_seconds[-1])
    n_test = config.test_subset or len(data.x_test)
    result.test_error = test_error(model, data.x_test[:n_test], data.y_test[:n_test])
    return result


def finetune_with_masks(model: nn.Module, masks: dict[str, torch.Tensor], data: MnistData, *, epochs: int = 1,
                        lr: float = 0.01, subset: int | None = None, seed: int = 0) -> SparseMomentum:
    """Retrain a pruned net with its masks held fixed (no prune/regrow cycles), e.g. after 2:4."""
    optimizer = sgd(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    wrapper = SparseMomentum(model, optimizer, 0.5, masks=masks)
    x, y = data.x_train[:subset], data.y_train[:subset]
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(100):
            idx = idx.to(x.device)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            wrapper.step()
    return wrapper


def sweep(model: str, densities: Iterable[float], seeds: Iterable[int], epochs: int, data: MnistData, *,
          device: torch.device | str = "cpu", bar=None, keep: Callable[[RunConfig], bool] | None = None,
          **config: Any) -> tuple[list[dict[str, Any]], dict[tuple[float, int], RunResult]]:
    """Train every (density, seed); returns one row per run and the runs `keep` asks to keep."""
    rows, kept = [], {}
    for density in densities:
        for seed in seeds:
            cfg = RunConfig(model=model, density=float(density), epochs=epochs, seed=seed, **config)
            run = train(cfg, data, device=device)
            rows.append({"model": model, "density": cfg.density, "seed": seed, "epochs": epochs,
                         "growth": cfg.growth, "redistribution": cfg.redistribution,
                         "test_error": run.test_error})
            if keep is not None and keep(cfg):
                kept[(cfg.density, seed)] = run
            if bar is not None:
                bar.update(1)
    return rows, kept


def summarize(rows: list[dict[str, Any]]) -> "Any":
    """Mean test error and its standard error over seeds, per (model, density, variant)."""
    import pandas as pd

    df = pd.DataFrame(rows)
    keys = [k for k in ("model", "growth", "redistribution", "density") if k in df]
    g = df.groupby(keys)["test_error"]
    out = g.agg(["mean", "count"]).rename(columns={"mean": "error", "count": "seeds"})
    out["se"] = g.std(ddof=1) / np.sqrt(out["seeds"])
    return out.reset_index()


def merge_full_results(parts: list[str], out: str, commands: list[str], planned: list[float], note: str = "") -> dict:
    """Merge the per-process JSON files of `python -m book.chapters.sparse` into one committed file that
    says what was run (epochs, seeds per density), what was planned but not finished, and how."""
    import json
    from pathlib import Path

    runs = [r for p in parts for r in json.loads(Path(p).read_text())["runs"]]
    runs.sort(key=lambda r: (-r["density"], r["seed"]))
    done = sorted({r["density"] for r in runs}, reverse=True)
    seeds = {d: sorted(r["seed"] for r in runs if r["density"] == d) for d in done}
    epochs = sorted({r["epochs"] for r in runs})
    missing = [d for d in planned if d not in done]
    description = (f"LeNet-300-100, paper's MNIST setup, {'/'.join(map(str, epochs))} epochs on all 60,000 images; "
                   + "; ".join(f"density {d:g}: seeds {seeds[d]}" for d in done)
                   + (f"; planned but not finished: densities {missing}" if missing else "")
                   + (f". {note}" if note else ""))
    doc = {"description": description, "commands": commands, "runs": runs}
    Path(out).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


# ----------------------------------------------------------------------------------------------
# Committed full-mode evidence (results/sparse/): what it holds, and how to make it again
# ----------------------------------------------------------------------------------------------
ALL_DENSITIES = [1.0, 0.2, 0.1, 0.08, 0.05, 0.02, 0.01]
LENET5_DENSITIES = [1.0, 0.05, 0.2, 0.1, 0.02, 0.01]   # the paper's sweep, the densities the verdicts use first
ABLATIONS = [("momentum", "momentum"), ("random", "momentum"), ("momentum", "none")]
# The sweeps the evidence files stand for (`python -m book.chapters.sparse --plan NAME` runs or continues
# one; each file's description says which of its runs have finished).
FULL_PLAN: dict[str, list[dict[str, Any]]] = {
    "lenet300": [dict(model="lenet300", densities=ALL_DENSITIES, seeds=[0, 1, 2], epochs=100)],
    "lenet5": [dict(model="lenet5", densities=LENET5_DENSITIES, seeds=[0, 1], epochs=100)],
    "ablation": [dict(model="lenet300", densities=[0.02], seeds=[0, 1, 2, 3, 4], epochs=20, growth=g,
                      redistribution=r) for g, r in ABLATIONS],
}
SPECIALIZATION_PLAN = dict(densities=[1.0, 0.05], seeds=[0, 1, 2], epochs=3)


def cli_args(spec: dict[str, Any], out: str) -> list[str]:
    """The `python -m book.chapters.sparse` arguments of an ad hoc sweep like one entry of FULL_PLAN."""
    args = ["--model", spec["model"], "--epochs", str(spec["epochs"]),
            "--seeds", *map(str, spec["seeds"]), "--densities", *map(str, spec["densities"])]
    for key in ("growth", "redistribution"):
        if key in spec:
            args += [f"--{key}", spec[key]]
    return args + ["--out", out]


def specialization_description() -> str:
    p = SPECIALIZATION_PLAN
    return (f"LeNet-5-Caffe at densities {p['densities']}, seeds {p['seeds']}, {p['epochs']} epochs on all 60,000 "
            "MNIST training images (the paper's setup otherwise; the first learning-rate drop comes at epoch 42, "
            "so these nets are trained at the initial rate only); class specialization measured on all 10,000 "
            "test images")


def save_cli_evidence(name: str, parts: list[str], *, description: str, commands: list[str], wall_s: float | None,
                      device: str = "cpu", note: str = "", keep_runs: list[dict[str, Any]] | None = None,
                      **extra: Any) -> "Any":
    """Store the rows of finished `python -m book.chapters.sparse` runs (their --out files, plus `keep_runs`
    carried over from an earlier evidence file) as results/sparse/<name>.json with its provenance."""
    import json
    from pathlib import Path

    from book.core import evidence

    runs = list(keep_runs or []) + [r for p in parts for r in json.loads(Path(p).read_text())["runs"]]
    runs.sort(key=lambda r: (r["model"], r.get("growth", ""), r.get("redistribution", ""), -r["density"], r["seed"]))
    data = {"description": description, "commands": commands, "runs": runs, **extra}
    return evidence.save("sparse", name, data, command=" ; ".join(commands), device=device, wall_s=wall_s, note=note)
