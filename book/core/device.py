"""Where a chapter runs: CUDA when present, the CPU otherwise, and a line that says which."""
from __future__ import annotations

import os
import platform

import torch

SEED_MAX = 2**32 - 1   # numpy's legacy and Generator seeding both take 0 .. 2**32 - 1
COMPUTE_DEVICES = ("cpu", "cuda", "mps")  # the device types a chapter can compute on


def check_seed(seed: object) -> int:
    """`seed` when it is an int numpy, torch and random all accept; else an error naming SEED."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"SEED must be an int, not {type(seed).__name__} {seed!r}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"SEED={seed} is outside the range numpy accepts: 0 to 2**32 - 1 ({SEED_MAX})")
    return seed


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' picks cuda when a GPU is present, else cpu; 'cpu', 'cuda', 'cuda:N' (and 'mps' on a Mac
    that has it) are taken as asked. A device that is not here, or that is no compute target (such as
    'meta'), is a clear error rather than a silent CPU run or a crash halfway through a chapter."""
    if not isinstance(requested, str):
        raise TypeError(f"DEVICE must be a string such as 'auto', 'cpu' or 'cuda', not {requested!r}")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(f"DEVICE={requested!r} is not a device torch knows ({err})") from None
    if device.type not in COMPUTE_DEVICES:
        raise ValueError(f"DEVICE={requested!r} is a torch device type, but not one a chapter computes on; "
                         f"use 'auto', 'cpu' or 'cuda'")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"DEVICE={requested!r} asks for a GPU, but torch sees none here; use 'auto' or 'cpu'")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"DEVICE={requested!r}: this machine has {count} GPU(s), "
                             f"cuda:0{f' to cuda:{count - 1}' if count > 1 else ''}")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"DEVICE={requested!r} asks for Apple's Metal GPU, which torch does not see here; "
                         f"use 'auto' or 'cpu'")
    return device


def describe(device: torch.device) -> str:
    """One line for the reader: what this chapter ran on. The machine itself (CPU model, cores, GPU
    name) goes into the ledger's provenance, not into a compared output; what differs between
    machines is marked ‹ › for the device comparison."""
    from book.core import numerics

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        what = f"‹{device}: {torch.cuda.get_device_name(index)}›"
    else:
        profile = numerics.status()["profile"]
        what = f"‹{device}›, numerics profile {profile}"
    return f"device: {what}; torch ‹{torch.__version__}› (the machine: see the ledger's provenance)"


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); returns a torch Generator seeded the same."""
    import random

    import numpy as np

    check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
