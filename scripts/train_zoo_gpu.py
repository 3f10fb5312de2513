"""Train zoo recipes side by side on one GPU inside a fixed wall-clock budget, and pack the runs.

The prepared script for a lent GPU machine (issue #8: "use a GPU when one is available: one
prepared script that trains and records"). It

1. builds the volume cache of every training and validation case of the recipes once, in a
   process pool (the CPU work all recipes share);
2. starts one process per recipe (:func:`angio.zoo.train_recipe` with ``time_budget_s``), so
   several small 3D networks share the GPU; each builds its inputs on the GPU, keeps them in
   memory and stops starting epochs before the common deadline;
3. packs each run (selected weights as a slim float16 checkpoint, ``history.json``,
   ``log.csv``, ``sessions.json``, the process's log) into ``<name>.tgz``, and all of them
   into one file, ``OUT/zoo-runs.tgz`` (a lent machine returns only a few files: a session
   that packed fourteen runs one file each got eight of them back).

``INPUT_DEVICE=cuda`` (or ``cpu``) skips the check that compares the GPU's network inputs
with the CPU's and builds them there (the check costs about a minute of the lease).

Back on a CPU machine, ``--unpack zoo-runs.tgz`` puts each run into ``results/zoo/<name>/``;
publish with
``angio.zoo.publish(name)``: the test metrics of the record are computed there, with the
shipped weights, so ``check_entry`` reproduces them on the CPU.

Usage::

    python scripts/train_zoo_gpu.py unet-biplane unet-3view --deadline-s 480 --out "$OUT"
    python scripts/train_zoo_gpu.py unet-biplane --smoke --out /tmp/smoke   # tiny, CPU
    python scripts/train_zoo_gpu.py paper-dae-90v --continue-shipped --deadline-s 480  # more epochs
    python scripts/train_zoo_gpu.py --unpack gpu-out/zoo-runs.tgz            # back on the CPU
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path

STARTED = time.monotonic()


def _smoke_recipes(names: list[str]) -> None:
    """Shrink the named recipes in place to a seconds-long CPU run (for trying the script)."""
    from angio import zoo
    from angio.pipeline import VolumeSpec

    for name in names:
        r = zoo.RECIPES[name]
        spec = VolumeSpec(size=64, fov_mm=96.0, center="major", modality=r.settings.spec.modality)
        settings = replace(r.settings, spec=spec, patch_size=32,
                           inference_patch=32, batch_size=2, samples_per_volume=2, variants=1,
                           max_train_cases=3, epochs=3, device="cpu", num_workers=1)
        zoo.RECIPES[name] = replace(r, settings=settings, init_from=None)


def _pairs(names: list[str], results_dir: str) -> list[tuple[str, str, int]]:
    """Every ``(recipe, case, variant)`` the named recipes' training and validation sets draw.

    One recipe stands for all recipes on the same grid (volume spec and seed), so each
    volume is listed once.
    """
    from angio import zoo
    from angio.study import study_split, training_dataset, validation_dataset

    pairs: dict[tuple, tuple[str, str, int]] = {}
    for name in names:
        recipe = zoo.RECIPES[name]
        settings = replace(recipe.run_settings(results_dir), resident=False)  # list the pairs, load nothing
        train, val, _ = study_split(settings)
        for data in (training_dataset(recipe.experiment, settings, train),
                     validation_dataset(recipe.experiment, settings, val)):
            for case, variant in data.pairs():
                pairs.setdefault((settings.spec, settings.seed, case, variant), (name, case, variant))
    return sorted(pairs.values())


def _build(job: tuple[str, str, bool, str, int]) -> str:
    name, results_dir, smoke, case, variant = job
    if smoke:
        _smoke_recipes([name])
    from angio import zoo

    settings = zoo.RECIPES[name].run_settings(results_dir)
    settings.cache().get(case, settings.spec, variant=variant, seed=settings.seed)
    return case


def warm_cache(names: list[str], results_dir: str, smoke: bool, workers: int) -> int:
    """Build every needed volume once, in a process pool (recipes on one grid share them)."""
    pairs = _pairs(names, results_dir)
    jobs = [(name, results_dir, smoke, c, v) for name, c, v in pairs]
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        for _ in pool.map(_build, jobs, chunksize=2):
            pass
    return len(pairs)


def projection_check(name: str, results_dir: str) -> str:
    """Compare the network input of one case on the training device with the CPU's.

    Returns the device the children should build their inputs on: the training device when
    it agrees with the CPU (max difference printed), else ``"cpu"``.
    """
    import traceback

    import numpy as np
    import torch

    from angio import zoo
    from angio.device import resolve_device
    from angio.pipeline import network_input

    recipe = zoo.RECIPES[name]
    settings = recipe.run_settings(results_dir)
    device = resolve_device(settings.device)
    if device.type == "cpu":
        return "cpu"
    vols = settings.cache().get(zoo.study_split(settings)[1][0], settings.spec, seed=settings.seed)
    try:
        t = time.perf_counter()
        on_device = network_input(vols.unit_intensity(), 2, modes=("sum", "min"), device=device)
        torch.cuda.synchronize()
        t_dev = time.perf_counter() - t
        t = time.perf_counter()
        on_cpu = network_input(vols.unit_intensity(), 2, modes=("sum", "min"), device="cpu")
        t_cpu = time.perf_counter() - t
        diff = float(np.abs(on_device - on_cpu).max())
        print(f"projection check: {device} vs cpu max |diff| {diff:.2e}; {t_dev:.2f} s vs {t_cpu:.2f} s "
              f"({torch.get_num_threads()} threads)", flush=True)
        return str(device) if diff < 1e-4 else "cpu"
    except Exception:  # noqa: BLE001 - report and fall back: the run must not be lost to it
        traceback.print_exc()
        print("projection check failed: inputs are built on the CPU", flush=True)
        return "cpu"


def child(name: str, results_dir: str, deadline: float, smoke: bool) -> None:
    """Train one recipe until the deadline (``time.time()`` seconds) or its patience runs out."""
    if smoke:
        _smoke_recipes([name])
    from functools import partialmethod

    import torch

    from angio import zoo
    from angio.dataset import VesselDataset

    VesselDataset.preload = partialmethod(VesselDataset.preload, device=os.environ.get("INPUT_DEVICE", "auto"))

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    def report(epoch: int, model, row: dict) -> None:
        print(f"[{name}] epoch {epoch} step {row['global_step']} loss {row['train_loss']:.4f} "
              f"val_dice {row.get('val_dice')} {row['time_s']:.1f}s", flush=True)

    budget = deadline - time.time()
    print(f"[{name}] budget {budget:.0f} s on {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu'}",
          flush=True)
    try:
        zoo.train_recipe(name, results_dir=results_dir, progress=False, time_budget_s=budget,
                         on_epoch_end=report)
    finally:
        print(f"[{name}] packed {pack(name, results_dir, Path(os.environ['PACK_DIR']))}", flush=True)


def pack(name: str, results_dir: str, out: Path) -> Path:
    """``out/<name>.tgz``: the selected epoch's weights (slim, float16) and the run's records."""
    from angio.train import export_checkpoint

    run = Path(results_dir) / "zoo" / name
    chosen = run / "best.pt" if (run / "best.pt").exists() else run / "last.pt"
    files = []
    if chosen.exists():
        slim = run / "best-slim.pt"
        export_checkpoint(chosen, slim, half=True)
        files.append((slim, "best.pt"))
    for extra in ("history.json", "log.csv", "sessions.json", "init.json", "train.log"):
        if (run / extra).exists():
            files.append((run / extra, extra))
    dst = out / f"{name}.tgz"
    with tarfile.open(dst, "w:gz") as tar:
        for path, arcname in files:
            tar.add(path, arcname=arcname)
    return dst


def unpack(bundle: Path, results_dir: str) -> list[str]:
    """Unpack ``zoo-runs.tgz`` into ``results_dir/zoo/<name>/``; the names unpacked.

    A run folder that already exists gets the packed files in place of its own; its
    ``last.pt`` (an earlier state the packed weights do not continue) is removed, so
    :func:`angio.zoo.reopen_run` rebuilds one from the packed weights when the run
    should go on.
    """
    names = []
    with tarfile.open(bundle) as outer:
        for member in outer.getmembers():
            if not (member.isfile() and member.name.endswith(".tgz") and "/" not in member.name):
                raise SystemExit(f"{bundle}: unexpected member {member.name!r} (not a packed run)")
            name = member.name[:-4]
            run = Path(results_dir) / "zoo" / name
            run.mkdir(parents=True, exist_ok=True)
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                inner.extractall(run, filter="data")
            (run / "last.pt").unlink(missing_ok=True)
            names.append(name)
    return names


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="zoo recipes to train side by side")
    ap.add_argument("--unpack", metavar="BUNDLE", help="unpack a zoo-runs.tgz into the results folder and stop")
    ap.add_argument("--deadline-s", type=float, default=480.0,
                    help="seconds from the script's start by which every training stops")
    ap.add_argument("--out", default=os.environ.get("OUT", "gpu-out"), help="folder for the packed runs")
    ap.add_argument("--results", default="results", help="results folder (runs and volume cache)")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)),
                    help="processes that build volumes (default: the CPUs this process may use)")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU-sized recipes, to try the script")
    ap.add_argument("--continue-shipped", action="store_true",
                    help="continue each recipe's shipped entry where no run of it is under --results "
                    "(angio.zoo.continuable_run)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.results, args.deadline, args.smoke)
        return 0
    if args.unpack:
        for name in unpack(Path(args.unpack), args.results):
            print(f"unpacked {name} into {Path(args.results) / 'zoo' / name}")
        return 0
    if not args.names:
        ap.error("name at least one recipe")
    if args.smoke:
        _smoke_recipes(args.names)
    from angio import zoo

    unknown = [n for n in args.names if n not in zoo.RECIPES]
    if unknown:
        ap.error(f"unknown recipes {unknown}; available: {', '.join(sorted(zoo.RECIPES))}")
    if args.continue_shipped:
        for name in args.names:
            print(f"continuing {zoo.continuable_run(name, results_dir=args.results)}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    packs = Path(args.results) / "packs"
    packs.mkdir(parents=True, exist_ok=True)
    deadline = time.time() - (time.monotonic() - STARTED) + args.deadline_s
    t = time.monotonic()
    n = warm_cache(args.names, args.results, args.smoke, args.workers)
    print(f"cache: {n} volumes in {time.monotonic() - t:.0f} s", flush=True)
    env = dict(os.environ, PACK_DIR=str(packs.resolve()),
               INPUT_DEVICE=os.environ.get("INPUT_DEVICE") or projection_check(args.names[0], args.results))
    procs = {}
    for name in args.names:
        run = Path(args.results) / "zoo" / name
        run.mkdir(parents=True, exist_ok=True)
        log = open(run / "train.log", "a")  # noqa: SIM115 - closed below
        cmd = [sys.executable, __file__, name, "--child", name, "--deadline", str(deadline),
               "--results", args.results] + (["--smoke"] if args.smoke else [])
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
    codes = {}
    for name, (proc, log) in procs.items():
        codes[name] = proc.wait()
        log.close()
    summary = {}
    for name in args.names:
        run = Path(args.results) / "zoo" / name
        tail = (run / "train.log").read_text(errors="replace").splitlines()[-6:]
        print(f"--- {name}: exit {codes[name]}\n" + "\n".join(tail), flush=True)
        try:
            history = json.loads((run / "history.json").read_text())
            rows = history["epochs"]
            best = history.get("best_epoch")
            summary[name] = {"epochs": len(rows), "steps": rows[-1]["global_step"], "best_epoch": best,
                             "val_dice_at_best": next((r["val_dice"] for r in rows if r["epoch"] == best), None),
                             "train_s": rows[-1]["wall_time_s"]}
        except (OSError, ValueError, KeyError, IndexError):
            summary[name] = None
        if not (packs / f"{name}.tgz").exists():
            pack(name, args.results, packs)
    bundle = out / "zoo-runs.tgz"
    with tarfile.open(bundle, "w") as tar:  # the parts are compressed already
        for name in args.names:
            tar.add(packs / f"{name}.tgz", arcname=f"{name}.tgz")
    print(json.dumps(summary, indent=1))
    print(f"packed {len(args.names)} runs into {bundle}")
    print(f"total {time.monotonic() - STARTED:.0f} s")
    return 0 if all(c == 0 for c in codes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
