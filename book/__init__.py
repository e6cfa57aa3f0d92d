"""The executable Dettmers book: the tested code behind each chapter.

One module per topic (`book.chapters.conv`, `book.core.data`, ...), plus the ledger that records every claim's
verdict (`book.core.ledger`), the chapter registry (`book.core.registry`) and the runner (`python -m book`).
"""
import warnings

# The numerics profile first: torch, MKL and oneDNN read it when they load (book.core.numerics).
from book.core import numerics as _numerics

_numerics.apply()

# Without ipywidgets, tqdm.auto falls back to a text bar, which is what the book wants; its warning
# about that would print an absolute path into every chapter that shows progress.
warnings.filterwarnings("ignore", message="IProgress not found")

from book.core.ledger import Ledger  # noqa: E402
from book.core.session import start  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Ledger", "start", "__version__"]
