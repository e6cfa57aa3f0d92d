"""`python -m book.chapters.sparse`: the full-mode density sweep from the command line (see `training._main`)."""
from book.chapters.sparse.training import _main

_main()
