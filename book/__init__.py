"""The executable Dettmers book: the tested code behind each chapter.

One module per topic (`book.conv`, `book.data`, ...), plus the ledger that records every claim's
verdict (`book.ledger`), the chapter registry (`book.chapters`) and the runner (`python -m book`).
"""
from .ledger import Ledger
from .session import start

__version__ = "0.1.0"
__all__ = ["Ledger", "start", "__version__"]
