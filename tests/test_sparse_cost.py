"""The sparse chapter's cost lines (book/chapters/sparse/cost.py): the committed benchmark of the
training loop, or how to make it."""
import json

from book.chapters.sparse import cost
from book.core import evidence

TARGETS = {"chapter_epoch_s": 20, "chapter_over_plain": 0.45, "sparse_over_dense_step": 1.15}


def commit_benchmark(results_dir, data, date="2026-12-02T07:00:00Z"):
    """A committed benchmark record with `data`, from "Some CPU", where `cost.reading()` looks."""
    (results_dir / "sparse").mkdir(exist_ok=True)
    (results_dir / "sparse" / "benchmark.json").write_text(json.dumps(
        {"provenance": {"device_name": "Some CPU", "date": date}, "data": data}))


def benchmark_data(**fields):
    """The headline figures every benchmark record has, with `fields` added or replacing them."""
    return {"density": 0.05, "chapter_epoch_s": 16.4, "plain_epoch_s": 26.0, "chapter_over_plain": 0.63,
            "chapter_over_limit": 1.7, "flop_limit_s": 9.5, "ghz": 2.6, "limit_over_plain": 0.37,
            "sparse_over_dense_step": [0.97, 0.95, 0.99], "cycle_share": 0.001, "targets": TARGETS, **fields}


def test_without_a_benchmark_the_reading_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path)
    lines = cost.reading().lines
    assert len(lines) == 1 and cost.BENCHMARK_COMMAND in lines[0]


def test_the_committed_benchmark_is_quoted_with_its_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path)
    commit_benchmark(tmp_path, benchmark_data())
    lines = cost.reading().lines
    assert "Some CPU" in lines[0] and "16.4 s (target at most 20 s)" in lines[0]
    assert "0.63 of a dense epoch" in lines[1] and "goal at most 0.45" in lines[1]
    assert "[0.950, 0.990]" in lines[2]


def test_the_benchmark_profile_says_where_a_step_goes(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path)
    data = benchmark_data(
        where_time_goes={"steps": 60, "step_ms": 42.0, "conv_epoch_s": 17.2, "groups": [
            {"kernels": "conv 3 backward", "ms_per_step": 16.0, "share": 0.38, "gflops": 40.0, "of_peak": 0.51},
            {"kernels": "max pooling", "ms_per_step": 3.0, "share": 0.07}]},
        conv2_kernels_ms={"oneDNN, channels-last (the chapter's)": 20.0, "oneDNN, channel-major": 27.0},
        compiled_kernels_ms={"both poolings": {"compiled": 0.9, "ATen": 3.25}})
    commit_benchmark(tmp_path, data)
    lines = cost.reading().lines
    assert "a 42.0 ms sparse step goes (clocked inside 60 steps)" in lines[3]
    assert "conv 3 backward 38 % (40 GFLOP/s, 51 % of the core's peak); max pooling 7 %" in lines[3]
    assert "17.2 s of an epoch" in lines[4]
    assert "oneDNN, channels-last (the chapter's) 20.0 ms; oneDNN, channel-major 27.0 ms" in lines[5]
    assert lines[6] == "  both poolings, a step (the same bits both ways): compiled 0.90 ms; ATen 3.25 ms"


def test_the_kernel_floor_says_whether_the_goal_is_within_its_reach(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path)
    data = benchmark_data(kernel_floor={"layers_ms": {"conv1": 4.0, "conv2": 18.0}, "step_ms": 26.0,
                                        "epoch_s": 15.6, "naive_step_ms": 48.0, "over_naive_step": 0.54})
    commit_benchmark(tmp_path, data, date="2026-12-03")
    line = cost.reading().lines[3]
    assert "26.0 ms a step, 15.6 s an epoch, 0.54 of a plain-torch step" in line
    assert "the goal of 0.45 is out of these kernels' reach" in line
    data["kernel_floor"]["over_naive_step"] = 0.40
    commit_benchmark(tmp_path, data, date="2026-12-03")
    line = cost.reading().lines[3]
    assert "0.40 of a plain-torch step" in line and "out of" not in line
