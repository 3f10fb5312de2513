"""``angio prepare``: materialize volumes, projections, back-projections and masks on disk.

For a split (or explicit cases) and a list of view counts, each case (and each augmented
variant) becomes one compressed ``<case>_v<variant>.npz`` holding ``intensity``,
``fraction``, ``exact``, ``otsu`` (``(N, N, N)``), and per view count ``n``:
``angles_<n>`` (degrees), ``projections_<n>`` (``(n, N, N)``) and ``inputs_<n>``
(``(C, N, N, N)``, channels in ``modes`` order). ``manifest.json`` lists every file with the
settings. Everything is written into a temporary folder that is renamed into place at the
end, so an interrupted run leaves no half-written dataset.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict

import numpy as np

import angio
from angio.atomic import atomic_folder
from angio.data import list_cases
from angio.pipeline import check_cases, network_input
from angio.projection import view_angles
from angio.study import study_split

__all__ = ["prepare_dataset"]


def prepare_dataset(out_dir: str | os.PathLike, settings, *, view_counts=(2,), modes=("sum", "min"),
                    split: str = "test", variants: int = 0, cases=None, overwrite: bool = False) -> dict:
    """Write the prepared arrays of a split; returns the manifest (also ``manifest.json``).

    Parameters
    ----------
    out_dir : path-like
        Output folder (must not exist or be empty, unless ``overwrite``).
    settings : angio.study.StudySettings
        Volume spec and seed.
    view_counts : sequence of int
        Numbers of views over 0-90 degrees.
    modes : tuple of str
        Back-projection channels.
    split : {"train", "val", "test", "all"}
        Which cases of :func:`angio.study.study_split` (ignored when ``cases`` given).
    variants : int
        Augmented variants per case, besides the original (variant 0).
    cases : list of str, optional
        Explicit case ids.
    """
    if cases:
        cases = check_cases(cases)
    elif split == "all":
        cases = list_cases()
    else:
        train, val, test = study_split(settings)
        cases = {"train": train, "val": val, "test": test}[split]
    cache = settings.cache()
    entries = []
    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        for case in cases:
            for variant in range(variants + 1):
                vols = cache.get(case, settings.spec, variant=variant, seed=settings.seed)
                arrays = {"intensity": vols.intensity, "fraction": vols.fraction, "exact": vols.exact,
                          "otsu": vols.otsu}
                for n in view_counts:
                    x, proj = network_input(vols.unit_intensity(), n, modes=tuple(modes), return_projections=True)
                    arrays |= {f"angles_{n}": view_angles(n), f"projections_{n}": proj, f"inputs_{n}": x}
                name = f"{case}_v{variant}.npz"
                np.savez_compressed(tmp / name, **arrays)
                entries.append({"file": name, "case": case, "variant": variant,
                                "transform": asdict(vols.transform),
                                "exact_voxels": int(vols.exact.sum()), "otsu_voxels": int(vols.otsu.sum())})
        manifest = {"angio_version": angio.__version__, "spec": asdict(settings.spec), "seed": settings.seed,
                    "voxel_mm": settings.spec.voxel_mm, "view_counts": list(view_counts), "modes": list(modes),
                    "axes": "[z, y, x], z inferior->superior; projections [view, z, j]", "entries": entries}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest
