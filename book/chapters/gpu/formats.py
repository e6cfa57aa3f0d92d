"""Number formats (gpu-6: fp16 range, loss scaling, bf16, tf32, in a real training run) and 2:4
structured sparsity's compressed form (gpu-7)."""
from __future__ import annotations

import numpy as np
import torch


# ---------------------------------------------------------------------------------------------
# gpu-6: number formats
# ---------------------------------------------------------------------------------------------
def round_to_tf32(x: torch.Tensor) -> torch.Tensor:
    """fp32 → TF32 (10 explicit mantissa bits, fp32's exponent), round to nearest even, as the
    Tensor Cores see their inputs; returned as fp32. Used to emulate TF32 where there is no GPU."""
    if x.dtype != torch.float32:
        raise TypeError(f"round_to_tf32 takes float32, not {x.dtype}")
    bits = x.contiguous().view(torch.int32)
    drop = 13  # 23 → 10 mantissa bits
    lsb = (bits >> drop) & 1
    rounded = (bits + ((1 << (drop - 1)) - 1) + lsb) & ~((1 << drop) - 1)
    finite = torch.isfinite(x)
    return torch.where(finite, rounded.view(torch.float32), x)


def matmul_error_by_format(n: int = 256, seed: int = 0, device: str | torch.device = "cpu") -> dict:
    """Relative Frobenius error of A·B against fp64 for fp32, tf32 (real on a GPU that allows it,
    emulated by rounding the inputs elsewhere), bf16 and fp16 inputs."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, n, generator=g, dtype=torch.float64)
    b = torch.randn(n, n, generator=g, dtype=torch.float64)
    ref = a @ b
    dev = torch.device(device)

    def err(c):
        return float(torch.linalg.norm(c.double().cpu() - ref) / torch.linalg.norm(ref))

    a32, b32 = a.float().to(dev), b.float().to(dev)
    out = {}
    if dev.type == "cuda":
        prev = torch.backends.cuda.matmul.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = False
            out["fp32"] = err(a32 @ b32)
            torch.backends.cuda.matmul.allow_tf32 = True
            out["tf32"] = err(a32 @ b32)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = prev
    else:
        out["fp32"] = err(a32 @ b32)
        out["tf32 (emulated)"] = err(round_to_tf32(a32) @ round_to_tf32(b32))
    out["bf16"] = err(a32.bfloat16() @ b32.bfloat16())
    out["fp16"] = err(a32.half() @ b32.half())
    return out


def format_range_facts() -> dict:
    """What each dtype does with 65,504·2 (overflow) and 1e-8 (underflow), and their max values."""
    big, tiny = 65504.0 * 2, 1e-8
    facts = {}
    for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16), ("fp32", torch.float32)):
        fi = torch.finfo(dt)
        facts[name] = {"max": float(fi.max), "smallest_subnormal": float(fi.smallest_normal * fi.eps),
                       "2x65504": float(torch.tensor(big, dtype=dt)),
                       "1e-8": float(torch.tensor(tiny, dtype=dt))}
    return facts


class DynamicLossScaler:
    """Loss scaling as mixed-precision training does it: multiply the loss by `scale` before backward;
    if any gradient overflowed (inf/nan), skip the step and halve the scale; after `growth_interval`
    clean steps, double it."""

    def __init__(self, init_scale: float = 2.0**16, growth_interval: int = 50) -> None:
        if init_scale <= 0 or growth_interval < 1:
            raise ValueError("init_scale must be positive and growth_interval ≥ 1")
        self.scale = float(init_scale)
        self.growth_interval = growth_interval
        self._clean = 0
        self.skipped = 0

    def update(self, found_inf: bool) -> bool:
        """Record one step; return True when the step should be applied."""
        if found_inf:
            self.scale /= 2
            self._clean = 0
            self.skipped += 1
            return False
        self._clean += 1
        if self._clean % self.growth_interval == 0:
            self.scale *= 2
        return True


def deep_sigmoid_mlp(depth: int = 8, width: int = 64, seed: int = 0) -> torch.nn.Sequential:
    """A deep sigmoid MLP for MNIST: the classic vanishing-gradient net (σ' ≤ 1/4 per layer), whose
    first-layer gradients are small enough to fall under fp16's smallest subnormal (6e-8)."""
    torch.manual_seed(seed)
    layers: list[torch.nn.Module] = [torch.nn.Flatten(), torch.nn.Linear(784, width), torch.nn.Sigmoid()]
    for _ in range(depth - 2):
        layers += [torch.nn.Linear(width, width), torch.nn.Sigmoid()]
    layers.append(torch.nn.Linear(width, 10))
    return torch.nn.Sequential(*layers)


PRECISION_MODES = ("fp32", "fp16", "fp16+loss scaling", "bf16")


class torch_threads:
    """Run a block with `n` torch threads (then restore): a small net's ops are too short to gain
    from a thread pool, and on a busy machine the pool's synchronisation costs far more than it gives."""

    def __init__(self, n: int = 1) -> None:
        self.n = n

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)
        return False


