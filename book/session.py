"""The first code cell of every chapter: check the parameters, seed, pick the device, open the ledger."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .chapters import get_chapter
from .device import describe, pick_device, seed_everything
from .ledger import Ledger


def check_parameter(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """Raise a TypeError naming the parameter when `value` is not of `kind` (bool is no int)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        wanted = " or ".join(k.__name__ for k in kinds)
        raise TypeError(f"parameter {name} must be {wanted}, not {type(value).__name__} {value!r}")
    return value


@dataclass
class Session:
    chapter: str
    quick: bool
    device: torch.device
    seed: int
    ledger: Ledger

    @property
    def mode(self) -> str:
        return self.ledger.mode


def start(chapter: str, *, quick: bool, device: str, seed: int, **parameters: tuple[Any, type]) -> Session:
    """Validate QUICK/DEVICE/SEED (and any chapter parameters given as name=(value, type)) before
    any work, seed every generator, pick the device and print what this run is."""
    check_parameter("QUICK", quick, bool)
    check_parameter("DEVICE", device, str)
    check_parameter("SEED", seed, int)
    for name, (value, kind) in parameters.items():
        check_parameter(name, value, kind)
    info = get_chapter(chapter)
    dev = pick_device(device)
    seed_everything(seed)
    print(f"{info.title} — reproducing {info.post_url}")
    print(f"mode: {'quick' if quick else 'full'}; seed {seed}; {describe(dev)}")
    return Session(chapter, quick, dev, seed, Ledger(chapter, quick=quick, device=dev.type))
