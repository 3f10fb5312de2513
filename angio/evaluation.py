"""A trained model on cases: its inputs, its predictions and its metric rows.

The one place where a network meets held-out cases: :func:`case_inputs` builds a case's
network inputs as the settings' acquisition would, :func:`predict_case` applies a model over
Gaussian-blended windows, and :func:`evaluate_model` scores the predictions against each
ground truth. The study's chapters and the zoo's records both measure through these.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

from angio.acquisition import GEOMETRIES, acquired_inputs
from angio.device import resolve_device
from angio.experiment import StudySettings, Trained
from angio.inference import predict_volume
from angio.metrics import evaluate
from angio.pipeline import MASK_KINDS, CaseVolumes

__all__ = ["case_inputs", "evaluate_model", "predict_case"]


def predict_case(model: torch.nn.Module, inputs: np.ndarray, settings: StudySettings, *,
                 mirror: bool = False) -> np.ndarray:
    """Vessel probabilities ``(N, N, N)`` for network inputs ``(C, N, N, N)``.

    ``mirror``: average with the mirrored prediction (see :func:`angio.inference.predict_volume`).
    """
    device = resolve_device(settings.device)
    return predict_volume(model, inputs, patch_size=settings.inference_patch, device=device, mirror=mirror)


def case_inputs(vols: CaseVolumes, n_views: int, modes: tuple[str, ...], settings: StudySettings) -> np.ndarray:
    """Network inputs ``(len(modes), N, N, N)`` of a case acquired with the settings' geometry."""
    return acquired_inputs(vols, n_views, modes, GEOMETRIES[settings.geometry], seed=settings.seed)


def evaluate_model(trained: Trained, settings: StudySettings, cases: Iterable[str], *,
                   targets: Sequence[str] | None = None, keep: bool = False) -> tuple[list[dict], dict]:
    """Metrics of a trained model on cases (unaugmented), against each ground truth.

    ``targets`` defaults to :data:`angio.pipeline.MASK_KINDS` plus the model's own training
    target where that is another one (``"otsu_window"``).

    Returns
    -------
    rows : list of dict
        One row per (case, target): ``method``, ``views``, ``case``, ``target`` and the six
        metrics of :func:`angio.metrics.evaluate`.
    predictions : dict
        ``{case: probability volume}`` when ``keep`` is true, else empty.
    """
    exp = trained.experiment
    if targets is None:
        targets = MASK_KINDS + ((exp.target,) if exp.target not in MASK_KINDS else ())
    cache = settings.cache()
    rows, kept = [], {}
    for case in cases:
        vols = cache.get(case, settings.spec, seed=settings.seed)
        prob = predict_case(trained.model, case_inputs(vols, exp.n_views, exp.modes, settings), settings)
        for t in targets:
            rows.append({"method": exp.label, "experiment": exp.name, "views": exp.n_views,
                         "case": case, "target": t, **evaluate(prob, vols.target(t))})
        if keep:
            kept[case] = prob
    return rows, kept
