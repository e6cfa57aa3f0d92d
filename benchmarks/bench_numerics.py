"""What the numerics profile costs (issue 17): each chapter's wall time with the profile (AVX2 kernels,
one intra-op thread) against the same chapter without it (BOOK_NUMERICS=native: the CPU's widest
kernels and torch's default thread count), run back to back, alternating which goes first.

The runner's own timing of the chapter (seconds from kernel start to the last cell) is the measure, so
interpreter start-up is included equally on both sides. Run it on a quiet machine:

    python benchmarks/bench_numerics.py [CHAPTER ...] [--rounds 2] [--full]

Prints one line per chapter: median seconds with the profile, without it (the CPU's widest kernels,
torch's default threads) and without it on one thread (the ISA's share alone), and the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_chapter(name: str, native: bool, full: bool, one_thread: bool = False) -> float:
    env = dict(os.environ)
    env.pop("BOOK_NUMERICS", None)
    for key in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(key, None)  # the profile sets them again when it is on; native must not inherit them
    if native:
        env["BOOK_NUMERICS"] = "native"
        if one_thread:   # the CPU's own kernels on one thread: the ISA's share of the cost alone
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"
    with tempfile.TemporaryDirectory() as ledgers:
        env["BOOK_LEDGER_DIR"] = ledgers
        cmd = [sys.executable, "-m", "book", "run", name] + (["--full"] if full else [])
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
        wall = time.perf_counter() - start
        ledger = Path(ledgers) / f"{name}.json"
        if ledger.exists():  # the chapter's own wall time, without the runner's start-up
            return float(json.loads(ledger.read_text(encoding="utf-8")).get("wall_s", wall))
        return wall


def main(argv: list[str] | None = None) -> int:
    import book  # noqa: F401
    from book.core.registry import available_chapters

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", default=[c.name for c in available_chapters()])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--full", action="store_true", help="full mode instead of quick")
    args = ap.parse_args(argv)
    print(f"{'chapter':<12} {'profile s':>10} {'native s':>10} {'native 1-thread s':>18} "
          f"{'profile/native':>15} {'profile/native 1-thread':>24}")
    arms = ("profile", "native", "native-1")
    for name in args.chapters:
        times = {arm: [] for arm in arms}
        for r in range(args.rounds):
            for arm in (arms if r % 2 == 0 else arms[::-1]):
                times[arm].append(run_chapter(name, arm != "profile", args.full, one_thread=arm == "native-1"))
        prof, nat, nat1 = (statistics.median(times[a]) for a in arms)
        print(f"{name:<12} {prof:>10.1f} {nat:>10.1f} {nat1:>18.1f} {prof / nat:>15.2f} {prof / nat1:>24.2f}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
