"""The book's chapters: one per post, in the order the book presents them (oldest post first).

This registry is the single place that maps a chapter name (what the runner takes) to its
notebook, its post, its code (`book.chapters.<package>`), the claim-id prefixes its ledger must
cover and the parameters its `parameters` cell declares: each one's type (also where the default is
None) and the values that can work, so that `python -m book run` refuses a bad value before any
kernel starts and `book.start` refuses it in a notebook run by hand.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # book/
REPO_ROOT = PACKAGE_DIR.parent
DATA_FILES = PACKAGE_DIR / "data_files"  # sourced facts and figures the chapters read
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class Parameter:
    """What values a chapter parameter takes. `kind`: its type(s) (bool is no int; a float parameter
    takes an int). `minimum`/`maximum`: inclusive bounds (`above`: an exclusive lower bound);
    `choices`: the only values that work; `full_only`: a true value needs full mode (QUICK = False);
    `check`: "module:function", a check of the value that raises ValueError or TypeError. A check in
    book.core runs in the kernel too; one in a chapter's code runs in the runner, before any kernel
    (in the kernel the chapter's code checks it itself)."""

    kind: type | tuple[type, ...]
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    choices: tuple = ()
    full_only: bool = False
    check: str = ""
    why: str = ""  # why the range is what it is (said when a value is refused)

    def kinds(self) -> tuple[type, ...]:
        return self.kind if isinstance(self.kind, tuple) else (self.kind,)

    def type_name(self) -> str:
        return " or ".join("None" if k is type(None) else k.__name__ for k in self.kinds())


def _model_names(value: str) -> str:
    """A comma-separated list of model names, none of them empty."""
    names = [n.strip() for n in value.split(",")]
    if not value.strip() or not all(names):
        raise ValueError(f"FAMILY must list model names separated by commas, not {value!r}")
    return value


def _folder_name(value: str) -> str:
    """A folder to download into: not empty."""
    if not value.strip():
        raise ValueError("CIFAR_ROOT must name a folder, not an empty string")
    return value


COMMON_PARAMETERS: dict[str, Parameter] = {
    "QUICK": Parameter(bool, why="set with --quick or --full"),
    "DEVICE": Parameter(str, check="book.core.device:pick_device"),
    "SEED": Parameter(int, check="book.core.device:check_seed"),
}
_WORKERS_LIMIT = "book.chapters.parallel.pool:check_world_size"  # at most twice the CPU cores


@dataclass(frozen=True)
class Chapter:
    name: str  # what `python -m book run NAME` takes; also the notebook's stem
    title: str
    post_title: str
    post_url: str
    year: int
    prefixes: tuple[str, ...]  # claim-id prefixes in claims.md this chapter's ledger covers
    extras: tuple[str, ...] = ()  # optional dependency groups (pyproject) the chapter needs
    package: str = ""  # its code: book.chapters.<package> (default: the chapter's name)
    own_parameters: dict[str, Parameter] = field(default_factory=dict, hash=False, compare=False)

    @property
    def parameters(self) -> dict[str, Parameter]:
        """Every parameter of the chapter's `parameters` cell: QUICK, DEVICE, SEED and its own."""
        return {**COMMON_PARAMETERS, **self.own_parameters}

    @property
    def code(self) -> str:
        """The import name of the chapter's own code."""
        return f"book.chapters.{self.package or self.name}"

    @property
    def notebook(self) -> Path:
        return NOTEBOOK_DIR / f"{self.name}.ipynb"


CHAPTERS: dict[str, Chapter] = {
    c.name: c
    for c in [
        Chapter(
            "dp",
            "Data parallelism",
            "How to Parallelize Deep Learning on GPUs Part 1/2: Data Parallelism",
            "https://timdettmers.com/2014/10/09/deep-learning-data-parallelism/",
            2014,
            ("dp",),
            package="parallel",
            own_parameters={
                "WORKERS": Parameter(
                    int,
                    minimum=2,
                    check=_WORKERS_LIMIT,
                    why="data parallelism compares at least two workers; at most twice the CPU "
                    "cores",
                )
            },
        ),
        Chapter(
            "mp",
            "Model parallelism",
            "How to Parallelize Deep Learning on GPUs Part 2/2: Model Parallelism",
            "https://timdettmers.com/2014/11/09/model-parallelism-deep-learning/",
            2014,
            ("mp",),
            package="parallel",
            own_parameters={
                "WORKERS": Parameter(
                    int,
                    choices=(2, 4),
                    check=_WORKERS_LIMIT,
                    why="the post's 1000×500 weight and the layer widths (256, 2048) split into "
                    "equal blocks over 2 or 4 workers",
                )
            },
        ),
        Chapter(
            "conv",
            "Understanding convolution",
            "Understanding Convolution in Deep Learning",
            "https://timdettmers.com/2015/03/26/convolution-deep-learning/",
            2015,
            ("conv",),
        ),
        Chapter(
            "brain",
            "The brain vs deep learning",
            "The Brain vs Deep Learning Part I: Computational Complexity",
            "https://timdettmers.com/2015/07/27/brain-vs-deep-learning-singularity/",
            2015,
            ("brain",),
            own_parameters={
                "BOOT_BLOCK": Parameter(
                    int, minimum=1, why="a bootstrap block holds at least one list"
                )
            },
        ),
        Chapter(
            "sparse",
            "Sparse networks from scratch",
            "Sparse Networks from Scratch: Faster Training without Losing Performance",
            "https://timdettmers.com/2019/07/11/sparse-networks-from-scratch/",
            2019,
            ("sparse",),
            own_parameters={
                "RERUN_SWEEPS": Parameter(
                    bool, full_only=True, why="it re-runs the committed full-mode sweeps (hours)"
                ),
                "CIFAR": Parameter(bool),
                "CIFAR_EPOCHS": Parameter(
                    int, minimum=1, why="each CIFAR-10 run trains at least one epoch"
                ),
                "CIFAR_ROOT": Parameter(str, check="book.core.registry:_folder_name"),
            },
        ),
        Chapter(
            "int8",
            "LLM.int8() and emergent features",
            "LLM.int8() and Emergent Features",
            "https://timdettmers.com/2022/08/17/llm-int8-and-emergent-features/",
            2022,
            ("int8",),
            ("int8",),
            own_parameters={
                "SENTENCES_PER_POST": Parameter(
                    (int, type(None)), minimum=1, why="None: 6 in quick mode, up to 40 in full mode"
                ),
                "THRESHOLD": Parameter(float, above=0, why="an outlier threshold on |x|"),
                "FAMILY": Parameter(str, check="book.core.registry:_model_names"),
            },
        ),
        Chapter(
            "gpu",
            "Which GPU for deep learning",
            "Which GPU(s) to Get for Deep Learning",
            "https://timdettmers.com/2023/01/30/which-gpu-for-deep-learning/",
            2023,
            ("gpu",),
        ),
        Chapter(
            "predictions",
            "The forecasts, scored",
            "The posts' forecasts (2014–2023), scored against what happened",
            "https://timdettmers.com/",
            2026,
            ("pred",),
            own_parameters={
                "AS_OF": Parameter(str, check="book.chapters.predictions:parse_date"),
                "BOOT_BLOCK": Parameter(
                    int, minimum=1, why="a bootstrap block holds at least one list"
                ),
            },
        ),
    ]
}


def get_chapter(name: str) -> Chapter:
    """The chapter called `name`, or a ValueError that lists the known names."""
    try:
        return CHAPTERS[name]
    except KeyError:
        known = ", ".join(CHAPTERS)
        raise ValueError(f"unknown chapter {name!r}; known chapters: {known}") from None


def available_chapters() -> list[Chapter]:
    """Chapters whose notebook exists in this checkout, in book order."""
    return [c for c in CHAPTERS.values() if c.notebook.exists()]


def parameter_error(
    chapter: Chapter | str,
    name: str,
    value: Any,
    *,
    quick: bool | None = None,
    chapter_checks: bool = True,
) -> str:
    """Why `value` cannot work for parameter `name` of `chapter` ('' when it can). `quick`: the
    run's mode, for full-only parameters (None: not known). `chapter_checks`: also run a check that
    lives in the chapter's code (the runner does; a kernel leaves it to the chapter's code)."""
    info = get_chapter(chapter) if isinstance(chapter, str) else chapter
    spec = info.parameters.get(name)
    if spec is None:
        return ""
    where = f"parameter {name} of chapter {info.name!r}"
    because = f" ({spec.why})" if spec.why else ""
    kinds = spec.kinds()
    ok_kind = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok_kind and float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok_kind = True
    if not ok_kind:
        return f"{where} takes {spec.type_name()}, not {type(value).__name__} {value!r}"
    if value is None or isinstance(value, bool):
        if value is True and spec.full_only and quick:
            return f"{where}: True needs full mode (--full, or QUICK = False){because}"
        return ""
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return f"{where} must be a finite number, not {value!r}"
        if spec.choices and value not in spec.choices:
            allowed = ", ".join(map(str, spec.choices))
            return f"{where} must be one of {allowed}, not {value!r}{because}"
        if spec.minimum is not None and value < spec.minimum:
            return f"{where} must be at least {spec.minimum:g}, not {value!r}{because}"
        if spec.above is not None and value <= spec.above:
            return f"{where} must be above {spec.above:g}, not {value!r}{because}"
        if spec.maximum is not None and value > spec.maximum:
            return f"{where} must be at most {spec.maximum:g}, not {value!r}{because}"
    elif spec.choices and value not in spec.choices:
        return (
            f"{where} must be one of {', '.join(map(repr, spec.choices))}, not {value!r}{because}"
        )
    if spec.check and (chapter_checks or spec.check.startswith("book.core.")):
        module, function = spec.check.split(":")
        try:
            getattr(importlib.import_module(module), function)(value)
        except (TypeError, ValueError) as err:
            text = str(err)
            return text if name in text else f"{where}: {text}"
    return ""


def check_parameter_value(
    chapter: Chapter | str,
    name: str,
    value: Any,
    *,
    quick: bool | None = None,
    chapter_checks: bool = True,
) -> Any:
    """`value`, or a ValueError saying why it cannot work (see `parameter_error`)."""
    problem = parameter_error(chapter, name, value, quick=quick, chapter_checks=chapter_checks)
    if problem:
        raise ValueError(problem)
    return value
