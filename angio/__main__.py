"""``python -m angio``: the ``angio`` command (see :func:`angio.cli.main`)."""

import sys

from angio.cli import main

if __name__ == "__main__":
    sys.exit(main())
