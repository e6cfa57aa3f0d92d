"""book.core.ledger: ids, verdicts, completeness, rounding, JSON."""
import json
from pathlib import Path

import pytest

from book.core.ledger import Ledger, claim_ids, load_claims, read_ledgers, round_sig

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.mark.parametrize("name", ["claims.md", "claims-added.md"])
def test_every_shared_claim_is_in_the_catalogue_unchanged(name):
    """book/claims.md is the catalogue: every id of the shared claim files is in it, word for word."""
    if not (SHARED / name).exists():
        pytest.skip(f"../shared/{name} is not beside this checkout")
    shared, ours = load_claims(str(SHARED / name)), load_claims()
    assert shared, f"no claim ids read from {name}"
    changed = {cid: text for cid, text in shared.items() if ours.get(cid) != text}
    assert not changed, f"missing or reworded in book/claims.md: {sorted(changed)}"


def test_every_prefix_has_its_claims():
    # the shared ids, in order, at the start of each prefix; chapters may add ids after them
    assert claim_ids("conv")[:12] == [f"conv-{i}" for i in range(1, 13)]
    assert len(claim_ids("gpu")) >= 15 and len(claim_ids("dp")) >= 9
    assert claim_ids("pred") == [f"pred-{i}" for i in range(1, 11)]
    for prefix in ("dp", "mp", "conv", "brain", "sparse", "int8", "gpu", "pred"):
        ids = claim_ids(prefix)
        assert ids == [f"{prefix}-{i}" for i in range(1, len(ids) + 1)], f"{prefix}: ids not numbered 1..n"


def _full_conv_ledger(**kwargs) -> Ledger:
    ledger = Ledger("conv", **kwargs)
    for cid in claim_ids("conv"):
        ledger.check(cid, post=1.0, measured=1.0, fails_if="x")
    return ledger


@pytest.mark.filterwarnings("ignore:.*fails_if")
def test_verdicts_are_computed_from_the_measurement():
    ledger = Ledger("conv")
    assert ledger.check("conv-1", post=1.0, measured=1.04, tol=0.05).verdict == "reproduced"
    differs = ledger.check("conv-2", post=1.0, measured=1.06, tol=0.05)
    assert differs.verdict == "differs"   # a numeric row says the size of the post's error by itself
    assert differs.wrong == "says 1, measured 1.06: the post's number is 5.66 % below the measured one"
    assert ledger.check("conv-3", post=100, measured=109, rel_tol=0.1).verdict == "reproduced"
    entry = ledger.check("conv-4", post=[1, 2], measured=[1, 2.5], tol=0.1, why="second value is off")
    assert entry.verdict == "differs" and entry.note_text().startswith("second value is off; the post says [1, 2]")
    with pytest.warns(UserWarning, match="no `wrong`"):
        ledger.check_that("conv-8", False, post="x", measured=3, criterion="c")
    assert ledger.check_that("conv-5", 1 < 2, post="x", measured=3, criterion="c").verdict == "reproduced"
    assert ledger.check_that("conv-6", False, post="x", measured=3, criterion="c", why="w").verdict == "differs"
    assert ledger.check("conv-7", post=1.0, measured=float("nan"), tol=1.0, why="nan").verdict == "differs"


@pytest.mark.filterwarnings("ignore:.*fails_if")
def test_bad_records_are_refused():
    ledger = Ledger("conv")
    with pytest.raises(KeyError, match="not a claim id"):
        ledger.check("conv-99", post=1, measured=1)
    with pytest.raises(KeyError, match="another chapter"):
        ledger.check("dp-1", post=1, measured=1)
    ledger.check("conv-1", post=1, measured=1)
    with pytest.raises(ValueError, match="already recorded"):
        ledger.check("conv-1", post=1, measured=1)
    with pytest.raises(ValueError, match="source"):
        ledger.cited("conv-2", post="x", source="")
    with pytest.raises(ValueError, match="values"):
        ledger.check("conv-3", post=[1, 2], measured=[1], tol=1)
    with pytest.raises(ValueError, match="non-negative"):
        ledger.check("conv-3", post=1, measured=1, tol=-1)
    with pytest.raises(ValueError, match="unknown chapter"):
        Ledger("nope")


