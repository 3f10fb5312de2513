"""The continuity prior (:mod:`angio.continuity`) on zoo entries, chosen on validation: a shipped record.

Issue #33 asks whether a test-time refinement that favours connected vessels removes the
ghost crossings two views leave. :func:`record_continuity` measures it for zoo entries with
parallel-beam inputs: each entry predicts its validation and test trees as
``angio reconstruct`` would (mirror averaging where :data:`~angio.zoo.recipes.MIRROR_MODELS`
says so), every setting of the grid (:data:`HIGHS` x :data:`LOWS` x :data:`MIN_VOXELS`) is
scored on the validation trees, the best by mean Dice is chosen, and the validation trees
(and the test trees, when asked: a refinement that gains nothing on validation is not
adopted, so its test score is not needed) are scored with the plain threshold and with the
chosen setting (Dice, IoU, clDice). The record
(:data:`RECORD`) holds:

- ``models``, ``resolution``, ``seed``, ``grid`` (the three ranges) and ``cases``
  (``{model: {split: [...]}}`` for the scored splits);
- ``rows``: the validation sweep, one per (model, setting, tree): ``model``, ``case``,
  ``split``, ``high``, ``low``, ``min_voxels``, ``dice``;
- ``chosen``: ``{model: setting}``; ``scores``: one per (model, tree, ``refinement``
  ``"threshold 0.5"`` or ``"chosen"``) on the scored splits with ``dice``, ``iou``, ``cldice``;
- ``wall_s``, ``evaluated_on``, ``commit`` and ``made``.

Predictions are rounded to float16 before any threshold (they are cached that way under
``<results>/predictions/<model>/``), so a cached and a fresh prediction give the same masks.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from angio.atomic import atomic_write
from angio.continuity import Setting, best_setting, grid, refine, sweep
from angio.errors import InputError
from angio.evaluation import case_inputs, predict_case
from angio.metrics import cldice, dice, iou
from angio.records import finish_record, read_record
from angio.records import grid as spec_grid
from angio.zoo.entries import entries, load_entry
from angio.zoo.recipes import MIRROR_MODELS

__all__ = ["RECORD", "HIGHS", "LOWS", "MIN_VOXELS", "record_continuity", "read_continuity", "chosen_setting",
           "continuity_table", "predictions"]

#: The shipped record (beside the view-consistency record: a measurement, not a zoo entry).
RECORD = Path(__file__).resolve().parent.parent / "_data" / "zoo" / "consistency" / "continuity.json"

#: The grid searched on the validation trees.
HIGHS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
LOWS: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5)
MIN_VOXELS: tuple[int, ...] = (0, 27, 125, 500, 2000)

_REMAKE = "`python scripts/record_continuity.py` remakes it"
_PLAIN = Setting()


def predictions(name: str, cases: Sequence[str], *, results_dir: str | os.PathLike = "results",
                folder: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> dict[str, np.ndarray]:
    """The entry's vessel probabilities ``(N, N, N)`` (float16) per case, as ``angio reconstruct`` makes them.

    Cached under ``<results_dir>/predictions/<name>/<case>.npy`` (written atomically); a
    cached file is reused. ``folder``: the zoo folder (default :data:`~angio.zoo.ZOO_DIR`).
    """
    model, entry = load_entry(name, folder=folder)
    settings = replace(entry.settings, results_dir=str(results_dir))
    if settings.geometry != "parallel":
        raise InputError(f"{name}: the continuity record covers parallel-beam entries; "
                         f"this one was trained on {settings.geometry!r} inputs")
    cache = Path(results_dir) / "predictions" / name
    out = {}
    for case in cases:
        path = cache / f"{case}.npy"
        if path.exists():
            out[case] = np.load(path)
            continue
        t0 = time.perf_counter()
        vols = settings.cache().get(case, settings.spec, seed=settings.seed)
        x = case_inputs(vols, entry.experiment.n_views, entry.experiment.modes, settings)
        prob = predict_case(model, x, settings, mirror=name in MIRROR_MODELS).astype(np.float16)
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda f, p=prob: np.save(f, p))
        out[case] = prob
        log(f"{name} {case}: predicted in {time.perf_counter() - t0:.0f} s")
    return out


def _scores(prob: np.ndarray, exact: np.ndarray, setting: Setting) -> dict[str, float]:
    mask = refine(prob, setting).astype(np.float32)
    return {"dice": dice(mask, exact), "iou": iou(mask, exact), "cldice": cldice(mask, exact)}


def record_continuity(models: Sequence[str], *, splits: Sequence[str] = ("val",),
                      results_dir: str | os.PathLike = "results", path: str | os.PathLike = RECORD,
                      folder: str | os.PathLike | None = None, log: Callable[[str], None] = print) -> Path:
    """Sweep the grid on each entry's validation trees, choose, score both splits, write the record.

    Parameters
    ----------
    models : sequence of str
        Zoo entries with parallel-beam inputs.
    splits : sequence of str
        Splits scored with the plain threshold and the chosen setting: ``("val",)`` (the
        default: enough to reject a refinement that does not gain on validation) or
        ``("val", "test")`` (to report an adopted one on the test trees).
    results_dir : path-like
        Volume and prediction cache root.
    path : path-like
        Where the record goes (written atomically once everything is measured).
    folder : path-like, optional
        The zoo folder (default :data:`~angio.zoo.ZOO_DIR`).
    log : callable
        Progress messages.
    """
    if "val" not in splits or not set(splits) <= {"val", "test"}:
        raise ValueError(f"splits must hold 'val' and may hold 'test', got {tuple(splits)!r}")
    t0 = time.perf_counter()
    settings_grid = grid(HIGHS, LOWS, MIN_VOXELS)
    rows, scores, chosen, cases = [], [], {}, {}
    for name in models:
        _, entry = load_entry(name, folder=folder)
        split = entry.record["split"]
        cases[name] = {s: list(split[s]) for s in splits}
        chosen_cases = [c for s in splits for c in split[s]]
        settings = replace(entry.settings, results_dir=str(results_dir))
        exact = {c: settings.cache().get(c, settings.spec, seed=settings.seed).exact for c in chosen_cases}
        probs = predictions(name, chosen_cases, results_dir=results_dir, folder=folder, log=log)
        val = sweep({c: probs[c] for c in split["val"]}, {c: exact[c] for c in split["val"]}, settings_grid)
        rows += [{"model": name, "split": "val", **r} for r in val]
        best, score = best_setting(val)
        chosen[name] = best.to_dict()
        log(f"{name}: chose {best.label} (validation Dice {score:.3f})")
        for s in splits:
            for case in split[s]:
                for label, setting in (("threshold 0.5", _PLAIN), ("chosen", best)):
                    scores.append({"model": name, "case": case, "split": s, "refinement": label,
                                   **_scores(probs[case], exact[case], setting)})
    first = entries(folder)[models[0]]
    record = {
        "what": "A continuity prior (hysteresis thresholds, small pieces removed) as a test-time refinement of "
                "zoo entries, chosen on the validation trees, against the exact mask",
        "models": list(models),
        "resolution": spec_grid(first.spec),
        "seed": first.settings.seed,
        "grid": {"high": list(HIGHS), "low": list(LOWS), "min_voxels": list(MIN_VOXELS)},
        "cases": cases,
        "chosen": chosen,
        "rows": rows,
        "scores": scores,
    }
    return finish_record(path, record, t0, log=log)


def read_continuity(path: str | os.PathLike = RECORD) -> dict[str, Any]:
    """The record of :func:`record_continuity`.

    Raises
    ------
    angio.InputError
        If the record is missing or unreadable, or lacks a model's choice or validation scores; the
        message names the file and the command that remakes it.
    """
    record = read_record(path, ("models", "chosen", "rows", "scores"), missing="no record of the continuity prior",
                         remake=_REMAKE)
    for m in record["models"]:
        if m not in record["chosen"] or not any(r["model"] == m and r["split"] == "val" for r in record["scores"]):
            raise InputError(f"{path}: no choice or validation scores for {m}; {_REMAKE}")
    return record


def chosen_setting(model: str, record: Mapping[str, Any] | None = None) -> Setting:
    """The setting chosen on the validation trees for ``model``."""
    record = read_continuity() if record is None else record
    if model not in record["chosen"]:
        raise InputError(f"no continuity setting recorded for {model!r}; recorded: {', '.join(record['chosen'])}")
    return Setting(**record["chosen"][model])


def continuity_table(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per model and refinement: means over the validation (and, where recorded, test) trees.

    Returns
    -------
    list of dict
        ``model``, ``refinement`` (``"threshold 0.5"`` or the chosen setting's label), and per
        recorded split ``s`` (``val``, ``test``): ``{s}_dice``, ``{s}_dice_std``,
        ``{s}_iou``, ``{s}_cldice``, ``{s}_gain`` (Dice over the plain threshold) and
        ``{s}_cases``.
    """
    out = []
    for model in record["models"]:
        base: dict[str, float] = {}
        for label in ("threshold 0.5", "chosen"):
            sel = [r for r in record["scores"] if r["model"] == model and r["refinement"] == label]
            name = label if label != "chosen" else chosen_setting(model, record).label
            row: dict[str, Any] = {"model": model, "refinement": name}
            for s in ("val", "test"):
                part = [r for r in sel if r["split"] == s]
                if not part:
                    continue
                d = np.array([r["dice"] for r in part])
                base.setdefault(s, float(d.mean()))
                row.update({f"{s}_dice": float(d.mean()), f"{s}_dice_std": float(d.std()),
                            f"{s}_iou": float(np.mean([r["iou"] for r in part])),
                            f"{s}_cldice": float(np.mean([r["cldice"] for r in part])),
                            f"{s}_gain": float(d.mean()) - base[s], f"{s}_cases": len(part)})
            out.append(row)
    return out
