"""Metric tables of the study: JSON + CSV files under ``results/metrics/``, and their means.

Every row is one (method, case, target) with the metrics of :func:`angio.metrics.evaluate`;
:func:`mean_table` groups rows and reduces each group with :func:`angio.metrics.summarize`
(the package's one mean/std of metrics over cases).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

import angio
from angio.atomic import atomic_write_text
from angio.metrics import summarize
from angio.study.experiments import StudySettings

__all__ = ["METRICS", "save_table", "load_table", "mean_table", "ground_truth_summary", "save_figure"]

#: The metrics of :func:`angio.metrics.evaluate`, in table order.
METRICS = ("iou", "dice", "mse", "mae", "accuracy", "cldice")


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
    from angio.atomic import atomic_write

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
