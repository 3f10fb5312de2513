"""``python -m angio.train`` (and ``torchrun ... -m angio.train``): see :func:`angio.train.cli.main`."""

import sys

if __name__ == "__main__":
    try:
        from angio.train.cli import main

        main()
    except KeyboardInterrupt:  # Ctrl-C: one line and status 130, no traceback (checkpoints are atomic)
        print("python -m angio.train: interrupted", file=sys.stderr)
        sys.exit(130)
