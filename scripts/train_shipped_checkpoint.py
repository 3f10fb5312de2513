"""Train (or reuse from the CPU study) the biplane model shipped with the package.

    .venv/bin/python scripts/train_shipped_checkpoint.py [--model unet --modes sum min]

It runs the experiment exactly as the study's `cpu` profile does (same settings, so a finished
`make study` is reused instead of retrained), evaluates it on the held-out test cases, and
writes a slim inference checkpoint (the epoch with the lowest validation loss) plus a JSON
record of how it was made to `angio/_data/checkpoints/`. `angio reconstruct` uses it when no --checkpoint is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import torch

import angio
from angio import experiments, study
from angio.train.checkpoint import export_checkpoint

OUT = Path(__file__).resolve().parent.parent / "angio" / "_data" / "checkpoints"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="unet", choices=["dae", "unet"])
    ap.add_argument("--modes", nargs="+", default=["sum", "min"])
    ap.add_argument("--results", default="results")
    ap.add_argument("--name", default="biplane_cpu")
    args = ap.parse_args(argv)
    settings = study.settings("cpu", results_dir=args.results)
    exp = experiments.Experiment(args.model, 2, tuple(args.modes))
    trained = experiments.run_experiment(exp, settings)
    _, _, test = experiments.study_split(settings)
    rows, _ = experiments.evaluate_model(trained, settings, test)
    OUT.mkdir(parents=True, exist_ok=True)
    export_checkpoint(trained.checkpoint, OUT / f"{args.name}.pt")
    record = {
        "checkpoint": f"{args.name}.pt", "experiment": asdict(exp), "label": exp.label,
        "settings": asdict(settings) | {"results_dir": None}, "run": trained.run_dir.name,
        "epochs": len(trained.history["epochs"]), "selected_epoch": trained.epoch,
        "history": trained.history["epochs"],
        "test_cases": test, "test_metrics_mean": experiments.mean_table(rows, by=("target",)),
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, torch {torch.__version__}", "angio_version": angio.__version__,
    }
    (OUT / f"{args.name}.json").write_text(json.dumps(record, indent=1, default=str))
    print(json.dumps(record["test_metrics_mean"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
