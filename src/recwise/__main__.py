"""``python -m recwise``: the command line, also as torchrun's module (``torchrun -m recwise run ...``)."""

import sys

from recwise.cli import main

if __name__ == "__main__":
    sys.exit(main())
