"""Cone-beam benchmark: C-arm MIP + back-projection beside the parallel-beam projector.

Both run in the same process on the same volume, so the printed ratio is a side-by-side
measurement, not a comparison with numbers from another day.

Usage::

    python benchmarks/bench_conebeam.py                    # 128^3, 2 and 90 views
    python benchmarks/bench_conebeam.py --sizes 128 256 384 --views 2 90
    python benchmarks/bench_conebeam.py --json out.json

What is timed (seconds, best of ``--repeat``): for ``n`` views over 0..90 degrees,
``parallel``: :func:`angio.projection.mip` + :func:`angio.projection.backproject` (sum);
``cone``: :func:`angio.conebeam.cone_mip` (rays sampled every half voxel) +
:func:`angio.conebeam.cone_backproject` (sum) for a clinical C-arm (750 / 1100 mm) whose
``N x N`` detector covers the volume at the isocentre.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys

import numpy as np
import torch

from angio import projection as P
from angio.conebeam import CArmGeometry, cone_backproject, cone_mip
from angio.study.performance import best_of


def bench(n: int, views: int, repeat: int) -> dict:
    """Seconds of the parallel and the cone-beam MIP + back-projection of ``views`` views at n^3."""
    rng = np.random.default_rng(0)
    vol = rng.random((n, n, n), dtype=np.float32) ** 8  # sparse bright voxels, like vessels
    angles = P.view_angles(views)
    geoms = [CArmGeometry.typical(n, 1.0, a) for a in angles]

    def parallel():
        P.backproject(P.mip(vol, angles), angles, mode="sum")

    def cone():
        cone_backproject(cone_mip(vol, geoms, spacing_mm=1.0), geoms, n, spacing_mm=1.0, mode="sum")

    t_par = best_of(parallel, repeat)
    t_cone = best_of(cone, repeat)
    return {"n": n, "views": views, "parallel_s": t_par, "cone_s": t_cone, "ratio": t_cone / t_par}


def main(argv=None) -> int:
    """Print the table (and write JSON with ``--json``)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128])
    ap.add_argument("--views", type=int, nargs="+", default=[2, 90])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    rows = []
    print(f"{'N':>5} {'views':>5} {'parallel s':>11} {'cone s':>9} {'cone/parallel':>14}")
    for n in args.sizes:
        for v in args.views:
            r = bench(n, v, args.repeat)
            rows.append(r)
            print(f"{n:>5} {v:>5} {r['parallel_s']:>11.3f} {r['cone_s']:>9.3f} {r['ratio']:>14.1f}", flush=True)
    if args.json:
        info = {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                "torch": torch.__version__}
        with open(args.json, "w") as fh:
            json.dump({"info": info, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
