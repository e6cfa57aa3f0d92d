"""Benchmark of the sparse chapter's training loop, measured side by side with its peers in one run.

    python benchmarks/bench_sparse.py [--model lenet5] [--density 0.05] [--rounds 2] [--ghz 2.45] [--save]

Under the book's numerics profile (AVX2 kernels, one thread: `import book` first), it reports

1. the chapter's epoch: `training.train` on all 60,000 MNIST images, batch 100, the run's first epoch
   including its prune/redistribute/regrow cycle, against a **naive peer**: a bare dense LeNet-5
   epoch in plain torch (a textbook `nn.Module`, `F.max_pool2d`, SGD with the same settings, the same
   in-memory MNIST tensors, no DataLoader). Epochs are timed in ABBA order (`--rounds` pairs each)
   so a shared, drifting CPU load falls on both alike; the ratio is the geometric mean of the paired
   ratios (issue 22's goal: at most 0.45);
2. the same epoch against the FLOP limit of the CPU: the net's forward + backward FLOPs per image
   (conv1 needs no input gradient) times 60,000, at `--ghz` x 32 fp32 FLOP per cycle (AVX2 + FMA: two
   8-wide FMA units) on one core;
3. the sparse step against a dense step of the same net (same layout, plain `optimizer.step()`, no
   wrapper), in interleaved blocks (`book.core.timing.interleaved`; target at most 1.15), and the
   epoch-end cycle as a share of the epoch (target at most 5 %);
4. the floor these kernels set: the conv and fully connected layers' forward and backward, each
   layer alone at the loop's shapes, summed over a step and an epoch, and for LeNet-5 as a share of
   a naive step timed between them (the lowest ratio reachable with everything else free);
5. where a step's time goes: each layer's forward and backward, the loss, the optimizer with the
   masks and the rest, clocked inside `--profile-steps` real sparse steps (module and tensor hooks;
   not torch.profiler, whose bookkeeping was measured to inflate a 4.6 MB zero-fill in pooling's
   backward from about 1 ms to 9), as shares of the step, and for the conv and fully connected
   layers the GFLOP/s they reach against the one-core peak; with the time the conv layers alone cost
   an epoch (a floor for any change that keeps their kernels);
6. the conv kernels the chapter could use instead, the second conv's forward + backward at the
   loop's shapes, timed interleaved: oneDNN in channels-last (the chapter's), oneDNN channel-major
   and ATen's own kernel (oneDNN off) in channels-last; and the chapter's compiled kernels (the first
   conv with its pooling and ReLU, the second pooling with its ReLU, the optimizer's step:
   `book.chapters.sparse.conv1`, `pooling`, `fused_sgd`, each with torch's bits) against what they
   replace, timed interleaved.

`--save` stores the figures with their provenance (CPU, commit, versions, the load average before
and after) as `results/sparse/benchmark.json`, which the chapter quotes; run it on a quiet machine
(no sweep running), since the targets are about one core of it.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import time

import book  # noqa: F401  (the numerics profile, before torch)
import torch
import torch.nn as nn
import torch.nn.functional as F

from book.chapters import sparse as sp
from book.chapters.sparse import conv1, fused_sgd, pooling
from book.core import numerics
from book.core.timing import interleaved, paired_ratio_interval


# ----------------------------------------------------------------------------------------------
# The naive peer: LeNet-5-Caffe as anyone would write it in plain torch
# ----------------------------------------------------------------------------------------------
class PlainLeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(800, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def plain_epoch(x: torch.Tensor, y: torch.Tensor, seed: int = 0, batch: int = 100) -> float:
    """Seconds of one dense epoch of the plain loop."""
    torch.manual_seed(seed)
    model = PlainLeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    start = time.perf_counter()
    for idx in torch.randperm(len(x)).split(batch):
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return time.perf_counter() - start


class _FirstEpochDone(Exception):
    pass


def chapter_epoch(data: sp.MnistData, model: str, density: float, seed: int = 0) -> float:
    """Seconds of the first epoch of the chapter's own `train()` (a 100-epoch run, stopped after it;
    the epoch includes its prune/redistribute/regrow cycle)."""
    times = []

    def stop(epoch: int, seconds: float) -> None:
        times.append(seconds)
        raise _FirstEpochDone

    try:
        sp.train(sp.RunConfig(model=model, density=density, epochs=100, seed=seed), data, progress=stop)
    except _FirstEpochDone:
        pass
    return times[0]


def flops_per_image(model: nn.Sequential) -> float:
    """Forward + backward FLOPs of one image: forward 2 per weight per output position; backward
    twice that (input and weight gradients), less the input gradient of the first layer."""
    layer = sp.layer_flops(model)
    forward = sum(v["dense"] for v in layer.values())
    first = next(iter(layer.values()))["dense"]
    return 3 * forward - first


def cpu_ghz() -> float | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            mhz = [float(line.split(":")[1]) for line in f if line.startswith("cpu MHz")]
        return max(mhz) / 1000 if mhz else None
    except OSError:
        return None


# ----------------------------------------------------------------------------------------------
# Sparse step against dense step of the same net (interleaved blocks)
# ----------------------------------------------------------------------------------------------
def make(model_name: str, density: float, seed: int = 0):
    torch.manual_seed(seed)
    model = sp.MODELS[model_name]()
    opt = sp.sgd(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)   # the chapter's optimizer
    return model, opt, sp.SparseMomentum(model, opt, density, epochs=100, seed=seed)


def block(model, opt, stepper, x, y, batches, batch_size=100) -> float:
    """Seconds per training step over `batches` steps (forward, backward, optimizer + masks)."""
    start = time.perf_counter()
    for b in range(batches):
        xb, yb = x[b * batch_size:(b + 1) * batch_size], y[b * batch_size:(b + 1) * batch_size]
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(xb), yb).backward()
        stepper()
    return (time.perf_counter() - start) / batches


# ----------------------------------------------------------------------------------------------
# Where a step's time goes (clocked inside real steps), and the conv kernels at hand
# ----------------------------------------------------------------------------------------------
def _layer(stage: nn.Module) -> nn.Module:
    """The net's layer a stage computes (the compiled first conv holds its layer)."""
    return stage.conv if isinstance(stage, (conv1.Conv1Stage, conv1.Conv1PoolReLUStage)) else stage


