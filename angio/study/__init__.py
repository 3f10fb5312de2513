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
    Metric tables on disk (JSON + CSV under ``results/metrics/``) and their means, and
    :data:`PRESETS`, the column labels and formats of each kind of table the book shows
    (:func:`~angio.study.tables.table`: ``study.table(rows, preset="table1")``).
:mod:`~angio.study.zoo_tables`
    Tables read from the model zoo's records: the paper's Table 1 at the zoo's grid, the
    margin of the study's models over the paper's autoencoder, the records re-measured, and
    :func:`~angio.study.zoo_tables.short_runs` (no result may come from a run shorter than
    its recipe).
:mod:`~angio.study.levers`
    Quality per CPU-hour of the biplane network continued on the CPU, and the levers tried
    for the biplane gap (continued training, mirror averaging, view consistency, the
    continuity prior), from their records.
:mod:`~angio.study.live`
    Chapter 5's short live run beside the zoo entry its recipe trained.
:mod:`~angio.study.prose`
    The figures the book's prose quotes, computed from the zoo's records: glued by the
    chapters, MyST substitutions of the pages of ``book/`` (never typed by hand).
:mod:`~angio.study.meshes`
    Chapter 8's reconstructions of one test tree by the zoo's entries, for the error-coloured
    scene (:func:`angio.mesh.error_grid`).
:mod:`~angio.study.performance`
    Projection timings shared with ``benchmarks/``, and the recorded benchmark results.
:mod:`~angio.study.runner`, :mod:`~angio.study.book`
    Papermill over ``notebooks/`` and the Jupyter Book build (with the chapters' links to the
    model cards: :func:`~angio.study.book.entries_used`).

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
from angio.study.book import build_book, card_links, entries_used, glue_text, label_cards
from angio.study.evaluation import (
    BASELINES,
    CTA_WINDOWS,
    backprojection_thresholds,
    connectivity_by_resolution,
    evaluate_baselines,
    evaluate_experiments,
    evaluate_ground_truth,
    otsu_by_window,
    otsu_shares,
    reconstructions,
    spread_view_counts,
)
from angio.study.ground_truth import check_ground_truth, ground_truth_record_table, read_ground_truth
from angio.study.live import beside_recipe, reference_entry, run_summary
from angio.study.meshes import MESH_ENTRIES, mesh_rows, zoo_reconstructions
from angio.study.performance import best_of, projection_timings, recorded_benchmarks
from angio.study.profiles import PROFILES, VIEW_COUNTS, describe, settings, setup, view_counts, zoo_setup
from angio.study.runner import REPO_ROOT, notebooks, run
from angio.study.tables import (
    METRICS,
    PRESETS,
    ground_truth_summary,
    load_table,
    mean_table,
    save_figure,
    save_table,
    table,
)

__all__ = [
    "table", "BASELINES", "BIPLANE_EXPERIMENTS", "CTA_WINDOWS",
    "otsu_by_window", "SMALL_UNET", "METRICS", "PROFILES", "REPO_ROOT", "VIEW_COUNTS",
    "Experiment", "StudySettings", "Trained",
    "backprojection_thresholds", "best_of", "build_book", "case_inputs", "check_ground_truth",
    "connectivity_by_resolution", "describe", "evaluate_baselines",
    "evaluate_experiments", "evaluate_ground_truth", "evaluate_model", "ground_truth_record_table",
    "ground_truth_summary", "load_table", "read_ground_truth",
    "mean_table", "notebooks", "predict_case", "projection_timings", "reconstructions", "recorded_benchmarks",
    "run", "run_experiment", "save_figure", "save_table", "settings", "setup", "spread_view_counts", "study_split",
    "train_config", "training_dataset", "validation_dataset", "view_counts",
    "PRESETS", "MESH_ENTRIES", "beside_recipe", "card_links", "entries_used", "label_cards", "mesh_rows",
    "reference_entry", "zoo_reconstructions", "zoo_setup", "glue_text", "run_summary", "otsu_shares",
]
