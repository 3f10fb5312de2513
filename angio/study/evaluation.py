"""Evaluation of the study: models and classical baselines on held-out cases, as metric rows.

Every function returns rows (one dict per case and target, with the metrics of
:func:`angio.metrics.evaluate`) that :mod:`angio.study.tables` saves and averages; the
notebooks only choose what to evaluate and display the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np

from angio.evaluation import case_inputs, evaluate_model, predict_case
from angio.experiment import Experiment, StudySettings, run_experiment
from angio.mesh import Panel
from angio.metrics import connectivity, evaluate, iou
from angio.phantom import PRESETS
from angio.pipeline import MASK_KINDS, CaseVolumes, network_input
from angio.segment import otsu_mask

__all__ = ["BASELINES", "CTA_WINDOWS", "otsu_by_window", "evaluate_baselines", "evaluate_experiments",
           "connectivity_by_resolution", "backprojection_thresholds", "evaluate_ground_truth", "spread_view_counts",
           "reconstructions", "otsu_shares"]

BASELINES = {"otsu_sum": "Otsu on the sum back-projection", "otsu_min": "Otsu on the min back-projection"}


def evaluate_baselines(settings: StudySettings, n_views: int, cases: Iterable[str], *,
                       targets: Sequence[str] = MASK_KINDS) -> list[dict]:
    """Classical baselines with no learning: Otsu on the sum and on the min back-projection."""
    cache = settings.cache()
    rows = []
    for case in cases:
        vols = cache.get(case, settings.spec, seed=settings.seed)
        x = case_inputs(vols, n_views, ("sum", "min"), settings)
        for name, channel in zip(BASELINES, x):
            pred = otsu_mask(channel).astype(np.float32)
            for t in targets:
                rows.append({"method": BASELINES[name], "experiment": name, "views": n_views,
                             "case": case, "target": t, **evaluate(pred, vols.target(t))})
    return rows


def evaluate_experiments(experiments: Iterable[Experiment], settings: StudySettings, cases: Sequence[str], *,
                         force: bool = False, progress: bool = True) -> list[dict]:
    """Train (or reuse, :func:`~angio.study.run_experiment`) each experiment and evaluate it on ``cases``.

    Returns the rows of :func:`evaluate_model` of every experiment, in order.
    """
    rows = []
    for exp in experiments:
        trained = run_experiment(exp, settings, force=force, progress=progress)
        rows += evaluate_model(trained, settings, cases)[0]
    return rows


def backprojection_thresholds(inputs: Mapping[int, np.ndarray], mask: np.ndarray) -> list[dict]:
    """How much of each back-projection is vessel: Otsu's threshold of it against ``mask``.

    Parameters
    ----------
    inputs : mapping of int to ndarray
        ``{views: (2, N, N, N)}`` network inputs with the ``("sum", "min")`` channels.
    mask : ndarray of bool, shape (N, N, N)
        The reference (exact) vessel mask.

    Returns
    -------
    list of dict
        Per view count: ``views``, ``iou_sum`` and ``iou_min`` (IoU of Otsu's mask of each
        channel with ``mask``) and ``kept_min`` (fraction of voxels above 0.5 in the min).
    """
    rows = []
    for n, (s, m) in inputs.items():
        rows.append({"views": n,
                     "iou_sum": iou(otsu_mask(s).astype(float), mask),
                     "iou_min": iou(otsu_mask(m).astype(float), mask),
                     "kept_min": float((m > 0.5).mean())})
    return rows


def evaluate_ground_truth(settings: StudySettings, cases: Sequence[str], *,
                          modalities: Iterable[str] = PRESETS) -> tuple[list[dict], dict[str, CaseVolumes]]:
    """The paper's Otsu ground truth against the exact mask, per modality preset and case.

    Returns
    -------
    rows : list of dict
        ``modality``, ``case``, ``target`` (``"otsu"``), the metrics of Otsu's mask against
        the exact one, ``otsu_voxels`` and ``exact_voxels``.
    examples : dict
        ``{modality: volumes of its first case}`` (for figures).
    """
    cache = settings.cache()
    rows, examples = [], {}
    for modality in modalities:
        spec = replace(settings.spec, modality=modality)
        for case in cases:
            v = cache.get(case, spec, seed=settings.seed)
            rows.append({"modality": modality, "case": case, "target": "otsu",
                         **evaluate(v.otsu.astype(np.float32), v.exact),
                         "otsu_voxels": int(v.otsu.sum()), "exact_voxels": int(v.exact.sum())})
            examples.setdefault(modality, v)
    return rows, examples


def spread_view_counts(counts: Sequence[int]) -> list[int]:
    """The most, the middle and the fewest of ``counts`` (as given, sorted), most first, without repeats."""
    return sorted({counts[0], counts[len(counts) // 2], counts[-1]}, reverse=True)


def reconstructions(settings: StudySettings, case: str, view_counts: Iterable[int], *, force: bool = False,
                    progress: bool = True) -> list[Panel]:
    """The Otsu ground truth of ``case`` and the autoencoder's reconstruction from each view count.

    Returns
    -------
    list of angio.mesh.Panel
        ``ground_truth`` first (label ``"ground truth (Otsu)"``), then ``<n>_views`` (label
        ``"<n> views"``) per view count, in the order given; volumes ``(N, N, N)`` float32.
    """
    vols = settings.cache().get(case, settings.spec, seed=settings.seed)
    panels = [Panel("ground_truth", "ground truth (Otsu)", vols.otsu.astype(np.float32))]
    for n in view_counts:
        trained = run_experiment(Experiment("dae", n), settings, force=force, progress=progress)
        prob = predict_case(trained.model, network_input(vols.unit_intensity(), n), settings)
        panels.append(Panel(f"{n}_views", f"{n} views", prob))
    return panels


def connectivity_by_resolution(cases: Sequence[str], sizes: Sequence[int], settings: StudySettings) -> list[dict]:
    """Pieces and largest share of each case's exact mask on grids of ``sizes`` voxels.

    The field of view, centring and modality are those of ``settings.spec``; each row has
    ``case``, ``size``, ``voxel_mm``, ``pieces`` and ``largest`` (:func:`angio.metrics.connectivity`).
    """
    cache = settings.cache()
    rows = []
    for size in sizes:
        spec = replace(settings.spec, size=int(size))
        for case in cases:
            vols = cache.get(case, spec, seed=settings.seed)
            rows.append({"case": case, "size": int(size), "voxel_mm": spec.voxel_mm, **connectivity(vols.exact)})
    return rows


#: Intensity windows (HU) before Otsu's threshold on a CT angiogram; ``None``: the raw volume.
#: The paper does not say which (if any) it used.
CTA_WINDOWS: dict[str, tuple[float, float] | None] = {
    "full HU range (no window)": None,
    "soft tissue 0..80 HU": (0.0, 80.0),
    "angiography 100..600 HU": (100.0, 600.0),
    "bone 300..1500 HU": (300.0, 1500.0),
}


def otsu_by_window(settings: StudySettings, cases: Sequence[str], *,
                   windows: Mapping[str, tuple[float, float] | None] = CTA_WINDOWS
                   ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Otsu's mask of a CTA (skull included) after each intensity window, against the exact mask.

    The paper's ground truth is Otsu's threshold of the original CT; on a head CT with its
    full HU range Otsu separates air from the head. Each window clips the CTA before the
    threshold.

    Returns
    -------
    rows : list of dict
        ``window``, ``case``, the metrics of :func:`angio.metrics.evaluate` against the exact
        mask, ``otsu_voxels``, ``exact_voxels`` and ``vessel_share`` (the share of Otsu's voxels
        that are vessel voxels).
    examples : dict
        ``{window: Otsu mask of the first case}`` (for figures).
    """
    cache = settings.cache()
    spec = replace(settings.spec, modality="cta")
    rows, examples = [], {}
    for case in cases:
        v = cache.get(case, spec, seed=settings.seed)
        for name, window in windows.items():
            img = v.intensity if window is None else np.clip(v.intensity, *window)
            mask = otsu_mask(img)
            rows.append({"window": name, "case": case, **evaluate(mask.astype(np.float32), v.exact),
                         "otsu_voxels": int(mask.sum()), "exact_voxels": int(v.exact.sum()),
                         "vessel_share": float((mask & v.exact).sum() / max(int(mask.sum()), 1))})
            examples.setdefault(name, mask)
    return rows, examples


def otsu_shares(settings: StudySettings, splits: Mapping[str, Sequence[str]], *,
                windows: Mapping[str, tuple[float, float] | None] = CTA_WINDOWS) -> list[dict]:
    """Share of the field that Otsu's threshold of the CTA marks, per tree and intensity window.

    Parameters
    ----------
    settings : StudySettings
        The grid (its spec's modality is replaced by ``"cta"``).
    splits : mapping of str to sequence of str
        ``{split name: trees}``, e.g. ``{"validation": [...], "test": [...]}``.
    windows : mapping
        As :data:`CTA_WINDOWS`.

    Returns
    -------
    list of dict
        One row per tree: ``case``, ``split`` and, per window name, the share of the field's
        voxels in Otsu's mask (see :func:`otsu_by_window`).
    """
    cases = [c for trees in splits.values() for c in trees]
    rows, _ = otsu_by_window(settings, cases, windows=windows)
    n = settings.spec.size ** 3
    share = {(r["case"], r["window"]): r["otsu_voxels"] / n for r in rows}
    return [{"case": c, "split": split, **{w: share[c, w] for w in windows}}
            for split, trees in splits.items() for c in trees]
