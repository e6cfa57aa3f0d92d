"""GPU validation's comparison rules, on hand-made ledgers (no GPU needed), and its CPU refusal."""
from __future__ import annotations

import json

import pytest

from book.tools import gpucheck
from book.core.ledger import ledger_from_notebook as committed_ledger
from book.tools.gpucheck import compare_ledgers, compare_rows, numbers_close, render_report


def row(cid="x-1", verdict="reproduced", post=1.0, measured=1.0, **kw):
    return {"id": cid, "verdict": verdict, "post": post, "measured": measured, "timed": False,
            "volatile": False, **kw}


def ledger(*rows, chapter="x"):
    return {"chapter": chapter, "mode": "quick", "device": "cpu", "claims": list(rows)}


# -- numbers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, close", [
    (1.0, 1.0005, True),            # within 1e-3
    (1.0, 1.01, False),
    (1.234, 1.235, True),           # one step of the ledger's 4-digit rounding
    (1.234, 1.236, False),
    (0.0, 0.0, True),
    (0.0, 1e-9, False),             # no absolute slack: a zero stays a zero
    ([1.0, 2.0], [1.0, 2.0001], True),
    ([1.0, 2.0], [1.0], False),
    ([1.0], 1.0, False),
    ("abc", "abc", True),
    ("abc", "abd", False),
    (None, None, True),
    (None, 0.0, False),
    (True, 1, False),
    (float("inf"), float("inf"), True),
    ("nan", "nan", True),           # the ledger stores non-finite values as strings
    (128000, 128000, True),
    (128000, 128001, True),         # within 1e-3 relative
    (3, 4, False),
])
def test_numbers_close(a, b, close):
    assert numbers_close(a, b) is close


# -- rows ------------------------------------------------------------------------------------
def test_same_row_matches():
    assert compare_rows(row(), row()).status == "same"


def test_changed_deterministic_verdict_is_a_regression():
    r = compare_rows(row(verdict="reproduced"), row(verdict="differs", measured=2.0))
    assert r.status == "regression" and "verdict changed" in r.detail


def test_moved_number_is_a_regression_in_quick_but_not_when_numbers_are_off():
    committed, gpu = row(measured=0.5), row(measured=0.52)
    assert compare_rows(committed, gpu).status == "regression"
    assert compare_rows(committed, gpu, numbers=False).status == "same"      # full mode: verdicts only
    assert compare_rows(committed, gpu, rel_tol=0.05).status == "same"


def test_changed_post_value_is_a_regression():
    assert compare_rows(row(post=1.0), row(post=2.0)).status == "regression"


def test_volatile_number_is_not_compared_but_its_verdict_is():
    committed = row(measured=1e-7, volatile=True)
    assert compare_rows(committed, row(measured=3e-6, volatile=True)).status == "same"
    assert compare_rows(committed, row(verdict="differs", measured=3e-6, volatile=True)).status == "regression"


@pytest.mark.parametrize("was", ["needs-gpu", "undecided"])
@pytest.mark.parametrize("now", ["reproduced", "differs", "undecided"])
def test_rows_open_on_cpu_are_decided_not_failed(was, now):
    r = compare_rows(row(verdict=was, measured=None), row(verdict=now, measured=3.0))
    assert r.status in ("decided", "same") and r.status != "regression"
    assert (r.status == "same") == (was == now)


def test_needs_resource_found_on_gpu_machine_is_reported_not_failed():
    assert compare_rows(row(verdict="needs-resource"), row(verdict="reproduced")).status == "found"


def test_losing_a_measurement_is_a_regression():
    r = compare_rows(row(verdict="reproduced"), row(verdict="needs-resource", measured=None))
    assert r.status == "regression"


def test_timed_rows_compare_by_verdict_family_only():
    committed = row(verdict="differs", measured=0.94, timed=True)
    assert compare_rows(committed, row(verdict="reproduced", measured=1.6, timed=True)).status == "timing"
    assert compare_rows(committed, row(verdict="differs", measured=0.5, timed=True)).status == "same"
    r = compare_rows(committed, row(verdict="needs-resource", measured=None, timed=True))
    assert r.status == "regression" and "measured" in r.detail


