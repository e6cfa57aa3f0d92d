"""book.ledger: ids, verdicts, completeness, rounding, JSON."""
import json
from pathlib import Path

import pytest

from book.ledger import Ledger, claim_ids, load_claims, read_ledgers, round_sig

SHARED_CLAIMS = Path(__file__).resolve().parents[2] / "shared" / "claims.md"


def test_package_claims_are_the_shared_claims():
    if not SHARED_CLAIMS.exists():
        pytest.skip("../shared/claims.md is not beside this checkout")
    assert load_claims() == load_claims(str(SHARED_CLAIMS)), "book/claims.md drifted from shared/claims.md"


def test_every_prefix_has_its_claims():
    assert claim_ids("conv") == [f"conv-{i}" for i in range(1, 13)]
    assert len(claim_ids("gpu")) == 13 and len(claim_ids("dp")) == 8


def _full_conv_ledger(**kwargs) -> Ledger:
    ledger = Ledger("conv", **kwargs)
    for cid in claim_ids("conv"):
        ledger.check(cid, post=1.0, measured=1.0)
    return ledger


def test_verdicts_are_computed_from_the_measurement():
    ledger = Ledger("conv")
    assert ledger.check("conv-1", post=1.0, measured=1.04, tol=0.05).verdict == "reproduced"
    with pytest.warns(UserWarning, match="no `why`"):
        assert ledger.check("conv-2", post=1.0, measured=1.06, tol=0.05).verdict == "differs"
    assert ledger.check("conv-3", post=100, measured=109, rel_tol=0.1).verdict == "reproduced"
    entry = ledger.check("conv-4", post=[1, 2], measured=[1, 2.5], tol=0.1, why="second value is off")
    assert entry.verdict == "differs" and entry.note == "second value is off"
    assert ledger.check_that("conv-5", 1 < 2, post="x", measured=3, criterion="c").verdict == "reproduced"
    assert ledger.check_that("conv-6", False, post="x", measured=3, criterion="c", why="w").verdict == "differs"
    assert ledger.check("conv-7", post=1.0, measured=float("nan"), tol=1.0, why="nan").verdict == "differs"


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
    ledger.check("conv-1", post=1, measured=1)
    with pytest.raises(RuntimeError, match="conv-2, conv-3"):
        ledger.finish(tmp_path)
    assert not (tmp_path / "conv.json").exists()


def test_finish_writes_json_with_mode_and_device(tmp_path):
    ledger = _full_conv_ledger(quick=False, device="cuda")
    assert ledger.finish(tmp_path) is ledger
    data = json.loads((tmp_path / "conv.json").read_text())
    assert data["mode"] == "full" and data["device"] == "cuda"
    assert data["counts"]["reproduced"] == 12 and len(data["claims"]) == 12
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


def test_table_puts_the_verdict_next_to_the_id_and_masks_volatile_values():
    ledger = Ledger("conv")
    ledger.check("conv-12", post=20, measured=17.3, rel_tol=0.5, volatile=True)
    ledger.cited("conv-1", post="x", source="a book, p. 3")
    text = repr(ledger)
    assert "conv-12   ⟨reproduced⟩" in text and "conv-1    cited" in text and "⟨17.3⟩" in text and "source: a book, p. 3" in text
    assert "0 reproduced, 0 differs, 0 needs-gpu, 1 cited; timed claims: ⟨1 reproduced⟩" in text
    assert "<table>" in ledger._repr_html_() and "⟨reproduced⟩" in ledger._repr_html_()
    assert repr(ledger.entries["conv-12"]).startswith("conv-12 ⟨reproduced⟩ — post: 20 | measured: ⟨17.3⟩")


def test_a_timed_claim_shows_the_same_shape_whatever_its_verdict():
    import re

    def masked(text):
        return re.sub(r"⟨[^⟩]*⟩", "⟨⟩", text)

    outcomes = []
    for measured in (17.3, 99.0):  # within tolerance, then outside it
        ledger = Ledger("conv")
        entry = ledger.check("conv-12", post=20, measured=measured, rel_tol=0.5, volatile=True, why="slow machine")
        outcomes.append((entry.verdict, masked(repr(entry)), masked(repr(ledger)), masked(ledger._repr_html_())))
    assert outcomes[0][0] != outcomes[1][0]
    assert outcomes[0][1:] == outcomes[1][1:]
