"""book.core.provenance: where a result came from (commit, date, machine, versions), stamped on
every ledger, every piece of evidence and every manifest."""

import re

from book.core import provenance


def test_the_commit_of_this_checkout():
    found = provenance.git_commit()
    assert re.fullmatch(r"[0-9a-f]{12}", found["commit"]) and isinstance(found["dirty"], bool)


def test_outside_a_checkout_the_commit_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert provenance.git_commit() == {"commit": None, "dirty": None}


def test_collect_says_what_ran_where():
    info = provenance.collect("cpu")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info["date"])
    assert info["device"] == "cpu" and "logical cores" in info["device_name"]
    assert info["versions"]["python"] and "torch" in info["versions"]
    assert info["torch_threads"] >= 1 and "cuda" not in info


def test_a_cuda_name_without_a_gpu_falls_back_to_the_cpu():
    import torch

    if torch.cuda.is_available():
        assert provenance.device_name("cuda") == torch.cuda.get_device_name(0)
    else:
        assert "logical cores" in provenance.device_name("cuda")
