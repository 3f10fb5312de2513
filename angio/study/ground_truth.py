"""The paper's Otsu ground truth against the exact mask at the zoo's 0.5 mm grid: a shipped record.

Chapter 4 measures Otsu's mask against the exact vessel mask on the profile's grid (1.5 mm
voxels in the ``cpu`` profile). The study's default resolution, the model zoo's, is 192³
voxels of 0.5 mm over 96 mm (:data:`angio.zoo.DEFAULT_SPEC`); there the same comparison is
measured once, by code (:func:`record_ground_truth`, command line
``python scripts/record_ground_truth.py``), on the held-out trees of the zoo's split (its
test and validation trees), and shipped as :data:`RECORD`:

- ``resolution`` (``size``, ``fov_mm``, ``voxel_mm``, ``center``) and ``seed``: the volumes;
- ``split_from`` and ``cases`` (``{"test": [...], "val": [...]}``): where the trees come from;
- ``presets`` (:data:`angio.phantom.PRESETS`) and ``windows`` (:data:`~angio.study.CTA_WINDOWS`,
  HU ranges, ``null`` for none); ``cases_by_setting``: the trees measured per preset and per
  window (every held-out tree unless the record was made with fewer for some);
- ``rows``: one per (setting, case), with the fields of :data:`ROW_FIELDS`;
- ``cta_build_s`` (seconds to build one CTA case at this grid, uncached), ``wall_s``,
  ``evaluated_on`` (hardware and library versions), ``commit`` and ``made``.

:func:`check_ground_truth` re-measures one row from the volume cache, so a reader (and the
slow test) can see that the record still describes the code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from angio import zoo
from angio.errors import InputError
from angio.experiment import StudySettings
from angio.metrics import evaluate
from angio.phantom import PRESETS
from angio.pipeline import build_case
from angio.records import finish_record, grid, read_record
from angio.segment import otsu_mask
from angio.study.evaluation import CTA_WINDOWS
from angio.study.tables import mean_table

__all__ = ["RECORD", "ROW_FIELDS", "PRESET", "WINDOW", "otsu_against_exact", "ground_truth_rows",
           "record_ground_truth", "read_ground_truth", "check_ground_truth", "ground_truth_record_table"]

#: The shipped record (beside the zoo's records, in its own folder: not a zoo entry).
RECORD = Path(__file__).resolve().parent.parent / "_data" / "zoo" / "ground_truth" / "otsu_vs_exact_0p5mm.json"

#: ``kind`` of a row: Otsu's mask of a modality preset's volume (the paper's ground truth) ...
PRESET = "preset"
#: ... or Otsu's mask of the CTA clipped to an intensity window first (:data:`~angio.study.CTA_WINDOWS`).
WINDOW = "cta window"

#: The fields of a row and what they hold.
ROW_FIELDS: dict[str, str] = {
    "kind": f"{PRESET!r} or {WINDOW!r}",
    "label": "the preset (a key of angio.phantom.PRESETS) or the window (a key of angio.study.CTA_WINDOWS)",
    "case": "the tree",
    "split": "'test' or 'val' (the zoo split's held-out trees)",
    "dice": "Dice of Otsu's mask against the exact mask",
    "iou": "IoU of Otsu's mask against the exact mask",
    "cldice": "clDice of Otsu's mask against the exact mask",
    "ratio": "Otsu voxels / exact-mask voxels",
    "vessel_share": "share of Otsu's voxels that are exact-mask voxels",
    "otsu_voxels": "voxels in Otsu's mask",
    "exact_voxels": "voxels in the exact mask",
}

_REMAKE = "`python scripts/record_ground_truth.py` remakes it"


def otsu_against_exact(mask: np.ndarray, exact: np.ndarray) -> dict[str, float | int]:
    """How far a (Otsu) mask is from the exact vessel mask.

    Parameters
    ----------
    mask : ndarray of bool, shape (N, N, N)
        The mask to judge (Otsu's threshold of a volume).
    exact : ndarray of bool, shape (N, N, N)
        The exact vessel mask.

    Returns
    -------
    dict
        ``dice``, ``iou`` and ``cldice`` (:func:`angio.metrics.evaluate`), ``ratio`` (mask
        voxels / exact voxels), ``vessel_share`` (share of the mask's voxels that are in the
        exact mask), ``otsu_voxels`` and ``exact_voxels``.
    """
    mask, exact = np.asarray(mask, dtype=bool), np.asarray(exact, dtype=bool)
    m = evaluate(mask.astype(np.float32), exact)
    n_mask, n_exact = int(mask.sum()), int(exact.sum())
    return {"dice": m["dice"], "iou": m["iou"], "cldice": m["cldice"],
            "ratio": n_mask / max(n_exact, 1),
            "vessel_share": int((mask & exact).sum()) / max(n_mask, 1),
            "otsu_voxels": n_mask, "exact_voxels": n_exact}


def ground_truth_rows(settings: StudySettings, cases: Iterable[str], *, presets: Iterable[str] = tuple(PRESETS),
                      windows: Mapping[str, tuple[float, float] | None] = CTA_WINDOWS,
                      splits: Mapping[str, str] | None = None,
                      log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Otsu's mask against the exact mask, per case: each preset, then each CTA window.

    Parameters
    ----------
    settings : StudySettings
        Grid (``spec``; its modality is replaced by each preset), seed and volume cache.
    cases : iterable of str
        Trees.
    presets : iterable of str
        Keys of :data:`angio.phantom.PRESETS` (Otsu's mask of the volume as built, the
        paper's ground truth).
    windows : mapping
        ``{label: (low, high) or None}``: Otsu's mask of the CTA clipped to each window.
    splits : mapping of str to str, optional
        ``{case: split}`` written into the rows as ``split``.
    log : callable, optional
        Progress messages.

    Returns
    -------
    list of dict
        One row per (case, setting) with the fields of :data:`ROW_FIELDS`.
    """
    cache = settings.cache()
    presets, rows = list(presets), []
    for case in cases:
        head = {"case": case, **({"split": splits[case]} if splits is not None else {})}
        for preset in presets:
            v = cache.get(case, replace(settings.spec, modality=preset), seed=settings.seed)
            rows.append({"kind": PRESET, "label": preset, **head, **otsu_against_exact(v.otsu, v.exact)})
        if windows:
            v = cache.get(case, replace(settings.spec, modality="cta"), seed=settings.seed)
            for label, window in windows.items():
                img = v.intensity if window is None else np.clip(v.intensity, *window)
                rows.append({"kind": WINDOW, "label": label, **head,
                             **otsu_against_exact(otsu_mask(img), v.exact)})
        if log is not None:
            log(f"{case}: {len(presets)} preset(s), {len(windows)} window(s)")
    return rows


def _zoo_settings(results_dir: str | os.PathLike) -> StudySettings:
    """The zoo's grid (:data:`angio.zoo.DEFAULT_SPEC`) and seed, cache under ``results_dir``."""
    base = zoo.RECIPES[zoo.DEFAULT_MODELS[2]].settings
    return replace(base, spec=zoo.DEFAULT_SPEC, results_dir=str(results_dir))


def record_ground_truth(cases: Sequence[str] | None = None, *, preset_cases: Mapping[str, Sequence[str]] | None = None,
                        window_cases: Sequence[str] | None = None, results_dir: str | os.PathLike = "results",
                        path: str | os.PathLike = RECORD, log: Callable[[str], None] = print) -> Path:
    """Measure Otsu against the exact mask at the zoo's grid and write the record.

    Parameters
    ----------
    cases : sequence of str, optional
        Trees (default: the test, then the validation trees of the split of the zoo's
        biplane entry).
    preset_cases : mapping of str to sequence of str, optional
        Fewer trees for some presets (``{preset: cases}``, each a subset of ``cases``;
        default: every tree for every preset).
    window_cases : sequence of str, optional
        Fewer trees for the CTA windows (default: every tree).
    results_dir : path-like
        Volume cache root (the CTA volumes it builds are cached there too).
    path : path-like
        Where the record goes (default :data:`RECORD`).
    log : callable
        Progress messages.

    Returns
    -------
    pathlib.Path
        The record (written atomically once every row is measured).
    """
    settings = _zoo_settings(results_dir)
    split_from = zoo.DEFAULT_MODELS[2]
    split = zoo.entries()[split_from].record["split"]
    splits = {c: "test" for c in split["test"]} | {c: "val" for c in split["val"]}
    cases = list(cases) if cases is not None else list(splits)
    unknown = sorted(set(cases) - set(splits))
    if unknown:
        raise InputError(f"{', '.join(unknown)}: not held-out trees of the zoo split ({', '.join(splits)})")
    by_setting = {p: list((preset_cases or {}).get(p, cases)) for p in PRESETS}
    by_setting |= {w: list(window_cases if window_cases is not None else cases) for w in CTA_WINDOWS}
    for label, chosen in by_setting.items():
        if not set(chosen) <= set(cases):
            raise InputError(f"the cases of {label!r} must be among {cases}")
    t0 = time.perf_counter()
    tb = time.perf_counter()
    build_case(cases[0], replace(settings.spec, modality="cta"), seed=settings.seed)  # timed, not kept
    cta_build_s = time.perf_counter() - tb
    log(f"one CTA volume at {settings.spec.size}^3 ({cases[0]}): built in {cta_build_s:.1f} s")
    rows = []
    for case in cases:
        rows += ground_truth_rows(settings, [case], presets=[p for p in PRESETS if case in by_setting[p]],
                                  windows={w: v for w, v in CTA_WINDOWS.items() if case in by_setting[w]},
                                  splits=splits, log=log)
    spec = settings.spec
    record = {
        "what": "The paper's Otsu ground truth against the exact vessel mask, per modality preset and "
                "per CTA intensity window, at the model zoo's grid",
        "resolution": grid(spec),
        "seed": settings.seed,
        "split_from": split_from,
        "cases": {s: [c for c in cases if splits[c] == s] for s in ("test", "val")},
        "presets": list(PRESETS),
        "windows": {label: None if w is None else list(w) for label, w in CTA_WINDOWS.items()},
        "cases_by_setting": by_setting,
        "fields": ROW_FIELDS,
        "rows": rows,
        "cta_build_s": cta_build_s,
    }
    return finish_record(path, record, t0, log=log)


def read_ground_truth(path: str | os.PathLike = RECORD) -> dict[str, Any]:
    """The record of :func:`record_ground_truth`, checked against this version's presets and windows.

    Raises
    ------
    angio.InputError
        If the record is missing or unreadable, or its presets or windows are not those of
        :data:`angio.phantom.PRESETS` and :data:`~angio.study.CTA_WINDOWS`; the message
        names the file and the command that remakes it.
    """
    path = Path(path)
    record = read_record(path, ("presets", "windows", "rows"), missing="no record of Otsu against the exact mask",
                         remake=_REMAKE)
    presets, windows, rows = record["presets"], record["windows"], record["rows"]
    if presets != list(PRESETS):
        raise InputError(f"{path}: measured for presets {presets}, this version has {list(PRESETS)}; {_REMAKE}")
    ours = {label: None if w is None else list(w) for label, w in CTA_WINDOWS.items()}
    if windows != ours:
        raise InputError(f"{path}: measured for other CTA windows than angio.study.CTA_WINDOWS; {_REMAKE}")
    if not rows:
        raise InputError(f"{path}: the record holds no rows; {_REMAKE}")
    return record


def check_ground_truth(kind: str = PRESET, label: str | None = None, case: str | None = None, *,
                       results_dir: str | os.PathLike = "results",
                       path: str | os.PathLike = RECORD) -> tuple[dict[str, Any], dict[str, Any]]:
    """Re-measure one recorded row: ``(recorded_row, measured_row)``.

    Parameters
    ----------
    kind : {"preset", "cta window"}
        The row's kind (:data:`PRESET` or :data:`WINDOW`).
    label : str, optional
        The preset or window (default: the record's first of that kind).
    case : str, optional
        The tree (default: the first one recorded for that setting).
    results_dir : path-like
        Volume cache root (a missing volume is built and cached there).
    path : path-like
        The record.
    """
    record = read_ground_truth(path)
    of_kind = [r for r in record["rows"] if r["kind"] == kind]
    if not of_kind:
        raise InputError(f"{path}: no row of kind {kind!r}")
    label = label if label is not None else of_kind[0]["label"]
    case = case if case is not None else next((r["case"] for r in of_kind if r["label"] == label), None)
    matches = [r for r in of_kind if r["label"] == label and r["case"] == case]
    if not matches:
        raise InputError(f"{path}: no row for {kind} {label!r} on {case!r}")
    res = record["resolution"]
    settings = replace(_zoo_settings(results_dir), seed=record["seed"])
    settings = replace(settings, spec=replace(settings.spec, size=res["size"], fov_mm=res["fov_mm"],
                                              center=res["center"]))
    presets = [label] if kind == PRESET else []
    windows = {label: CTA_WINDOWS[label]} if kind == WINDOW else {}
    measured = ground_truth_rows(settings, [case], presets=presets, windows=windows,
                                 splits={case: matches[0].get("split")})
    return matches[0], measured[0]


def ground_truth_record_table(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Mean and spread over trees per setting, for :func:`angio.figures.table`.

    Returns
    -------
    list of dict
        One row per (kind, label), in the record's order: ``setting`` (``"preset: cta"``,
        ``"CTA window: ..."``), ``cases``, and the mean ``m`` and population standard deviation
        ``m_std`` of ``dice``, ``iou``, ``cldice``, ``ratio`` and ``vessel_share``.
    """
    out = mean_table(list(record["rows"]), by=("kind", "label"),
                     metrics=("dice", "iou", "cldice", "ratio", "vessel_share"))
    for row in out:
        row["setting"] = f"{'preset' if row['kind'] == PRESET else 'CTA window'}: {row['label']}"
    return out
