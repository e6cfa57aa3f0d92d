"""Building the sparse chapter's C kernels (`book.chapters.sparse.native`)."""
import pytest

from book.chapters.sparse import native


def test_a_failing_compiler_is_an_error_naming_it(tmp_path):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'fatal: no room' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(RuntimeError, match="failed on pool_relu.c: fatal: no room"):
        native.build("pool_relu", tmp_path / "cache", compiler=str(fake))
    assert not list((tmp_path / "cache").iterdir())   # no half-built file left


def test_an_unknown_kernel_is_refused_before_any_build(tmp_path):
    with pytest.raises(ValueError, match="no kernel source nope.c"):
        native.build("nope", tmp_path)


def test_without_a_compiler_the_status_says_torch_runs(monkeypatch, tmp_path):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    monkeypatch.setattr(native, "_status", {})
    monkeypatch.setattr(native, "_libraries", {})
    assert native.library("pool_relu", {}) is None
    assert native.status("pool_relu").startswith("torch's own ops (no compiled kernel: no C compiler")
    assert native.describe("pool_relu") == native.status("pool_relu")


def test_a_build_is_reused_and_named_by_its_flags(tmp_path):
    if native.shutil.which("cc") is None and native.shutil.which("gcc") is None:
        pytest.skip("no C compiler here")
    first = native.build("pool_relu", tmp_path)
    stamp = first.stat().st_mtime_ns
    assert native.build("pool_relu", tmp_path) == first and first.stat().st_mtime_ns == stamp
    other = native.build("pool_relu", tmp_path, flags=native.compiler_flags(avx2=False))
    assert other != first


def test_contraction_is_off_in_every_build():
    for avx2 in (False, True):
        assert "-ffp-contract=off" in native.compiler_flags(avx2=avx2)
