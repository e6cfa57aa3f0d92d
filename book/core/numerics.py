"""The book's numerics profile: the same float bits on every x86-64 machine.

nbval compares every committed output with a fresh run, so a committed number must come out with the
same bits wherever CI or a reader runs it. torch picks its CPU kernels by what the processor offers
(AVX-512 here, AVX2 there), and so do MKL and oneDNN; the intra-op thread count changes how sums are
split. Each of those changes the bits of a training run (measured: `../shared/numerics`). The profile
pins all of them to the widest level every x86-64 machine of the last decade has (AVX2 + FMA) and to
one intra-op thread:

- ``ATEN_CPU_CAPABILITY=avx2``: torch's own vectorised kernels (reductions, softmax, optimizers);
- ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN (convolutions, pooling);
- ``MKL_CBWR=AVX2,STRICT``: MKL's conditional numerical reproducibility (float GEMMs), strict mode;
- ``OMP_NUM_THREADS=MKL_NUM_THREADS=1`` and ``torch.set_num_threads(1)``.

They are read when torch (or the library) loads, so `apply()` runs when `book` is imported, before it
imports torch, and every process that makes or checks a committed output imports `book` first: the
notebook kernels (they inherit the runner's or pytest's environment, and the chapter's first cell
imports `book`), the distributed workers, the command line, the tests, the sweeps.

Exact work needs no pin: an integer GEMM gives the same integers on every path, so the int8 chapter
lifts oneDNN's cap for its integer products (`allow_full_isa_for_integer_kernels`), keeping the fast
VNNI/AMX path where the CPU has one. (It must: capped at AVX2 on a CPU with AVX-512, oneDNN's int8
kernel saturates its pair sums and torch._int_mm returns wrong integers.) torch also runs some float
ops on oneDNN (GELU's eltwise kernel), whose bits would then follow the lifted cap, so that chapter
sends every float op to ATen (`book.chapters.int8.quant.onednn_for_integer_gemms_only`). ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` (numpy's BLAS) are left
as the machine sets them: numpy-side outputs are shown rounded to what is stable instead.

``BOOK_NUMERICS=native`` runs without the profile (to measure its cost; `benchmarks/bench_numerics.py`).
On a CPU that is not x86-64, or a GPU, the profile cannot give the committed bits: `comparison()` says
``device`` and the test suite compares with device-dependent numbers masked (see the README).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

PROFILE_NAME = "x86-64-avx2-1thread"
THREADS = 1
PROFILE_ENV: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "AVX2,STRICT",
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
}
SWITCH = "BOOK_NUMERICS"          # "native": no profile
FINGERPRINT_FILE = Path(__file__).resolve().parent.parent / "data_files" / "numerics_fingerprint.json"


def is_x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def enabled(environ: os._Environ | dict = os.environ) -> bool:
    """Whether this process runs under the profile (x86-64, and not switched off)."""
    return is_x86_64() and environ.get(SWITCH, "profile") != "native"


def apply(environ: os._Environ | dict = os.environ) -> bool:
    """Set the profile's variables (before torch loads). Returns whether the profile is in force.

    Values already set differently are overridden: the profile is what the committed outputs were
    made under. Child processes (notebook kernels, workers) inherit them."""
    if not enabled(environ):
        return False
    environ.update(PROFILE_ENV)
    if "torch" in sys.modules:
        configure_torch()
    return True


def configure_torch() -> None:
    """The thread pins that torch takes as calls, not variables (after torch is imported)."""
    if not enabled():
        return
    import torch

    torch.set_num_threads(THREADS)


def allow_full_isa_for_integer_kernels() -> None:
    """Let oneDNN use every instruction the CPU has (VNNI, AMX) for exact integer GEMMs.

    Call it before the process's first oneDNN primitive (the int8 chapter's first cell does): oneDNN
    reads the cap once. Float work on oneDNN after it (convolutions, GELU) would no longer be pinned,
    so the caller must keep its float ops off oneDNN (torch.backends.mkldnn.enabled = False, oneDNN
    on only around the integer GEMM, as book.chapters.int8.quant does)."""
    if enabled():
        os.environ["ONEDNN_MAX_CPU_ISA"] = "ALL"


def status() -> dict[str, Any]:
    """What the profile pinned in this process, for the provenance and the status page."""
    info: dict[str, Any] = {"profile": PROFILE_NAME if enabled() else "native",
                            "machine": platform.machine()}
    if "torch" in sys.modules:
        import torch

        info["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        info["threads"] = torch.get_num_threads()
        info["mkl_cnr"] = mkl_cnr()
    info["env"] = {k: os.environ.get(k) for k in PROFILE_ENV}
    info["in_force"] = in_force()
    return info


# ----------------------------------------------------------------------------------------------
# MKL's own code path, and the bits family of a machine (which committed outputs it reproduces)
# ----------------------------------------------------------------------------------------------
# oneMKL (2024.0, inside torch 2.13) honours MKL_CBWR's ISA branches (AVX2, ...) only on Intel CPUs.
# Measured with MKL_VERBOSE on an AMD EPYC (2026-12-02): every sgemm reports "CNR:AUTO,STRICT" under
# MKL_CBWR=AVX2,STRICT (COMPATIBLE is the one branch it honours there), and the 'sgd' and 'lenet5'
# fingerprint families differ from an Intel Xeon's under the same pins, while the oneDNN and ATen
# families agree. So x86-64 machines under the profile fall into one bits family per MKL path:
# outputs made on an Intel CPU are found again, bit for bit, on Intel CPUs; those made on an AMD CPU
# on AMD CPUs (an AVX2-only and an AVX-512 EPYC agree: ../shared/numerics/reference.txt).
_mkl_cnr_measured: list[str | None] = []


def mkl_cnr() -> str | None:
    """The conditional-numerical-reproducibility branch MKL runs in this process, as MKL itself
    reports it for one small sgemm ("AVX2,STRICT" where the profile's pin holds; "AUTO,STRICT" on a
    CPU where MKL does not honour it); None without MKL or torch. Measured once per process."""
    if "torch" not in sys.modules:
        return None
    if not _mkl_cnr_measured:
        _mkl_cnr_measured.append(_measure_mkl_cnr())
    return _mkl_cnr_measured[0]


def _measure_mkl_cnr() -> str | None:
    import ctypes
    import re
    import tempfile

    import torch

    if not torch.backends.mkl.is_available():
        return None
    a = torch.ones(64, 64)
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as f:
        try:
            os.dup2(f.fileno(), 1)   # MKL prints its verbose lines to the C stdout
            with torch.backends.mkl.verbose(torch.backends.mkl.VERBOSE_ON):
                a @ a
            libc.fflush(None)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        text = f.read().decode("utf-8", "replace")
    found = re.search(r"CNR:([A-Z0-9_]+(?:,STRICT)?)", text)
    return found.group(1) if found else None


def mkl_path(numerics_status: dict[str, Any] | None, device_name: str = "") -> str | None:
    """The MKL branch a record was made on: its measured `mkl_cnr`; for a record made before that was
    measured, what MKL runs on the CPU its provenance names (the pinned branch on an Intel CPU, AUTO
    on any other); None where the profile was not in force."""
    st = numerics_status or {}
    if not st.get("in_force"):
        return None
    if st.get("mkl_cnr"):
        return st["mkl_cnr"]
    return PROFILE_ENV["MKL_CBWR"] if "intel" in device_name.lower() else "AUTO,STRICT"


def family_of(numerics_status: dict[str, Any] | None, device_name: str = "", device: str = "cpu") -> str | None:
    """The bits family of a run: the profile and MKL's branch on a CPU; None (no family: every
    float bit is its own) for a GPU run or one outside the profile."""
    if device != "cpu":
        return None
    path = mkl_path(numerics_status, device_name)
    return f"{(numerics_status or {}).get('profile')}, MKL {path}" if path else None


def this_family() -> str | None:
    import torch  # noqa: F401  (the profile is applied by `import book` before this)

    if comparison() != "exact":
        return None
    return family_of(status(), cpu_model())


def notebook_comparison(provenance: dict[str, Any] | None) -> tuple[str, str]:
    """(comparison, why) for a committed notebook whose ledger has `provenance`: 'exact' where this
    machine is of the bits family that made it, else 'device' (its ‹ › numbers masked)."""
    mine = this_family()
    if mine is None:
        return "device", "this machine is outside the numerics profile"
    prov = provenance or {}
    theirs = family_of(prov.get("numerics"), prov.get("device_name", ""), prov.get("device", "cpu"))
    if theirs == mine:
        return "exact", f"made in this machine's bits family ({mine})"
    return "device", (f"made on {prov.get('device_name', 'another machine')} ({theirs or 'outside the profile'}); "
                      f"this machine: {mine}")


def in_force() -> bool:
    """The profile is set and torch honours it (torch loaded after `apply`)."""
    if not enabled():
        return False
    if any(os.environ.get(k) != v for k, v in PROFILE_ENV.items() if k != "ONEDNN_MAX_CPU_ISA"):
        return False
    if "torch" in sys.modules:
        import torch

        return torch.backends.cpu.get_cpu_capability() == "AVX2" and torch.get_num_threads() == THREADS
    return True


def check_in_force() -> None:
    """Raise with the remedy when torch was loaded before the profile (a notebook whose kernel
    imported torch before `book`): its outputs would not be the committed bits."""
    if enabled() and not in_force():
        import torch

        raise RuntimeError(
            f"the book's numerics profile is not in force in this process (torch uses "
            f"{torch.backends.cpu.get_cpu_capability()} kernels and {torch.get_num_threads()} threads; the profile "
            f"pins AVX2 and {THREADS}): torch was imported before book. Restart the kernel and import book "
            f"first, or set {SWITCH}=native to run without the profile (outputs then differ in the last bits).")


# ----------------------------------------------------------------------------------------------
# How outputs show numbers whose last bits depend on the float kernels
# ----------------------------------------------------------------------------------------------
DEVICE_OPEN, DEVICE_CLOSE = "‹", "›"   # masked by tests/nbval_device.cfg only


def float_text(value: float, spec: str = ".4g") -> str:
    """A number that depends on the machine's float kernels (a trained net's error, a float sum):
    compared exactly under the profile, masked in the device comparison. Shown as ‹value›."""
    return f"{DEVICE_OPEN}{format(value, spec)}{DEVICE_CLOSE}"


def bound(value: float, floor: float = 1e-12) -> str:
    """Rounding noise shown as the bound it stays under ("< 1e-12"), never as its digits; a value
    above the bound is shown in full, so the output still tells when it is not noise."""
    value = abs(float(value))
    return f"< {floor:g}" if value < floor else f"{value:.3g} (above the {floor:g} bound)"


# ----------------------------------------------------------------------------------------------
# Fingerprint: one hash per kernel family the chapters use
# ----------------------------------------------------------------------------------------------
FAMILIES = {
    "gemm": "float GEMM (MKL sgemm): matmul and linear",
    "conv": "convolution forward and backward, max pooling (oneDNN)",
    "reductions": "reductions, softmax, exp, layer norm (ATen vectorised kernels)",
    "sgd": "32 SGD steps of a LeNet-300-100 (linear layers, cross-entropy, momentum SGD)",
    "lenet5": "8 SGD steps of a LeNet-5-Caffe with the sparse chapter's masks",
}
REMEDY = {
    "gemm": "MKL's code path differs: check that MKL_CBWR=AVX2,STRICT reaches the process",
    "conv": "oneDNN's ISA or thread count differs: check ONEDNN_MAX_CPU_ISA=AVX2 and one thread",
    "reductions": "torch's kernels differ: check ATEN_CPU_CAPABILITY=avx2 (torch must load after book)",
    "sgd": "a training step differs: one of the three libraries above takes another path here",
    "lenet5": "a training step differs: one of the three libraries above takes another path here",
}


def _digest(*tensors: Any) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def fingerprint() -> dict[str, str]:
    """Family -> hash of a fixed computation in it, under this process's settings."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(257, 513, generator=g), torch.randn(513, 129, generator=g)
    out = {"gemm": _digest(a @ b, F.linear(a, b.T, torch.randn(129, generator=g)))}

    x = torch.randn(32, 1, 28, 28, generator=g, requires_grad=True)
    c1, c2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5)
    with torch.no_grad():
        for p in (*c1.parameters(), *c2.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    y = F.max_pool2d(c2(F.max_pool2d(c1(x), 2)), 2)
    y.square().sum().backward()
    out["conv"] = _digest(y, x.grad, c1.weight.grad, c2.weight.grad)

    v = torch.randn(2048, 300, generator=g)
    out["reductions"] = _digest(v.sum(0), v.mean(1), torch.softmax(v, 1), torch.log_softmax(v, 0), v.exp().sum(),
                                F.layer_norm(v, (300,)))

    def train(net: nn.Module, data: torch.Tensor, target: torch.Tensor, steps: int, masks=None) -> str:
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        batch = len(data) // steps
        for i in range(steps):
            loss = F.cross_entropy(net(data[i * batch:(i + 1) * batch]), target[i * batch:(i + 1) * batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if masks is not None:
                with torch.no_grad():
                    for w, m in masks:
                        w.mul_(m)
        return _digest(*net.parameters())

    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))
    out["sgd"] = train(mlp, torch.randn(2048, 784, generator=g), torch.randint(0, 10, (2048,), generator=g), 32)

    torch.manual_seed(0)
    lenet5 = nn.Sequential(nn.Conv2d(1, 20, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(20, 50, 5), nn.ReLU(),
                           nn.MaxPool2d(2), nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
    masks = [(m.weight, torch.rand(m.weight.shape, generator=g) < 0.2) for m in lenet5
             if isinstance(m, (nn.Conv2d, nn.Linear))]
    out["lenet5"] = train(lenet5, torch.randn(800, 1, 28, 28, generator=g), torch.randint(0, 10, (800,), generator=g),
                          8, masks)
    return out


def committed_fingerprint() -> dict[str, Any]:
    """The committed fingerprints of the profile, one per MKL branch (`by_mkl_branch`): each with the
    CPU it was recorded on and its family hashes."""
    return json.loads(FINGERPRINT_FILE.read_text(encoding="utf-8"))


def compare_fingerprint(measured: dict[str, str] | None = None, branch: str | None = None) -> list[str]:
    """One line per kernel family whose bits differ from the committed fingerprint of this machine's
    MKL branch (`branch`: mkl_cnr()), naming what to do; a line saying so when none is committed."""
    branch = branch or mkl_cnr() or "none"
    recorded = committed_fingerprint()["by_mkl_branch"]
    if branch not in recorded:
        return [f"no fingerprint is committed for MKL branch {branch!r} (committed: {', '.join(recorded)}): "
                f"record one with `python -m book.core.numerics record` on such a machine"]
    committed = recorded[branch]["families"]
    measured = fingerprint() if measured is None else measured
    return [f"kernel family '{f}' ({FAMILIES[f]}) gives other bits than the committed profile of MKL branch "
            f"{branch} ({recorded[branch]['made_on']}): {REMEDY[f]}; or run the suite in the device "
            f"comparison (BOOK_COMPARISON=device), which masks device-dependent numbers"
            for f in FAMILIES if measured.get(f) != committed.get(f)]


def comparison() -> str:
    """Which nbval comparison this machine gets: 'exact' on x86-64 under the profile (where a family
    that still differs fails the fingerprint test, naming it, rather than masking it silently),
    'device' on every other machine (another CPU architecture, the profile switched off, a GPU present).
    ``BOOK_COMPARISON=exact|device`` forces one."""
    forced = os.environ.get("BOOK_COMPARISON")
    if forced in ("exact", "device"):
        return forced
    return "exact" if enabled() and not gpu_present() else "device"


def gpu_present() -> bool:
    """A CUDA GPU the chapters' DEVICE="auto" would pick: their float bits then differ from the CPU's."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def write_fingerprint() -> dict[str, Any]:
    """Record this machine's fingerprint under the profile as the committed one of its MKL branch
    (the other branches' entries are kept)."""
    import torch

    check_in_force()
    doc = committed_fingerprint() if FINGERPRINT_FILE.exists() else {}
    doc.update({"profile": PROFILE_NAME, "env": PROFILE_ENV, "threads": THREADS, "torch": torch.__version__})
    doc.setdefault("by_mkl_branch", {})[mkl_cnr() or "none"] = {"made_on": cpu_model(), "families": fingerprint()}
    FINGERPRINT_FILE.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return doc


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m book.core.numerics",
                                description="The numerics profile: status, fingerprint, comparison.")
    p.add_argument("what", choices=["status", "fingerprint", "check", "comparison", "record"])
    args = p.parse_args(argv)
    if args.what == "comparison":
        print(comparison())
        return 0
    import torch  # noqa: F401  (after the profile, which `import book` applied)

    configure_torch()
    if args.what == "status":
        print(json.dumps(status(), indent=1))
    elif args.what == "fingerprint":
        for k, v in fingerprint().items():
            print(f"{v}  {k} ({FAMILIES[k]})")
    elif args.what == "record":
        print(json.dumps(write_fingerprint(), indent=1))
    else:
        lines = compare_fingerprint()
        print("\n".join(lines) if lines else f"fingerprint matches the committed profile ({PROFILE_NAME})")
        return 1 if lines else 0
    return 0


if __name__ == "__main__":
    import book  # noqa: F401  (applies the profile before torch loads)

    sys.exit(_main())
