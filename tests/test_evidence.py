"""book.core.evidence: a stored run proves its own consistency. Its ledger is the one its notebook
carries (never a side file another process wrote), its manifest vouches for every stored file, and
every page in results/ is held to its chapter's notebook, so a hand edit, a stale page or a
truncated file fails with one line naming the file and the remedy (issue 20). Stand-in notebooks in
a temporary tree; the last test holds the committed results/ to the same rules."""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nbformat
import pytest

import book.tools.paths
from book.core import evidence
from book.core import registry as chapters
from book.core.ledger import LEDGER_METADATA_KEY
from book.tools import paths
from book.tools.cli import main

LEDGER_CELL = """
import book
S = book.start("conv", quick=QUICK, device=DEVICE, seed=SEED)
for cid in S.ledger.missing():
    S.ledger.check(cid, post=3, measured=3, fails_if="never")
S.ledger.finish()
"""
# What a notebook run by hand in Jupyter does meanwhile: its own finish() writes the same ledger
# file.
HAND_RUN_CELL = """
import json, os, pathlib
side = pathlib.Path(os.environ["BOOK_LEDGER_DIR"]) / "conv.json"
hand = json.loads(side.read_text())
hand["mode"], hand["command"] = "quick", "notebook run by hand"
side.write_text(json.dumps(hand))
"""


