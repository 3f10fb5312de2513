"""The study (the book's layer): profiles, evaluation, metric tables, the notebook runner and the book.

One job per module:

:mod:`~angio.study.profiles`
    Parameter profiles (``cpu``, ``full``, ``tiny``), their view counts, and :func:`setup`,
    the first call of every notebook.
:mod:`~angio.study.evaluation`
    Classical baselines, the Otsu ground truth and the live experiments measured on cases,
    as metric rows.
:mod:`~angio.study.ground_truth`
    The shipped record of Otsu's ground truth against the exact mask at the zoo's 0.5 mm grid.
:mod:`~angio.study.view_consistency`
    The shipped record of view consistency (carve and fill) as a refinement of the default models.
:mod:`~angio.study.tables`
    Metric tables on disk (JSON + CSV under ``results/metrics/``) and their means.
:mod:`~angio.study.zoo_tables`
    Tables read from the model zoo's records: the paper's Table 1 at the zoo's grid, and the
    margin of the study's models over the paper's autoencoder.
:mod:`~angio.study.performance`
    Projection timings shared with ``benchmarks/``, and the recorded benchmark results.
:mod:`~angio.study.runner`, :mod:`~angio.study.book`
    Papermill over ``notebooks/`` and the Jupyter Book build.

The experiment vocabulary (:class:`Experiment`, :class:`StudySettings`, :func:`run_experiment`,
:func:`evaluate_model`) lives below, in :mod:`angio.experiment` and :mod:`angio.evaluation`, and
is re-exported here for the notebooks; no module below the study imports it.

The command line is ``angio study run|book`` (:mod:`angio.cli`); ``python -m angio.study``
runs the same code.
"""

from __future__ import annotations

from angio.evaluation import case_inputs, evaluate_model, predict_case
from angio.experiment import (
    BIPLANE_EXPERIMENTS,
    SMALL_UNET,
    Experiment,
    StudySettings,
    Trained,
    run_experiment,
    study_split,
    train_config,
    training_dataset,
    validation_dataset,
)
from angio.study.book import build_book
from angio.study.evaluation import (
    BASELINES,
    CTA_WINDOWS,
    backprojection_thresholds,
    connectivity_by_resolution,
    evaluate_baselines,
    evaluate_experiments,
    evaluate_ground_truth,
    otsu_by_window,
    reconstructions,
    spread_view_counts,
)
from angio.study.ground_truth import check_ground_truth, ground_truth_record_table, read_ground_truth
from angio.study.performance import best_of, projection_timings, recorded_benchmarks
from angio.study.profiles import PROFILES, VIEW_COUNTS, describe, settings, setup, view_counts
from angio.study.runner import REPO_ROOT, notebooks, run
from angio.study.tables import METRICS, ground_truth_summary, load_table, mean_table, save_figure, save_table

__all__ = [
    "BASELINES", "BIPLANE_EXPERIMENTS", "CTA_WINDOWS",
    "otsu_by_window", "SMALL_UNET", "METRICS", "PROFILES", "REPO_ROOT", "VIEW_COUNTS",
    "Experiment", "StudySettings", "Trained",
    "backprojection_thresholds", "best_of", "build_book", "case_inputs", "check_ground_truth",
    "connectivity_by_resolution", "describe", "evaluate_baselines",
    "evaluate_experiments", "evaluate_ground_truth", "evaluate_model", "ground_truth_record_table",
    "ground_truth_summary", "load_table", "read_ground_truth",
    "mean_table", "notebooks", "predict_case", "projection_timings", "reconstructions", "recorded_benchmarks",
    "run", "run_experiment", "save_figure", "save_table", "settings", "setup", "spread_view_counts", "study_split",
    "train_config", "training_dataset", "validation_dataset", "view_counts",
]
