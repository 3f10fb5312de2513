"""``python -m angio.train`` (and ``torchrun ... -m angio.train``): see :func:`angio.train.cli.main`."""

from angio.train.cli import main

if __name__ == "__main__":
    main()