def train_low_precision(mode: str, x: torch.Tensor, y: torch.Tensor, *, steps: int = 100,
                        batch: int = 128, lr: float = 1e-3, seed: int = 0, depth: int = 8,
                        init_scale: float = 2.0**24, device: str | torch.device = "cpu") -> dict:
    """Mixed-precision training of `deep_sigmoid_mlp` on (x, y): fp32 master weights and Adam, the
    forward and backward pass in the mode's dtype; gradients are copied to fp32 (and unscaled) before
    the step. Returns per-step losses, the fraction of first-layer gradient entries that are exactly
    zero (mean, and per applied step), their median magnitude, the relative change of the first layer's weights, and the loss
    scaler's skipped steps and final scale."""
    if mode not in PRECISION_MODES:
        raise ValueError(f"mode must be one of {PRECISION_MODES}, not {mode!r}")
    if torch.device(device).type == "cpu":
        with torch_threads(1):
            return _train_low_precision(mode, x, y, steps=steps, batch=batch, lr=lr, seed=seed, depth=depth,
                                        init_scale=init_scale, device=device)
    return _train_low_precision(mode, x, y, steps=steps, batch=batch, lr=lr, seed=seed, depth=depth,
                                init_scale=init_scale, device=device)


def _train_low_precision(mode, x, y, *, steps, batch, lr, seed, depth, init_scale, device) -> dict:
    dev = torch.device(device)
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "fp16+loss scaling": torch.float16,
             "bf16": torch.bfloat16}[mode]
    master = deep_sigmoid_mlp(depth=depth, seed=seed).to(dev)
    work = deep_sigmoid_mlp(depth=depth, seed=seed).to(dev).to(dtype)
    opt = torch.optim.Adam(master.parameters(), lr=lr)
    scaler = DynamicLossScaler(init_scale) if mode == "fp16+loss scaling" else None
    g = torch.Generator().manual_seed(seed)
    losses, zero_frac, first_grad_abs = [], [], []
    first_init = next(master.parameters()).detach().clone()
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g)
        xb, yb = x[idx].to(dev, dtype), y[idx].to(dev)
        with torch.no_grad():
            for pw, pm in zip(work.parameters(), master.parameters()):
                pw.copy_(pm.to(dtype))
        work.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(work(xb).float(), yb)
        scale = scaler.scale if scaler else 1.0
        (loss * scale).backward()
        grads = [p.grad.float() / scale for p in work.parameters()]
        found_inf = not all(bool(torch.isfinite(gr).all()) for gr in grads)
        apply = scaler.update(found_inf) if scaler else not found_inf
        if apply:
            for pm, gr in zip(master.parameters(), grads):
                pm.grad = gr
            opt.step()
            first = grads[0]
            zero_frac.append(float((first == 0).float().mean()))
            first_grad_abs.append(float(first.abs().median()))
        losses.append(loss.item())
    return {"mode": mode, "losses": losses, "first_layer_zero_frac": float(np.mean(zero_frac)) if zero_frac else float("nan"),
            "first_layer_grad_median": float(np.median(first_grad_abs)) if first_grad_abs else float("nan"),
            "first_layer_zero_steps": zero_frac,
            "first_layer_change": float((next(master.parameters()).detach() - first_init).norm() / first_init.norm()),
            "skipped": scaler.skipped if scaler else 0, "final_scale": scaler.scale if scaler else 1.0,
            "model": master}


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


# ---------------------------------------------------------------------------------------------
# gpu-7: 2:4 structured sparsity
# ---------------------------------------------------------------------------------------------
def prune_2_4(w: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest-magnitude entries of every group of 4 consecutive entries in each row."""
    if w.ndim != 2 or w.shape[1] % 4:
        raise ValueError(f"need a 2-D matrix whose columns are a multiple of 4, got shape {tuple(w.shape)}")
    groups = w.reshape(w.shape[0], -1, 4)
    keep = groups.abs().topk(2, dim=-1).indices
    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
    return (groups * mask).reshape_as(w)


def compress_2_4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The compressed form of a 2:4 matrix: the 2 kept values of each group (half the entries) and
    their 2-bit positions within the group (stored here as uint8 0..3)."""
    if w.ndim != 2 or w.shape[1] % 4:
        raise ValueError(f"need a 2-D matrix whose columns are a multiple of 4, got shape {tuple(w.shape)}")
    groups = w.reshape(w.shape[0], -1, 4)
    if int((groups != 0).sum(-1).max()) > 2:
        raise ValueError("matrix is not 2:4 sparse (a group of 4 has more than 2 non-zeros)")
    # positions of the two kept entries, in order (ties among zeros resolved by position)
    key = (groups != 0).to(torch.int8) * 8 - torch.arange(4)  # prefer non-zeros, then lower index
    idx = key.topk(2, dim=-1).indices.sort(dim=-1).values
    values = groups.gather(-1, idx).reshape(w.shape[0], -1)
    return values, idx.reshape(w.shape[0], -1).to(torch.uint8)


def decompress_2_4(values: torch.Tensor, index: torch.Tensor, cols: int) -> torch.Tensor:
    rows = values.shape[0]
    out = torch.zeros(rows, cols // 4, 4, dtype=values.dtype, device=values.device)
    out.scatter_(-1, index.reshape(rows, -1, 2).long(), values.reshape(rows, -1, 2))
    return out.reshape(rows, cols)


def compressed_size_ratio(w: torch.Tensor, metadata_bits: int = 2) -> dict:
    """Bytes of the compressed form over the dense matrix: values alone, and with the metadata."""
    values, _ = compress_2_4(w)
    dense = w.numel() * w.element_size()
    vals = values.numel() * values.element_size()
    meta = values.numel() * metadata_bits / 8
    return {"values_only": vals / dense, "with_metadata": (vals + meta) / dense}
