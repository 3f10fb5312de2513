"""Training a recipe into a run, continuing it across sessions, and publishing it to the zoo.

:func:`train_recipe` trains (or resumes) ``<results>/zoo/<name>/`` until its patience, epoch
bound or time budget ends it, and appends the session (machine, commit, wall time) to the
run's ``sessions.json``; :func:`continuable_run` rebuilds a run from the shipped entry so a
later session (or a lent GPU) continues it; :func:`publish` evaluates the selected epoch on
the test cases and writes the entry's weights and record; :func:`retrain` remakes entries
from scratch.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from angio.atomic import atomic_path, atomic_write_text
from angio.errors import InputError
from angio.evaluation import evaluate_model
from angio.experiment import StudySettings, Trained, study_split, train_config, training_dataset, validation_dataset
from angio.records import git_commit, hardware, sha256
from angio.train import export_checkpoint, fit, load_checkpoint
from angio.train.checkpoint import read_history, resumable_from_export
from angio.train.selection import patience_exhausted
from angio.zoo.entries import ZOO_DIR, entries, load_entry, verified_entry
from angio.zoo.recipes import RECIPES, Recipe, get_recipe, retrain_order

__all__ = ["train_recipe", "reopen_run", "reopen_shipped", "continuable_run", "publish", "retrain"]


def _config(recipe: Recipe, settings: StudySettings, run_dir: Path, folder: Path = ZOO_DIR):
    cfg = train_config(recipe.experiment, settings, run_dir)
    init = str(Path(folder) / f"{recipe.init_from}.pt") if recipe.init_from else None
    return replace(cfg, select=recipe.select, patience=recipe.patience, patience_watch=tuple(recipe.patience_watch),
                   select_from=recipe.select_from, val_every=recipe.val_every,
                   metrics=("iou", "dice"), lr_milestones=tuple(recipe.lr_milestones), lr_gamma=recipe.lr_gamma,
                   lr=recipe.lr, val_patch=settings.inference_patch, init_from=init)


def train_recipe(name: str, *, results_dir: str | os.PathLike = "results", progress: bool = True,
                 max_epochs: int | None = None, folder: str | os.PathLike | None = None,
                 time_budget_s: float | None = None,
                 on_epoch_end: Callable[[int, torch.nn.Module, dict], None] | None = None) -> Trained:
    """Train recipe ``name`` (resuming an interrupted run) and return the selected weights.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    results_dir : path-like
        Root of the run (``<results_dir>/zoo/<name>/``) and the volume cache.
    progress : bool
        tqdm progress bars and one line per epoch.
    max_epochs : int, optional
        Stop after this many epochs in total even if the patience rule has not fired (a
        time budget); the run can be resumed later with a larger bound.
    folder : path-like, optional
        Zoo folder holding the entry a fine-tuning recipe starts from (default :data:`ZOO_DIR`).
    time_budget_s : float, optional
        Wall-clock seconds for this session, building the data included; what is left is
        passed to :func:`angio.train.fit`, which always runs at least one epoch. The run
        can be resumed later.
    on_epoch_end : callable, optional
        Passed to :func:`angio.train.fit` (e.g. to print one line per epoch).

    Every call appends the machine it ran on (CPU, whether it runs bf16 natively, GPU, threads,
    library versions) and the commit to ``<run>/sessions.json``; :func:`publish` puts that list
    into the record. A session stopped by hand (Ctrl-C) is recorded too, up to its last finished
    epoch, with ``interrupted: true``, and the interrupt goes on to the caller.
    """
    recipe = get_recipe(name)
    settings = recipe.run_settings(results_dir)
    run_dir = Path(results_dir) / "zoo" / name
    folder = Path(folder) if folder is not None else ZOO_DIR
    config = _config(recipe, settings, run_dir, folder)
    if max_epochs is not None:
        config = replace(config, epochs=min(config.epochs, int(max_epochs)))
    train, val, _ = study_split(settings)
    exp = recipe.experiment
    if recipe.init_from and not (run_dir / "last.pt").exists():
        # a new fine-tuning run: record which weights it starts from (the entry may be replaced later)
        _, entry = load_entry(recipe.init_from, folder=folder)  # checks its sha256 against its record
        run_dir.mkdir(parents=True, exist_ok=True)
        init = {"entry": recipe.init_from, "sha256": entry.record["sha256"], "commit": entry.record.get("commit")}
        atomic_write_text(run_dir / "init.json", json.dumps(init, indent=1))
    started = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)
    session = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
               "hardware": hardware(), "first_epoch": len(read_history(run_dir)["epochs"])}
    train_set = training_dataset(exp, settings, train)
    session["data_s"] = time.perf_counter() - started
    try:
        history = fit(config, train_set, validation_dataset(exp, settings, val), resume=True, progress=progress,
                      time_budget_s=None if time_budget_s is None else max(time_budget_s - session["data_s"], 1e-6),
                      on_epoch_end=on_epoch_end)
    except KeyboardInterrupt:
        # stopped by hand: last.pt holds the last finished epoch, and the session is recorded up to it
        _record_session(run_dir, session, started, read_history(run_dir), interrupted=True)
        raise
    history["session_wall_s"] = _record_session(run_dir, session, started, history)
    chosen = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    model, _, info = load_checkpoint(chosen)
    return Trained(exp, model, history, run_dir, reused=False, checkpoint=chosen, epoch=info.get("epoch"))


def _record_session(run_dir: Path, session: dict[str, Any], started: float, history: dict[str, Any], *,
                    interrupted: bool = False) -> float:
    """Append ``session`` (wall time, epochs after it, how it ended) to ``run_dir/sessions.json``; its wall seconds."""
    wall_s = time.perf_counter() - started
    session.update(wall_s=wall_s, epochs_after=len(history["epochs"]),
                   stopped_by_budget=bool(history.get("stopped_by_budget")))
    if interrupted:
        session["interrupted"] = True
    atomic_write_text(run_dir / "sessions.json", json.dumps([*(_sessions(run_dir) or []), session], indent=1))
    return wall_s


def reopen_run(name: str, *, results_dir: str | os.PathLike = "results") -> Path:
    """Make the run of recipe ``name`` resumable again from its selected weights.

    For a run that came back without ``last.pt`` (a lent GPU keeps nothing): writes
    ``<results_dir>/zoo/<name>/last.pt`` from its ``best.pt`` with
    :func:`angio.train.checkpoint.resumable_from_export` (Adam moments restart; the run's
    notes are kept and one is added), so :func:`train_recipe` continues it after the selected
    epoch. Returns the path written.
    """
    get_recipe(name)
    run_dir = Path(results_dir) / "zoo" / name
    return resumable_from_export(run_dir / "best.pt", run_dir / "last.pt",
                                 notes=read_history(run_dir).get("notes", []))


def reopen_shipped(name: str, *, results_dir: str | os.PathLike = "results",
                   folder: str | os.PathLike | None = None) -> Path:
    """Rebuild the run of shipped entry ``name`` from the zoo, so that training continues it.

    For a machine that has the zoo but not the run (``results/`` is not kept between
    sessions, and a lent GPU keeps nothing): writes ``<results_dir>/zoo/<name>/`` with the
    entry's weights (sha256 checked against its record) as ``best.pt``, its record's
    training sessions as ``sessions.json`` and, for a fine-tune, the weights it started from
    as ``init.json``; then, as :func:`reopen_run`, a ``last.pt`` from ``best.pt`` (Adam
    moments restart; the history gets a note). :func:`train_recipe` then continues after
    the shipped epoch, and :func:`publish` writes a record whose sessions list the earlier
    ones first. Epochs a run trained after its selected one are not in the shipped
    checkpoint: the continuation starts from the selected epoch.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES` with a shipped entry.
    results_dir : path-like
        Root of the run folder to write.
    folder : path-like, optional
        Zoo folder holding the entry (default :data:`ZOO_DIR`).

    Returns
    -------
    pathlib.Path
        The ``last.pt`` written.

    Raises
    ------
    angio.InputError
        No such recipe or entry, or the weights do not match their record.
    FileExistsError
        The run folder already holds a run (resume it, or :func:`reopen_run` it).
    """
    get_recipe(name)
    entry = verified_entry(name, folder)
    run_dir = Path(results_dir) / "zoo" / name
    held = [f for f in ("last.pt", "best.pt") if (run_dir / f).exists()]
    if held:
        raise FileExistsError(f"{run_dir} holds a run already ({', '.join(held)}): resume it, or reopen_run it")
    with atomic_path(run_dir / "best.pt") as tmp:
        shutil.copyfile(entry.checkpoint, tmp)
    training = entry.record["training"]
    if training.get("sessions"):
        atomic_write_text(run_dir / "sessions.json", json.dumps(training["sessions"], indent=1))
    if training.get("initialised_from"):
        atomic_write_text(run_dir / "init.json", json.dumps(training["initialised_from"], indent=1))
    notes = [*training.get("notes", []),
             f"run rebuilt from the shipped zoo entry (sha256 {entry.record['sha256'][:12]})"]
    return resumable_from_export(run_dir / "best.pt", run_dir / "last.pt", notes=notes)


def continuable_run(name: str, *, results_dir: str | os.PathLike = "results",
                    folder: str | os.PathLike | None = None) -> Path:
    """Make recipe ``name`` continuable from where it stands; returns the run's ``last.pt``.

    A run with ``last.pt`` is left as it is (training resumes it); one with only
    ``best.pt`` (a run that came back from a lent GPU) is reopened with :func:`reopen_run`;
    with no run at all, the shipped entry is rebuilt into one with :func:`reopen_shipped`.
    ``angio train --recipe NAME --continue-shipped`` and ``scripts/train_zoo_gpu.py
    --continue-shipped`` call this before training.
    """
    run_dir = Path(results_dir) / "zoo" / name
    if (run_dir / "last.pt").exists():
        return run_dir / "last.pt"
    if (run_dir / "best.pt").exists():
        return reopen_run(name, results_dir=results_dir)
    return reopen_shipped(name, results_dir=results_dir, folder=folder)


def _sessions(run_dir: Path) -> list[dict[str, Any]] | None:
    """The training sessions recorded in ``run_dir/sessions.json`` (``None`` when there is none)."""
    path = run_dir / "sessions.json"
    return json.loads(path.read_text()) if path.exists() else None


def publish(name: str, *, results_dir: str | os.PathLike = "results", out_dir: str | os.PathLike | None = None,
            log: Callable[[str], None] = print) -> Path:
    """Export the selected epoch of a trained recipe to the zoo, with its record.

    The slim checkpoint (weights in float16 when the recipe says so) is loaded back and
    evaluated on every test case against both ground truths; those metrics, not the
    training run's, go into the record. Returns the record's path.
    """
    recipe = get_recipe(name)
    commit = git_commit()  # before the weights are written: replacing a shipped file would read as "+dirty"
    settings = recipe.run_settings(results_dir)
    run_dir = Path(results_dir) / "zoo" / name
    chosen = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    if not chosen.exists():
        raise InputError(f"{run_dir}: no trained run of recipe {name!r}; run `angio train --recipe {name}` first")
    out = Path(out_dir) if out_dir is not None else ZOO_DIR
    out.mkdir(parents=True, exist_ok=True)
    pt = out / f"{name}.pt"
    tmp = out / f".{name}.pt.tmp"
    export_checkpoint(chosen, tmp, half=recipe.fp16)
    model, config, info = load_checkpoint(tmp)
    # the full curve is in the run's history (best.pt holds it only up to its own epoch)
    history = json.loads((run_dir / "history.json").read_text())
    train, val, test = study_split(settings)
    trained = Trained(recipe.experiment, model, history, run_dir, reused=True, checkpoint=tmp,
                      epoch=info.get("epoch"))
    t0 = time.perf_counter()
    rows, _ = evaluate_model(trained, settings, test)
    eval_s = time.perf_counter() - t0
    os.replace(tmp, pt)
    rows_epochs = history["epochs"]
    sessions = _sessions(run_dir)
    record = {
        "name": name,
        "description": recipe.description,
        "label": recipe.experiment.label,
        "recipe": recipe.to_dict(),
        "train_config": {k: v for k, v in config.to_dict().items() if k not in ("out_dir", "init_from")},
        "split": {"train": train, "val": val, "test": test},
        "seed": settings.seed,
        "resolution": {"size": settings.spec.size, "fov_mm": settings.spec.fov_mm,
                       "voxel_mm": settings.spec.voxel_mm},
        "training": {
            "epochs_run": len(rows_epochs),
            "selected_epoch": info.get("epoch"),
            "selected_by": f"validation {recipe.select}" + (f", from epoch {recipe.select_from}"
                                                             if recipe.select_from else ""),
            "optimizer_steps": rows_epochs[-1]["global_step"] if rows_epochs else 0,
            "wall_time_s": rows_epochs[-1]["wall_time_s"] if rows_epochs else 0.0,
            "stopped_by_patience": patience_exhausted(recipe.patience, history, watch=recipe.patience_watch,
                                                      select_from=recipe.select_from),
            "initialised_from": (json.loads((run_dir / "init.json").read_text())
                                 if (run_dir / "init.json").exists() else None),
            "notes": history.get("notes", []),
            "hardware": sessions[-1]["hardware"] if sessions else hardware(),
            "sessions": sessions,
            "curve": rows_epochs,
        },
        "test": {"cases": test, "rows": rows, "eval_wall_s": eval_s, "evaluated_on": hardware()},
        "weights_dtype": "float16" if recipe.fp16 else "float32",
        "commit": commit,
        "made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "file": pt.name,
        "sha256": sha256(pt),
    }
    path = out / f"{name}.json"
    atomic_write_text(path, json.dumps(record, indent=1, default=float))
    for target in ("exact", "otsu"):
        vals = [r for r in rows if r["target"] == target]
        log(f"[zoo] {name} test vs {target}: " + ", ".join(
            f"{m} {np.mean([r[m] for r in vals]):.3f}" for m in ("dice", "iou", "cldice")))
    return path


def retrain(names: list[str] | None = None, *, results_dir: str | os.PathLike = "results",
            out_dir: str | os.PathLike | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> list[Path]:
    """Retrain recipes from scratch with their recorded recipes and publish them (``make study RETRAIN=1``).

    ``names`` defaults to the entries shipped in ``out_dir`` (the study's rows; recipes
    without weights are trained one at a time with ``angio train --recipe NAME``). Earlier
    runs of these recipes under ``<results_dir>/zoo`` are deleted first; a recipe that
    fine-tunes another starts from the entry just retrained. Returns the records' paths.
    """
    out = Path(out_dir) if out_dir is not None else ZOO_DIR
    if names is None:
        names = sorted(n for n in entries(out) if n in RECIPES)
    paths = []
    for name in retrain_order(names):
        run_dir = Path(results_dir) / "zoo" / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        log(f"[zoo] retraining {name} from scratch")
        train_recipe(name, results_dir=results_dir, progress=progress, folder=out)
        paths.append(publish(name, results_dir=results_dir, out_dir=out, log=log))
    return paths
