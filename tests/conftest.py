"""Every test process runs under the book's numerics profile, and so does every notebook kernel that
nbval starts from it (kernels inherit this process's environment): `import book` applies it before
torch loads (book.core.numerics)."""
import os

import book  # noqa: F401
import pytest

from book.core import numerics


def pytest_report_header(config):
    mode = numerics.comparison()
    why = (f"numerics profile {numerics.PROFILE_NAME}" if mode == "exact" else
           "device-dependent numbers (‹ ›) masked: this machine is outside the numerics profile")
    return f"nbval comparison: {mode} ({why})"


@pytest.fixture
def exact_numerics():
    """Skip a test that requires the committed bits where the device comparison is in force."""
    if numerics.comparison() != "exact":
        pytest.skip("device comparison: this machine does not run under the numerics profile "
                    f"({os.environ.get(numerics.SWITCH) or 'not x86-64'}), so committed bits are not expected")
