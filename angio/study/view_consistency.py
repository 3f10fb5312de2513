"""View consistency as a test-time refinement of the zoo's default models: a shipped record.

Issue #8 asks whether a data-consistency term, the projections of the prediction
reproducing the input views, improves the reconstruction. :mod:`angio.consistency`
enforces it without retraining: carve the prediction to the views' silhouette hull and
fill the rays a view shows as vessel but the prediction leaves empty. This module measures
that once, by code (:func:`record_view_consistency`, command line
``python scripts/record_view_consistency.py``), for each default model of
:data:`angio.zoo.DEFAULT_MODELS` on the zoo split's validation and test trees at the zoo's
grid, and ships the result as :data:`RECORD`:

- ``models``, ``resolution``, ``seed``, ``lows`` (the fill thresholds tried) and ``cases``
  (``{model: {"val": [...], "test": [...]}}``);
- ``rows``: one per (model, tree, silhouettes, variant) with the fields of :data:`ROW_FIELDS`;
  ``silhouettes`` is ``"views"`` (Otsu of each input view: what a user has) or ``"truth"``
  (the projections of the exact mask: an upper bound on what consistency can give);
- ``diagnostics``: one per (model, tree) with :data:`DIAGNOSTIC_FIELDS`;
- ``wall_s``, ``evaluated_on``, ``commit`` and ``made``.

The fill threshold is chosen on the validation trees (:func:`chosen_low`) and reported on
the test trees (:func:`view_consistency_table`), as every zoo choice is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from angio import zoo
from angio.acquisition import GEOMETRIES, acquired_projections
from angio.consistency import enforce_views, silhouette_hull, view_agreement, view_silhouettes
from angio.errors import InputError
from angio.evaluation import predict_case
from angio.metrics import dice, evaluate
from angio.pipeline import inputs_from_projections
from angio.projection import mip, view_angles
from angio.records import finish_record, grid, read_record
from angio.study.tables import mean_table

__all__ = ["RECORD", "ROW_FIELDS", "DIAGNOSTIC_FIELDS", "LOWS", "variant_label", "consistency_rows",
           "record_view_consistency", "read_view_consistency", "chosen_low", "view_consistency_table",
           "diagnostics_table", "check_view_consistency"]

#: The shipped record (beside the zoo's records, in its own folder: not a zoo entry).
RECORD = Path(__file__).resolve().parent.parent / "_data" / "zoo" / "consistency" / "view_consistency.json"

#: Fill thresholds tried (the choice among them is made on the validation trees).
LOWS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)

ROW_FIELDS: dict[str, str] = {
    "model": "the zoo entry",
    "views": "its number of views",
    "case": "the tree",
    "split": "'val' or 'test'",
    "silhouettes": "'views' (Otsu of each input view) or 'truth' (projections of the exact mask)",
    "variant": "'as predicted', 'carve' or 'carve + fill'",
    "low": "the fill threshold (null without fill)",
    "dice": "Dice against the exact mask",
    "iou": "IoU against the exact mask",
    "cldice": "clDice against the exact mask",
}

DIAGNOSTIC_FIELDS: dict[str, str] = {
    "model": "the zoo entry",
    "case": "the tree",
    "split": "'val' or 'test'",
    "silhouette_dice": "Dice of the views' Otsu silhouettes against the projections of the exact mask",
    "hull_ratio": "voxels of the true silhouettes' hull per exact-mask voxel",
    "covered": "share of the true silhouette pixels whose ray the prediction reaches",
    "outside_hull": "share of the predicted voxels outside the true silhouettes' hull",
}

_REMAKE = "`python scripts/record_view_consistency.py` remakes it"
_METRICS = ("dice", "iou", "cldice")


def variant_label(variant: str, low: float | None) -> str:
    """``"carve + fill (low 0.1)"`` or the variant itself."""
    return variant if low is None else f"{variant} (low {low:g})"


def consistency_rows(prob: np.ndarray, projections: np.ndarray, angles: Sequence[float], exact: np.ndarray, *,
                     lows: Sequence[float] = LOWS) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Every refinement variant of one prediction against the exact mask.

    Parameters
    ----------
    prob : ndarray, shape (N, N, N)
        Vessel probabilities.
    projections : ndarray, shape (n_views, N, N)
        The input views.
    angles : sequence of float, shape (n_views,)
        Their angles in degrees.
    exact : ndarray of bool, shape (N, N, N)
        The exact vessel mask.
    lows : sequence of float
        Fill thresholds.

    Returns
    -------
    rows : list of dict
        ``silhouettes``, ``variant``, ``low`` and the metrics of :data:`ROW_FIELDS`.
    diagnostics : dict
        The measured fields of :data:`DIAGNOSTIC_FIELDS`.
    """
    exact = np.asarray(exact, dtype=bool)
    truth = np.asarray(mip(exact.astype(np.float32), angles)) > 0.5
    seen = view_silhouettes(projections)
    rows = []
    plain = evaluate(prob, exact)
    for source, sil in (("views", seen), ("truth", truth)):
        rows.append({"silhouettes": source, "variant": "as predicted", "low": None,
                     **{m: plain[m] for m in _METRICS}})
        variants = [("carve", None)] + [("carve + fill", low) for low in lows]
        for variant, low in variants:
            mask = enforce_views(prob, sil, angles, fill=low is not None, low=low if low is not None else 0.0)
            m = evaluate(mask.astype(np.float32), exact)
            rows.append({"silhouettes": source, "variant": variant, "low": low, **{k: m[k] for k in _METRICS}})
    agree = view_agreement(np.asarray(prob) >= 0.5, truth, angles)
    diagnostics = {"silhouette_dice": dice(seen.astype(np.float32), truth),
                   "hull_ratio": float(silhouette_hull(truth, angles).sum()) / max(int(exact.sum()), 1),
                   "covered": agree["covered"], "outside_hull": agree["outside_hull"]}
    return rows, diagnostics


