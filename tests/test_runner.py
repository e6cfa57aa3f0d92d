"""book.tools.runner and `python -m book`: validation before work, papermill runs into _build, failures,
summaries, the scoreboard. Uses tiny stand-in notebooks, so each run takes a kernel start only."""
import json

import nbformat
import pytest

from book.core import registry as chapters
from book.tools import paths, runner
from book.tools.params import parse_value, resolve
from book.core.registry import REPO_ROOT
from book.tools.cli import main


def _notebook(body: str, extra_params: str = "") -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('QUICK = True\nDEVICE = "auto"\nSEED = 0\nSTEPS = 3\nRATE = 0.5' + extra_params)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# stand-in"), params, nbformat.v4.new_code_cell(body)]
    return nb


LEDGER_BODY = """
import book
S = book.start("conv", quick=QUICK, device=DEVICE, seed=SEED, STEPS=(STEPS, int))
for cid in S.ledger.missing():
    S.ledger.check(cid, post=STEPS, measured=3)
S.ledger.finish()
"""


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """Point the registry and the runner at a temporary notebooks/ and _build/."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    monkeypatch.setattr(chapters, "NOTEBOOK_DIR", nbdir)
    monkeypatch.setattr(paths, "BUILD_DIR", tmp_path / "_build")
    monkeypatch.setattr(paths, "EXECUTED_DIR", tmp_path / "_build" / "executed")
    monkeypatch.setattr(paths, "LEDGER_DIR", tmp_path / "_build" / "ledgers")
    monkeypatch.setattr(paths, "FAILED_DIR", tmp_path / "_build" / "failed")
    monkeypatch.setattr(paths, "LOCK_DIR", tmp_path / "_build" / ".locks")
    monkeypatch.setenv("BOOK_LEDGER_DIR", str(tmp_path / "_build" / "ledgers"))
    nbformat.write(_notebook(LEDGER_BODY), nbdir / "conv.ipynb")
    nbformat.write(_notebook("raise RuntimeError('chapter broke')"), nbdir / "brain.ipynb")
    return tmp_path


def test_unknown_chapter_and_parameters_are_rejected_before_running(sandbox, capsys):
    assert main(["run", "nope"]) == 2
    assert "unknown chapter 'nope'" in capsys.readouterr().err
    assert main(["run", "conv", "-p", "STPES", "4"]) == 2
    assert "unknown parameter 'STPES'" in capsys.readouterr().err
    assert main(["run", "conv", "-p", "STEPS", "many"]) == 2
    assert "takes int" in capsys.readouterr().err
    assert main(["run", "conv", "-p", "QUICK", "False"]) == 2
    assert main(["run", "conv", "--inplace", "-p", "STEPS", "4"]) == 2
    assert main(["run", "mp"]) == 2  # registered, but no notebook here
    assert not paths.EXECUTED_DIR.exists()


def test_parameter_values_are_typed():
    assert parse_value("5") == 5 and parse_value("0.1") == 0.1
    assert parse_value("True") is True and parse_value("cpu") == "cpu"


def test_int_is_accepted_for_a_float_parameter(sandbox):
    _, per_chapter = resolve(["conv"], [("RATE", "1")], quick=False)
    assert per_chapter["conv"] == {"RATE": 1, "QUICK": False}


def test_run_writes_into_build_never_over_the_source(sandbox, capsys):
    source = (sandbox / "notebooks" / "conv.ipynb").read_bytes()
    assert main(["run", "conv", "-p", "STEPS", "4", "--no-progress"]) == 0
    assert (sandbox / "notebooks" / "conv.ipynb").read_bytes() == source
    executed = nbformat.read(paths.EXECUTED_DIR / "conv.ipynb", as_version=4)
    assert any("STEPS = 4" in c.source for c in executed.cells)
    ledger = json.loads((paths.LEDGER_DIR / "conv.json").read_text())
    assert ledger["counts"]["differs"] == len(ledger["claims"]) > 0  # post=STEPS=4 against measured 3
    assert "conv" in capsys.readouterr().out


def test_a_failing_chapter_fails_the_run_but_the_others_still_run(sandbox, capsys):
    assert main(["run", "conv", "brain", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "chapter broke" in out and "1 chapter(s) failed: brain" in out
    assert (paths.LEDGER_DIR / "conv.json").exists()


def test_inplace_refreshes_the_committed_outputs(sandbox):
    assert main(["run", "conv", "--inplace", "--no-progress"]) == 0
    nb = nbformat.read(sandbox / "notebooks" / "conv.ipynb", as_version=4)
    assert nb.cells[-1].outputs, "outputs were saved into the notebook"
    assert "execution" not in nb.cells[-1].metadata


def test_status_page_says_what_ran_where(tmp_path):
    from book.tools.scoreboard import render_status

    ledger = {"chapter": "conv", "mode": "full", "device": "cpu", "wall_s": 57.0, "command": "python -m book run conv --full",
              "provenance": {"date": "2026-11-27T10:00:00Z", "commit": "abc123", "dirty": False,
                             "device_name": "AMD EPYC (2 logical cores)",
                             "versions": {"python": "3.11.7", "torch": "2.13.0", "numpy": "2.4", "scipy": "1.17"}}}
    page = render_status({"conv": ledger}, {"conv": REPO_ROOT / "results" / "conv" / "conv.ipynb"})
    assert "| `results/conv/conv.ipynb` | full | AMD EPYC (2 logical cores) | 2026-11-27 10:00:00 | `abc123` | 57 s |" in page
    assert "| Understanding convolution | 3.11.7 | 2.13.0 | 2.4 | 1.17 |" in page
    assert "`python -m book run conv --full`" in page



def test_list_from_an_install_without_the_notebooks_says_where_they_are(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(chapters, "NOTEBOOK_DIR", tmp_path / "absent")
    monkeypatch.setattr(chapters, "available_chapters", lambda: [])
    import book.tools.cli as cli

    monkeypatch.setattr(cli, "available_chapters", lambda: [])
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "not written yet" not in out and "notebook in the repository, not in this install" in out
    assert "clone the repository" in out


# -- issue 20: every parameter checked before any kernel; messages that name the cause ---------------
def test_a_repeated_parameter_is_refused(sandbox, capsys):
    assert main(["run", "conv", "-p", "SEED", "1", "-p", "SEED", "2", "--no-progress"]) == 2
    assert "parameter SEED is given twice" in capsys.readouterr().err
    assert not paths.EXECUTED_DIR.exists()


def test_a_none_default_takes_its_declared_type_before_any_kernel(sandbox, capsys):
    """int8's SENTENCES_PER_POST = None: `-p SENTENCES_PER_POST abc` failed in the kernel (exit 1)."""
    nbformat.write(_notebook("raise SystemExit('the kernel ran')", "\nSENTENCES_PER_POST = None"),
                   chapters.NOTEBOOK_DIR / "int8.ipynb")
    import book.core.session as session

    if session.missing_extras("int8"):
        pytest.skip("int8's optional dependencies are not installed")
    assert main(["run", "int8", "-p", "SENTENCES_PER_POST", "abc", "--no-progress"]) == 2
    assert "takes int or None, not str 'abc'" in capsys.readouterr().err
    assert not paths.EXECUTED_DIR.exists()


