"""python -m book.chapters.parallel: see book.chapters.parallel.cli."""
from book.chapters.parallel.cli import main

if __name__ == "__main__":
    main()
