"""Chapter 4's comparison of Otsu's ground truth at the profile's grid and at the zoo's.

:func:`otsu_two_grids` reads the rows the chapter measured live (its profile's grid) and the
shipped record at 0.5 mm (:func:`angio.study.read_ground_truth`) and returns the figures the
chapter's prose quotes (keys ``gt_*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from angio.study.prose.words import count_word, pct
from angio.study.tables import ground_truth_summary, mean_table

__all__ = ["otsu_two_grids", "OTSU_KEYS"]

#: The keys :func:`otsu_two_grids` returns (a chapter's tests read them without its rows).
OTSU_KEYS = ("gt_grid", "gt_cases", "gt_dice", "gt_ratio", "gt_cldice", "gt_rec_dice", "gt_rec_same", "gt_rec_ratio",
             "gt_rec_cldice", "gt_cta_best", "gt_raw_span")


def _rotational(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return next(r for r in ground_truth_summary(list(rows)) if r["modality"] == "rotational")


def otsu_two_grids(live: Sequence[Mapping[str, Any]], windows: Sequence[Mapping[str, Any]],
                   record: Mapping[str, Any], spec: Any) -> dict[str, str]:
    """Otsu's mask against the exact mask at the chapter's grid and in the record at 0.5 mm.

    Parameters
    ----------
    live : sequence of dict
        :func:`angio.study.evaluate_ground_truth` rows of this run (``modality``, ``case``,
        ``dice``, ``cldice``, ``otsu_voxels``, ``exact_voxels``).
    windows : sequence of dict
        :func:`angio.study.otsu_by_window` rows of this run (``window``, ``dice``).
    record : dict
        The ground-truth record (its ``rows``: ``kind``, ``label``, ``case``, ``dice``,
        ``cldice``, ``ratio``).
    spec : VolumeSpec
        The chapter's grid.

    Returns
    -------
    dict of str to str
        ``gt_grid`` (the chapter's grid), ``gt_cases`` (its trees, in words), ``gt_dice``,
        ``gt_ratio``, ``gt_cldice`` (rotational Otsu, this run), ``gt_rec_dice``,
        ``gt_rec_same`` (the record on this run's trees), ``gt_rec_ratio``, ``gt_rec_cldice``,
        ``gt_cta_best`` (the best mean Dice of any CTA preset or window, both grids) and
        ``gt_raw_span`` (the raw CT's Otsu voxels per exact voxel over the record's trees).
    """
    here = _rotational(live)
    cases = sorted({r["case"] for r in live if r["modality"] == "rotational"})
    rot = [r for r in record["rows"] if r["kind"] == "preset" and r["label"] == "rotational"]
    same = [r["dice"] for r in rot if r["case"] in cases]
    cta = [r for r in record["rows"] if r["kind"] != "preset" or r["label"] != "rotational"]
    best = max([s["dice"] for s in mean_table(cta, by=("kind", "label"), metrics=("dice",))]
               + [s["dice"] for s in mean_table(list(windows), by=("window",), metrics=("dice",))]
               + [s["dice"] for s in ground_truth_summary(list(live)) if s["modality"] != "rotational"])
    raw = [r["ratio"] for r in record["rows"] if r["kind"] == "preset" and r["label"] == "cta"]
    out = {
        "gt_grid": f"{spec.size}³ voxels of {spec.voxel_mm:g} mm",
        "gt_cases": count_word(len(cases)),
        "gt_dice": pct(here["dice"], 0),
        "gt_ratio": f"{here['ratio']:.1f}",
        "gt_cldice": pct(here["cldice"], 0),
        "gt_rec_dice": pct(float(np.mean([r["dice"] for r in rot])), 0),
        "gt_rec_same": (f"{pct(float(np.mean(same)), 0)} on the same "
                        + ("tree" if len(same) == 1 else f"{count_word(len(same))} trees")
                        if same else "none of them among this run's trees"),
        "gt_rec_ratio": f"{float(np.mean([r['ratio'] for r in rot])):.2f}",
        "gt_rec_cldice": pct(float(np.mean([r["cldice"] for r in rot])), 0),
        "gt_cta_best": pct(best, 1),
        "gt_raw_span": f"{min(raw):.1f} to {max(raw):.0f}",
    }
    return out


otsu_two_grids.keys = OTSU_KEYS  # type: ignore[attr-defined]
