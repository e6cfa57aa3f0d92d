"""python -m book.parallel: see book.parallel.cli."""
from .cli import main

if __name__ == "__main__":
    main()
