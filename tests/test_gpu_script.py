"""scripts/train_zoo_gpu.py end to end on the CPU: a smoke run packs one bundle that unpacks into a run."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "train_zoo_gpu.py"


@pytest.mark.slow
def test_smoke_run_packs_one_bundle_that_unpacks_into_a_resumable_layout(tmp_path):
    out, gpu_results, cpu_results = tmp_path / "out", tmp_path / "gpu-results", tmp_path / "cpu-results"
    run = subprocess.run([sys.executable, str(SCRIPT), "unet-biplane", "--smoke", "--out", str(out),
                          "--results", str(gpu_results), "--workers", "1", "--deadline-s", "300"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["zoo-runs.tgz"]  # one file comes back from a lent GPU
    with tarfile.open(out / "zoo-runs.tgz") as tar:
        assert tar.getnames() == ["unet-biplane.tgz"]
    stale = cpu_results / "zoo" / "unet-biplane" / "last.pt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an earlier run's state")
    run = subprocess.run([sys.executable, str(SCRIPT), "--unpack", str(out / "zoo-runs.tgz"),
                          "--results", str(cpu_results)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    folder = cpu_results / "zoo" / "unet-biplane"
    assert {"best.pt", "history.json", "log.csv", "sessions.json", "train.log"} <= {p.name for p in folder.iterdir()}
    assert not stale.exists()  # the packed weights do not continue it
    history = json.loads((folder / "history.json").read_text())
    assert len(history["epochs"]) == 3 and history["best_epoch"] in range(3)


def test_unpack_refuses_a_bundle_of_something_else(tmp_path):
    bundle = tmp_path / "zoo-runs.tgz"
    (tmp_path / "notes.txt").write_text("not a run")
    with tarfile.open(bundle, "w") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    run = subprocess.run([sys.executable, str(SCRIPT), "--unpack", str(bundle), "--results", str(tmp_path / "r")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "notes.txt" in run.stderr and "not a packed run" in run.stderr
