"""`python -m book`: the command line (book.tools.cli)."""
import sys

from book.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