def _notebook(*bodies: str, markdown: str = "# stand-in") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    install = nbformat.v4.new_code_cell("# the install cell (rewritten by sync-install)")
    install.metadata["tags"] = ["install", "hide-input"]
    params = nbformat.v4.new_code_cell('QUICK = True\nDEVICE = "auto"\nSEED = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), install, params] + [
        nbformat.v4.new_code_cell(b) for b in bodies
    ]
    return nb


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    build = tmp_path / "_build"
    (tmp_path / "notebooks").mkdir()
    monkeypatch.setattr(chapters, "NOTEBOOK_DIR", tmp_path / "notebooks")
    for name, path in {
        "BUILD_DIR": build,
        "EXECUTED_DIR": build / "executed",
        "LEDGER_DIR": build / "ledgers",
        "FAILED_DIR": build / "failed",
        "LOCK_DIR": build / ".locks",
        "SITE_DIR": build / "site",
    }.items():
        monkeypatch.setattr(book.tools.paths, name, path)
    monkeypatch.setattr(evidence, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setenv("BOOK_LEDGER_DIR", str(build / "ledgers"))
    nbformat.write(_notebook(LEDGER_CELL), tmp_path / "notebooks" / "conv.ipynb")
    return tmp_path


@pytest.fixture
def stored(sandbox, capsys):
    """conv stored by `python -m book evidence conv`, as the lead makes results/."""
    assert main(["evidence", "conv", "--no-progress"]) == 0
    capsys.readouterr()
    return sandbox / "results" / "conv"


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_evidence_stores_the_ledger_its_notebook_carries_and_a_manifest(stored):
    page = stored / "conv.ipynb"
    carried = evidence.notebook_ledger(evidence.read_notebook(page))
    assert carried["mode"] == "full"
    assert json.loads((stored / "ledger.json").read_text()) == carried
    manifest = json.loads((stored / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"conv.ipynb", "ledger.json"}
    assert manifest["command"] == "python -m book evidence conv" and "commit" in manifest
    assert manifest["files"]["ledger.json"] == evidence.digest(stored / "ledger.json")
    evidence.check_page("conv")  # consistent: no error


def test_a_ledger_file_written_by_a_run_by_hand_is_refused_and_nothing_is_stored(sandbox, capsys):
    nbformat.write(_notebook(LEDGER_CELL, HAND_RUN_CELL), sandbox / "notebooks" / "conv.ipynb")
    assert main(["evidence", "conv", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "is not the ledger this run's notebook carries" in out and "run by hand" in out
    assert not (sandbox / "results" / "conv").exists()


def test_publish_refuses_a_side_file_that_differs_from_the_notebook(stored, tmp_path):
    side = tmp_path / "side.json"
    ledger = json.loads((stored / "ledger.json").read_text())
    side.write_text(json.dumps(dict(ledger, mode="quick")))
    before = {p.name: p.read_bytes() for p in stored.iterdir()}
    with pytest.raises(evidence.EvidenceError, match="another process wrote it"):
        evidence.publish_run("conv", stored / "conv.ipynb", side)
    assert {p.name: p.read_bytes() for p in stored.iterdir()} == before


def _edit_page(page: Path, edit) -> None:
    nb = json.loads(page.read_text())
    edit(nb)
    page.write_text(json.dumps(nb, indent=1))


def _code_cell_edit(nb):
    cell = next(
        c for c in nb["cells"] if c["cell_type"] == "code" and "S.ledger" in "".join(c["source"])
    )
    cell["source"] = "".join(cell["source"]).replace("measured=3", "measured=3  # tuned")


def _verdict_edit(nb, ledger_path: Path):
    """A verdict changed consistently: in the output's metadata, its table and ledger.json."""
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get(LEDGER_METADATA_KEY)
            if meta:
                meta["claims"][0]["verdict"] = "differs"
                out["data"]["text/plain"] = "".join(out["data"]["text/plain"]).replace(
                    "reproduced", "differs", 1
                )
                ledger_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")


def test_a_hand_edited_code_cell_fails_the_build_in_one_line(stored, capsys):
    _edit_page(stored / "conv.ipynb", _code_cell_edit)
    with pytest.raises(evidence.EvidenceError) as err:
        evidence.check_page("conv")
    assert "results/conv/conv.ipynb" in str(err.value) and "python -m book evidence conv" in str(
        err.value
    )
    assert main(["build", "--no-execute"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "results/conv/conv.ipynb" in line and "remake it: python -m book evidence conv" in line


def test_a_verdict_edited_consistently_everywhere_fails_on_the_manifest(stored, capsys):
    _edit_page(stored / "conv.ipynb", lambda nb: _verdict_edit(nb, stored / "ledger.json"))
    assert json.loads((stored / "ledger.json").read_text()) == evidence.notebook_ledger(
        evidence.read_notebook(stored / "conv.ipynb")
    ), "the edit is self-consistent"
    assert main(["build", "--no-execute"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "sha256" in line and "MANIFEST.json" in line and "python -m book evidence conv" in line


def test_a_page_that_differs_from_its_notebook_is_stale(stored):
    nbformat.write(
        _notebook(LEDGER_CELL, markdown="# stand-in, rewritten"),
        chapters.NOTEBOOK_DIR / "conv.ipynb",
    )
    with pytest.raises(
        evidence.EvidenceError, match=r"differs from .*conv.ipynb in its markdown cell 1"
    ):
        evidence.check_page("conv")


def test_the_install_cell_and_injected_parameters_may_differ(stored):
    """sync-install rewrites the install cell of stored pages; papermill injects the parameters."""
    page = stored / "conv.ipynb"
    nb = nbformat.read(page, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    install = next(c for c in nb.cells if "install" in c.metadata.get("tags", []))
    install.source = "# a new install cell"
    install.metadata["tags"] = ["install"]  # sync-install may add hide-input
    nbformat.write(nb, page)
    evidence.check_page("conv")


def test_a_truncated_page_names_the_file(stored, capsys):
    page = stored / "conv.ipynb"
    page.write_text(page.read_text()[:200])
    assert main(["build", "--no-execute"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert (
        "results/conv/conv.ipynb" in line
        and "not a valid notebook" in line
        and "Expecting" not in line
    )


def test_a_file_added_or_removed_by_hand_fails(stored):
    (stored / "extra.json").write_text("{}")
    with pytest.raises(evidence.EvidenceError, match=r"extra.json is not in MANIFEST.json"):
        evidence.check_page("conv")
    (stored / "extra.json").unlink()
    (stored / "ledger.json").unlink()
    with pytest.raises(
        evidence.EvidenceError, match=r"ledger.json is listed in MANIFEST.json but missing"
    ):
        evidence.check_page("conv")


def test_a_missing_manifest_fails(stored):
    (stored / "MANIFEST.json").unlink()
    with pytest.raises(
        evidence.EvidenceError, match="MANIFEST.json is missing.*python -m book evidence conv"
    ):
        evidence.check_page("conv")


def test_a_run_by_hand_during_evidence_never_reaches_results(sandbox, monkeypatch):
    """The issue's case end to end: `book evidence conv` in the background while the same notebook
    is executed by hand with nbclient (as Jupyter would, no lock, the default ledger folder)."""
    nbformat.write(
        _notebook(LEDGER_CELL, "import time; time.sleep(6)"), sandbox / "notebooks" / "conv.ipynb"
    )
    driver = sandbox / "driver.py"
    driver.write_text(textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from book.core import registry, evidence
        from book.tools import paths
        from book.tools.cli import main
        root = Path({str(sandbox)!r})
        registry.NOTEBOOK_DIR = root / "notebooks"
        build = root / "_build"
        paths.BUILD_DIR, paths.EXECUTED_DIR = build, build / "executed"
        paths.LEDGER_DIR, paths.FAILED_DIR = build / "ledgers", build / "failed"
        paths.LOCK_DIR, paths.SITE_DIR = build / ".locks", build / "site"
        evidence.RESULTS_DIR = root / "results"
        sys.exit(main(["evidence", "conv", "--no-progress"]))
        """))
    env = dict(os.environ, BOOK_LEDGER_DIR=str(sandbox / "_build" / "ledgers"))
    background = subprocess.Popen(
        [sys.executable, str(driver)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    side = sandbox / "_build" / "ledgers" / "conv.json"
    deadline = time.time() + 90
    while not side.exists() and time.time() < deadline:  # the evidence run's ledger is written
        time.sleep(0.2)
    assert side.exists(), background.communicate()
    from nbclient import NotebookClient  # the run by hand: quick mode, no lock, the same folder

    monkeypatch.delenv("BOOK_RUN_COMMAND", raising=False)  # a kernel Jupyter starts has none

    by_hand = nbformat.read(sandbox / "notebooks" / "conv.ipynb", as_version=4)
    by_hand.cells.pop()  # no sleep: it finishes while the evidence run sleeps
    NotebookClient(
        by_hand, kernel_name="python3", resources={"metadata": {"path": str(sandbox)}}
    ).execute()
    out, err = background.communicate(timeout=120)
    assert background.returncode == 1, out + err
    assert "is not the ledger this run's notebook carries" in out and "run by hand" in out
    kept = sandbox / "_build" / "failed" / "conv.json"  # the overwritten file, kept for debugging
    assert json.loads(kept.read_text())["command"] == "notebook run by hand"
    assert not (sandbox / "results" / "conv").exists()


@pytest.mark.parametrize(
    "name", [c.name for c in chapters.available_chapters() if evidence.page_notebook(c.name)]
)
def test_every_committed_page_matches_its_notebook_and_its_manifest(name):
    """results/ as committed: made by `python -m book evidence NAME` from the current notebooks."""
    evidence.check_page(name)


def test_a_verdict_both_runs_take_from_the_same_evidence_must_agree(stored, sandbox):
    """The quick notebook and the full page decide such a claim with the same code on the same
    file."""
    page = stored / "conv.ipynb"
    ledger = evidence.notebook_ledger(evidence.read_notebook(page))
    quick = dict(ledger, mode="quick", claims=[dict(r) for r in ledger["claims"]])
    for rows in (ledger["claims"], quick["claims"]):
        rows[0]["evidence"] = {"path": "results/conv/sweep.json"}
    quick["claims"][0]["verdict"] = "differs"
    with pytest.raises(
        evidence.EvidenceError,
        match=r"says conv-1 reproduced, .* says differs, both from results/conv/sweep.json",
    ):
        evidence._check_shared_verdicts(
            page, ledger, chapters.NOTEBOOK_DIR / "conv.ipynb", quick, "remake it"
        )
    quick["claims"][0]["timed"] = True  # a timing may flip between runs
    evidence._check_shared_verdicts(
        page, ledger, chapters.NOTEBOOK_DIR / "conv.ipynb", quick, "remake it"
    )
