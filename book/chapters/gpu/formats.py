"""Number formats (gpu-6: fp16 range, loss scaling, bf16, tf32, in a real training run) and the
check of 2:4 structured sparsity's compressed form on the CPU (gpu-7; the format itself is
`book.core.sparsity24`)."""
from __future__ import annotations

import numpy as np
import torch

from book.core import sparsity24


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


def train_all_precisions(x: torch.Tensor, y: torch.Tensor, *, modes=PRECISION_MODES, progress: bool = True,
                         **kw) -> dict[str, dict]:
    """gpu-6: `train_low_precision` in each mode on the same data and seed (`kw` passes on), with a
    progress bar."""
    if progress:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tqdm warns when ipywidgets is absent; plain bars are fine
            from tqdm.auto import tqdm
        modes = tqdm(modes, desc="training")
    return {mode: train_low_precision(mode, x, y, **kw) for mode in modes}


def precision_summary(runs: dict[str, dict], x_test: torch.Tensor, y_test: torch.Tensor):
    """gpu-6: one row per mode: first-layer gradients that are zero, their median magnitude, how far
    the first layer moved, the loss scaler's skips and scale, the final loss and test accuracy."""
    import pandas as pd

    from book.core.numerics import float_text

    return pd.DataFrame({m: {"first-layer grads = 0": float_text(r["first_layer_zero_frac"], ".3g"),
                             "median |grad| layer 1": float_text(r["first_layer_grad_median"], ".3g"),
                             "layer-1 weights moved (rel.)": float_text(r["first_layer_change"], ".3g"),
                             "skipped steps": r["skipped"], "final loss scale": r["final_scale"],
                             "loss, last 5 steps": float_text(np.mean(r["losses"][-5:]), ".4g"),
                             "test accuracy": float_text(accuracy(r["model"], x_test, y_test), ".4g")}
                         for m, r in runs.items()}).T


def plot_losses(runs: dict[str, dict]):
    """gpu-6: the training loss of each mode per step (fp16 dashed)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6), layout="constrained")
    for m, r in runs.items():
        ax.plot(r["losses"], label=m, lw=1.2, ls="--" if m == "fp16" else "-")
    ax.set_xlabel("step"); ax.set_ylabel("training loss"); ax.set_title("deep sigmoid MLP on MNIST")
    ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=9)
    return fig


class FormatClaims:
    """gpu-6 judged: fp16's range (65,504; 2×65,504 overflows, bf16 holds it), the first-layer
    zero-gradient fraction and the loss fall over the first `window` steps of each mode, and the
    tf32 matmul error against bf16's."""

    def __init__(self, runs: dict[str, dict], errors: dict[str, float], window: int = 150) -> None:
        self.facts = format_range_facts()
        self.tf32_key = "tf32" if "tf32" in errors else "tf32 (emulated)"
        self.errors = errors
        w = window  # the window all modes share, while gradients are smallest
        self.zero = {m: round(float(np.mean(runs[m]["first_layer_zero_steps"][:w])), 2)
                     for m in PRECISION_MODES}
        self.fall = {m: round(float(np.mean(runs[m]["losses"][:20])
                                    - np.mean(runs[m]["losses"][w - 20:w])), 2) for m in PRECISION_MODES}

    @property
    def holds(self) -> bool:
        facts, zero, fall, tf32 = self.facts, self.zero, self.fall, self.errors[self.tf32_key]
        return bool(facts["fp16"]["max"] == 65504 and np.isinf(facts["fp16"]["2x65504"])
                    and facts["bf16"]["2x65504"] == 131072
                    and zero["fp16"] > 0.9 and fall["fp16"] < 0.5 * fall["fp32"]
                    and zero["fp16+loss scaling"] < 0.05 and fall["fp16+loss scaling"] > 0.8 * fall["fp32"]
                    and zero["bf16"] < 0.05 and fall["bf16"] > 0.8 * fall["fp32"]
                    and tf32 < 1e-3 and tf32 < self.errors["bf16"])

    @property
    def measured(self) -> list[float]:
        """fp16 max; zero fraction fp16 / fp16+scaling / bf16; loss fall per mode; the tf32 error."""
        zero, fall = self.zero, self.fall
        return [self.facts["fp16"]["max"], zero["fp16"], zero["fp16+loss scaling"], zero["bf16"],
                fall["fp32"], fall["fp16"], fall["fp16+loss scaling"], fall["bf16"],
                float(f"{self.errors[self.tf32_key]:.2g}")]


# ---------------------------------------------------------------------------------------------
# gpu-7: 2:4 structured sparsity (the format itself lives in book.core.sparsity24)
# ---------------------------------------------------------------------------------------------
class Sparse24Demo:
    """gpu-7 on the CPU: `w` pruned to 2:4, compressed and decompressed (`book.core.sparsity24`).
    Raises AssertionError when the round trip is not exact or the values are not half the matrix."""

    def __init__(self, w: torch.Tensor) -> None:
        self.dense = w
        self.pruned = sparsity24.prune(w)
        self.values, self.index = sparsity24.compress(self.pruned)
        self.roundtrip = torch.equal(sparsity24.decompress(self.values, self.index, w.shape[1]), self.pruned)
        self.storage = sparsity24.storage(self.pruned)
        self.kept_energy = float(self.pruned.float().norm() ** 2 / w.float().norm() ** 2)
        if not (self.roundtrip and self.values_ratio == 0.5):
            raise AssertionError("the 2:4 compression round trip failed: see book.core.sparsity24")

    @property
    def values_ratio(self) -> float:
        return self.storage["values_ratio"]

    @property
    def compression(self) -> str:
        """What the CPU checked, for the ledger row."""
        return f"compression checked on the CPU: values {self.values_ratio:.2f} of dense, round trip exact"

    def summary(self) -> str:
        return (f"compressed values: {tuple(self.values.shape)} of {tuple(self.dense.shape)}; "
                f"round trip exact: {self.roundtrip}\nsize vs dense fp16: values {self.values_ratio:.3f}, "
                f"with 2-bit metadata {self.storage['with_metadata_ratio']:.4f}; pruning keeps "
                f"{100 * self.kept_energy:.1f} % of the squared norm")
