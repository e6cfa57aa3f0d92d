"""The sparse chapter's compiled CPU kernels (issue 22: the epoch's speed): plain C files beside this
module, compiled on first use with the machine's C compiler (about a second each, no torch headers)
into the book's cache (`book.core.data.data_dir()`/kernels, named by a hash of the source and the
flags) and called through ctypes on tensors' memory.

Each kernel gives bit for bit what torch computes (each module's tests say against what), so a run
is the same with it and without it. Where there is no compiler the kernel's module runs torch's own
ops instead, slower and with the same bits; `status(name)` says which one a process uses.

`-ffp-contract=off`: the compiler may not fuse a multiply and an add into one rounding where the C
does not ask for it (torch rounds each), and asks for it with fmaf where torch does.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

HERE = Path(__file__).parent

_libraries: dict[str, ctypes.CDLL | None] = {}
_status: dict[str, str] = {}


def source(name: str) -> Path:
    path = HERE / f"{name}.c"
    if not path.exists():
        raise ValueError(f"no kernel source {path.name} in {HERE}")
    return path


@functools.cache
def x86_avx2() -> bool:
    """Whether torch's CPU kernels here are its AVX2 (or AVX-512) ones on x86-64: the ones the kernels'
    bits were checked against where they do arithmetic (fused multiply-adds)."""
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "")()
    return platform.machine().lower() in ("x86_64", "amd64") and capability in ("AVX2", "AVX512")


def compiler_flags(avx2: bool | None = None) -> list[str]:
    """-O3 without contraction, and AVX2 with FMA where torch's own kernels use them (`avx2=None`).
    The C has a portable path too; both give the same bits (tested)."""
    avx2 = x86_avx2() if avx2 is None else avx2
    return ["-O3", "-std=c11", "-shared", "-fPIC", "-ffp-contract=off", *(["-mavx2", "-mfma"] if avx2 else [])]


def build(name: str, cache: Path | None = None, compiler: str | None = None, flags: list[str] | None = None) -> Path:
    """Compile `name`.c into `cache` (default: the book's cache, kernels/) unless a build of this source
    with these flags is there; returns the library's path. Raises RuntimeError with the compiler's
    message when it fails."""
    from book.core.data import data_dir

    src = source(name)
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise RuntimeError("no C compiler (cc, gcc or clang; or $CC)")
    flags = compiler_flags() if flags is None else flags
    # every C file here: a kernel may include another's (conv1.c includes pool_relu.c)
    sources = b"".join(p.read_bytes() for p in sorted(HERE.glob("*.c")))
    key = hashlib.sha256(sources + " ".join([cc, *flags]).encode()).hexdigest()[:16]
    folder = Path(cache) if cache is not None else data_dir() / "kernels"
    target = folder / f"{name}-{key}.so"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    # build beside the target and rename: two processes building at once both end with a whole file
    fd, tmp = tempfile.mkstemp(prefix=f".{name}-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run([cc, *flags, str(src), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{cc} failed on {src.name}: {done.stderr.strip()[-2000:]}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def load(path: str | os.PathLike, signatures: dict[str, list]) -> ctypes.CDLL:
    """A built library, its functions given their argument types (each returns an int: 0 when done)."""
    lib = ctypes.CDLL(str(path))
    for fn, argtypes in signatures.items():
        getattr(lib, fn).argtypes = argtypes
        getattr(lib, fn).restype = ctypes.c_int
    return lib


def library(name: str, signatures: dict[str, list]) -> ctypes.CDLL | None:
    """This process's build of `name`.c, built on the first call; None where it cannot be built."""
    if name not in _status:
        try:
            path = build(name)
            _libraries[name], _status[name] = load(path, signatures), f"compiled kernel {path}"
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            _libraries[name], _status[name] = None, f"torch's own ops (no compiled kernel: {err})"
    return _libraries[name]


def status(name: str) -> str:
    """Which implementation of kernel `name` this process runs (after `library` was called)."""
    return _status.get(name, "not loaded yet")


def describe(name: str) -> str:
    """`status` without this machine's paths: what a benchmark records."""
    if status(name).startswith("compiled"):
        return f"compiled kernel ({name}.c, {' '.join(compiler_flags())})"
    return status(name)


class Kernel:
    """One kernel of this folder, `name`.c with its functions' argument types, as its module offers it:
    `library()` (built on the first call; None without a compiler), `status()` and `describe()`."""

    def __init__(self, name: str, signatures: dict[str, list]):
        self.name, self.signatures = name, signatures

    def library(self) -> ctypes.CDLL | None:
        return library(self.name, self.signatures)

    def status(self) -> str:
        """The compiled kernel (its path), or torch's ops and why."""
        self.library()
        return status(self.name)

    def describe(self) -> str:
        self.library()
        return describe(self.name)


POINTER, SIZE, FLAG, REAL = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
