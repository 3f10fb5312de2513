"""``python -m angio.study run|book ...``: the same as ``angio study run|book ...`` (:mod:`angio.cli`)."""

from __future__ import annotations

import sys

from angio.cli import main

if __name__ == "__main__":
    sys.exit(main(["study", *sys.argv[1:]]))
