"""`python -m book.sparse`: the full-mode density sweep from the command line (see `training._main`)."""
from .training import _main

_main()