# -- ledgers -------------------------------------------------------------------------------------
def test_ledger_comparison_flags_missing_and_new_rows():
    committed = ledger(row("x-1"), row("x-2"))
    gpu = ledger(row("x-1"), row("x-3"))
    c = compare_ledgers(committed, gpu, chapter="x", mode="quick")
    by_id = {r.id: r.status for r in c.rows}
    assert by_id == {"x-1": "same", "x-2": "regression", "x-3": "new"}
    assert not c.ok and [r.id for r in c.regressions] == ["x-2"]


def test_ledger_comparison_passes_a_gpu_run_that_only_decides_open_rows():
    committed = ledger(row("x-1"), row("x-2", verdict="needs-gpu", measured=None),
                       row("x-3", verdict="differs", timed=True))
    gpu = ledger(row("x-1", measured=1.0004), row("x-2", verdict="differs", measured=7.0),
                 row("x-3", verdict="reproduced", timed=True))
    c = compare_ledgers(committed, gpu, chapter="x", mode="quick")
    assert c.ok, c.rows
    assert [r.status for r in c.rows] == ["same", "decided", "timing"]


@pytest.mark.parametrize("committed, gpu, error", [
    (None, ledger(row()), "no committed ledger"),
    (ledger(row()), None, "wrote no ledger"),
])
def test_missing_ledgers_fail(committed, gpu, error):
    c = compare_ledgers(committed, gpu, chapter="x", mode="full")
    assert not c.ok and error in c.error


def test_report_lists_regressions_and_decisions():
    ok = compare_ledgers(ledger(row("x-1", verdict="needs-gpu")), ledger(row("x-1", verdict="reproduced")),
                         chapter="x", mode="quick")
    bad = compare_ledgers(ledger(row("y-1")), ledger(row("y-1", verdict="differs")), chapter="y", mode="full")
    text = render_report([ok, bad], device="NVIDIA H100", seconds={"x/quick": 12.0})
    assert "NVIDIA H100" in text and "1 of 2 chapter runs REGRESSED" in text
    assert "| x | quick | 12 | 0 | 1 | 0 | 0 |" in text
    assert "## y (full)" in text and "REGRESSION" in text
    assert "measured on the GPU" in text


# -- the committed ledger inside a notebook ----------------------------------------------------------
def test_committed_ledger_reads_the_finish_cells_metadata(tmp_path):
    data = ledger(row("x-1"))
    nb = {"cells": [
        {"cell_type": "markdown", "source": "text", "metadata": {}},
        {"cell_type": "code", "source": "x", "metadata": {}, "outputs": [
            {"output_type": "stream", "name": "stdout", "text": "hi"}]},
        {"cell_type": "code", "source": "ledger.finish()", "metadata": {}, "outputs": [
            {"output_type": "execute_result", "data": {"text/plain": "Ledger"},
             "metadata": {"dettmers_book_ledger": data}, "execution_count": 3}]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert committed_ledger(path) == data
    nb["cells"].pop()
    path.write_text(json.dumps(nb), encoding="utf-8")
    assert committed_ledger(path) is None


def test_committed_notebooks_ledgers_name_their_chapter():
    from book.core.registry import available_chapters

    for chapter in available_chapters():
        led = committed_ledger(chapter.notebook)
        if led is not None:  # notebooks refreshed since the ledger rides in the output metadata
            assert led["chapter"] == chapter.name and led["claims"], chapter.name


# -- refusal on a CPU ----------------------------------------------------------------------------------
def test_refuses_at_once_without_cuda(monkeypatch, capsys):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ran = []
    monkeypatch.setattr(gpucheck, "_run_quick", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(gpucheck, "_run_full", lambda *a, **k: ran.append(a))
    assert gpucheck.main([]) == 2
    err = capsys.readouterr().err
    assert "torch.cuda.is_available() is False" in err and "GPU" in err
    assert ran == []


def test_unknown_chapter_is_a_usage_error(capsys):
    assert gpucheck.main(["no-such-chapter"]) == 2
    assert "unknown chapter" in capsys.readouterr().err
