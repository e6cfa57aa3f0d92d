"""'The human brain consumes 1/10th of the energy of a GPU but is 10^9 times more powerful': the
brain's computing rate against the GPUs on sale when the post appeared (July 2019).

The brain's rate is the book's own estimate (the brain chapter, after Dettmers 2015): its default
reading of the post's LNP model, `BRAIN_CHAPTER_FLOPS` (tests/test_sparse_analysis.py checks that it
is what `book.chapters.brain.lnp_flops()` computes), and the 2015 post's own total. The GPUs' peak
rates come from the book's shared data file `book/data_files/gpu_specs.csv` (each row cites its
whitepaper); a notebook never imports another chapter's code, so the brain's number lives here.
"""
from __future__ import annotations

import math
import os
from typing import Any

from book.core.tables import GPU_SPECS_FILE as GPU_SPECS
from book.core.tables import gpu_specs

POST_DATE = "2019-07"                    # the sparse post: 11 July 2019
BRAIN_CHAPTER_FLOPS = 1.0001003002e21     # brain.lnp_flops(), reading "dense x 2 FLOPs x 200 Hz"
BRAIN_POST_2015_FLOPS = 1.075e21          # Dettmers (2015): "my estimate would be 1.075x10^21"
POST_FACTOR = 1e9


def gpus_by(date: str = POST_DATE, path: str | os.PathLike = GPU_SPECS) -> list[dict[str, Any]]:
    """The GPUs of the data file announced by `date` (YYYY-MM), with peak FP16 tensor TFLOPS."""
    rows = gpu_specs(path)
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


def ratios_text(gap: dict[str, Any]) -> str:
    """sparse-12: each brain estimate over each GPU's peak, then the range against the post's 1e9."""
    lines = []
    for (brain, gpu), ratio in gap["ratios"].items():
        peak = next(g["tflops"] for g in gap["gpus"] if g["gpu"] == gpu)
        lines.append(f"{brain} ({gap['brains'][brain]:.3g} FLOPS) / {gpu} ({peak:g} TFLOPS): {ratio:.2g}")
    lines.append(f"range {gap['low']:.2g} to {gap['high']:.2g}: the post's 1e9 is "
                 f"{gap['post_over_high']:.0f}x to {gap['post_over_low']:.0f}x larger")
    return "\n".join(lines)


def in_post_order(gap: dict[str, Any], half_width: float = 0.5) -> bool:
    """sparse-12's criterion: the range of ratios reaches into the post's order of magnitude,
    10^(9 ± `half_width`)."""
    exponent = round(math.log10(POST_FACTOR))
    return 10 ** (exponent - half_width) <= gap["high"] and gap["low"] <= 10 ** (exponent + half_width)


def wrong_text(gap: dict[str, Any]) -> str:
    """What the post got wrong, when the ratios miss its order of magnitude."""
    return (f"says 10^9; the brain's estimated FLOPS over a 2019 GPU's peak is "
            f"{gap['low']:.1e} to {gap['high']:.1e}: the post's factor is "
            f"{gap['post_over_high']:.0f}-{gap['post_over_low']:.0f}x too large")


def note_text(gap: dict[str, Any]) -> str:
    """The GPUs compared, and why the energy half of the sentence is not checked."""
    tdp = [g["tdp_w"] for g in gap["gpus"]]
    return (f"GPUs announced by {POST_DATE}: " + ", ".join(g["gpu"] for g in gap["gpus"])
            + f"; the energy half (1/10th of a GPU's {min(tdp):g}-{max(tdp):g} W) is not checked: the "
              "book's data hold no figure for the brain's power")


__all__ = ["GPU_SPECS", "POST_DATE", "BRAIN_CHAPTER_FLOPS", "BRAIN_POST_2015_FLOPS", "POST_FACTOR",
           "gpus_by", "brain_to_gpu", "ratios_text", "in_post_order", "wrong_text", "note_text"]
