"""book.core.numerics: the profile, its fingerprint, and how outputs show float-kernel numbers."""
import os
import subprocess
import sys

import pytest
import torch

from book.core import numerics


def test_the_profile_is_in_force_in_the_test_process(exact_numerics):
    assert numerics.in_force(), numerics.status()
    assert torch.backends.cpu.get_cpu_capability() == "AVX2" and torch.get_num_threads() == 1


def test_this_machine_reproduces_the_committed_fingerprint(exact_numerics):
    """The committed outputs were made under the profile; a kernel family that gives other bits here
    would show up as unexplained nbval diffs, so it is named here first, with what to do."""
    mismatches = numerics.compare_fingerprint()
    assert not mismatches, "\n".join(mismatches)


def test_a_kernel_started_from_the_tests_inherits_the_profile_even_if_it_imports_torch_first(exact_numerics):
    # nbval starts notebook kernels from this process: they must get the pins before torch loads
    code = "import torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         check=True).stdout.split()
    assert out == ["AVX2", "1"]


def test_native_switches_the_profile_off():
    env = {"BOOK_NUMERICS": "native"}
    assert not numerics.apply(env) and env == {"BOOK_NUMERICS": "native"}
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    if numerics.is_x86_64():
        assert numerics.apply(env) and env["ATEN_CPU_CAPABILITY"] == "avx2" and env["MKL_CBWR"] == "AVX2,STRICT"


def test_the_comparison_is_exact_on_x86_under_the_profile_and_device_elsewhere(monkeypatch):
    monkeypatch.delenv("BOOK_COMPARISON", raising=False)
    monkeypatch.setattr(numerics, "is_x86_64", lambda: False)
    assert numerics.comparison() == "device"
    monkeypatch.setattr(numerics, "is_x86_64", lambda: True)
    monkeypatch.setenv("BOOK_NUMERICS", "native")
    assert numerics.comparison() == "device"
    monkeypatch.delenv("BOOK_NUMERICS")
    assert numerics.comparison() == "exact"
    monkeypatch.setenv("BOOK_COMPARISON", "device")
    assert numerics.comparison() == "device"


def test_a_mismatch_names_the_family_and_the_remedy(monkeypatch):
    measured = dict(numerics.committed_fingerprint()["by_mkl_branch"]["AVX2,STRICT"]["families"], conv="0" * 16)
    (line,) = numerics.compare_fingerprint(measured, branch="AVX2,STRICT")
    assert line.startswith("kernel family 'conv'") and "ONEDNN_MAX_CPU_ISA=AVX2" in line
    (line,) = numerics.compare_fingerprint(measured, branch="COMPATIBLE")
    assert "no fingerprint is committed for MKL branch 'COMPATIBLE'" in line


def test_mkl_reports_the_branch_it_runs_and_the_profile_records_it(exact_numerics):
    """MKL honours MKL_CBWR's ISA branches on Intel CPUs only (AUTO elsewhere): the branch is measured
    from MKL's own report, and it is in every provenance's numerics status."""
    branch = numerics.mkl_cnr()
    assert branch in numerics.committed_fingerprint()["by_mkl_branch"], branch
    assert numerics.status()["mkl_cnr"] == branch
    assert numerics.this_family() == f"{numerics.PROFILE_NAME}, MKL {branch}"


def test_a_notebook_is_compared_exactly_only_on_the_bits_family_that_made_it(exact_numerics, monkeypatch):
    st = {"profile": numerics.PROFILE_NAME, "in_force": True}
    monkeypatch.setattr(numerics, "this_family", lambda: f"{numerics.PROFILE_NAME}, MKL AUTO,STRICT")
    amd = {"device": "cpu", "device_name": "AMD EPYC (2 logical cores)", "numerics": dict(st, mkl_cnr="AUTO,STRICT")}
    intel_before = {"device": "cpu", "device_name": "Intel(R) Xeon(R) Processor", "numerics": st}   # no mkl_cnr yet
    assert numerics.notebook_comparison(amd)[0] == "exact"
    mode, why = numerics.notebook_comparison(intel_before)
    assert mode == "device" and "MKL AVX2,STRICT" in why and "Intel" in why
    assert numerics.notebook_comparison(dict(amd, device="cuda"))[0] == "device"
    assert numerics.notebook_comparison({"numerics": {"in_force": False}})[0] == "device"
    monkeypatch.setattr(numerics, "this_family", lambda: None)   # this machine outside the profile
    assert numerics.notebook_comparison(amd)[0] == "device"


def test_outputs_show_float_kernel_numbers_marked_and_rounding_noise_as_a_bound():
    assert numerics.float_text(0.123456) == "‹0.1235›"
    assert numerics.float_text(1.5, ".1f") == "‹1.5›"
    assert numerics.bound(3.1e-16) == "< 1e-12" and numerics.bound(-2e-15, 1e-12) == "< 1e-12"
    assert numerics.bound(2e-3) == "0.002 (above the 1e-12 bound)"


def test_integer_kernels_may_use_the_full_isa(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    numerics.allow_full_isa_for_integer_kernels()
    assert os.environ["ONEDNN_MAX_CPU_ISA"] == ("ALL" if numerics.enabled() else "AVX2")


def test_status_says_what_was_pinned():
    info = numerics.status()
    assert info["profile"] in (numerics.PROFILE_NAME, "native") and set(info["env"]) == set(numerics.PROFILE_ENV)


def test_the_device_comparison_masks_everything_the_exact_one_does_and_the_marked_numbers():
    import configparser
    from pathlib import Path

    here = Path(__file__).parent
    exact, device = configparser.ConfigParser(), configparser.ConfigParser()
    exact.read(here / "nbval_sanitize.cfg", encoding="utf-8")
    device.read(here / "nbval_device.cfg", encoding="utf-8")
    assert set(device.sections()) == set(exact.sections()) | {"device-dependent", "device-dependent-padding"}
    assert all(dict(device[s]) == dict(exact[s]) for s in exact.sections())
    import re
    assert re.sub(device["device-dependent"]["regex"], "X", "error ‹0.0123› and ‹4›") == "error X and X"
    # a table column padded to a masked number's width: the padding is one gap whatever its length
    pad = device["device-dependent-padding"]
    assert re.sub(pad["regex"], pad["replace"], "fp16     X  1") == re.sub(pad["regex"], pad["replace"], "fp16   X    1")