def test_a_non_utf8_value_names_the_parameter(sandbox, capsys):
    undecodable = b"caf\xe9".decode("utf-8", "surrogateescape")   # what argv holds for Latin-1 bytes
    assert main(["run", "conv", "-p", "SEED", undecodable, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "-p SEED is not UTF-8" in err and "b'caf\\xe9'" in err and "codec" not in err


def test_a_non_utf8_value_from_a_real_command_line():
    import subprocess
    import sys

    done = subprocess.run([sys.executable.encode(), b"-m", b"book", b"run", b"conv", b"-p", b"SEED", b"\xff\xfe"],
                          capture_output=True, cwd=REPO_ROOT, timeout=120)
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2 and "-p SEED is not UTF-8" in err and "Traceback" not in err, err


def test_a_truncated_notebook_is_named(sandbox, capsys):
    path = chapters.NOTEBOOK_DIR / "conv.ipynb"
    path.write_text(path.read_text()[:150])
    assert main(["run", "conv", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{path} is not a valid notebook" in err and err.count("\n") == 1


def test_a_ledger_file_rewritten_during_a_run_fails_that_run(sandbox, capsys):
    """The run's ledger is the one its notebook carries; another writer of the file is caught."""
    nb = _notebook(LEDGER_BODY)
    nb.cells.append(nbformat.v4.new_code_cell(
        'import json, os\np = os.environ["BOOK_LEDGER_DIR"] + "/conv.json"\n'
        'd = json.load(open(p)); d["command"] = "by hand"; json.dump(d, open(p, "w"))'))
    nbformat.write(nb, chapters.NOTEBOOK_DIR / "conv.ipynb")
    assert main(["run", "conv", "--no-progress"]) == 1
    assert "is not the ledger this run's notebook carries" in capsys.readouterr().out
    assert not (paths.EXECUTED_DIR / "conv.ipynb").exists()


def test_the_runner_uses_psutil_not_proc():
    import inspect

    from book.tools import signals

    assert "/proc" not in inspect.getsource(signals) and "psutil" in inspect.getsource(signals)
