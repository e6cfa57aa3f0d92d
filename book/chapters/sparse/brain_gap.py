"""'The human brain consumes 1/10th of the energy of a GPU but is 10^9 times more powerful': the
brain's computing rate against the GPUs on sale when the post appeared (July 2019).

The brain's rate is the book's own estimate (the brain chapter, after Dettmers 2015): its default
reading of the post's LNP model, `BRAIN_CHAPTER_FLOPS` (tests/test_sparse_analysis.py checks that it
is what `book.chapters.brain.lnp_flops()` computes), and the 2015 post's own total. The GPUs' peak
rates come from the book's shared data file `book/data_files/gpu_specs.csv` (each row cites its
whitepaper); a notebook never imports another chapter's code, so the brain's number lives here.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

GPU_SPECS = Path(__file__).resolve().parents[2] / "data_files" / "gpu_specs.csv"
POST_DATE = "2019-07"                    # the sparse post: 11 July 2019
BRAIN_CHAPTER_FLOPS = 1.0001003002e21     # brain.lnp_flops(), reading "dense x 2 FLOPs x 200 Hz"
BRAIN_POST_2015_FLOPS = 1.075e21          # Dettmers (2015): "my estimate would be 1.075x10^21"
POST_FACTOR = 1e9


def gpus_by(date: str = POST_DATE, path: Path = GPU_SPECS) -> list[dict[str, Any]]:
    """The GPUs of the data file announced by `date` (YYYY-MM), with peak FP16 tensor TFLOPS."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{"gpu": r["gpu"], "tflops": float(r["fp16_tensor_tflops"]), "tdp_w": float(r["tdp_w"]),
             "date": r["spec_date"], "source": r["spec_source"]}
            for r in rows if r["spec_date"] and r["spec_date"] <= date and r["fp16_tensor_tflops"]]


def brain_to_gpu(date: str = POST_DATE) -> dict[str, Any]:
    """How many times a 2019 GPU's peak the brain's estimated rate is: the range over the GPUs
    on sale and the two brain estimates, with its order of magnitude."""
    gpus = gpus_by(date)
    if not gpus:
        raise ValueError(f"no GPU announced by {date} in {GPU_SPECS}")
    brains = {"brain chapter": BRAIN_CHAPTER_FLOPS, "2015 post": BRAIN_POST_2015_FLOPS}
    ratios = {(b, g["gpu"]): f / (g["tflops"] * 1e12) for b, f in brains.items() for g in gpus}
    lo, hi = min(ratios.values()), max(ratios.values())
    return {"gpus": gpus, "brains": brains, "ratios": ratios, "low": lo, "high": hi,
            "log10_low": math.log10(lo), "log10_high": math.log10(hi),
            "post_over_high": POST_FACTOR / hi, "post_over_low": POST_FACTOR / lo}


__all__ = ["GPU_SPECS", "POST_DATE", "BRAIN_CHAPTER_FLOPS", "BRAIN_POST_2015_FLOPS", "POST_FACTOR",
           "gpus_by", "brain_to_gpu"]
