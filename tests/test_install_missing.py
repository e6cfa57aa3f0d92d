"""`.ci/install_missing.py` (make SYSTEM=1): a machine's own torch is never replaced."""
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "install_missing.py"


def test_torch_is_never_among_the_requirements_it_installs():
    mod = runpy.run_path(str(SCRIPT))
    names = {n.lower() for n, _ in mod["requirements"]()}
    assert "torch" not in names and "papermill" in names and "nbval" in names


def test_in_the_books_own_environment_nothing_is_missing():
    assert runpy.run_path(str(SCRIPT))["missing"]() == []
