"""book.core.session and book.core.device: parameters checked before work, seeds, device choice."""
import numpy as np
import pytest
import torch

import book
from book.core.device import describe, pick_device, seed_everything


def test_start_checks_parameter_types_first():
    with pytest.raises(TypeError, match="QUICK must be bool"):
        book.start("conv", quick="yes", device="auto", seed=0)
    with pytest.raises(TypeError, match="SEED must be int"):
        book.start("conv", quick=True, device="auto", seed=1.5)
    with pytest.raises(TypeError, match="SEED must be int"):
        book.start("conv", quick=True, device="auto", seed=True)
    with pytest.raises(TypeError, match="EPOCHS must be int"):
        book.start("conv", quick=True, device="auto", seed=0, EPOCHS=("3", int))
    with pytest.raises(ValueError, match="unknown chapter"):
        book.start("convolution", quick=True, device="auto", seed=0)


def test_start_seeds_and_opens_the_ledger(capsys):
    s = book.start("conv", quick=False, device="cpu", seed=7)
    first = torch.rand(3), np.random.rand()
    book.start("conv", quick=False, device="cpu", seed=7)
    assert torch.equal(first[0], torch.rand(3)) and first[1] == np.random.rand()
    assert s.ledger.mode == "full" and s.device == torch.device("cpu")
    out = capsys.readouterr().out
    assert "mode: full" in out and "device: ‹cpu›" in out


def test_device_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device("auto").type == expected
    assert pick_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="not a device"):
        pick_device("tpu7")
    with pytest.raises(TypeError):
        pick_device(None)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees none"):
            pick_device("cuda")
    assert describe(torch.device("cpu")).startswith("device: ‹cpu›, numerics profile")


def test_seed_everything_rejects_non_integers():
    with pytest.raises(TypeError):
        seed_everything("0")


def test_start_holds_each_parameter_to_the_registrys_declaration():
    """The same rules as the runner's, for a notebook run by hand (issue 20)."""
    with pytest.raises(ValueError, match="BOOT_BLOCK of chapter 'brain' must be at least 1, not 0"):
        book.start("brain", quick=True, device="cpu", seed=0, BOOT_BLOCK=(0, int))
    with pytest.raises(ValueError, match="WORKERS of chapter 'mp' must be one of 2, 4"):
        book.start("mp", quick=True, device="cpu", seed=0, WORKERS=(3, int))
    with pytest.raises(ValueError, match="RERUN_SWEEPS of chapter 'sparse': True needs full mode"):
        book.start("sparse", quick=True, device="cpu", seed=0, RERUN_SWEEPS=(True, bool))
    book.start("brain", quick=True, device="cpu", seed=0, BOOT_BLOCK=(4, int))
    book.start("dp", quick=True, device="cpu", seed=0, WORKERS=(1000, int))   # the Pool checks that itself