def test_needs_gpu_only_without_a_gpu():
    assert Ledger("gpu", device="cpu").needs_gpu("gpu-7", post="2x", reason="no GPU").verdict == "needs-gpu"
    with pytest.raises(RuntimeError, match="measure it"):
        Ledger("gpu", device="cuda").needs_gpu("gpu-7", post="2x", reason="no GPU")


def test_finish_refuses_an_incomplete_ledger(tmp_path):
    ledger = Ledger("conv")
    ledger.check("conv-1", post=1, measured=1, fails_if="x")
    with pytest.raises(RuntimeError, match="conv-2, conv-3"):
        ledger.finish(tmp_path)
    assert not (tmp_path / "conv.json").exists()


def test_finish_writes_json_with_mode_and_device(tmp_path):
    ledger = _full_conv_ledger(quick=False, device="cuda")
    assert ledger.finish(tmp_path) is ledger
    data = json.loads((tmp_path / "conv.json").read_text())
    assert data["mode"] == "full" and data["device"] == "cuda"
    n = len(claim_ids("conv"))
    assert data["counts"]["reproduced"] == n and len(data["claims"]) == n
    assert {c["mode"] for c in data["claims"]} == {"full"}
    assert read_ledgers(tmp_path)[0]["chapter"] == "conv"


def test_finish_honours_the_ledger_dir_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("BOOK_LEDGER_DIR", str(tmp_path / "elsewhere"))
    _full_conv_ledger().finish()
    assert (tmp_path / "elsewhere" / "conv.json").exists()


def test_rounding_is_stable():
    assert round_sig(0.99901356) == 0.999
    assert round_sig(1.2328812e-4) == 0.0001233
    assert round_sig([3, 2.718281828, "x", None, True]) == [3, 2.718, "x", None, True]
    assert round_sig(float("inf")) == "inf"


def test_table_puts_the_verdict_next_to_the_id_and_masks_only_run_dependent_numbers():
    ledger = Ledger("conv")
    ledger.check("conv-12", post=20, measured=17.3, rel_tol=0.5, volatile=True, fails_if="x")
    ledger.cited("conv-1", post="x", source="a book, p. 3")
    text = repr(ledger)
    # a volatile measurement is masked; the verdict of a deterministic claim is not
    assert "conv-12   reproduced" in text and "conv-1    cited" in text and "⟨17.3⟩" in text
    assert "source: a book, p. 3" in text and "2 claims: 1 reproduced, 1 cited" in text
    assert "⟨reproduced⟩" not in ledger._repr_html_()
    assert repr(ledger.entries["conv-12"]).startswith("conv-12 reproduced — post: 20 | measured: ⟨17.3⟩")


def test_rows_follow_the_catalogue_order():
    ledger = Ledger("conv")
    ledger.check("conv-3", post=1, measured=1, fails_if="x")
    ledger.check("conv-1", post=1, measured=1, fails_if="x")
    assert [e.id for e in ledger.ordered()] == ["conv-1", "conv-3"]
    assert repr(ledger).index("conv-1 ") < repr(ledger).index("conv-3 ")


def _timed(estimate, lo, hi):
    ledger = Ledger("conv")
    return ledger, ledger.check_interval("conv-12", post="0-20 % faster", estimate=estimate, interval=(lo, hi),
                                         accept=(0.0, 20.0), criterion="95 % interval inside 0–20 %",
                                         fails_if="interval below 0", why="slow machine", unit=" %")


def test_a_timed_claim_is_decided_only_by_its_interval():
    assert _timed(10, 5, 15)[1].verdict == "reproduced"
    assert _timed(-10, -15, -5)[1].verdict == "differs"
    assert _timed(1, -3, 6)[1].verdict == "undecided"   # straddles 0: this run cannot tell
    assert _timed(19, 15, 25)[1].verdict == "undecided"
    with pytest.raises(ValueError):
        _timed(30, 5, 15)   # the estimate must lie in its interval


def test_a_timed_claim_shows_the_same_shape_whatever_its_verdict():
    import re

    def masked(text):
        return re.sub(r"⟨[^⟩\n]*⟩", "⟨⟩", text)

    outcomes = []
    for est, lo, hi in ((10, 5, 15), (-10, -15, -5), (1, -3, 6)):
        ledger, entry = _timed(est, lo, hi)
        outcomes.append((entry.verdict, masked(repr(entry)), masked(repr(ledger)), masked(ledger._repr_html_())))
    assert len({o[0] for o in outcomes}) == 3
    assert outcomes[0][1:] == outcomes[1][1:] == outcomes[2][1:]


