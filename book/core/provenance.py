"""Where a result came from: commit, date, machine and library versions, stamped on every ledger
and every piece of committed evidence, so a reader can tell a full GPU run from a quick CPU smoke."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any

from book.core.registry import REPO_ROOT

KEY_PACKAGES = ("torch", "numpy", "scipy", "matplotlib", "pandas", "papermill", "jupyter-book",
                "sentence-transformers", "transformers")


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether the tree had uncommitted changes (None outside a checkout)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "--short=12", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: Any = None) -> str:
    """The GPU's name for a cuda device, else the CPU model and core count."""
    text = str(device or "cpu")
    if text.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(text.split(":")[1]) if ":" in text else torch.cuda.current_device()
            return torch.cuda.get_device_name(index)
    return f"{cpu_name()} ({os.cpu_count()} logical cores)"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in KEY_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def collect(device: Any = None) -> dict[str, Any]:
    """Provenance of a run happening now on `device`."""
    info: dict[str, Any] = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    info.update(git_commit())
    info["device"] = str(device or "cpu")
    info["device_name"] = device_name(device)
    info["platform"] = f"{platform.system()} {platform.release()} {platform.machine()}"
    info["versions"] = versions()
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if str(device or "").startswith("cuda") and torch.cuda.is_available():
            info["cuda"] = torch.version.cuda
    except ImportError:
        pass
    from book.core import numerics

    info["numerics"] = numerics.status()   # the profile the run's float kernels ran under
    info["executable"] = sys.executable
    return info


__all__ = ["collect", "git_commit", "device_name", "versions"]
