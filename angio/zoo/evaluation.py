"""A shipped entry measured on cases: its recorded metrics re-checked, and the quality targets.

:func:`evaluate_entry` scores an entry on cases (default: its test trees) against both
masks, nominal or under a miscalibrated acquisition; :func:`check_entry` re-measures one
recorded test row; :data:`QUALITY_TARGETS` are the project's Dice goals per view count.
"""

from __future__ import annotations

import os
from dataclasses import replace

from angio.acquisition import GEOMETRIES, acquired_inputs, magnified_truth
from angio.errors import InputError
from angio.evaluation import evaluate_model, predict_case
from angio.experiment import Trained
from angio.metrics import dice, evaluate, iou
from angio.projection import mirror_symmetric, view_angles
from angio.zoo.entries import load_entry

__all__ = ["QUALITY_TARGETS", "check_entry", "evaluate_entry", "target_status"]


def check_entry(name: str, case: str | None = None, *, results_dir: str | os.PathLike | None = None,
                folder: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """Re-evaluate a shipped entry on one test case; ``(recorded_row, measured_row)`` vs the exact mask."""
    model, entry = load_entry(name, folder=folder)
    settings = entry.settings if results_dir is None else replace(entry.settings, results_dir=str(results_dir))
    case = case or entry.record["test"]["cases"][0]
    trained = Trained(entry.experiment, model, {}, entry.checkpoint.parent, reused=True)
    rows, _ = evaluate_model(trained, settings, [case], targets=("exact",))
    return entry.test_row(case), rows[0]


#: Quality targets against the exact mask on held-out trees, per number of views (issue #8,
#: after Cafaro et al., MICCAI 2024, who report Dice about 0.80 from two projections).
QUALITY_TARGETS: dict[int, dict[str, float]] = {2: {"dice": 0.80, "cldice": 0.75}, 3: {"dice": 0.85},
                                               90: {"dice": 0.92}}


def evaluate_entry(name: str, cases: list[str] | None = None, *, results_dir: str | os.PathLike = "results",
                   acquisition=None, keep: bool = False, folder: str | os.PathLike | None = None,
                   targets: tuple[str, ...] = ("exact", "otsu"), overlap_only: bool = False,
                   mirror: bool = False) -> tuple[list[dict], dict]:
    """Metrics of a shipped entry on cases (default: its test cases) against both masks.

    Parameters
    ----------
    name : str
        Zoo entry.
    cases : list of str, optional
        Case ids (default: the record's test cases).
    results_dir : path-like
        Volume cache root.
    acquisition : angio.acquisition.Acquisition, optional
        Build the inputs as a miscalibrated acquisition would (default: the entry's own
        geometry, nominal).
    keep : bool
        Also return ``{case: probability volume}``.
    folder : path-like, optional
        Zoo folder (default :data:`ZOO_DIR`).
    targets : tuple of str
        Ground truths to compare with.
    overlap_only : bool
        Only Dice and IoU (skips clDice's skeletons and the error metrics; for quick tables).
    mirror : bool
        Mirror test-time augmentation (:func:`angio.inference.predict_volume`); the views
        must be mirror symmetric (:func:`angio.projection.mirror_symmetric`). The entries'
        recorded test metrics are without it.

    Returns
    -------
    rows : list of dict
        One per (case, target) with ``method`` (the entry's name), ``views``, ``case``,
        ``target`` and the metrics of :func:`angio.metrics.evaluate`; for a magnified
        acquisition also ``dice_rescaled`` and ``iou_rescaled``, against the truth scaled
        the same way (:func:`angio.acquisition.magnified_truth`).
    kept : dict
        ``{case: (N, N, N) float32}`` when ``keep``.
    """
    model, entry = load_entry(name, folder=folder)
    settings = replace(entry.settings, results_dir=str(results_dir))
    exp = entry.experiment
    if mirror and not mirror_symmetric(view_angles(exp.n_views)):
        raise InputError(f"mirror test-time augmentation needs mirror-symmetric views; {name} takes "
                         f"{exp.n_views} views at {view_angles(exp.n_views).tolist()} degrees")
    cases = list(cases) if cases is not None else list(entry.record["test"]["cases"])
    acquisition = acquisition or GEOMETRIES[settings.geometry]
    cache = settings.cache()
    rows, kept = [], {}
    for case in cases:
        vols = cache.get(case, settings.spec, seed=settings.seed)
        x = acquired_inputs(vols, exp.n_views, exp.modes, acquisition, seed=settings.seed)
        prob = predict_case(model, x, settings, mirror=mirror)
        for target in targets:
            truth = vols.target(target)
            scores = ({"dice": dice(prob, truth), "iou": iou(prob, truth)} if overlap_only
                      else evaluate(prob, truth))
            if acquisition.magnification != 1.0:
                scaled = magnified_truth(truth, acquisition.magnification)
                scores.update(dice_rescaled=dice(prob, scaled), iou_rescaled=iou(prob, scaled))
            rows.append({"method": name, "experiment": name, "views": exp.n_views, "case": case, "target": target,
                         **scores})
        if keep:
            kept[case] = prob
    return rows, kept


def target_status(summary: dict[str, float], n_views: int) -> str:
    """"met" or the measured gap to :data:`QUALITY_TARGETS` for a mean-metric dict (``dice``, ``cldice``)."""
    goals = QUALITY_TARGETS.get(n_views)
    if not goals:
        return "no target"
    gaps = [f"{m} {summary[m]:.3f} < {goal:.2f}" for m, goal in goals.items() if summary[m] < goal]
    return "met" if not gaps else "gap: " + ", ".join(gaps)
