"""Every test process runs under the book's numerics profile, and so does every notebook kernel that
nbval starts from it (kernels inherit this process's environment): `import book` applies it before
torch loads (book.core.numerics)."""
import os
from pathlib import Path

import book  # noqa: F401
import pytest

from book.core import numerics


DEVICE_SANITIZERS = Path(__file__).with_name("nbval_device.cfg")


def pytest_collection_modifyitems(config, items):
    """nbval's comparison per committed notebook: exact where this machine is of the bits family
    that made the notebook (its ledger's provenance says which: the profile and MKL's branch, which
    differs between Intel and AMD CPUs, book.core.numerics), the device comparison elsewhere.
    BOOK_COMPARISON=exact forces exact for every notebook (to see the differences)."""
    if numerics.comparison() != "exact" or os.environ.get("BOOK_COMPARISON") == "exact":
        return
    from book.core import evidence

    modes = {}
    for item in items:
        parent = getattr(item, "parent", None)
        path = Path(str(getattr(parent, "path", "")))
        if path.suffix != ".ipynb" or path.name in modes:
            continue
        ledger = evidence.notebook_ledger(evidence.read_notebook(path))
        modes[path.name] = numerics.notebook_comparison((ledger or {}).get("provenance"))
        if modes[path.name][0] == "device":
            parent.get_sanitize_files = lambda: [str(DEVICE_SANITIZERS)]
    config.stash[_MODES] = modes


_MODES = pytest.StashKey[dict]()


def pytest_report_collectionfinish(config, start_path, items):
    modes = config.stash.get(_MODES, {})
    return [f"nbval {name}: {mode} ({why})" for name, (mode, why) in sorted(modes.items())]


def pytest_report_header(config):
    """This machine's bits family; each notebook's comparison is listed after collection."""
    if numerics.comparison() != "exact":
        return ("nbval comparison: device for every notebook (device-dependent numbers (‹ ›) masked: "
                "this machine is outside the numerics profile)")
    forced = " (forced exact for every notebook: BOOK_COMPARISON=exact)" if os.environ.get("BOOK_COMPARISON") == "exact" else ""
    return (f"bits family of this machine: {numerics.this_family()}; nbval compares each notebook exactly "
            f"where its ledger was made in this family, with the device comparison elsewhere{forced}")


@pytest.fixture
def exact_numerics():
    """Skip a test that requires the committed bits where the device comparison is in force."""
    if numerics.comparison() != "exact":
        pytest.skip("device comparison: this machine does not run under the numerics profile "
                    f"({os.environ.get(numerics.SWITCH) or 'not x86-64'}), so committed bits are not expected")
