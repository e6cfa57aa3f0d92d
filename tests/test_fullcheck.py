"""book.tools.fullcheck (`make test-full`): a fresh full run held to results/, row by row — exact
where the numerics profile holds, by verdict family for timed rows."""

import json

import pytest

from book.tools import fullcheck


def _row(cid="conv-1", verdict="reproduced", measured=1.5, **extra):
    return {"id": cid, "verdict": verdict, "post": 1.5, "measured": measured, **extra}


def _ledger(*rows):
    return {"chapter": "conv", "mode": "full", "claims": list(rows)}


def test_identical_runs_match():
    assert fullcheck.compare_full(_ledger(_row()), _ledger(_row()), "conv").ok


@pytest.mark.parametrize(
    "fresh,why",
    [
        (_row(verdict="differs"), "verdict changed"),
        (_row(measured=1.5001), "measured"),
        (dict(_row(), post=2), "post's value"),
    ],
)
def test_a_deterministic_row_must_be_exact(fresh, why):
    result = fullcheck.compare_full(_ledger(_row()), _ledger(fresh), "conv")
    assert not result.ok and why in result.regressions[0].detail


def test_a_float_path_number_is_exact_only_under_the_numerics_profile():
    committed, fresh = _ledger(_row(float_path=True)), _ledger(
        _row(measured=1.5000001, float_path=True)
    )
    assert not fullcheck.compare_full(committed, fresh, "conv", profile=True).ok
    assert fullcheck.compare_full(committed, fresh, "conv", profile=False).ok


def test_a_run_dependent_number_is_compared_through_its_verdict():
    assert fullcheck.compare_full(
        _ledger(_row(volatile=True)), _ledger(_row(measured=9, volatile=True)), "conv"
    ).ok


def test_a_timed_row_keeps_its_family():
    timed = dict(timed=True)
    same_family = fullcheck.compare_full(
        _ledger(_row(**timed)), _ledger(_row(verdict="differs", **timed)), "conv"
    )
    assert same_family.ok and same_family.rows[0].status == "timing"
    lost = fullcheck.compare_full(
        _ledger(_row(**timed)), _ledger(_row(verdict="needs-gpu", **timed)), "conv"
    )
    assert not lost.ok and "measured to not measured" in lost.regressions[0].detail


def test_missing_and_new_rows_and_missing_ledgers_fail():
    assert not fullcheck.compare_full(_ledger(_row(), _row("conv-2")), _ledger(_row()), "conv").ok
    assert not fullcheck.compare_full(_ledger(_row()), _ledger(_row(), _row("conv-2")), "conv").ok
    assert "no committed full run" in fullcheck.compare_full(None, _ledger(), "conv").error
    assert "finished no ledger" in fullcheck.compare_full(_ledger(), None, "conv").error


def test_the_report_says_what_differs():
    bad = fullcheck.compare_full(_ledger(_row()), _ledger(_row(verdict="differs")), "conv")
    text = fullcheck.render([bad], profile=True)
    assert (
        "1 of 1 chapters DIFFER" in text
        and "| conv-1 | regression | reproduced | differs |" in text
    )


def test_full_check_refuses_a_stale_page_before_running_anything(tmp_path, monkeypatch, capsys):
    from book.core import evidence
    from book.tools.cli import main

    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path / "results")
    (tmp_path / "results" / "conv").mkdir(parents=True)
    (tmp_path / "results" / "conv" / "ledger.json").write_text(json.dumps(_ledger(_row())))
    assert main(["full-check", "conv", "--no-progress"]) == 2
    assert "MANIFEST.json is missing" in capsys.readouterr().err


def test_the_scheduled_workflow_runs_make_test_full():
    import re

    yaml = pytest.importorskip("yaml")
    from book.core.registry import REPO_ROOT

    workflow = yaml.safe_load(
        (REPO_ROOT / ".github" / "workflows" / "full.yml").read_text(encoding="utf-8")
    )
    triggers = workflow.get("on", workflow.get(True))
    assert triggers["schedule"] and "workflow_dispatch" in triggers
    runs = " ".join(s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"])
    assert "make test-full" in runs
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^test-full: .*\n\t\$\(PY\) -m book full-check", makefile, re.M)