def record_view_consistency(models: Sequence[str] | None = None, *, cases: Sequence[str] | None = None,
                            lows: Sequence[float] = LOWS, results_dir: str | os.PathLike = "results",
                            path: str | os.PathLike = RECORD, log: Callable[[str], None] = print) -> Path:
    """Measure every refinement variant of the default models and write the record.

    Parameters
    ----------
    models : sequence of str, optional
        Zoo entries with parallel-beam inputs (default: :data:`angio.zoo.DEFAULT_MODELS`).
    cases : sequence of str, optional
        Trees (default: each entry's validation, then test trees).
    lows : sequence of float
        Fill thresholds to try.
    results_dir : path-like
        Volume cache root.
    path : path-like
        Where the record goes (written atomically once every row is measured).
    log : callable
        Progress messages.
    """
    models = list(models) if models is not None else list(zoo.DEFAULT_MODELS.values())
    t0 = time.perf_counter()
    rows, diagnostics, measured = [], [], {}
    for name in models:
        model, entry = zoo.load_entry(name)
        settings = replace(entry.settings, results_dir=str(results_dir))
        if settings.geometry != "parallel":
            raise InputError(f"{name}: view consistency is measured for parallel-beam entries; "
                             f"this one was trained on {settings.geometry!r} inputs")
        exp, split = entry.experiment, entry.record["split"]
        split_of = {c: s for s in ("val", "test") for c in split[s]}
        chosen = list(cases) if cases is not None else split["val"] + split["test"]
        unknown = sorted(set(chosen) - set(split_of))
        if unknown:
            raise InputError(f"{', '.join(unknown)}: not validation or test trees of {name}")
        angles = view_angles(exp.n_views)
        measured[name] = {s: [c for c in chosen if split_of[c] == s] for s in ("val", "test")}
        for case in chosen:
            tc = time.perf_counter()
            vols = settings.cache().get(case, settings.spec, seed=settings.seed)
            proj = acquired_projections(vols, exp.n_views, GEOMETRIES["parallel"], seed=settings.seed)
            prob = predict_case(model, inputs_from_projections(proj, angles, modes=exp.modes), settings)
            part, diag = consistency_rows(prob, proj, angles, vols.exact, lows=lows)
            head = {"model": name, "views": exp.n_views, "case": case, "split": split_of[case]}
            rows += [dict(head, **r) for r in part]
            diagnostics.append({"model": name, "case": case, "split": split_of[case], **diag})
            best = max((r for r in part if r["silhouettes"] == "views"), key=lambda r: r["dice"])
            log(f"{name} {case}: Dice {part[0]['dice']:.3f} as predicted, best "
                f"{variant_label(best['variant'], best['low'])} {best['dice']:.3f} "
                f"({time.perf_counter() - tc:.0f} s)")
    first = zoo.entries()[models[0]]
    spec = first.spec
    record = {
        "what": "View consistency (carve to the silhouette hull, fill missed rays) as a test-time refinement "
                "of the zoo's default models, against the exact mask",
        "models": models,
        "resolution": grid(spec),
        "seed": first.settings.seed,
        "lows": list(lows),
        "cases": measured,
        "fields": ROW_FIELDS,
        "diagnostic_fields": DIAGNOSTIC_FIELDS,
        "rows": rows,
        "diagnostics": diagnostics,
    }
    return finish_record(path, record, t0, log=log)


