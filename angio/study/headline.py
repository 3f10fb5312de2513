"""The book's headline: this build's biplane and 3-view results, from the zoo chapter's table.

:func:`headline_markdown` reads ``results/metrics/zoo.json`` (written by chapter 11 from the
shipped weights, on the held-out test trees) and returns a short Markdown section that
:func:`angio.study.build_book` writes next to the intro page, so the numbers on the first
page are the ones this build measured.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from angio import paper

__all__ = ["headline_markdown"]


def headline_markdown(results_dir: str | os.PathLike = "results") -> str:
    """Markdown for the intro page: measured Dice/clDice per shipped model and view count."""
    path = Path(results_dir) / "metrics" / "zoo.json"
    if not path.exists():
        return ("*The headline numbers appear here once chapter 11 (the model zoo) has run: "
                "`angio study run` then `angio study book`.*\n")
    rows = json.loads(path.read_text())["rows"]
    lines = ["| views | model | test trees | Dice | clDice | IoU |", "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r["method"] for r in rows):
        part = [r for r in rows if r["method"] == method and r["target"] == "exact"]
        if not part:
            continue
        mean = {m: float(np.mean([r[m] for r in part])) for m in ("dice", "cldice", "iou")}
        lines.append(f"| {part[0]['views']} | {method} | {len(part)} | {mean['dice']:.3f} | "
                     f"{mean['cldice']:.3f} | {mean['iou']:.3f} |")
    iou2 = paper.TABLE1[2]["iou"]
    return ("Measured in this build on held-out BraVa trees at 0.5 mm voxels, against the exact "
            "vessel mask (chapter 11):\n\n" + "\n".join(lines) + "\n\n"
            f"For scale: the paper reports a biplane IoU of {100 * iou2:.1f}% against its Otsu ground "
            "truth on private CT angiograms (Wu et al., ISVC 2023, Table 1).\n")