def test_the_mask_never_spans_lines():
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).with_name("nbval_sanitize.cfg"), encoding="utf-8")
    import re

    pattern = re.compile(cfg["ledger-volatile"]["regex"])
    assert pattern.sub("M", "⟨a⟩ b ⟨c⟩") == "M b M"
    assert pattern.sub("M", "⟨a\nreproduced⟩") == "⟨a\nreproduced⟩"


def test_needs_resource_names_the_resource():
    entry = Ledger("int8").needs_resource("int8-9", post="OPT family", resource="OPT-125M…1.3B weights",
                                          reason="offline: the Hugging Face Hub cannot be reached")
    assert entry.verdict == "needs-resource" and "OPT-125M" in entry.verdict_text()
    with pytest.raises(ValueError):
        Ledger("int8").needs_resource("int8-9", post="x", resource="", reason="r")


def test_forecasts_take_forecast_verdicts_only():
    ledger = Ledger("predictions")
    entry = ledger.forecast("pred-1", "wrong", post="8-bit standard in 6 months", judged="2026-11-27",
                            due="2023-07", criterion="c", sources="s", fails_if="f")
    assert entry.verdict == "wrong" and "judged 2026-11-27, due 2023-07" in entry.note_text()
    with pytest.raises(ValueError, match="forecast outcome"):
        ledger.forecast("pred-2", "reproduced", post="x", judged="2026-11-27", due="2024", criterion="c",
                        sources="s")
    with pytest.raises(ValueError, match="ISO date"):
        ledger.forecast("pred-2", "partly", post="x", judged="today", due="2024-01", criterion="c", sources="s")
    with pytest.raises(ValueError, match="not a verdict for a claim"):
        Ledger("conv")._add("conv-1", "came-true")


def test_a_check_without_fails_if_is_flagged(monkeypatch):
    from book.core import ledger as ledger_module

    monkeypatch.setattr(ledger_module, "load_specs", lambda path=None: {})   # no catalogue text to fall back on
    with pytest.warns(UserWarning, match="fails_if"):
        Ledger("conv").check("conv-1", post=1, measured=1)


def test_evidence_names_the_committed_file(tmp_path, monkeypatch):
    from book.core import evidence

    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path / "results")
    evidence.save("sparse", "lenet300", {"error": 0.0139}, command="python -m book.chapters.sparse ...", wall_s=12.3)
    ev = evidence.load("sparse", "lenet300")
    assert ev.data == {"error": 0.0139} and ev.provenance["mode"] == "full" and ev.provenance["wall_s"] == 12.3
    entry = Ledger("sparse").check("sparse-2", post=1.39, measured=1.39, tol=0.1, evidence=ev, fails_if="x")
    assert entry.evidence["path"].endswith("sparse/lenet300.json") and "full, cpu" in entry.evidence_text()
    assert "this run (quick, ‹cpu›)" == Ledger("sparse").check("sparse-3", post=1, measured=1, fails_if="x").evidence_text()
    with pytest.raises(FileNotFoundError, match="python -m book evidence sparse"):
        evidence.load("sparse", "lenet5")
    with pytest.raises(TypeError):
        Ledger("sparse").check("sparse-4", post=1, measured=1, evidence="results/x.json", fails_if="x")


def test_finished_ledger_rides_in_the_output_metadata(tmp_path):
    import nbformat
    from IPython.core.formatters import DisplayFormatter

    from book.core.ledger import LEDGER_METADATA_KEY, ledger_from_notebook

    ledger = _full_conv_ledger()
    data, meta = DisplayFormatter().format(ledger)
    assert LEDGER_METADATA_KEY not in meta   # not finished yet: no JSON
    ledger.finish(tmp_path)
    data, meta = DisplayFormatter().format(ledger)
    assert "text/html" in data and meta[LEDGER_METADATA_KEY]["counts"]["reproduced"] == len(claim_ids("conv"))
    prov = meta[LEDGER_METADATA_KEY]["provenance"]
    assert prov["versions"]["torch"] and prov["date"].endswith("Z") and "wall_s" in meta[LEDGER_METADATA_KEY]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("ledger.finish()", outputs=[
        nbformat.v4.new_output("execute_result", data=data, metadata=meta, execution_count=1)])])
    nbformat.write(nb, tmp_path / "conv.ipynb")
    assert ledger_from_notebook(tmp_path / "conv.ipynb")["chapter"] == "conv"


