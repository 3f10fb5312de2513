"""``python -m angio.study run|book|readme ...``.

``run`` and ``book`` are the same as ``angio study run|book ...`` (:mod:`angio.cli`);
``readme`` rewrites the README's results block from the model zoo's records
(:func:`angio.study.readme.main`; ``--check`` only checks it).
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["readme"]:
        from angio.study.readme import main as readme

        try:
            sys.exit(readme(sys.argv[2:]))
        except KeyboardInterrupt:  # as angio.cli.main: one line and status 130, no traceback
            print("angio: interrupted", file=sys.stderr)
            sys.exit(130)
    from angio.cli import main

    sys.exit(main(["study", *sys.argv[1:]]))
