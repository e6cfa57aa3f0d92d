"""book.core.timing: interleaved trials and the intervals every timed verdict rests on."""
import math

import numpy as np
import pytest

from book.core import timing


def test_interleaved_alternates_the_order_every_round():
    calls = []
    times = timing.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=4,
                               warmup=1)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert set(times) == {"a", "b"} and all(len(v) == 4 and min(v) >= 0 for v in times.values())


def test_interleaved_needs_two_rounds_for_an_interval():
    with pytest.raises(ValueError, match="at least 2 rounds"):
        timing.interleaved({"a": lambda: None}, rounds=1)


def test_mean_interval_is_the_student_t_interval():
    from scipy import stats

    x = [1.0, 2.0, 3.0, 4.0]
    mean, lo, hi = timing.mean_interval(x, 0.95)
    half = stats.t.ppf(0.975, 3) * np.std(x, ddof=1) / 2
    assert mean == 2.5 and math.isclose(lo, 2.5 - half) and math.isclose(hi, 2.5 + half)
    with pytest.raises(ValueError):
        timing.mean_interval([1.0])


def test_paired_ratio_interval_is_the_geometric_mean_of_per_round_ratios():
    a, b = [1.0, 2.0, 4.0], [2.0, 4.0, 8.0]
    ratio, lo, hi = timing.paired_ratio_interval(a, b)
    assert math.isclose(ratio, 2.0) and math.isclose(lo, 2.0) and math.isclose(hi, 2.0)
    ratio, lo, hi = timing.paired_ratio_interval([1.0, 1.0, 1.0, 1.0], [1.1, 0.9, 1.2, 1.0])
    assert lo < ratio < hi and lo < 1 < hi
    with pytest.raises(ValueError, match="as many"):
        timing.paired_ratio_interval([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="positive"):
        timing.paired_ratio_interval([1.0, 0.0], [1.0, 1.0])


def test_best_time_is_the_minimum_after_warmup():
    calls = []
    assert timing.best_time(lambda: calls.append(1), "cpu", reps=3, warmup=2) >= 0 and len(calls) == 5


def test_a_step_outside_torch_distributed_is_its_own_slowest_rank():
    assert timing.slowest_rank(0.25) == 0.25
    assert timing.timed_step(lambda: None, "cpu") >= 0


def test_timed_step_waits_at_the_barrier_first_and_times_the_call():
    import time

    calls = []
    elapsed = timing.timed_step(lambda: time.sleep(0.01), "cpu", barrier=lambda: calls.append(1))
    assert calls == [1] and elapsed >= 0.009
    timing.sync_device("cpu")  # nothing to wait for on a CPU
