"""The model zoo: trained weights shipped with the package, each with its recipe and record.

A reproducible study does not retrain a dozen 3D networks every time it runs: it needs the
weights, the exact recipe that made them and one command that remakes them (the MONAI
"bundle" idea: weights + recipe + record). A :class:`Recipe` fixes everything that changes
the weights (experiment, volume spec, split, seed, patch size, selection and stopping rule);
:func:`train_recipe` trains it (resumable, into ``results/zoo/<name>/``) until its patience
runs out, and :func:`publish` evaluates the selected epoch on the held-out test
cases, writes the slim checkpoint ``angio/_data/zoo/<name>.pt`` and its record
``<name>.json``:

- ``recipe``: the recipe as a dict (and the :class:`~angio.train.TrainConfig` it made);
- ``split``: the train, validation and test case ids;
- ``training``: epochs run, the selected epoch, optimizer steps, wall time, whether the
  patience rule stopped it, the hardware and library versions, and the validation curve;
- ``test``: per-case metrics on the test cases against the exact and the Otsu mask,
  computed with the *shipped* weights (so :func:`check_entry` can reproduce them);
- ``commit`` (the git commit of the code that trained it, ``+dirty`` when the tree had
  uncommitted changes) and ``sha256`` of the ``.pt`` file.

Command line: ``angio train --recipe NAME`` (train and publish one entry),
``angio zoo list`` (the shipped entries).

Selection uses the validation split only; the test cases are evaluated once, after the
epoch has been chosen.

Records keep the recipe their weights were made with. When a recipe's selection or stopping
rule changes after its entry was published (:data:`RULE_FIELDS`), the record is not rewritten:
:func:`recipe_changes` lists what differs, and the recorded curve shows what the new rule
would have done with the same epochs (:func:`angio.train.loop.replay_rule`), until the entry
is retrained.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import angio
from angio.atomic import atomic_path, atomic_write_text
from angio.device import cpu_has_native_bf16
from angio.errors import InputError
from angio.pipeline import VolumeSpec
from angio.study import (
    SMALL_UNET,
    Experiment,
    StudySettings,
    Trained,
    evaluate_model,
    study_split,
    train_config,
    training_dataset,
    validation_dataset,
)
from angio.train import export_checkpoint, fit, load_checkpoint
from angio.train.checkpoint import read_history, resumable_from_export
from angio.train.loop import patience_exhausted

__all__ = ["Recipe", "RECIPES", "DEFAULT_MODELS", "CONE_MODELS", "MIRROR_MODELS", "default_model", "ZOO_DIR",
           "train_recipe", "publish", "entries", "load_entry",
           "check_entry", "ZooEntry", "DEFAULT_SPEC", "TARGETS", "evaluate_entry", "robustness_table",
           "target_status", "sha256", "retrain", "retrain_order", "ZOO_UNET", "GPU_RUNS", "gpu_runs",
           "side_by_side", "PAPER_VIEWS", "RULE_FIELDS", "recipe_changes", "reopen_run", "reopen_shipped",
           "continuable_run"]

ZOO_DIR = Path(__file__).resolve().parent / "_data" / "zoo"
REPO_ROOT = Path(__file__).resolve().parent.parent

#: The study's default grid: 192^3 voxels of 0.5 mm over the central 96 mm (circle of
#: Willis, carotid siphons, M1-M2, A1-A2, basilar, P1-P2). At this size the exact mask of
#: a BraVa tree is a connected tree (a few tens of pieces, the largest holding about 90%
#: of the vessel voxels); at 1.5 mm it falls apart into dots.
DEFAULT_SPEC = VolumeSpec(size=192, fov_mm=96.0, center="major")


#: StudySettings fields newer than the shipped records, with the defaults that leave them out.
_LATER_SETTINGS: dict[str, Any] = {"angle_jitter_deg": 0.0}

#: Recipe fields newer than the shipped records, with the defaults (the behaviour before them)
#: that leave them out of :meth:`Recipe.to_dict`.
_LATER_FIELDS: dict[str, Any] = {"patience_watch": [], "select_from": 0}

#: Recipe fields that decide only which epoch ships and when a run stops, never what an epoch
#: computes (:mod:`angio.train.loop`): a record made under other values still describes its
#: weights truthfully, and its curve replays under the new rule.
RULE_FIELDS = frozenset({"select", "patience", "patience_watch", "select_from"})


@dataclass(frozen=True)
class Recipe:
    """Everything that makes one zoo entry.

    Parameters
    ----------
    name : str
        Entry name (file stem in :data:`ZOO_DIR`).
    description : str
        One line for tables and the book.
    experiment : Experiment
        Model, views, input channels, loss and target.
    settings : StudySettings
        Volume spec, split sizes, augmentation variants, patch size, seed; ``epochs`` is the
        upper bound on epochs (the patience rule usually stops earlier).
    select : {"dice", "iou", "loss"}
        Validation quantity that picks the shipped epoch.
    patience : int
        Stop after this many validations without progress (a new best selection value, or a
        new best of a ``patience_watch`` quantity).
    patience_watch : tuple of str
        Validation quantities (``"loss"``, metric names) whose improvement also counts as
        progress for ``patience`` (:class:`~angio.train.TrainConfig`); empty: the selection
        value alone.
    select_from : int
        First epoch (from 0) that may be shipped; earlier ones are trained and validated only.
    val_every : int
        Validate every this many epochs.
    fp16 : bool
        Store the shipped weights in float16 (they are computed with in float32).
    lr_milestones, lr_gamma : tuple of int, float
        Step learning-rate schedule (see :class:`~angio.train.TrainConfig`).
    lr : float
        Initial learning rate (the paper's 1e-3; lower for a fine-tuned entry).
    init_from : str, optional
        Zoo entry whose shipped weights start the run (fine-tuning); its name and sha256
        are recorded with the run.
    """

    name: str
    description: str
    experiment: Experiment
    settings: StudySettings
    select: str = "dice"
    patience: int = 5
    patience_watch: tuple[str, ...] = ()
    select_from: int = 0
    val_every: int = 2
    fp16: bool = True
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    lr: float = 1e-3
    init_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain JSON-compatible data (as written into the record)."""
        d = asdict(self)
        d["settings"].pop("results_dir")
        # settings added since the shipped records were written appear only when they are set
        # (StudySettings.from_dict gives a missing one its default)
        for key, default in _LATER_SETTINGS.items():
            if d["settings"][key] == default:
                d["settings"].pop(key)
        d["experiment"]["model_kwargs"] = dict(self.experiment.model_kwargs)
        d["patience_watch"] = list(self.patience_watch)
        # so are recipe fields added since then (a record without one was made with its default)
        for key, default in _LATER_FIELDS.items():
            if d[key] == default:
                d.pop(key)
        return d

    def run_settings(self, results_dir: str | os.PathLike) -> StudySettings:
        """The recipe's settings with its run, cache and tables under ``results_dir``."""
        return replace(self.settings, results_dir=str(results_dir))


def _unet_settings(**changes) -> StudySettings:
    base = StudySettings(spec=DEFAULT_SPEC, epochs=80, variants=4, n_test=5, n_val=3, patch_size=64,
                         inference_patch=64, precision="auto", seed=0, output_prior=0.005)
    return replace(base, **changes)


#: The zoo's U-Net: 8 base channels, 4 levels, instance normalisation. Trained on 64^3 patches
#: at batch size 1, it is applied over Gaussian-blended 64^3 windows, so every window is
#: normalised as the training patches were (with BatchNorm, the running statistics of the
#: last few patches made the validation Dice swing by +-0.1 between validations).
ZOO_UNET = (*SMALL_UNET, ("norm", "instance"))


def _zoo_unet(n_views: int, base_channels: int = 8) -> Experiment:
    """The zoo's U-Net on ``n_views`` views: sum and min inputs, Dice + BCE against the exact mask."""
    kwargs = tuple((k, base_channels if k == "base_channels" else v) for k, v in ZOO_UNET)
    return Experiment("unet", n_views, ("sum", "min"), loss="dice_bce", target="exact", model_kwargs=kwargs)


def _gpu_settings(**changes) -> StudySettings:
    """Settings of the recipes trained on a GPU: 96^3 patches, 4 per step, 8 per case and epoch.

    The inputs of all 168 training variants are built once and kept in memory (about 6 GB);
    an epoch is 84 steps. On a GPU an epoch takes seconds; on one CPU thread about 50 minutes.
    """
    return _unet_settings(**{"patch_size": 96, "inference_patch": 96, "batch_size": 4, "samples_per_volume": 8,
                             "resident": True, "num_workers": 3, "epochs": 150, **changes})


_GPU_NOTE = ("trained with 96^3 patches, 4 per step and 8 per case per epoch (on a GPU at learning rate "
             "1e-3, then continued at 1e-4 on the CPU); applied over Gaussian-blended 96^3 windows")

def _gpu_recipe(name: str, description: str, n_views: int, base_channels: int = 8, drop_at: int = 25) -> Recipe:
    """A U-Net recipe with :func:`_gpu_settings`, selected by validation Dice (patience 15).

    The learning rate is 1e-3 until epoch ``drop_at`` and 1e-4 from there (1e-5 from epoch
    75): the shipped runs had ``drop_at`` epochs at 1e-3 on a lent GPU and went on at 1e-4
    on the CPU from their selected weights, so the recipe names the epoch where that happened
    (25; 24 for ``unet-3view``, whose selected GPU epoch was 23).
    """
    return Recipe(name, description, _zoo_unet(n_views, base_channels), _gpu_settings(),
                  lr_milestones=(drop_at, 75), patience=15, val_every=1)


def _biplane_finetune(name: str, description: str, **changes) -> Recipe:
    """A CPU-sized fine-tune of ``unet-biplane``: 96^3 patches one per step, learning rate 1e-4.

    Up to 40 epochs, patience 6, selected by validation Dice; ``changes`` go to the settings
    (the acquisition it is fine-tuned for, ``resident``).
    """
    return Recipe(name, description, _zoo_unet(2),
                  _unet_settings(epochs=40, patch_size=96, inference_patch=96, **changes),
                  patience=6, lr=1e-4, init_from="unet-biplane")


#: The paper's view counts (its Table 1).
PAPER_VIEWS = (90, 46, 24, 10, 5, 3, 2)


def _paper_settings(modality: str) -> StudySettings:
    """The paper's data settings on the zoo's grid: whole volumes, no augmentation, 5 test and 3 validation trees."""
    return StudySettings(spec=replace(DEFAULT_SPEC, modality=modality), epochs=200, variants=0, n_test=5, n_val=3,
                         precision="auto", seed=0, resident=True)


def _paper_recipe(n_views: int, modality: str, target: str = "otsu") -> Recipe:
    """The paper's autoencoder and hyper-parameters at ``n_views`` on the zoo's grid.

    Sum back-projection in, Otsu of the original volume as the target (scored against the
    exact mask too), focal loss (alpha 0.5, gamma 0.2), Adam 1e-3, batch 1 of whole 192^3
    volumes, no augmentation, selected by validation IoU. ``modality`` ``"rotational"`` is the
    study's vessels-only setting (``paper-dae-<n>v``); ``"cta"`` is the paper's own, CT
    angiography with the skull (``paper-cta-dae-<n>v``). ``target="otsu_window"`` thresholds
    the CTA after the angiography window 100..600 HU instead of its raw Hounsfield units
    (``paper-cta-win-dae-<n>v``): the paper does not say whether it windowed, and on the raw
    range Otsu's threshold marks the whole head on some trees and bone plus vessels on others.

    Stopping: patience 10, where a validation counts as progress when the IoU *or* the
    validation loss reaches a new best, and no epoch before the 11th (``select_from=10``) is
    shipped. The entries shipped so far were trained with patience on the IoU alone, every
    epoch eligible (their records say so): with the focal loss the network first spends
    epochs pushing the background probability down, its validation loss falling while its IoU
    at 0.5 stays near zero (vessels only) or is an artifact of a near-constant output over
    the large Otsu mask (CTA), so that rule stopped several runs after 11 epochs and shipped
    their first, untrained epoch. The first ten epochs are excluded because the shipped
    vessels-only runs that went on longer (90 to 5 views) stayed below a validation IoU of
    0.07 throughout their first ten epochs.
    """
    if modality == "rotational" and n_views in PAPER_CURRICULUM:
        return _paper_curriculum(n_views)
    prefix = "paper-dae" if modality == "rotational" else f"paper-{modality}-dae"
    if target == "otsu_window":
        prefix = prefix.replace("-dae", "-win-dae")
    setting = "vessels-only rotational volumes" if modality == "rotational" else "CT angiograms with the skull"
    truth = ("Otsu target" if target == "otsu" else
             "Otsu target after the angiography window (100..600 HU)")
    # the raw-Otsu entries were all trained on a GPU and their records keep the description they
    # were made with; the windowed ones are trained wherever a session has time (their records
    # name the hardware)
    where = " (trained on a GPU)" if target == "otsu" else ""
    if f"{prefix}-{n_views}v" in CONTINUED_ON_CPU:
        where = " (trained on a GPU, continued on two CPU threads)"
    return Recipe(f"{prefix}-{n_views}v",
                  f"the paper's autoencoder on the sum back-projection of {n_views} views of {setting}, "
                  f"{truth}, the paper's hyper-parameters, whole 192^3 volumes{where}",
                  Experiment("dae", n_views, target=target), _paper_settings(modality), select="iou", patience=10,
                  patience_watch=("loss",), select_from=10, val_every=1)


#: GPU-trained paper entries continued on the CPU from their shipped weights (``--continue-shipped``);
#: their descriptions say so, their records list every session.
CONTINUED_ON_CPU = frozenset({"paper-dae-90v", "paper-dae-46v", "paper-dae-24v", "paper-dae-10v",
                              "paper-dae-5v"})


#: Vessels-only view counts whose paper recipe starts from a shipped autoencoder with more
#: views: 3 from 5, then 2 from 3 (a curriculum of ever sparser smears).
_CURRICULUM_PARENT = {3: 5, 2: 3}
PAPER_CURRICULUM = tuple(_CURRICULUM_PARENT)
#: Epochs from which a curriculum run's learning rate is multiplied by 0.1 (the paper states
#: none: Adam at 1e-3); epochs count from 0, as in the run's log. The 2-view run's
#: validation IoU had its best at epoch 15 and swung between 0.11 and 0.15 for the seven
#: epochs after it, at a training loss still falling, so its rate drops from epoch 23 on
#: (decided on the validation curve, not the test trees).
_CURRICULUM_LR_DROP = {2: (23,)}


def _paper_curriculum(n_views: int) -> Recipe:
    """The paper's autoencoder at 3 views from the shipped 5-view weights, at 2 from the 3-view ones.

    Trained from scratch with the paper's settings (``paper-dae-<n>v`` of the first GPU
    session), the 2- and 3-view runs spent all eleven epochs they were given in the
    all-background state the focal loss starts in (validation IoU at most 0.01), while the
    runs at 5 views and more left it from about the tenth epoch; no lent GPU has been
    available since to train them for longer. Started from the weights of the same network
    on the same kind of input with more views, a run only has to adapt to sparser smears,
    which fits in a CPU session: 3 views start from 5, and 2 from 3 (on the validation
    trees the 2-view run reached a best IoU of 0.155 from the 5-view weights and 0.164 from
    the 3-view ones). Everything else is the paper's: sum back-projection, Otsu target,
    focal loss (alpha 0.5, gamma 0.2), Adam 1e-3, batch 1 of whole 192^3 volumes, no
    augmentation. Selected by validation IoU from the first epoch (the weights it starts
    from are trained), patience 10, where a new lowest validation loss also counts as
    progress (as in the runs from scratch: the validation IoU of these runs swings by a
    factor of five from one epoch to the next, so a patience of 5 on the IoU alone ended
    them on noise); on the CPU a time budget may end the run first (its record says which
    ended it, and the sha256 of the weights it started from). The 2-view run's learning
    rate drops to 1e-4 from epoch 23 on (:data:`_CURRICULUM_LR_DROP`).
    """
    parent = f"paper-dae-{_CURRICULUM_PARENT[n_views]}v"
    return Recipe(f"paper-dae-{n_views}v",
                  f"the paper's autoencoder on the sum back-projection of {n_views} views of vessels-only "
                  "rotational volumes, Otsu target, the paper's hyper-parameters, whole 192^3 volumes, "
                  f"started from the {parent} weights (trained on the CPU)",
                  Experiment("dae", n_views, target="otsu"), _paper_settings("rotational"), select="iou", patience=10,
                  patience_watch=("loss",), val_every=1, init_from=parent,
                  lr_milestones=_CURRICULUM_LR_DROP.get(n_views, ()), lr_gamma=0.1)


RECIPES: dict[str, Recipe] = {
    r.name: r for r in [
        _gpu_recipe("unet-biplane",
                    "residual U-Net (8 base channels, depth 4, instance norm) on the sum and min "
                    "back-projections of 2 views (0 and 90 deg), Dice + BCE against the exact mask; " + _GPU_NOTE, 2),
        _gpu_recipe("unet-biplane-wide", "as unet-biplane with 16 base channels (5.7 M parameters, 4x the compute)",
                    2, 16),
        _gpu_recipe("unet-3view",
                    "residual U-Net (8 base channels, depth 4, instance norm) on the sum and min "
                    "back-projections of 3 views (0, 45, 90 deg), Dice + BCE against the exact mask; " + _GPU_NOTE, 3,
                    drop_at=24),
        _gpu_recipe("unet-3view-wide", "as unet-3view with 16 base channels (5.7 M parameters, 4x the compute)", 3, 16),
        _biplane_finetune("unet-biplane-cone",
               "the biplane U-Net fine-tuned on the views of a clinical cone-beam C-arm (source "
               "750 mm from the isocentre, detector at 1100 mm), demagnified to the isocentre as "
               "`angio reconstruct` reads XA files; 96^3 patches one per step (CPU-sized), learning rate 1e-4",
               geometry="cone"),
        _biplane_finetune("unet-biplane-conerays",
               "the biplane U-Net fine-tuned on the views of a clinical cone-beam C-arm (source 750 mm from "
               "the isocentre, detector at 1100 mm) back-projected along the cone's own rays, as "
               "`angio reconstruct` reads XA files; 96^3 patches one per step (CPU-sized; each input is built "
               "once, before training, and kept in memory), learning rate 1e-4 from the parallel-beam weights",
               geometry="cone-rays", resident=True),
        _biplane_finetune("unet-biplane-jitter",
               "the biplane U-Net fine-tuned on miscalibrated views: each augmented training variant's "
               "second view is acquired up to 5 deg off 90 (one error per tree and variant) and "
               "back-projected at 90, so the model learns smears that do not cross where it expects "
               "(the robustness table: 2 deg of error halve the parallel model's Dice); 96^3 patches one "
               "per step (CPU-sized; the inputs of every variant are built once, before training, and kept in memory), "
               "learning rate 1e-4 from the parallel-beam weights, selected on nominal validation views",
               angle_jitter_deg=5.0, resident=True),
        *(_paper_recipe(n, modality) for modality in ("rotational", "cta") for n in PAPER_VIEWS),
        *(_paper_recipe(n, "cta", "otsu_window") for n in PAPER_VIEWS),
    ]
}


#: The model ``angio reconstruct`` uses for a number of views (chosen on the validation split).
DEFAULT_MODELS: dict[int, str] = {2: "unet-biplane", 3: "unet-3view"}

#: The model for views of a cone-beam C-arm (X-ray angiography files), where one is shipped;
#: other view counts use :data:`DEFAULT_MODELS`. Chosen on the validation trees' cone-ray
#: inputs (``angio/_data/zoo/robustness/validation/``), as ``reconstruct_xa`` builds them.
CONE_MODELS: dict[int, str] = {2: "unet-biplane-conerays"}

#: Entries whose predictions ``angio reconstruct`` averages with the prediction of the
#: left-right mirrored input (mirror test-time augmentation; the views must be mirror
#: symmetric, :func:`angio.projection.mirror_symmetric`). Chosen on the validation trees: the
#: records with it (``angio/_data/zoo/robustness/validation/mirror/``) beat those without.
MIRROR_MODELS: frozenset[str] = frozenset({"unet-biplane", "unet-biplane-conerays"})


def default_model(n_views: int, geometry: str = "parallel", shipped: dict | None = None) -> str | None:
    """The zoo entry for ``n_views`` views acquired with ``geometry`` (``None`` when none is shipped).

    Cone-beam views get the cone-beam entry when it is shipped, else the parallel-beam one.
    """
    shipped = entries() if shipped is None else shipped
    for table in ((CONE_MODELS, DEFAULT_MODELS) if geometry == "cone" else (DEFAULT_MODELS,)):
        if table.get(n_views) in shipped:
            return table[n_views]
    return None


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


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
    into the record.
    """
    recipe = _recipe(name)
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
    session = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": _git_commit(),
               "hardware": _hardware(), "first_epoch": len(read_history(run_dir)["epochs"])}
    train_set = training_dataset(exp, settings, train)
    session["data_s"] = time.perf_counter() - started
    history = fit(config, train_set, validation_dataset(exp, settings, val), resume=True, progress=progress,
                  time_budget_s=None if time_budget_s is None else max(time_budget_s - session["data_s"], 1e-6),
                  on_epoch_end=on_epoch_end)
    history["session_wall_s"] = time.perf_counter() - started
    session.update(wall_s=history["session_wall_s"], epochs_after=len(history["epochs"]),
                   stopped_by_budget=bool(history.get("stopped_by_budget")))
    atomic_write_text(run_dir / "sessions.json", json.dumps([*(_sessions(run_dir) or []), session], indent=1))
    chosen = run_dir / "best.pt" if (run_dir / "best.pt").exists() else run_dir / "last.pt"
    model, _, info = load_checkpoint(chosen)
    return Trained(exp, model, history, run_dir, reused=False, checkpoint=chosen, epoch=info.get("epoch"))


def reopen_run(name: str, *, results_dir: str | os.PathLike = "results") -> Path:
    """Make the run of recipe ``name`` resumable again from its selected weights.

    For a run that came back without ``last.pt`` (a lent GPU keeps nothing): writes
    ``<results_dir>/zoo/<name>/last.pt`` from its ``best.pt`` with
    :func:`angio.train.checkpoint.resumable_from_export` (Adam moments restart; the run's
    notes are kept and one is added), so :func:`train_recipe` continues it after the selected
    epoch. Returns the path written.
    """
    _recipe(name)
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
    _recipe(name)
    entry = _verified_entry(name, folder)
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


def _git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "cpu_bf16": cpu_has_native_bf16(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "angio": angio.__version__}


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def publish(name: str, *, results_dir: str | os.PathLike = "results", out_dir: str | os.PathLike | None = None,
            log: Callable[[str], None] = print) -> Path:
    """Export the selected epoch of a trained recipe to the zoo, with its record.

    The slim checkpoint (weights in float16 when the recipe says so) is loaded back and
    evaluated on every test case against both ground truths; those metrics, not the
    training run's, go into the record. Returns the record's path.
    """
    recipe = _recipe(name)
    commit = _git_commit()  # before the weights are written: replacing a shipped file would read as "+dirty"
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
            "hardware": sessions[-1]["hardware"] if sessions else _hardware(),
            "sessions": sessions,
            "curve": rows_epochs,
        },
        "test": {"cases": test, "rows": rows, "eval_wall_s": eval_s, "evaluated_on": _hardware()},
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


def recipe_changes(name: str, record: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Where recipe ``name`` now differs from the recipe recorded with its shipped weights.

    Parameters
    ----------
    name : str
        A key of :data:`RECIPES`.
    record : dict
        The entry's record (``ZooEntry.record``); a recipe field it lacks was written before
        the field existed and counts as that field's default.

    Returns
    -------
    dict
        ``{field: (recorded, current)}``, JSON values, for every top-level recipe field that
        differs; empty when the recipe is the one the weights were made with. A difference
        only in :data:`RULE_FIELDS` means the weights are what the recorded rule selected,
        and a retrain would follow the current one.
    """
    current = json.loads(json.dumps(_recipe(name).to_dict()))
    recorded = dict(record["recipe"])
    out = {}
    for key in sorted(set(current) | set(recorded)):
        default = _LATER_FIELDS.get(key)
        then, now = recorded.get(key, default), current.get(key, default)
        if then != now:
            out[key] = (then, now)
    return out


def retrain_order(names: list[str] | None = None) -> list[str]:
    """Recipes ``names`` (default: all) ordered so that each comes after the entry it starts from."""
    names = sorted(RECIPES) if names is None else list(names)
    for name in names:
        _recipe(name)
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in path:
            raise InputError(f"recipes {' -> '.join((*path, name))} start from each other in a cycle")
        parent = RECIPES[name].init_from
        if parent in names:
            visit(parent, (*path, name))
        order.append(name)

    for name in names:
        visit(name, ())
    return order


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


@dataclass
class ZooEntry:
    """A shipped model: its record and the paths of its files."""

    name: str
    record: dict[str, Any]
    checkpoint: Path
    spec: VolumeSpec = field(default_factory=VolumeSpec)

    @property
    def experiment(self) -> Experiment:
        """The :class:`~angio.study.Experiment` of the entry's recipe."""
        e = dict(self.record["recipe"]["experiment"])
        e["model_kwargs"] = tuple(sorted(e.get("model_kwargs", {}).items()))
        return Experiment(**e)

    @property
    def settings(self) -> StudySettings:
        """The :class:`~angio.study.StudySettings` of the entry's recipe."""
        s = dict(self.record["recipe"]["settings"])
        return StudySettings.from_dict(s)

    def settings_in(self, results_dir: str | os.PathLike) -> StudySettings:
        """The entry's study settings with its volume cache and tables under ``results_dir``."""
        return replace(self.settings, results_dir=str(results_dir))

    def test_row(self, case: str, target: str = "exact") -> dict[str, Any]:
        """The recorded test metrics of ``case`` against ``target`` (the record's ``test.rows``)."""
        for r in self.record["test"]["rows"]:
            if r["case"] == case and r["target"] == target:
                return r
        raise InputError(f"the record of {self.name} has no test row for {case!r} against {target!r}")

    def volumes(self, case: str, results_dir: str | os.PathLike = "results"):
        """The :class:`~angio.pipeline.CaseVolumes` of ``case`` on the entry's grid (cached)."""
        settings = self.settings_in(results_dir)
        return settings.cache().get(case, self.spec, seed=settings.seed)


def entries(folder: str | os.PathLike | None = None, *, model: str | None = None) -> dict[str, ZooEntry]:
    """The shipped zoo entries ``{name: ZooEntry}`` (records read, weights not loaded).

    Parameters
    ----------
    folder : path-like, optional
        Zoo folder (default :data:`ZOO_DIR`).
    model : str, optional
        Only the entries of this network (``"unet"``: the study's own models; ``"dae"``: the
        paper's autoencoder, ``paper-*`` entries).
    """
    folder = Path(folder) if folder is not None else ZOO_DIR
    out = {}
    for rec in sorted(folder.glob("*.json")):
        try:
            record = json.loads(rec.read_text())
        except ValueError as exc:
            raise InputError(f"{rec}: unreadable zoo record ({exc})") from exc
        if model is not None and record["recipe"]["experiment"]["model"] != model:
            continue
        spec = VolumeSpec(**record["recipe"]["settings"]["spec"])
        out[record["name"]] = ZooEntry(record["name"], record, folder / record["file"], spec)
    return out


def load_entry(name: str, *, folder: str | os.PathLike | None = None, verify: bool = True):
    """``(model, entry)`` of a shipped entry; with ``verify`` the file's sha256 is checked first.

    The weights are converted to float32 for inference.
    """
    entry = _verified_entry(name, folder, verify)
    model, _, _ = load_checkpoint(entry.checkpoint)
    return model.float(), entry


def _verified_entry(name: str, folder: str | os.PathLike | None, verify: bool = True) -> ZooEntry:
    """The shipped entry ``name``; with ``verify`` its file's sha256 is checked against its record."""
    found = entries(folder)
    if name not in found:
        raise InputError(f"no zoo entry {name!r}; shipped: {', '.join(sorted(found)) or 'none'}")
    entry = found[name]
    if verify:
        digest = sha256(entry.checkpoint)
        if digest != entry.record["sha256"]:
            raise InputError(f"{entry.checkpoint}: sha256 {digest[:12]}... does not match its record "
                             f"({entry.record['sha256'][:12]}...); the file is corrupt or was replaced")
    return entry


def check_entry(name: str, case: str | None = None, *, results_dir: str | os.PathLike | None = None,
                folder: str | os.PathLike | None = None) -> tuple[dict, dict]:
    """Re-evaluate a shipped entry on one test case; ``(recorded_row, measured_row)`` vs the exact mask."""
    model, entry = load_entry(name, folder=folder)
    settings = entry.settings if results_dir is None else replace(entry.settings, results_dir=str(results_dir))
    case = case or entry.record["test"]["cases"][0]
    trained = Trained(entry.experiment, model, {}, entry.checkpoint.parent, reused=True)
    rows, _ = evaluate_model(trained, settings, [case], targets=("exact",))
    return entry.test_row(case), rows[0]


#: Quality targets against the exact mask on held-out trees, per number of views (issue #8,
#: after Cafaro et al., MICCAI 2024, who report Dice about 0.80 from two projections).
TARGETS: dict[int, dict[str, float]] = {2: {"dice": 0.80, "cldice": 0.75}, 3: {"dice": 0.85}, 90: {"dice": 0.92}}


def evaluate_entry(name: str, cases: list[str] | None = None, *, results_dir: str | os.PathLike = "results",
                   acquisition=None, keep: bool = False, folder: str | os.PathLike | None = None,
                   targets: tuple[str, ...] = ("exact", "otsu"), overlap_only: bool = False,
                   mirror: bool = False) -> tuple[list[dict], dict]:
    """Metrics of a shipped entry on cases (default: its test cases) against both masks.

    Parameters
    ----------
    name : str
        Zoo entry.
    cases : list of str, optional
        Case ids (default: the record's test cases).
    results_dir : path-like
        Volume cache root.
    acquisition : angio.robustness.Acquisition, optional
        Build the inputs as a miscalibrated acquisition would (default: the entry's own
        geometry, nominal).
    keep : bool
        Also return ``{case: probability volume}``.
    folder : path-like, optional
        Zoo folder (default :data:`ZOO_DIR`).
    targets : tuple of str
        Ground truths to compare with.
    overlap_only : bool
        Only Dice and IoU (skips clDice's skeletons and the error metrics; for quick tables).
    mirror : bool
        Mirror test-time augmentation (:func:`angio.inference.predict_volume`); the views
        must be mirror symmetric (:func:`angio.projection.mirror_symmetric`). The entries'
        recorded test metrics are without it.

    Returns
    -------
    rows : list of dict
        One per (case, target) with ``method`` (the entry's name), ``views``, ``case``,
        ``target`` and the metrics of :func:`angio.metrics.evaluate`; for a magnified
        acquisition also ``dice_rescaled`` and ``iou_rescaled``, against the truth scaled
        the same way (:func:`angio.robustness.magnified_truth`).
    kept : dict
        ``{case: (N, N, N) float32}`` when ``keep``.
    """
    from angio.metrics import dice, evaluate, iou
    from angio.projection import mirror_symmetric, view_angles
    from angio.robustness import GEOMETRIES, acquired_inputs, magnified_truth
    from angio.study import predict_case

    model, entry = load_entry(name, folder=folder)
    settings = replace(entry.settings, results_dir=str(results_dir))
    exp = entry.experiment
    if mirror and not mirror_symmetric(view_angles(exp.n_views)):
        raise InputError(f"mirror test-time augmentation needs mirror-symmetric views; {name} takes "
                         f"{exp.n_views} views at {view_angles(exp.n_views).tolist()} degrees")
    cases = list(cases) if cases is not None else list(entry.record["test"]["cases"])
    acquisition = acquisition or GEOMETRIES[settings.geometry]
    cache = settings.cache()
    rows, kept = [], {}
    for case in cases:
        vols = cache.get(case, settings.spec, seed=settings.seed)
        x = acquired_inputs(vols, exp.n_views, exp.modes, acquisition, seed=settings.seed)
        prob = predict_case(model, x, settings, mirror=mirror)
        for target in targets:
            truth = vols.target(target)
            scores = ({"dice": dice(prob, truth), "iou": iou(prob, truth)} if overlap_only
                      else evaluate(prob, truth))
            if acquisition.magnification != 1.0:
                scaled = magnified_truth(truth, acquisition.magnification)
                scores.update(dice_rescaled=dice(prob, scaled), iou_rescaled=iou(prob, scaled))
            rows.append({"method": name, "experiment": name, "views": exp.n_views, "case": case, "target": target,
                         **scores})
        if keep:
            kept[case] = prob
    return rows, kept


def robustness_table(name: str, cases: list[str] | None = None, *, conditions=None,
                     results_dir: str | os.PathLike = "results", folder: str | os.PathLike | None = None,
                     log: Callable[[str], None] | None = None, mirror: bool = False) -> list[dict]:
    """Per-case Dice and IoU (exact mask) of an entry under each acquisition condition.

    ``conditions`` defaults to :data:`angio.robustness.CONDITIONS`; each row gets a
    ``condition`` label. ``folder`` is the zoo folder holding the entry; ``log``, when
    given, receives one line per condition as it is measured; ``mirror`` as for
    :func:`evaluate_entry`.
    """
    from angio.robustness import CONDITIONS

    rows = []
    for label, acq in (conditions or CONDITIONS).items():
        part, _ = evaluate_entry(name, cases, results_dir=results_dir, acquisition=acq, targets=("exact",),
                                 overlap_only=True, folder=folder, mirror=mirror)
        rows += [dict(r, condition=label) for r in part]
        if log is not None:
            log(f"[robustness] {name} {label}: Dice " + ", ".join(f"{r['dice']:.3f}" for r in part))
    return rows


def target_status(summary: dict[str, float], n_views: int) -> str:
    """"met" or the measured gap to :data:`TARGETS` for a mean-metric dict (``dice``, ``cldice``)."""
    goals = TARGETS.get(n_views)
    if not goals:
        return "no target"
    gaps = [f"{m} {summary[m]:.3f} < {goal:.2f}" for m, goal in goals.items() if summary[m] < goal]
    return "met" if not gaps else "gap: " + ", ".join(gaps)