def _kind(m: nn.Module) -> str:
    m = _layer(m)
    return ("conv" if isinstance(m, nn.Conv2d) else "fully connected" if isinstance(m, nn.Linear)
            else "max pooling + ReLU" if isinstance(m, pooling.MaxPool2ReLU)
            else "max pooling" if isinstance(m, nn.MaxPool2d) else "ReLU" if isinstance(m, nn.ReLU) else "other")


def _stages(model: nn.Sequential, x: torch.Tensor) -> list[nn.Module]:
    """What the net's forward runs, in order: LeNet-5's stages (`training.LeNet5Caffe`) where it runs
    them, else its layers."""
    runs_in_stages = getattr(model, "_runs_in_stages", lambda x: False)(x)
    return list(model.stages) if runs_in_stages else list(model)


def step_phases(model: nn.Sequential, opt, stepper, x: torch.Tensor, y: torch.Tensor, steps: int,
                batch: int = 100) -> dict[str, float]:
    """Seconds per step of each phase of real training steps, clocked inside them: each stage's (`_stages`)
    forward (module hooks before and after it) and backward (the time between the gradients of its
    output and of its input becoming ready: tensor hooks; the first layer's ends when `backward()`
    returns), the loss, the optimizer with the masks (`stepper`), and the rest of the step."""
    clock, acc, last = time.perf_counter, {}, {}

    def add(key: str, seconds: float) -> None:
        acc[key] = acc.get(key, 0.0) + seconds

    def grad_ready(i: int) -> None:
        now = clock()
        if "bwd" in last:   # the layer after this one just ran its backward
            add(last["bwd_key"], now - last["bwd"])
        else:
            add("loss", now - last["loss"])
        last["bwd"], last["bwd_key"] = now, f"{i} backward"

    hooks = []
    for i, m in enumerate(_stages(model, x)):
        hooks.append(m.register_forward_pre_hook(lambda m, inp: last.__setitem__("fwd", clock())))

        def post(m, inp, out, i=i) -> None:
            now = clock()
            add(f"{i} forward", now - last["fwd"])
            last["loss"] = now
            if out.requires_grad:
                out.register_hook(lambda g: grad_ready(i))
        hooks.append(m.register_forward_hook(post))
    try:
        for b in range(steps):
            t0 = clock()
            xb, yb = x[b * batch:(b + 1) * batch], y[b * batch:(b + 1) * batch]
            opt.zero_grad(set_to_none=True)
            last.clear()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            t1 = clock()
            add(last["bwd_key"], t1 - last["bwd"])   # the first layer's backward ends here
            stepper()
            t2 = clock()
            add("optimizer and masks", t2 - t1)
            add("step", t2 - t0)
    finally:
        for h in hooks:
            h.remove()
    return {k: v / steps for k, v in acc.items()}


