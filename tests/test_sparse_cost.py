"""The sparse chapter's cost lines (book/chapters/sparse/cost.py): the committed benchmark of the
training loop, or how to make it."""
import json

from book.chapters.sparse import cost
from book.core import evidence


def test_without_a_benchmark_the_reading_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path)
    lines = cost.reading().lines
    assert len(lines) == 1 and cost.BENCHMARK_COMMAND in lines[0]


def test_the_committed_benchmark_is_quoted_with_its_targets(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path)
    data = {"density": 0.05, "chapter_epoch_s": 16.4, "plain_epoch_s": 26.0, "chapter_over_plain": 0.63,
            "chapter_over_limit": 1.7, "flop_limit_s": 9.5, "ghz": 2.6, "limit_over_plain": 0.37,
            "sparse_over_dense_step": [0.97, 0.95, 0.99], "cycle_share": 0.001,
            "targets": {"chapter_epoch_s": 20, "chapter_over_plain": 0.45, "sparse_over_dense_step": 1.15}}
    (tmp_path / "sparse").mkdir()
    (tmp_path / "sparse" / "benchmark.json").write_text(json.dumps(
        {"provenance": {"device_name": "Some CPU", "date": "2026-12-02T07:00:00Z"}, "data": data}))
    lines = cost.reading().lines
    assert "Some CPU" in lines[0] and "16.4 s (target at most 20 s)" in lines[0]
    assert "0.63 of a dense epoch" in lines[1] and "goal at most 0.45" in lines[1]
    assert "[0.950, 0.990]" in lines[2]
