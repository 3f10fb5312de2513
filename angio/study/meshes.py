"""The zoo's reconstructions of one test tree, for the meshes chapter (chapter 8).

:func:`zoo_reconstructions` applies shipped entries to one of their held-out test trees as
their records were measured (:func:`angio.evaluation.case_inputs`,
:func:`angio.evaluation.predict_case`) and returns the probabilities with the tree's volumes
(its exact vessel mask is the ground truth); :func:`mesh_rows` turns an
:func:`angio.mesh.error_grid` of them into table rows, and refuses an empty scene.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from angio.errors import InputError
from angio.evaluation import case_inputs, predict_case
from angio.metrics import dice
from angio.zoo import entries, load_entry

__all__ = ["MESH_ENTRIES", "ZooReconstructions", "zoo_reconstructions", "mesh_rows"]

#: The entries chapter 8 shows, from the most views to the fewest: the paper's autoencoder at
#: 90, 10 and 2 views, then the study's U-Nets at 3 and 2.
MESH_ENTRIES: tuple[str, ...] = ("paper-dae-90v", "paper-dae-10v", "paper-dae-2v", "unet-3view", "unet-biplane")


@dataclass
class ZooReconstructions:
    """Shipped entries' predictions on one test tree.

    ``case``: the tree; ``volumes``: its :class:`~angio.pipeline.CaseVolumes` on the entries'
    grid (``volumes.exact`` is the ground truth); ``probabilities``: ``{entry: (N, N, N)}`` in
    the order asked for; ``views``: ``{entry: number of views}``; ``voxel_mm``: the grid's
    voxel size; ``recorded``: ``{entry: the record's test row of this tree, exact mask}``.
    """

    case: str
    volumes: Any
    probabilities: dict[str, np.ndarray]
    views: dict[str, int]
    voxel_mm: float
    recorded: dict[str, dict]


def zoo_reconstructions(names: Sequence[str], case: str | None = None, *,
                        results_dir: str | os.PathLike = "results", folder: str | os.PathLike | None = None,
                        verify: bool = True) -> ZooReconstructions:
    """Predict one held-out tree with each of the shipped entries ``names``.

    Parameters
    ----------
    names : sequence of str
        Zoo entries on the same grid (e.g. :data:`MESH_ENTRIES`).
    case : str, optional
        A test tree of every entry (default: the first entry's first test tree).
    results_dir : path-like
        Volume cache root.
    folder : path-like, optional
        Zoo folder (default :data:`angio.zoo.ZOO_DIR`).
    verify : bool
        Check each weights file's sha256 against its record first.

    Returns
    -------
    ZooReconstructions

    Raises
    ------
    angio.InputError
        If ``names`` is empty, an entry is not shipped, the entries' grids differ, or
        ``case`` is not a test tree of every entry.
    """
    names = list(names)
    if not names:
        raise InputError("no zoo entries to reconstruct with")
    shipped = entries(folder)
    missing = [n for n in names if n not in shipped]
    if missing:
        raise InputError(f"no zoo entry {', '.join(missing)}; shipped: {', '.join(sorted(shipped))}")
    specs = {shipped[n].spec for n in names}
    if len(specs) != 1:
        raise InputError(f"the entries {names} are on different grids: {sorted(map(str, specs))}")
    case = case or shipped[names[0]].record["test"]["cases"][0]
    outside = [n for n in names if case not in shipped[n].record["test"]["cases"]]
    if outside:
        raise InputError(f"{case} is not a test tree of {', '.join(outside)}")
    volumes = shipped[names[0]].volumes(case, results_dir)
    probabilities, views, recorded = {}, {}, {}
    for name in names:
        model, entry = load_entry(name, folder=folder, verify=verify)
        settings = entry.settings_in(results_dir)
        exp = entry.experiment
        vols = entry.volumes(case, results_dir)  # the same grid: the cache returns the same volumes
        probabilities[name] = predict_case(model, case_inputs(vols, exp.n_views, exp.modes, settings), settings)
        views[name] = exp.n_views
        recorded[name] = entry.test_row(case, "exact")
    return ZooReconstructions(case, volumes, probabilities, views, next(iter(specs)).voxel_mm, recorded)


def mesh_rows(panels: Sequence[Any], recon: ZooReconstructions, *, level: float = 0.5) -> list[dict]:
    """Rows of the scene's table, one per place of an :func:`angio.mesh.error_grid` of ``recon``.

    Returns
    -------
    list of dict
        ``place``, ``entry`` (the truth's label for its place), ``views``, ``dice`` (measured
        here, against the exact mask) and ``recorded_dice`` (the record's, on the same tree),
        the voxels of each error set (``"true positive"``, ``"false positive"``,
        ``"false negative"``; the truth's voxels under ``"true positive"``) and
        ``triangles`` (per layer, ``"a / b / c"``).

    Raises
    ------
    ValueError
        If a place draws nothing, or a prediction finds no vessel (its true-positive surface
        is empty): every place of the scene must show a reconstruction. (An empty
        false-positive or false-negative surface is a place without that error.)
    """
    rows, empty = [], []
    truth = np.asarray(recon.volumes.exact, dtype=bool)
    for p in panels:
        tri = p.triangles
        if not sum(tri.values()) or (not p.truth and not tri["true positive"]):
            empty.append(f"{p.label} ({', '.join(f'{k}: {n} triangles' for k, n in tri.items())})")
        row = {"place": p.place, "entry": p.label, "triangles": " / ".join(str(n) for n in tri.values())}
        if p.truth:
            row |= {"views": None, "true positive": next(iter(p.voxels.values()))}
        else:
            row |= {"views": recon.views[p.label], **p.voxels,
                    "dice": dice((recon.probabilities[p.label] >= level).astype(np.float32), truth),
                    "recorded_dice": recon.recorded[p.label]["dice"]}
        rows.append(row)
    if empty:
        raise ValueError("empty surfaces in the scene: " + "; ".join(empty))
    return rows
