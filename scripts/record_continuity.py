"""Record the continuity prior (hysteresis, small pieces removed) on zoo entries, chosen on validation.

Usage::

    python scripts/record_continuity.py [--models unet-biplane] [--test] [--results results]

Writes ``angio/_data/zoo/consistency/continuity.json`` (:mod:`angio.zoo.continuity`).
Predictions are cached under ``<results>/predictions/``; a 192^3 biplane prediction with
mirror averaging takes about four minutes on two idle CPU threads.
"""

from __future__ import annotations

import argparse
import sys

from angio.zoo.continuity import record_continuity


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and write the record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["unet-biplane"], help="parallel-beam zoo entries")
    parser.add_argument("--test", action="store_true", help="also score the test trees")
    parser.add_argument("--results", default="results", help="volume and prediction cache root")
    args = parser.parse_args(argv)
    record_continuity(args.models, splits=("val", "test") if args.test else ("val",), results_dir=args.results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
