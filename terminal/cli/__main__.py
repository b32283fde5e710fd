"""``python -m terminal.cli``: the ``sscard`` console script."""

import sys

from terminal.cli import main

sys.exit(main())
