"""The Colab path: the install cell fetches the code at the commit its page was run from (the
branch's head, with a warning, when that commit cannot be fetched), says which runtime the chapter
wants and how long it runs, the notebooks carry Colab's GPU accelerator metadata where the chapter
uses a GPU, and the repository URL lives in one place."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

import book  # noqa: F401
from book.core.evidence import page_notebook
from book.core.registry import CHAPTERS, REPO_ROOT, available_chapters
from book.tools import colab

NOTEBOOKS = available_chapters()
_RUN_CELL = textwrap.dedent("""
    import importlib.util as u, sys
    original = u.find_spec
    u.find_spec = lambda name, *a: None if name == "book" else original(name, *a)  # as on Colab
    exec(open(sys.argv[1]).read())
""")


def _git(*args):
    return subprocess.run(
        ["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True
    ).stdout.strip()


def _run_cell(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "cell.py").write_text(source, encoding="utf-8")
    (tmp_path / "run.py").write_text(_RUN_CELL, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-W", "always", "run.py", "cell.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


needs_git = pytest.mark.skipif(
    shutil.which("git") is None or not _git("rev-parse", "HEAD"),
    reason="needs git and this checkout's history",
)


@needs_git
def test_the_install_cell_fetches_the_pinned_commit(tmp_path):
    head = _git("rev-parse", "HEAD")
    source = colab.install_cell_source(url=REPO_ROOT.as_uri(), extras=(), commit=head)
    result = _run_cell(tmp_path, source)
    assert result.returncode == 0, result.stderr[-2000:]
    clone = tmp_path / colab.CLONE_DIR
    assert (
        subprocess.run(
            ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        == head
    )
    assert "could not be fetched" not in result.stderr


@needs_git
def test_an_unreachable_commit_falls_back_to_the_branch_with_a_warning(tmp_path):
    branch = _git("rev-parse", "--abbrev-ref", "HEAD")
    if branch in ("", "HEAD"):
        pytest.skip("a detached checkout has no branch to fall back to")
    source = colab.install_cell_source(url=REPO_ROOT.as_uri(), extras=(), commit="0" * 40)
    result = _run_cell(tmp_path, source)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "could not be fetched" in result.stderr and branch in result.stderr
    assert (tmp_path / colab.CLONE_DIR / "book").is_dir()


def test_the_cell_names_its_runtime_and_run_times_and_keeps_lines_short():
    chapter = CHAPTERS["gpu"]
    source = colab.chapter_install_source(chapter, chapter.notebook)
    assert source.startswith("# Colab runtime: GPU")
    note = " ".join(line[2:] for line in source.splitlines() if line.startswith("# "))
    assert "Run time:" in note and "quick run" in note
    assert max(len(line) for line in source.splitlines()) <= 100
    assert colab.repository_url() in source
    assert colab.install_cell_source(commit=None).count("BOOK_COMMIT = None") == 1


def test_the_cell_is_a_few_lines_and_its_logic_lives_in_the_clone():
    chapter = CHAPTERS["int8"]
    source = colab.chapter_install_source(chapter, chapter.notebook)
    code = [line for line in source.splitlines() if line.strip() and not line.startswith("#")]
    assert len(code) <= 8, code
    assert colab.BOOTSTRAP in source and 'extras=["int8"]' in source
    assert (REPO_ROOT / colab.BOOTSTRAP).is_file()
    with pytest.raises(ValueError, match="no optional dependency group"):
        colab.install_cell_source(extras=("no-such-group",))


def test_the_bootstrap_imports_nothing_of_the_package():
    """It runs before `book` is importable (and must not load torch before the checkout)."""
    import ast

    tree = ast.parse((REPO_ROOT / colab.BOOTSTRAP).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert not imported & {"book", "torch", "numpy"}, imported


def test_the_bootstrap_reads_the_requirements_and_holds_the_runtime_builds():
    from book.tools import colab_bootstrap as boot

    reqs = boot.requirements(("int8",))
    assert any(r.startswith("torch") for r in reqs) and any(r.startswith("transformers") for r in reqs)
    assert boot.module_name("sentence-transformers>=2.7") == "sentence_transformers"
    assert boot.missing(["torch>=2.1", "no-such-dist-xyz>=1"]) == ["no-such-dist-xyz>=1"]
    held = boot.held_versions()
    assert any(h.startswith("torch==") for h in held) and any(h.startswith("numpy==") for h in held)


def test_gpu_chapters_are_the_ones_with_cuda_code_or_needs_gpu_rows():
    assert colab.uses_gpu(CHAPTERS["gpu"]) and colab.uses_gpu(CHAPTERS["int8"])
    assert not colab.uses_gpu(CHAPTERS["brain"]) and not colab.uses_gpu(CHAPTERS["predictions"])
    assert colab.colab_metadata(CHAPTERS["gpu"])["accelerator"] == "GPU"
    assert colab.colab_metadata(CHAPTERS["brain"]) == {}


@pytest.mark.parametrize("chapter", NOTEBOOKS, ids=[c.name for c in NOTEBOOKS])
def test_committed_notebooks_carry_the_synced_install_cell_and_accelerator(chapter):
    """`python -m book sync-install` writes these; rerun it after re-executing a chapter."""
    for path in (chapter.notebook, page_notebook(chapter.name)):
        if path is None:
            continue
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if colab.INSTALL_TAG in c.metadata.get("tags", [])]
        assert cells, f"{path.name}: no install cell"
        assert cells[0].source == colab.chapter_install_source(
            chapter, path
        ), f"{path.relative_to(REPO_ROOT)}: install cell out of date: python -m book sync-install"
        assert "hide-input" in cells[0].metadata.get("tags", [])
    nb = nbformat.read(chapter.notebook, as_version=4)
    wanted = colab.colab_metadata(chapter)
    assert nb.metadata.get("accelerator") == wanted.get(
        "accelerator"
    ), f"{chapter.name}: Colab accelerator metadata: run `python -m book sync-install`"


def test_the_repository_url_lives_in_one_place():
    url = colab.repository_url()
    assert url.startswith("https://")
    config = (REPO_ROOT / "_config.yml").read_text(encoding="utf-8")
    assert config.count(url) == 1
    # nowhere else by hand: the notebooks' install cells are generated from it (checked above)
    offenders = []
    for path in (
        list((REPO_ROOT / "book").rglob("*.py"))
        + list(REPO_ROOT.glob("*.md"))
        + list((REPO_ROOT / ".github").rglob("*.yml"))
    ):
        if path.name in ("scoreboard.md", "status.md"):   # generated by the build, from the ledgers
            continue
        if url in path.read_text(encoding="utf-8"):
            offenders.append(str(path.relative_to(REPO_ROOT)))
    assert (
        not offenders
    ), f"the repository URL is written by hand in {offenders}: read colab.repository_url()"
