"""Where a chapter runs: CUDA when present, the CPU otherwise, and a line that says which."""
from __future__ import annotations

import os
import platform

import torch


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' picks cuda when a GPU is present, else cpu; 'cpu', 'cuda' or 'cuda:N' are taken
    as asked, and asking for a GPU that is not there is a clear error rather than a silent CPU run."""
    if not isinstance(requested, str):
        raise TypeError(f"DEVICE must be a string such as 'auto', 'cpu' or 'cuda', not {requested!r}")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as err:
        raise ValueError(f"DEVICE={requested!r} is not a device torch knows ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"DEVICE={requested!r} asks for a GPU, but torch sees none here; use 'auto' or 'cpu'")
    return device


def describe(device: torch.device) -> str:
    """One line for the reader: what this chapter ran on."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        what = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}"
    else:
        what = f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"
    return f"device: {device} ({what}); torch {torch.__version__}"


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (all devices); returns a torch Generator seeded the same."""
    import random

    import numpy as np

    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"SEED must be an int, not {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