def test_an_interval_over_seeds_is_compared_in_full():
    """An interval from seeds or committed evidence is deterministic: nothing of its row is masked."""
    ledger = Ledger("sparse")
    entry = ledger.check_interval("sparse-4", post="momentum beats random", estimate=0.4, interval=(-0.2, 1.0),
                                  accept=(0.0, float("inf")), criterion="97.5 % paired interval over 5 seeds > 0",
                                  fails_if="interval below 0", timed=False)
    assert entry.verdict == "undecided" and "⟨" not in repr(entry) and "⟨" not in ledger._repr_html_()
    assert "cannot decide" in entry.note_text()


def test_the_catalogue_holds_a_claims_static_text(tmp_path):
    from book.core.ledger import load_specs

    catalogue = tmp_path / "claims.md"
    catalogue.write_text("## ch-x\n- x-1 A claim.\n  - post: 0.75\n  - criterion: within 5 %\n"
                         "  - fails if: the ratio leaves [0.7, 0.8]\n- x-2 Another.\n  - post: about 2x\n",
                         encoding="utf-8")
    specs = load_specs(str(catalogue))
    assert specs["x-1"] == {"post": 0.75, "criterion": "within 5 %", "fails_if": "the ratio leaves [0.7, 0.8]"}
    assert specs["x-2"] == {"post": "about 2x"}


@pytest.mark.filterwarnings("ignore:.*no `wrong`")
def test_a_row_that_passed_says_why_it_passed_and_never_why_it_failed():
    ledger = Ledger("conv")
    entry = ledger.check("conv-1", post=1.0, measured=1.0, tol=0.1, why="would explain a failure", fails_if="x")
    assert entry.verdict == "reproduced" and entry.why.startswith("measured 1 meets the criterion")
    assert entry.wrong == "" and "explain a failure" not in entry.note_text()
    interval = ledger.check_interval("conv-2", post="~1", estimate=1.0, interval=(0.9, 1.1), accept=(0.5, 2),
                                     criterion="c", fails_if="x", timed=False)
    assert interval.why.startswith("the whole interval 1 [0.9, 1.1] lies inside")
    wrong = ledger.check_interval("conv-3", post="~1", estimate=3.0, interval=(2.9, 3.1), accept=(0.5, 2),
                                  criterion="c", fails_if="x", timed=False)
    assert wrong.verdict == "differs" and "lies above the accepted 2" in wrong.wrong


def test_float_kernel_numbers_are_marked_for_the_device_comparison():
    ledger = Ledger("conv")
    assert ledger.check("conv-1", post=1.0, measured=1.0, tol=0.1, fails_if="x",
                        float_path=True).measured_text() == "‹1›"


def test_a_run_says_whether_it_reproduced_the_committed_run(monkeypatch):
    ledger = _full_conv_ledger()
    committed = {"claims": [dict(id=e.id, verdict=e.verdict, measured=e.measured) for e in ledger.ordered()],
                 "provenance": {"commit": "abcdef123", "date": "2026-12-01T00:00:00"}}
    monkeypatch.setattr(Ledger, "committed", lambda self: committed)
    assert ledger.compare_with_committed().startswith("identical to the committed quick run (commit abcdef1")
    committed["claims"][0]["verdict"] = "differs"
    assert "conv-1 (verdict differs → reproduced)" in ledger.compare_with_committed()
    monkeypatch.setattr(Ledger, "committed", lambda self: None)
    assert ledger.compare_with_committed() == "no committed quick run of this chapter to compare with"


def test_a_claim_a_gpu_measures_is_marked_whole_for_the_device_comparison(monkeypatch):
    from book.core import ledger as ledger_module

    specs = {"conv-1": {"needs": "gpu"}}
    monkeypatch.setattr(ledger_module, "load_specs", lambda path=None: specs)
    ledger = Ledger("conv")
    row = ledger.check("conv-1", post=1.0, measured=1.0, tol=0.1, fails_if="x")
    assert row.verdict_text() == "‹reproduced›" and row.measured_text() == "‹1›" and row.criterion_text() == "‹±0.1›"
    gpu_row = ledger.needs_gpu("conv-2", post="x", reason="no GPU here")
    assert gpu_row.verdict_text() == "‹needs-gpu›" and gpu_row.note_text() == "‹no GPU here›"
