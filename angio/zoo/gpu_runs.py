"""Learning curves of the recipes trained side by side on a lent GPU (``scripts/train_zoo_gpu.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from angio.errors import InputError
from angio.zoo.entries import ZOO_DIR
from angio.zoo.recipes import RECIPES

__all__ = ["GPU_RUNS", "gpu_runs", "side_by_side"]


#: Records of the recipes trained side by side on a lent GPU (``scripts/train_zoo_gpu.py``).
GPU_RUNS = ZOO_DIR / "gpu_runs"


def gpu_runs(folder: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """The learning curves recorded by GPU sessions, ``{recipe: {"curve", "sessions", "best_epoch", "source"}}``.

    Every ``*.json`` in ``folder`` (default :data:`GPU_RUNS`); a later file's run of the
    same recipe replaces an earlier one.
    """
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(Path(folder or GPU_RUNS).glob("*.json")):
        try:
            runs = json.loads(path.read_text())["runs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not a GPU-run record ({exc})") from exc
        out.update({name: dict(run, source=path.name) for name, run in runs.items()})
    return out


def side_by_side(runs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Recipes that shared the GPU in their first session, compared at equal wall time and equal steps.

    One row per recipe: its views and base channels, the epochs and steps its first session
    reached, the best validation Dice by then, and the validation Dice at the largest step
    count every recipe of the same view count reached (equal data seen).
    """
    rows = []
    for name, run in runs.items():
        first = run["sessions"][0]["epochs_after"]
        curve = [r for r in run["curve"][:first] if r.get("val_dice") is not None]
        recipe = RECIPES.get(name)
        rows.append({"recipe": name, "views": recipe.experiment.n_views if recipe else None,
                     "channels": dict(recipe.experiment.model_kwargs).get("base_channels") if recipe else None,
                     "epochs": first, "steps": run["curve"][first - 1]["global_step"],
                     "wall_s": run["sessions"][0]["wall_s"], "best_dice": max(r["val_dice"] for r in curve),
                     "_curve": curve})
    for row in rows:
        steps = min(r["steps"] for r in rows if r["views"] == row["views"])
        row["equal_steps"] = steps
        row["dice_at_equal_steps"] = max(r["val_dice"] for r in row.pop("_curve") if r["global_step"] <= steps)
    return sorted(rows, key=lambda r: (r["views"] or 0, r["channels"] or 0))