def where_time_goes(model_name: str, density: float, x: torch.Tensor, y: torch.Tensor, steps: int,
                    ghz: float, batch: int = 100) -> dict:
    """Where the sparse step's time goes, phase by phase (`step_phases` over `steps` steps after 5
    warm-up steps), grouped by kind of layer, with the FLOPs of the conv and fully connected layers
    and the GFLOP/s they reach against the one-core peak."""
    model, opt, wrapper = make(model_name, density)
    block(model, opt, wrapper.step, x, y, 5, batch)
    phases = step_phases(model, opt, wrapper.step, x[5 * batch:], y[5 * batch:], steps, batch)
    layer = sp.layer_flops(sp.MODELS[model_name]())
    stages = _stages(model, x)
    in_model = {id(m): i for i, m in enumerate(model)}   # a stage's layer, for its name in layer_flops
    kinds = {i: _kind(m) for i, m in enumerate(stages)}
    first_weighted = min(i for i, k in kinds.items() if k in ("conv", "fully connected"))
    conv_number = {i: n for n, i in enumerate((i for i, k in kinds.items() if k == "conv"), start=1)}
    groups: dict[str, dict] = {}
    for key, sec in phases.items():
        if key == "step":
            continue
        name, flop = key, None
        if key.split()[0].isdigit():
            i, way = int(key.split()[0]), key.split()[1]
            kind = kinds[i]
            weighted = kind in ("conv", "fully connected")
            fwd = layer[f"{in_model[id(_layer(stages[i]))]}.weight"]["dense"] * batch if weighted else None
            backward = fwd if i == first_weighted or fwd is None else 2 * fwd   # no input gradient first
            if kind == "conv":
                m = _layer(stages[i])
                name = f"conv{conv_number[i]} ({m.in_channels}→{m.out_channels}) {way}"
                if isinstance(stages[i], conv1.Conv1PoolReLUStage):
                    name = f"conv{conv_number[i]} ({m.in_channels}→{m.out_channels}) with its pooling and ReLU {way}"
                flop = fwd if way == "forward" else backward
            elif kind == "fully connected":
                name, flop = "fully connected, forward + backward", fwd if way == "forward" else backward
            else:
                name = {"max pooling": "max pooling, forward + backward", "ReLU": "ReLU, forward + backward",
                        "max pooling + ReLU": "max pooling with its ReLU (one kernel), forward + backward"}.get(
                    kind, "other layers (flatten), forward + backward")
        g = groups.setdefault(name, {"kernels": name, "seconds": 0.0, "flop": 0.0})
        g["seconds"] += sec
        g["flop"] += flop or 0.0
    step = phases["step"]
    rest = step - sum(g["seconds"] for g in groups.values())
    groups["the rest"] = {"kernels": "the rest (zero_grad, batch slicing)", "seconds": rest, "flop": 0.0}
    peak = ghz * 32
    rows = []
    for g in sorted(groups.values(), key=lambda g: -g["seconds"]):
        row = {"kernels": g["kernels"], "ms_per_step": round(g["seconds"] * 1e3, 3), "share": round(g["seconds"] / step, 4)}
        if g["flop"]:
            gflops = g["flop"] / g["seconds"] / 1e9
            row.update(gflop_per_step=round(g["flop"] / 1e9, 4), gflops=round(gflops, 1), of_peak=round(gflops / peak, 3))
        rows.append(row)
    conv_s = sum(g["seconds"] for g in groups.values() if g["kernels"].startswith("conv"))
    return {"steps": steps, "density": density, "step_ms": round(step * 1e3, 3), "groups": rows,
            "peak_gflops": round(peak, 1), "conv_epoch_s": round(conv_s * (len(x) // batch), 2),
            "note": "phases clocked inside real sparse training steps (module and tensor hooks); the "
                    "conv layers' epoch is their time alone over a 600-step epoch"}


def conv_kernels(rounds: int, calls: int = 10) -> dict:
    """The second conv's forward + backward (input, weight and bias gradients) at the loop's shapes
    (100 images of 20x12x12, 50 5x5 filters), in ms per call, with each kernel choice timed
    interleaved: the chapter's (oneDNN, channels-last), oneDNN channel-major, ATen's own kernel."""
    torch.manual_seed(0)
    choices = {"oneDNN, channels-last (the chapter's)": (torch.channels_last, True),
               "oneDNN, channel-major": (torch.contiguous_format, True),
               "ATen's own kernel (oneDNN off), channels-last": (torch.channels_last, False)}

    def call(fmt, onednn):
        xin = torch.randn(100, 20, 12, 12).to(memory_format=fmt)
        w = torch.randn(50, 20, 5, 5).to(memory_format=fmt)
        gy = torch.randn(100, 50, 8, 8).to(memory_format=fmt)

        def run():
            with torch.backends.mkldnn.flags(enabled=onednn):
                for _ in range(calls):
                    F.conv2d(xin, w)
                    torch.ops.aten.convolution_backward(gy, xin, w, [50], [1, 1], [0, 0], [1, 1], False,
                                                        [0, 0], 1, [True, True, True])
        return run

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # torch's note on TF32 when oneDNN's flags are set
        trials = interleaved({k: call(*v) for k, v in choices.items()}, rounds=rounds, warmup=1)
    return {k: round(statistics.median(v) / calls * 1e3, 2) for k, v in trials.items()}


def compiled_kernels(rounds: int, calls: int = 10) -> dict:
    """The chapter's compiled kernels against what they replace, at a LeNet-5 step's shapes, in ms per
    step, each pair timed interleaved (both sides give the same bits: their tests): the first conv
    with its pooling and ReLU, forward + the conv's weight and bias gradients (100 images; oneDNN's
    conv, ATen's max_pool2d and relu); the second pooling with its ReLU and the flatten, forward +
    backward (100 maps of 50x8x8, channels-last; ATen's ops with `FlattenChannelsLast`'s layout
    copies); and the optimizer's step on the net's 431 k parameters (torch's foreach SGD)."""
    torch.manual_seed(0)
    cl = torch.channels_last
    net = sp.lenet5_caffe()
    images = torch.randn(100, 1, 28, 28).contiguous(memory_format=cl)
    pooled_grad = torch.randn(100, 20, 12, 12).contiguous(memory_format=cl)
    first = conv1.Conv1PoolReLUStage(net[0])
    conv_params = [net[0].weight, net[0].bias]
    second = torch.randn(100, 50, 8, 8).contiguous(memory_format=cl).requires_grad_()
    flat_grad = torch.randn(100, 800)
    flatten = sp.training.FlattenChannelsLast()
    params = list(net.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    mine = sp.sgd(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
    theirs = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4, foreach=True)
    mine.step(), theirs.step()   # momentum made

    def repeat(fn):
        def run():
            for _ in range(calls):
                fn()
        return run

    pairs = {
        "first conv with its pooling and ReLU, forward + backward": {
            "compiled (the chapter's)": repeat(lambda: torch.autograd.grad(first(images), conv_params, pooled_grad)),
            "oneDNN's conv, ATen's max_pool2d and relu": repeat(lambda: torch.autograd.grad(
                F.relu(F.max_pool2d(net[0](images), 2)), conv_params, pooled_grad))},
        "second pooling with its ReLU and the flatten, forward + backward": {
            "compiled (the chapter's)": repeat(lambda: torch.autograd.grad(
                pooling.max_pool2_relu(second, channel_major=True).flatten(1), second, flat_grad)),
            "ATen's max_pool2d, relu and flatten's copies": repeat(lambda: torch.autograd.grad(
                flatten(F.relu(F.max_pool2d(second, 2))), second, flat_grad))},
        "optimizer step (SGD, Nesterov, weight decay)": {
            "compiled (the chapter's)": repeat(mine.step), "torch's foreach SGD": repeat(theirs.step)},
    }
    out = {}
    for what, sides in pairs.items():
        trials = interleaved(sides, rounds=rounds, warmup=2)
        out[what] = {k: round(statistics.median(v) / calls * 1e3, 3) for k, v in trials.items()}
    return out


def kernel_floor(model_name: str, rounds: int, naive_data: tuple[torch.Tensor, torch.Tensor] | None = None,
                 batch: int = 100, calls: int = 10) -> dict:
    """The weighted layers' own kernels, each layer alone at the loop's shapes: its forward and its
    backward with the gradients the loop asks of it (weight and bias; the input's too, but for the
    first layer), in ms per step (median of `rounds` interleaved trials of `calls` calls). Their sum is
    what a step costs with everything else (pooling, ReLU, loss, optimizer, masks, Python) free: the
    floor of any change that keeps these kernels. With `naive_data` (MNIST images and labels), `calls`
    steps of the naive peer's dense LeNet-5 loop are interleaved with them, so the floor's share of a
    naive step is measured under the same load (this machine's speed drifts by a quarter within
    minutes: measured)."""
    torch.manual_seed(0)
    model = sp.MODELS[model_name]()
    probe = torch.zeros(batch, 1, 28, 28)
    stages = _stages(model, probe)   # each weighted layer as the loop runs it (the first conv: compiled)
    shapes, hooks = {}, []
    for i, m in enumerate(stages):
        if _kind(m) in ("conv", "fully connected"):
            hooks.append(m.register_forward_hook(lambda m, inp, out, i=i: shapes.__setitem__(i, inp[0])))
    with torch.no_grad():
        model(probe)
    for h in hooks:
        h.remove()
    first = min(shapes)

    def layer_step(i: int):
        m, like = stages[i], shapes[i]
        if isinstance(m, conv1.Conv1PoolReLUStage):   # the layer alone: the conv without its pooling
            m = conv1.Conv1Stage(m.conv)
        fmt = torch.channels_last if like.dim() == 4 else torch.contiguous_format
        inp = torch.randn(like.shape).contiguous(memory_format=fmt).requires_grad_(i != first)
        wrt = ([inp] if i != first else []) + [_layer(m).weight, _layer(m).bias]
        grad_out = torch.randn(m(inp).shape).contiguous(memory_format=fmt)

        def run():
            for _ in range(calls):
                torch.autograd.grad(m(inp), wrt, grad_out)
        return run

    counter: dict[str, int] = {}
    labels = {}
    for i in sorted(shapes):
        kind = "conv" if _kind(stages[i]) == "conv" else "fc"
        counter[kind] = counter.get(kind, 0) + 1
        labels[i] = f"{kind}{counter[kind]}"
    fns = {labels[i]: layer_step(i) for i in sorted(shapes)}
    if naive_data is not None:
        torch.manual_seed(0)
        plain = PlainLeNet5()
        opt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        fns["naive step"] = lambda: block(plain, opt, opt.step, *naive_data, calls, batch)
    trials = interleaved(fns, rounds=rounds, warmup=1)
    naive = [t / calls for t in trials.pop("naive step", [])]
    per_layer = {k: round(statistics.median(v) / calls * 1e3, 3) for k, v in trials.items()}
    floor = {"layers_ms": per_layer, "step_ms": round(sum(per_layer.values()), 3)}
    if naive:
        floors = [sum(v[r] for v in trials.values()) / calls for r in range(rounds)]
        floor.update(naive_step_ms=round(statistics.median(naive) * 1e3, 3),
                     over_naive_step=round(statistics.median(f / n for f, n in zip(floors, naive)), 3))
    return floor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lenet5", choices=sorted(sp.MODELS))
    parser.add_argument("--density", type=float, default=0.05)
    parser.add_argument("--rounds", type=int, default=2, help="ABBA pairs of whole epochs (0: skip epochs)")
    parser.add_argument("--blocks", type=int, default=10, help="interleaved pairs of timed step blocks")
    parser.add_argument("--batches", type=int, default=30, help="steps per timed block")
    parser.add_argument("--profile-steps", type=int, default=60, help="steps clocked phase by phase (0: skip)")
    parser.add_argument("--ghz", type=float, default=None, help="core clock for the FLOP limit (default: /proc/cpuinfo)")
    parser.add_argument("--save", action="store_true", help="store the figures as results/sparse/benchmark.json")
    args = parser.parse_args()
    if args.save and (args.model != "lenet5" or not args.rounds):
        parser.error("--save records the LeNet-5 epoch benchmark: --model lenet5 and --rounds 1 or more")
    load_before, wall = os.getloadavg(), time.perf_counter()
    record: dict = {}
    data = sp.MnistData.load()
    x, y = data.x_train, data.y_train
    status = numerics.status()
    ghz = args.ghz or cpu_ghz() or 2.45
    print(f"model {args.model}, density {args.density}, torch {torch.__version__}, numerics profile "
          f"{status['profile']} (in force: {status['in_force']}, {status.get('cpu_capability')}, "
          f"{status.get('threads')} thread)")

    if args.rounds and args.model == "lenet5":
        chapter, plain = [], []
        for r in range(args.rounds):   # A B B A: each side as often first as second
            order = ("plain", "chapter") if r % 2 == 0 else ("chapter", "plain")
            for side in order + order[::-1]:
                if side == "plain":
                    plain.append(plain_epoch(x, y, seed=r))
                else:
                    chapter.append(chapter_epoch(data, args.model, args.density, seed=r))
                print(f"  {side} epoch {(plain if side == 'plain' else chapter)[-1]:.1f} s", flush=True)
        ratios = [c / p for c, p in zip(chapter, plain)]
        ratio = math.exp(statistics.fmean(map(math.log, ratios)))
        ep_c, ep_p = statistics.median(chapter), statistics.median(plain)
        flop = flops_per_image(sp.lenet5_caffe()) * len(x)
        limit = flop / (ghz * 1e9 * 32)
        print(f"chapter epoch ({args.density:g} density, train(), incl. its prune/regrow cycle): {ep_c:.1f} s "
              f"(median of {len(chapter)}) (target <= 20 s) {'OK' if ep_c <= 20 else 'MISSED'}")
        print(f"naive peer, bare dense LeNet-5 epoch in plain torch: {ep_p:.1f} s (median of {len(plain)})")
        print(f"chapter / naive peer: {ratio:.2f} (geometric mean of {len(ratios)} paired epochs, "
              f"range {min(ratios):.2f}-{max(ratios):.2f}) (goal <= 0.45) {'OK' if ratio <= 0.45 else 'MISSED'}")
        print(f"FLOP limit: {flop / 1e12:.3f} TFLOP per epoch ({flop / len(x) / 1e6:.2f} MFLOP per image, "
              f"forward + backward) at {ghz:.2f} GHz x 32 FLOP/cycle = {ghz * 32:.0f} GFLOP/s: {limit:.1f} s; "
              f"chapter epoch / limit {ep_c / limit:.2f} ({limit / ep_c:.0%} of peak), naive / limit "
              f"{ep_p / limit:.2f}; the limit itself is {limit / ep_p:.2f} of the naive epoch")
        record.update(model=args.model, density=args.density, chapter_epochs_s=[round(t, 2) for t in chapter],
                      plain_epochs_s=[round(t, 2) for t in plain], chapter_epoch_s=round(ep_c, 2),
                      plain_epoch_s=round(ep_p, 2), chapter_over_plain=round(ratio, 3),
                      chapter_over_plain_range=[round(min(ratios), 3), round(max(ratios), 3)],
                      flop_per_image=flop / len(x), ghz=ghz, flop_limit_s=round(limit, 2),
                      chapter_over_limit=round(ep_c / limit, 3), limit_over_plain=round(limit / ep_p, 3),
                      targets={"chapter_epoch_s": 20, "chapter_over_plain": 0.45, "sparse_over_dense_step": 1.15,
                               "cycle_share": 0.05})

    dense_model, dense_opt, _ = make(args.model, 1.0)
    sparse_model, sparse_opt, wrapper = make(args.model, args.density)
    trials = interleaved({"dense": lambda: block(dense_model, dense_opt, dense_opt.step, x, y, args.batches),
                          "sparse": lambda: block(sparse_model, sparse_opt, wrapper.step, x, y, args.batches)},
                         rounds=args.blocks, warmup=1)
    dense_times = [t / args.batches for t in trials["dense"]]
    sparse_times = [t / args.batches for t in trials["sparse"]]
    dense_step, sparse_step = statistics.median(dense_times), statistics.median(sparse_times)
    ratio, ratio_lo, ratio_hi = paired_ratio_interval(dense_times, sparse_times)
    steps_per_epoch = len(x) // 100
    redistribution = []
    for _ in range(3):   # each cycle on fresh momentum, as at the end of an epoch
        block(sparse_model, sparse_opt, wrapper.step, x, y, 5)
        start = time.perf_counter()
        wrapper.prune_and_regrow(0.5)
        redistribution.append(time.perf_counter() - start)
    cycle = statistics.median(redistribution)
    share = cycle / (sparse_step * steps_per_epoch)
    print(f"dense step {dense_step * 1e3:.2f} ms, sparse step {sparse_step * 1e3:.2f} ms (medians of {args.blocks} "
          f"blocks of {args.batches} steps, the chapter's net and layout both)")
    verdict = "OK" if ratio_hi <= 1.15 else ("MISSED" if ratio_lo > 1.15 else "UNDECIDED (interval straddles 1.15)")
    print(f"sparse / dense step: {ratio:.3f}, 95 % interval [{ratio_lo:.3f}, {ratio_hi:.3f}] over {args.blocks} "
          f"interleaved pairs of blocks (target <= 1.15) {verdict}")
    print(f"epoch-end cycle {cycle * 1e3:.1f} ms = {share * 100:.2f} % of a {steps_per_epoch}-step epoch "
          f"(target <= 5 %) {'OK' if share <= 0.05 else 'MISSED'}")
    floor = kernel_floor(args.model, max(args.blocks, 2), naive_data=(x, y) if args.model == "lenet5" else None)
    floor["epoch_s"] = round(floor["step_ms"] * steps_per_epoch / 1e3, 2)
    print(f"the weighted layers' kernels alone, each layer timed by itself at the loop's shapes: "
          f"{floor['step_ms']:.2f} ms a step ({', '.join(f'{k} {v:.2f}' for k, v in floor['layers_ms'].items())}) "
          f"= {floor['epoch_s']:.1f} s an epoch")
    if "over_naive_step" in floor:
        reach = "" if floor["over_naive_step"] <= 0.45 else ": out of their reach"
        print(f"  = {floor['over_naive_step']:.2f} of a naive step timed between them ({floor['naive_step_ms']:.2f} ms): "
              f"the lowest chapter / naive ratio these kernels allow (goal <= 0.45{reach})")
    record["kernel_floor"] = floor
    if args.profile_steps:
        prof = where_time_goes(args.model, args.density, x, y, args.profile_steps, ghz)
        print(f"where a sparse step's {prof['step_ms']:.1f} ms go (clocked inside {prof['steps']} steps; "
              f"peak {prof['peak_gflops']:.0f} GFLOP/s):")
        for r in prof["groups"]:
            rate = (f", {r['gflops']:.0f} GFLOP/s = {r['of_peak']:.0%} of peak" if "gflops" in r else "")
            print(f"  {r['kernels']:<52} {r['ms_per_step']:7.2f} ms {r['share']:6.1%}{rate}")
        print(f"the conv layers alone: {prof['conv_epoch_s']:.1f} s an epoch")
        kernels = conv_kernels(rounds=max(args.blocks // 2, 2))
        print("second conv, forward + backward, ms per call (interleaved):")
        for k, v in kernels.items():
            print(f"  {k:<50} {v:7.2f} ms")
        own = compiled_kernels(rounds=max(args.blocks // 2, 2))
        print("the chapter's compiled kernels against what they replace, ms per step (interleaved, the same bits):")
        for what, sides in own.items():
            print(f"  {what}: " + "; ".join(f"{k} {v:.3f}" for k, v in sides.items()))
        builds = {m.NAME: m.describe() for m in (conv1, pooling, fused_sgd)}
        for name, how in builds.items():
            print(f"  {name}: {how}")
        record.update(where_time_goes=prof, conv2_kernels_ms=kernels, compiled_kernels_ms=own, kernel_builds=builds)
    if args.save:
        from book.core import evidence

        record.update(dense_step_ms=round(dense_step * 1e3, 3), sparse_step_ms=round(sparse_step * 1e3, 3),
                      sparse_over_dense_step=[round(v, 3) for v in (ratio, ratio_lo, ratio_hi)],
                      cycle_ms=round(cycle * 1e3, 2), cycle_share=round(share, 4), numerics=status,
                      load_average_before=[round(v, 2) for v in load_before],
                      load_average_after=[round(v, 2) for v in os.getloadavg()])
        path = evidence.save("sparse", "benchmark", record, wall_s=time.perf_counter() - wall,
                             command="python benchmarks/bench_sparse.py " + " ".join(
                                 f"--{k} {v}" for k, v in (("density", args.density), ("rounds", args.rounds),
                                                           ("blocks", args.blocks), ("batches", args.batches),
                                                           ("profile-steps", args.profile_steps))) + " --save",
                             note="seconds on one core of the CPU named here, one torch thread, under the "
                                  "numerics profile; ratios of epochs timed side by side in one process")
        print(f"saved {path}")


if __name__ == "__main__":
    main()
