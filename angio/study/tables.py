"""Metric tables of the study: JSON + CSV files under ``results/metrics/``, and their means.

Every row is one (method, case, target) with the metrics of :func:`angio.metrics.evaluate`;
:func:`mean_table` groups rows and reduces each group with :func:`angio.metrics.summarize`
(the package's one mean/std of metrics over cases).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

import angio
from angio import figures
from angio.atomic import atomic_write, atomic_write_text
from angio.experiment import StudySettings
from angio.metrics import summarize

__all__ = ["METRICS", "Preset", "PRESETS", "table", "save_table", "load_table", "mean_table", "ground_truth_summary",
           "save_figure"]

#: The metrics of :func:`angio.metrics.evaluate`, in table order.
METRICS = ("iou", "dice", "mse", "mae", "accuracy", "cldice")


@dataclass(frozen=True)
class Preset:
    """How the book shows one kind of table: ``{key: header}`` in order, and ``{key: format}``."""

    columns: Mapping[str, str]
    formats: Mapping[str, str] = field(default_factory=dict)


def _beside_paper(metrics: Sequence[tuple[str, str, str]]) -> Preset:
    """Columns ``m``, ``paper_m``, ``diff_m`` per ``(key, header, format)`` (:func:`angio.paper.beside`)."""
    columns, formats = {}, {}
    for m, name, f in metrics:
        columns |= {m: name, f"paper_{m}": f"paper {name}", f"diff_{m}": f"Δ {name}"}
        formats |= {m: f, f"paper_{m}": f, f"diff_{m}": "+" + f}
    return Preset(columns, formats)


#: The windows of :data:`angio.study.evaluation.CTA_WINDOWS` (kept equal by a test).
_CTA_WINDOWS = ("full HU range (no window)", "soft tissue 0..80 HU", "angiography 100..600 HU", "bone 300..1500 HU")

_TABLE1 = _beside_paper([("iou", "IoU", ".1%"), ("mse", "MSE", ".4f"), ("mae", "MAE", ".4f")])
_TABLE2 = _beside_paper([("accuracy", "pixel accuracy", ".2%"), ("iou", "IoU", ".1%"), ("mse", "MSE", ".4f"),
                         ("mae", "MAE", ".4f")])

#: The study's table presets, for :func:`table` (``preset``): the rows of the
#: function named in each comment, shown with these headers and formats.
PRESETS: dict[str, Preset] = {
    # zoo_tables.table1(..., target="otsu"): the paper's Table 1, cell by cell
    "table1": Preset({"label": "setting", "views": "views", "iou": "IoU", "iou_std": "± sd",
                      **{k: v for k, v in _TABLE1.columns.items() if k != "iou"}},
                     {"iou_std": ".1%", **_TABLE1.formats}),
    # zoo_tables.table1(..., target="exact"): the same models against the exact vessel mask
    "table1_exact": Preset({"label": "setting", "views": "views", "iou": "IoU", "dice": "Dice", "cldice": "clDice",
                            "accuracy": "accuracy"},
                           {"iou": ".1%", "dice": ".1%", "cldice": ".1%", "accuracy": ".2%"}),
    # zoo_tables.table2: the paper's Table 2 and our biplane autoencoders
    "table2": Preset({"method": "method", "source": "source", **_TABLE2.columns}, _TABLE2.formats),
    # zoo_tables.training_rows: how long each entry trained
    "training": Preset({"entry": "entry", "setting": "setting", "views": "views", "epochs": "epochs run",
                        "selected": "shipped epoch", "start": "started from", "stopped": "stopped by",
                        "steps": "steps", "hours": "training h", "hardware": "trained on"},
                       {"hours": ".2f"}),
    # zoo_tables.session_rows: each training session
    "sessions": Preset({"entry": "entry", "session": "session", "machine": "machine", "epochs": "epochs",
                        "minutes": "minutes", "val_iou_end": "val. IoU at its end",
                        "val_iou_best": "best val. IoU in it"},
                       {"minutes": ".0f", "val_iou_end": ".3f", "val_iou_best": ".3f"}),
    # zoo_tables.stopping_rows: how each run ended, and the current rule replayed
    "stopping": Preset({"entry": "entry", "epochs": "epochs run", "selected": "shipped epoch",
                        "selected_value": "its val. IoU", "stopped": "stopped by",
                        "first_val_loss": "val. loss, epoch 1", "final_val_loss": "val. loss, last",
                        "best_loss_epoch": "lowest at epoch", "now_selected": "current rule: epoch",
                        "now_stopped_after": "current rule: stops after"},
                       {"selected_value": ".3f", "first_val_loss": ".3f", "final_val_loss": ".3f"}),
    # zoo_tables.check_rows: records re-measured on one test tree
    "check": Preset({"entry": "entry", "case": "test tree", "recorded": "IoU (record)", "measured": "IoU (this run)",
                     "diff": "max |Δ| (IoU, Dice, clDice)"},
                    {"recorded": ".4f", "measured": ".4f", "diff": ".1e"}),
    # zoo_tables.iou_margin: the study's models over the paper's autoencoder
    "margin": Preset({"views": "views", "model": "model", "model_iou": "IoU", "baseline": "paper's autoencoder",
                      "baseline_iou": "its IoU", "margin": "margin"},
                     {"model_iou": ".3f", "baseline_iou": ".3f", "margin": "+.3f"}),
    # zoo_tables.model_rows (+ baselines): models side by side, mean ± sd over the test trees
    "models": Preset({"method": "method", "input": "input", "cases": "trees", "dice": "Dice", "dice_std": "± sd",
                      "cldice": "clDice", "iou": "IoU", "accuracy": "accuracy"},
                     {"dice": ".3f", "dice_std": ".3f", "cldice": ".3f", "iou": ".3f", "accuracy": ".4f"}),
    # angio.study.meshes.mesh_rows: the panels of a scene of reconstructions
    "meshes": Preset({"place": "place in the scene", "entry": "entry", "views": "views", "dice": "Dice",
                      "recorded_dice": "Dice (record)", "true positive": "true positive voxels",
                      "false positive": "false positive voxels", "false negative": "missed voxels",
                      "triangles": "triangles"},
                     {"dice": ".3f", "recorded_dice": ".3f"}),
    # angio.study.evaluation.otsu_shares: what Otsu's threshold of the CTA marks, per window
    "otsu_windows": Preset({"case": "tree", "split": "split", **{w: w for w in _CTA_WINDOWS}},
                           {w: ".1%" for w in _CTA_WINDOWS}),
    # angio.study.live.beside_recipe: a short live run beside the recipe's full run
    "live_vs_zoo": Preset({"run": "run", "grid": "grid", "steps": "optimizer steps", "minutes": "minutes",
                           "dice_otsu": "Dice vs Otsu", "iou_otsu": "IoU vs Otsu", "dice_exact": "Dice vs exact"},
                          {"minutes": ".1f", "dice_otsu": ".3f", "iou_otsu": ".3f", "dice_exact": ".3f"}),
}


def table(rows: Sequence[Mapping], columns: Mapping[str, str] | None = None, *, preset: str | None = None,
          formats: Mapping[str, str] | None = None, caption: str = "", entries: Sequence[str] = ()):
    """An HTML table of ``rows``, with a preset's headers and formats (:func:`angio.figures.table`).

    Parameters
    ----------
    rows : sequence of mapping
        Table rows.
    columns : mapping of str to str, optional
        ``{key: header}`` in display order (default: the preset's).
    preset : str, optional
        A key of :data:`PRESETS` (``"table1"``, ``"table2"``, ``"training"``...).
    formats : mapping of str to str, optional
        ``{key: format spec}``, added to the preset's.
    caption : str
        Table caption.
    entries : sequence of str
        The zoo entries the rows come from, which marks the table as a result of the study
        (see :func:`angio.figures.table`).

    Raises
    ------
    ValueError
        An unknown preset, or neither a preset nor columns.
    """
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown table preset {preset!r}; presets: {', '.join(sorted(PRESETS))}")
        columns = dict(PRESETS[preset].columns) if columns is None else columns
        formats = {**PRESETS[preset].formats, **(formats or {})}
    if columns is None:
        raise ValueError("table needs columns or a preset")
    return figures.table(rows, columns, formats=formats, caption=caption, entries=entries)


def save_table(rows: list[dict], name: str, settings: StudySettings) -> Path:
    """Write rows to ``results/metrics/<name>.json`` and ``.csv`` (atomically); JSON path.

    The CSV has a column for every key of any row (in order of first appearance); a row
    without a key leaves its cell empty.
    """
    folder = settings.results / "metrics"
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    meta = {"angio_version": angio.__version__, "settings": asdict(settings)}
    for suffix, text in ((".csv", buf.getvalue()),
                         (".json", json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))):
        atomic_write_text(folder / f"{name}{suffix}", text)
    return folder / f"{name}.json"


def save_figure(fig, name: str, settings: StudySettings, *, dpi: int = 110) -> Path:
    """Write a matplotlib figure to ``results/figures/<name>.png`` (atomically); its path."""
    path = settings.results / "figures" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))
    return path


def load_table(name: str, settings: StudySettings) -> list[dict]:
    """Rows saved by :func:`save_table`."""
    return json.loads((settings.results / "metrics" / f"{name}.json").read_text())["rows"]


def mean_table(rows: list[dict], *, by: Sequence[str] = ("method", "views", "target"),
               metrics: Sequence[str] = METRICS) -> list[dict]:
    """Mean (and std) of each metric over cases, grouped by ``by`` (order of first appearance).

    Returns
    -------
    list of dict
        One row per group: the ``by`` fields, ``cases`` (rows in the group), and for each
        metric ``m`` its mean ``m`` and population standard deviation ``m_std``.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by), []).append(r)
    out = []
    for key, members in groups.items():
        summary = summarize([{m: r[m] for m in metrics} for r in members])
        row = dict(zip(by, key))
        row["cases"] = len(members)
        for m in metrics:
            row[m] = summary[m]["mean"]
            row[f"{m}_std"] = summary[m]["std"]
        out.append(row)
    return out


def ground_truth_summary(rows: list[dict]) -> list[dict]:
    """:func:`mean_table` of :func:`angio.study.evaluate_ground_truth` rows per modality.

    Each row also has ``ratio``: the mean over cases of Otsu voxels / exact-mask voxels.
    """
    summary = mean_table(rows, by=("modality",))
    for s in summary:
        s["ratio"] = float(np.mean([r["otsu_voxels"] / max(r["exact_voxels"], 1)
                                    for r in rows if r["modality"] == s["modality"]]))
    return summary
