"""The zoo's recipes: everything that makes an entry's weights, as data.

A :class:`Recipe` fixes the experiment, volume spec, split, seed, patch size, selection and
stopping rule of one entry; :data:`RECIPES` names them all. :data:`DEFAULT_MODELS`,
:data:`CONE_MODELS` and :data:`MIRROR_MODELS` say which entries ``angio reconstruct`` uses
(chosen on the validation trees). Records keep the recipe their weights were made with:
:func:`recipe_changes` lists where the current one differs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from typing import Any

from angio.errors import InputError
from angio.experiment import SMALL_UNET, Experiment, StudySettings
from angio.pipeline import VolumeSpec

__all__ = ["Recipe", "RECIPES", "DEFAULT_MODELS", "CONE_MODELS", "MIRROR_MODELS", "DEFAULT_SPEC", "ZOO_UNET",
           "PAPER_VIEWS", "PAPER_CURRICULUM", "CONTINUED_ON_CPU", "RULE_FIELDS", "get_recipe", "recipe_changes",
           "retrain_order"]


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
        _gpu_recipe("unet-biplane-cpu",
                    "unet-biplane's recipe, continued from its shipped weights on two CPU threads, session after "
                    "session (angio train --recipe unet-biplane-cpu --continue-shipped); it replaces unet-biplane "
                    "in angio reconstruct once it leads on the validation trees and its robustness is recorded", 2),
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


def get_recipe(name: str) -> Recipe:
    """The recipe ``name`` of :data:`RECIPES`; an :class:`~angio.errors.InputError` lists the others."""
    if name not in RECIPES:
        raise InputError(f"unknown recipe {name!r}; available: {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


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
    current = json.loads(json.dumps(get_recipe(name).to_dict()))
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
        get_recipe(name)
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
