"""Tests of book.chapters.sparse.divergence: the trace of a run's first epochs in both variants, and
the committed study the chapter shows (sparse-13)."""
import pytest

from book.chapters import sparse as sp


@pytest.fixture(scope="module")
def mnist():
    return sp.MnistData.load()


def test_the_divergence_trace_records_both_variants_per_epoch(mnist):
    from book.chapters.sparse import divergence

    cfg = sp.RunConfig("lenet300", density=0.1, epochs=3, seed=0, train_subset=1000)
    t = {m: divergence.trace(cfg, mnist, 2, m) for m in divergence.VARIANTS.values()}
    for mode, tr in t.items():
        assert tr["steps_per_epoch"] == 10 and len(tr["test_error"]) == 2 and len(tr["max_step_loss"]) == 2
        assert tr["window"] == 10 and [len(w) for w in tr["loss_windows"]] == [1, 1]
    # epoch 0 is the same in both (no cycle yet), the epoch after the first cycle is not
    assert t["kept"]["loss_windows"][0] == t["zero"]["loss_windows"][0]


def test_the_committed_divergence_study_shows_both_variants():
    import matplotlib
    matplotlib.use("Agg")
    from book.chapters.sparse import divergence, figures

    traced = divergence.committed()
    assert set(traced.traces) == set(divergence.VARIANTS)
    assert traced.lines[0].startswith("evidence results/sparse/divergence.json")
    for t in traced.traces.values():
        assert len(t["test_error"]) == t["epochs"] == len(t["loss_windows"])
        assert all(len(w) == t["steps_per_epoch"] // t["window"] for w in t["loss_windows"])
    fig = figures.divergence_trace(traced.traces)
    assert len(fig.axes[0].get_lines()) == 2 + traced.traces["as published"]["epochs"] - 1
