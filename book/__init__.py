"""The executable Dettmers book: the tested code behind each chapter.

One module per topic (`book.conv`, `book.data`, ...), plus the ledger that records every claim's
verdict (`book.ledger`), the chapter registry (`book.chapters`) and the runner (`python -m book`).
"""
import warnings

# Without ipywidgets, tqdm.auto falls back to a text bar, which is what the book wants; its warning
# about that would print an absolute path into every chapter that shows progress.
warnings.filterwarnings("ignore", message="IProgress not found")

from .ledger import Ledger  # noqa: E402
from .session import start  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Ledger", "start", "__version__"]
