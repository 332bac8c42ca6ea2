"""``python -m optstats``: the same as the ``optstats`` command (``optstats.cli``)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
