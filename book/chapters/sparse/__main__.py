"""`python -m book.chapters.sparse`: the resumable full-mode sweeps (see `book.chapters.sparse.sweeps`)."""
from book.chapters.sparse.sweeps import main

main()
