"""A short live run beside its recipe's full run (the training chapter, chapter 5).

Chapter 5 trains the paper's autoencoder live for the profile's few minutes, to show the
loop; the model the study stands behind at that view count is the zoo's entry, trained by
its recipe at 0.5 mm. :func:`reference_entry` names that entry and :func:`beside_recipe`
measures both on the same held-out tree, each on its own grid, so that the chapter can show
what the minutes buy and what the recipe's run does, without ever presenting the short run
as the study's result.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from angio.errors import InputError
from angio.evaluation import case_inputs, predict_case
from angio.experiment import StudySettings, Trained
from angio.metrics import dice, iou
from angio.models import count_parameters
from angio.zoo import entries, load_entry

__all__ = ["reference_entry", "run_summary", "Beside", "beside_recipe"]


def reference_entry(experiment, shipped=None) -> str:
    """The zoo entry trained by the recipe a live experiment shortens (same network, views, inputs, target).

    Raises
    ------
    angio.InputError
        If no shipped entry has that experiment on the vessels-only volumes.
    """
    shipped = entries() if shipped is None else shipped
    for name, entry in shipped.items():
        e = entry.experiment
        if (entry.spec.modality == "rotational" and e.model == experiment.model and e.n_views == experiment.n_views
                and tuple(e.modes) == tuple(experiment.modes) and e.target == experiment.target):
            return name
    raise InputError(f"no zoo entry trains {experiment.name} on the vessels-only volumes")


def run_summary(trained: Trained) -> str:
    """One line on a live run: parameters, epochs, steps, wall time, and the epoch evaluated."""
    rows = trained.history["epochs"]
    steps = rows[-1]["global_step"] if rows else 0
    seconds = rows[-1]["wall_time_s"] if rows else 0.0
    epoch = "" if trained.epoch is None else f"; evaluating epoch {trained.epoch + 1} of {len(rows)}"
    chosen = f" ({trained.checkpoint.name}, lowest validation loss)" if trained.checkpoint is not None else ""
    return (f"{trained.experiment.name}: {count_parameters(trained.model):,} parameters, {len(rows)} epochs, "
            f"{steps} optimizer steps, {'reloaded' if trained.reused else 'trained'} in {seconds:.0f} s of "
            f"training{epoch}{chosen}")


@dataclass
class Beside:
    """A live run and a zoo entry on one tree: ``rows`` for the table, ``panels`` for the figures.

    ``panels`` is ``{run label: {panel title: volume}}``, each run on its own grid.
    """

    case: str
    rows: list[dict]
    panels: dict[str, dict[str, np.ndarray]]


def _grid(spec) -> str:
    return f"{spec.size}³ × {spec.voxel_mm:g} mm"


def beside_recipe(trained: Trained, settings: StudySettings, name: str, case: str | None = None, *,
                  results_dir: str | os.PathLike = "results", label: str = "this run") -> Beside:
    """The live run ``trained`` and the zoo entry ``name`` on the same held-out tree.

    Parameters
    ----------
    trained : Trained
        The live run (:func:`angio.experiment.run_experiment`).
    settings : StudySettings
        Its settings (the profile's grid).
    name : str
        The zoo entry of the same recipe (:func:`reference_entry`).
    case : str, optional
        A test tree of the entry (default: its first).
    results_dir : path-like
        Volume cache of the entry's grid.
    label : str
        The live run's name in the rows.

    Returns
    -------
    Beside
        Two rows (``run``, ``grid``, ``steps``, ``minutes``, ``dice_otsu``, ``iou_otsu``,
        ``dice_exact``; the live run first) and the input, prediction and masks of each.
    """
    model, entry = load_entry(name)
    case = case or entry.record["test"]["cases"][0]
    if case not in entry.record["test"]["cases"]:
        raise InputError(f"{case} is not a test tree of {name}")
    runs = []
    history = trained.history["epochs"]
    live_vols = settings.cache().get(case, settings.spec, seed=settings.seed)
    x = case_inputs(live_vols, trained.experiment.n_views, trained.experiment.modes, settings)
    runs.append((label, settings.spec, history[-1]["global_step"] if history else 0,
                 (history[-1]["wall_time_s"] if history else 0.0) / 60, live_vols, x,
                 predict_case(trained.model, x, settings)))
    zoo_settings = entry.settings_in(results_dir)
    vols = entry.volumes(case, results_dir)
    x = case_inputs(vols, entry.experiment.n_views, entry.experiment.modes, zoo_settings)
    t = entry.record["training"]
    runs.append((name, entry.spec, t["optimizer_steps"], t["wall_time_s"] / 60, vols, x,
                 predict_case(model, x, zoo_settings)))
    rows, panels = [], {}
    for run, spec, steps, minutes, v, inputs, prob in runs:
        rows.append({"run": run, "grid": _grid(spec), "steps": steps, "minutes": minutes,
                     "dice_otsu": dice(prob, v.otsu), "iou_otsu": iou(prob, v.otsu), "dice_exact": dice(prob, v.exact)})
        panels[run] = {f"{run}: input (sum)": inputs[0], f"{run}: prediction": prob, "Otsu target": v.otsu,
                       "exact mask": v.exact}
    return Beside(case, rows, panels)
