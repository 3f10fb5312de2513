"""Quality per CPU-hour: zoo recipes trained side by side under one CPU budget.

Each recipe trains from scratch (``angio.zoo.train_recipe`` into a fresh folder) for the same
wall-clock budget on this machine's threads, validating on the recipe's validation trees
after every epoch as its recipe says. The benchmark records, per recipe:

* the learning curve: validation Dice (exact mask, threshold 0.5) against CPU-minutes
  (wall minutes x torch threads) and optimizer steps;
* the best validation Dice reached within each budget mark (``--marks``, minutes);
* training throughput: output voxels per CPU-second over the whole run;
* inference time per case: one validation tree predicted over the recipe's windows.

Only the validation trees are seen; the test trees stay untouched (a design is chosen by this
table, then trained to the end and published). The recipes run one after the other in this
process, never beside each other, so each owns the machine's threads; run nothing heavy beside
the benchmark.

Usage::

    python benchmarks/bench_learning.py --recipes unet-biplane --budget-min 30 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from angio import zoo
from angio.atomic import atomic_write_text
from angio.evaluation import case_inputs, predict_case
from angio.experiment import study_split
from angio.markdown import markdown_table
from angio.records import hardware


def learning_run(name: str, budget_s: float, results_dir: Path, marks_min: tuple[float, ...]) -> dict:
    """Train recipe ``name`` from scratch for ``budget_s`` seconds; its curve, marks, throughput and inference time."""
    threads = torch.get_num_threads()
    started = time.perf_counter()
    trained = zoo.train_recipe(name, results_dir=results_dir, progress=False, time_budget_s=budget_s)
    wall_s = time.perf_counter() - started
    rows = trained.history["epochs"]
    curve = [{"epoch": r["epoch"], "steps": r["global_step"], "cpu_min": r["wall_time_s"] * threads / 60,
              "train_loss": r["train_loss"], "val_dice": r.get("val_dice")} for r in rows]
    marks = {}
    for m in marks_min:
        seen = [c["val_dice"] for c in curve if c["val_dice"] is not None and c["cpu_min"] <= m * threads]
        marks[f"{m:g}"] = max(seen) if seen else None
    voxels = sum(r.get("voxels_per_s", 0.0) * r["time_s"] for r in rows)
    train_s = sum(r["time_s"] for r in rows)
    recipe = zoo.get_recipe(name)
    settings = recipe.run_settings(results_dir)
    _, val, _ = study_split(settings)
    vols = settings.cache().get(val[0], settings.spec, seed=settings.seed)
    x = case_inputs(vols, recipe.experiment.n_views, recipe.experiment.modes, settings)
    t0 = time.perf_counter()
    predict_case(trained.model.eval(), x, settings)
    infer_s = time.perf_counter() - t0
    return {"recipe": name, "threads": threads, "budget_s": budget_s, "wall_s": wall_s, "epochs": len(rows),
            "steps": rows[-1]["global_step"] if rows else 0, "curve": curve, "best_val_dice_by_cpu_min": marks,
            "voxels_per_cpu_s": voxels / (train_s * threads) if train_s else None,
            "inference_s_per_case": infer_s, "inference_case": val[0]}


def table(runs: list[dict]) -> str:
    """The runs as a Markdown table: best validation Dice at each budget mark, throughput, inference."""
    marks = list(runs[0]["best_val_dice_by_cpu_min"]) if runs else []
    head = ["recipe", "epochs", "steps", *[f"Dice by {m} min" for m in marks], "voxels / CPU-s", "inference s"]
    rows = [[r["recipe"], r["epochs"], r["steps"],
             *(f"{v:.3f}" if v is not None else "-" for v in r["best_val_dice_by_cpu_min"].values()),
             f"{r['voxels_per_cpu_s']:.3g}", f"{r['inference_s_per_case']:.1f}"] for r in runs]
    return "\n".join(markdown_table(head, rows))


def main(argv: list[str] | None = None) -> int:
    """Command line: train each ``--recipes`` entry under ``--budget-min``, print the table, write ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=["unet-biplane"], help="zoo recipes to compare")
    parser.add_argument("--budget-min", type=float, default=30.0, help="wall minutes per recipe")
    parser.add_argument("--marks", type=float, nargs="+", default=None,
                        help="budget marks in wall minutes (default: a quarter, half and the whole budget)")
    parser.add_argument("--results", help="run folder (default: a temporary one)")
    parser.add_argument("--json", help="write the runs here")
    args = parser.parse_args(argv)
    marks = tuple(args.marks or (args.budget_min / 4, args.budget_min / 2, args.budget_min))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.results or tmp)
        runs = [learning_run(name, args.budget_min * 60, root / name, marks) for name in args.recipes]
    print(table(runs))
    if args.json:
        out = {"machine": hardware(), "budget_min": args.budget_min, "runs": runs}
        atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
