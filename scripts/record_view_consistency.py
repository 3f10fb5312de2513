"""Record view consistency as a test-time refinement of the zoo's default models (issue #8).

For each default model (:data:`angio.zoo.DEFAULT_MODELS`) and each of its validation and
test trees at the zoo's grid (192³ voxels of 0.5 mm), predicts the tree from its views and
scores, against the exact mask, the prediction as it is, carved to the views' silhouette
hull, and carved and filled along the rays it missed at each fill threshold, with the
silhouettes from the views and from the truth (:mod:`angio.consistency`). Writes the record
:data:`angio.study.view_consistency.RECORD` that chapter 9 shows. Volumes come from (and
go to) the volume cache under ``--results``.

Usage::

    python scripts/record_view_consistency.py                      # both default models
    python scripts/record_view_consistency.py --models unet-biplane --cases BH0015
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Command line entry: measure and write the record; returns the exit status."""
    from angio.study.view_consistency import LOWS, RECORD, record_view_consistency

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", help="zoo entries (default: the default models)")
    ap.add_argument("--cases", nargs="+", help="trees (default: each entry's validation and test trees)")
    ap.add_argument("--lows", nargs="+", type=float, default=list(LOWS), help="fill thresholds to try")
    ap.add_argument("--results", default="results", help="results folder (volume cache)")
    ap.add_argument("--out", default=str(RECORD), help="where the record goes")
    args = ap.parse_args(argv)
    record_view_consistency(args.models, cases=args.cases, lows=args.lows, results_dir=args.results,
                            path=args.out, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
