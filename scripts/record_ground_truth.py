"""Record the paper's Otsu ground truth against the exact mask at the zoo's 0.5 mm grid (issue #9).

Measures, on the held-out trees of the zoo's split (its 5 test and 3 validation trees), how
far Otsu's mask of each modality preset's volume, and of the CTA after each intensity window,
is from the exact vessel mask, on the zoo's grid (192³ voxels of 0.5 mm over 96 mm), and
writes the record :data:`angio.study.ground_truth.RECORD` that chapter 4 shows
(:func:`angio.study.ground_truth.record_ground_truth`). Volumes come from (and the CTA
volumes it builds go to) the volume cache under ``--results``.

Usage::

    python scripts/record_ground_truth.py                       # every held-out tree
    python scripts/record_ground_truth.py --cta-cases BG0014 BG0020   # fewer trees for the CTA
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    """Command line entry: measure and write the record; returns the exit status."""
    from angio.phantom import PRESETS
    from angio.study.ground_truth import RECORD, record_ground_truth

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", help="trees (default: the zoo split's test, then validation trees)")
    ap.add_argument("--cta-cases", nargs="+", help="fewer trees for the CTA preset and its windows")
    ap.add_argument("--results", default="results", help="results folder (volume cache)")
    ap.add_argument("--out", default=str(RECORD), help="where the record goes")
    args = ap.parse_args(argv)
    preset_cases = {p: args.cta_cases for p in PRESETS if p != "rotational"} if args.cta_cases else None
    record_ground_truth(args.cases, preset_cases=preset_cases, window_cases=args.cta_cases,
                        results_dir=args.results, path=args.out, log=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
