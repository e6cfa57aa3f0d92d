"""The book's chapters: one per post, in the order the book presents them (oldest post first).

This registry is the single place that maps a chapter name (what the runner takes) to its
notebook, its post, its code (`book.chapters.<package>`) and the claim-id prefixes its ledger must cover.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent   # book/
REPO_ROOT = PACKAGE_DIR.parent
DATA_FILES = PACKAGE_DIR / "data_files"   # sourced facts and figures the chapters read
NOTEBOOK_DIR = REPO_ROOT / "notebooks"


@dataclass(frozen=True)
class Chapter:
    name: str            # what `python -m book run NAME` takes; also the notebook's stem
    title: str
    post_title: str
    post_url: str
    year: int
    prefixes: tuple[str, ...]  # claim-id prefixes in claims.md this chapter's ledger covers
    extras: tuple[str, ...] = ()  # optional dependency groups (pyproject) the chapter needs
    package: str = ""    # its code: book.chapters.<package> (default: the chapter's name)

    @property
    def code(self) -> str:
        """The import name of the chapter's own code."""
        return f"book.chapters.{self.package or self.name}"

    @property
    def notebook(self) -> Path:
        return NOTEBOOK_DIR / f"{self.name}.ipynb"


CHAPTERS: dict[str, Chapter] = {c.name: c for c in [
    Chapter("dp", "Data parallelism", "How to Parallelize Deep Learning on GPUs Part 1/2: Data Parallelism",
            "https://timdettmers.com/2014/10/09/deep-learning-data-parallelism/", 2014, ("dp",),
            package="parallel"),
    Chapter("mp", "Model parallelism", "How to Parallelize Deep Learning on GPUs Part 2/2: Model Parallelism",
            "https://timdettmers.com/2014/11/09/model-parallelism-deep-learning/", 2014, ("mp",),
            package="parallel"),
    Chapter("conv", "Understanding convolution", "Understanding Convolution in Deep Learning",
            "https://timdettmers.com/2015/03/26/convolution-deep-learning/", 2015, ("conv",)),
    Chapter("brain", "The brain vs deep learning", "The Brain vs Deep Learning Part I: Computational Complexity",
            "https://timdettmers.com/2015/07/27/brain-vs-deep-learning-singularity/", 2015, ("brain",)),
    Chapter("sparse", "Sparse networks from scratch", "Sparse Networks from Scratch: Faster Training without Losing Performance",
            "https://timdettmers.com/2019/07/11/sparse-networks-from-scratch/", 2019, ("sparse",)),
    Chapter("int8", "LLM.int8() and emergent features", "LLM.int8() and Emergent Features",
            "https://timdettmers.com/2022/08/17/llm-int8-and-emergent-features/", 2022, ("int8",), ("int8",)),
    Chapter("gpu", "Which GPU for deep learning", "Which GPU(s) to Get for Deep Learning",
            "https://timdettmers.com/2023/01/30/which-gpu-for-deep-learning/", 2023, ("gpu",)),
    Chapter("predictions", "The forecasts, scored", "The posts' forecasts (2014–2023), scored against what happened",
            "https://timdettmers.com/", 2026, ("pred",)),
]}


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
