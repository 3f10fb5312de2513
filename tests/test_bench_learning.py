"""The learning benchmark (benchmarks/bench_learning.py) on a recipe that trains in seconds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_learning.py"


@pytest.fixture()
def bench():
    spec = importlib.util.spec_from_file_location("bench_learning", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_curve_marks_and_table_come_from_the_run(bench, tiny_recipe, tmp_path, capsys):
    out = tmp_path / "learning.json"
    assert bench.main(["--recipes", "tiny", "--budget-min", "0.001", "--marks", "1000",
                       "--results", str(tmp_path / "runs"), "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    (run,) = record["runs"]
    # the budget is shorter than one epoch: fit still runs one, and the curve holds it
    assert run["recipe"] == "tiny" and run["epochs"] == len(run["curve"]) >= 1
    cpu = [c["cpu_min"] for c in run["curve"]]
    assert cpu == sorted(cpu) and cpu[0] > 0
    best = max(c["val_dice"] for c in run["curve"] if c["val_dice"] is not None)
    assert run["best_val_dice_by_cpu_min"]["1000"] == pytest.approx(best)
    assert run["voxels_per_cpu_s"] > 0 and run["inference_s_per_case"] > 0
    assert record["machine"]["threads"] == run["threads"]
    assert "| tiny |" in capsys.readouterr().out
