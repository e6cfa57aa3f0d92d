"""What an epoch of the committed MNIST runs costs on a CPU: the quiet one-core benchmark of the
training loop (`benchmarks/bench_sparse.py --save`: results/sparse/benchmark.json), against a
plain-torch epoch of the same net timed beside it and against the CPU's FLOP limit, with the floor
its conv and fully connected kernels set (each layer alone), where a step's time goes layer by layer
(clocked inside real steps) and the conv kernels at hand. A reader who wants to re-run the sweep
learns from it what that takes; no verdict reads it. (The rows' own training seconds are not quoted:
a resumed run adds up epochs timed under different code and load.)"""
from __future__ import annotations

from book.core import evidence
from book.chapters.sparse.reading import Reading

CHAPTER = "sparse"
BENCHMARK = "benchmark"
BENCHMARK_COMMAND = "python benchmarks/bench_sparse.py --save"


def _benchmark_lines(bench: evidence.Evidence) -> list[str]:
    b, p = bench.data, bench.provenance
    return [
        f"benchmark ({bench.relpath}, {p.get('device_name', '?')}, one core, "
        f"{str(p.get('date', ''))[:10]}): a LeNet-5-Caffe epoch at {100 * b['density']:g} % with its "
        f"prune/regrow cycle {b['chapter_epoch_s']:.1f} s (target at most {b['targets']['chapter_epoch_s']} s)",
        f"  {b['chapter_over_plain']:.2f} of a dense epoch of the same net in plain torch timed beside it "
        f"({b['plain_epoch_s']:.1f} s; goal at most {b['targets']['chapter_over_plain']}), "
        f"{b['chapter_over_limit']:.2f} x the CPU's FLOP limit ({b['flop_limit_s']:.1f} s at "
        f"{b['ghz']:.2f} GHz x 32 FLOP/cycle; that limit is {b['limit_over_plain']:.2f} of the plain epoch)",
        f"  sparse step / dense step {b['sparse_over_dense_step'][0]:.3f} (95 % interval "
        f"[{b['sparse_over_dense_step'][1]:.3f}, {b['sparse_over_dense_step'][2]:.3f}], target at most "
        f"{b['targets']['sparse_over_dense_step']}); the epoch-end cycle {100 * b['cycle_share']:.2f} % of "
        f"an epoch",
    ] + _floor_lines(b) + _profile_lines(b)


def _floor_lines(b: dict) -> list[str]:
    """The floor the loop's kernels set (the conv and fully connected layers alone), when measured."""
    floor = b.get("kernel_floor")
    if not floor:
        return []
    line = (f"  the conv and fully connected layers' kernels alone, each layer timed by itself at the loop's "
            f"shapes: {floor['step_ms']:.1f} ms a step, {floor['epoch_s']:.1f} s an epoch")
    if "over_naive_step" in floor:
        goal = b["targets"]["chapter_over_plain"]
        line += (f", {floor['over_naive_step']:.2f} of a plain-torch step timed between them: with everything "
                 f"else free the chapter / plain ratio could not go below that"
                 + (f", so the goal of {goal} is out of these kernels' reach" if floor["over_naive_step"] > goal else ""))
    return [line]


def _profile_lines(b: dict) -> list[str]:
    """Where a step's time goes (the benchmark's profile), when the benchmark has one."""
    prof, kernels, own = b.get("where_time_goes"), b.get("conv2_kernels_ms"), b.get("compiled_kernels_ms")
    if not prof:
        return []
    parts = [f"{r['kernels']} {100 * r['share']:.0f} %" + (f" ({r['gflops']:.0f} GFLOP/s, {100 * r['of_peak']:.0f} % "
             f"of the core's peak)" if "gflops" in r else "") for r in prof["groups"]]
    lines = [f"  where a {prof['step_ms']:.1f} ms sparse step goes (clocked inside {prof['steps']} steps): "
             + "; ".join(parts),
             f"  the conv layers alone take {prof['conv_epoch_s']:.1f} s of an epoch"]
    if kernels:
        lines.append("  the second conv's forward + backward alone, per kernel choice: "
                     + "; ".join(f"{k} {v:.1f} ms" for k, v in kernels.items()))
    for what, sides in (own or {}).items():
        lines.append(f"  {what}, a step (the same bits both ways): "
                     + "; ".join(f"{k} {v:.2f} ms" for k, v in sides.items()))
    return lines


def reading() -> Reading:
    """The committed benchmark of the training loop, or how to make it."""
    if evidence.exists(CHAPTER, BENCHMARK):
        return Reading(lines=_benchmark_lines(evidence.load(CHAPTER, BENCHMARK)))
    return Reading(lines=[f"no committed benchmark of the training loop: `{BENCHMARK_COMMAND}` makes one"])


__all__ = ["reading", "BENCHMARK_COMMAND"]