def read_view_consistency(path: str | os.PathLike = RECORD) -> dict[str, Any]:
    """The record of :func:`record_view_consistency`.

    Raises
    ------
    angio.InputError
        If the record is missing, unreadable, holds no rows, or lacks a model's validation
        or test rows; the message names the file and the command that remakes it.
    """
    path = Path(path)
    record = read_record(path, ("rows", "models", "lows"), missing="no record of view consistency", remake=_REMAKE)
    rows, models, lows = record["rows"], record["models"], record["lows"]
    if not rows or not models or not lows:
        raise InputError(f"{path}: the record holds no rows; {_REMAKE}")
    for m in models:
        for split in ("val", "test"):
            if not any(r["model"] == m and r["split"] == split for r in rows):
                raise InputError(f"{path}: no {split} rows for {m}; {_REMAKE}")
    return record


def chosen_low(record: Mapping[str, Any], model: str, *, silhouettes: str = "views") -> float:
    """The fill threshold with the best mean validation Dice (carve + fill) for ``model``."""
    rows = [r for r in record["rows"] if r["model"] == model and r["split"] == "val"
            and r["silhouettes"] == silhouettes and r["variant"] == "carve + fill"]
    if not rows:
        raise InputError(f"no validation rows of carve + fill for {model!r} with {silhouettes} silhouettes")
    means = mean_table(rows, by=("low",), metrics=("dice",))
    return max(means, key=lambda r: r["dice"])["low"]


def view_consistency_table(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per default model: as predicted, carved, and carved + filled at the validation-chosen threshold.

    Returns
    -------
    list of dict
        ``model``, ``views``, ``refinement`` (the variant, with its silhouettes), ``low``,
        ``val_dice``, and on the test trees ``dice``, ``dice_std``, ``cldice``, ``iou`` and
        ``gain`` (Dice over as predicted). The last row per model uses the true
        silhouettes: the most consistency can give.
    """
    out = []
    for model in record["models"]:
        low = chosen_low(record, model)
        picks = [("views", "as predicted", None), ("views", "carve", None), ("views", "carve + fill", low),
                 ("truth", "carve + fill", chosen_low(record, model, silhouettes="truth"))]
        base = None
        for source, variant, lo in picks:
            sel = [r for r in record["rows"] if r["model"] == model and r["silhouettes"] == source
                   and r["variant"] == variant and r["low"] == lo]
            val = mean_table([r for r in sel if r["split"] == "val"], by=("model",), metrics=_METRICS)[0]
            test = mean_table([r for r in sel if r["split"] == "test"], by=("model",), metrics=_METRICS)[0]
            base = test["dice"] if base is None else base
            what = variant_label(variant, lo) + ("" if source == "views" else ", true silhouettes")
            out.append({"model": model, "views": sel[0]["views"], "refinement": what, "low": lo,
                        "val_dice": val["dice"], "dice": test["dice"], "dice_std": test["dice_std"],
                        "cldice": test["cldice"], "iou": test["iou"], "gain": test["dice"] - base,
                        "cases": test["cases"]})
    return out


def diagnostics_table(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Mean of :data:`DIAGNOSTIC_FIELDS` over all held-out trees, per model."""
    return mean_table(list(record["diagnostics"]), by=("model",),
                      metrics=("silhouette_dice", "hull_ratio", "covered", "outside_hull"))


def check_view_consistency(model: str, case: str, prob: np.ndarray | None = None, *,
                           results_dir: str | os.PathLike = "results",
                           path: str | os.PathLike = RECORD) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Re-measure one recorded tree: ``(recorded_rows, measured_rows)``, in the same order.

    Parameters
    ----------
    model : str
        A model of the record.
    case : str
        One of its trees in the record.
    prob : ndarray, shape (N, N, N), optional
        The entry's prediction of ``case`` when already at hand (e.g. from
        :func:`angio.zoo.evaluate_entry` with ``keep=True``); predicted here otherwise.
    results_dir : path-like
        Volume cache root.
    path : path-like
        The record.
    """
    record = read_view_consistency(path)
    recorded = [r for r in record["rows"] if r["model"] == model and r["case"] == case]
    if not recorded:
        raise InputError(f"{path}: no rows for {model!r} on {case!r}")
    net, entry = zoo.load_entry(model)
    settings = replace(entry.settings, results_dir=str(results_dir))
    exp = entry.experiment
    angles = view_angles(exp.n_views)
    vols = settings.cache().get(case, settings.spec, seed=record["seed"])
    proj = acquired_projections(vols, exp.n_views, GEOMETRIES["parallel"], seed=record["seed"])
    if prob is None:
        prob = predict_case(net, inputs_from_projections(proj, angles, modes=exp.modes), settings)
    measured, _ = consistency_rows(prob, proj, angles, vols.exact, lows=record["lows"])
    head = {"model": model, "views": exp.n_views, "case": case, "split": recorded[0]["split"]}
    return recorded, [dict(head, **r) for r in measured]
