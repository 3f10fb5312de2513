"""The study's experiments: what a run is, where it lives, and training (or reusing) it.

An :class:`Experiment` (model, views, input channels, loss, target) trained under
:class:`StudySettings` (volume spec, epochs, augmentation, split, seed) lives in
``results/runs/<name>-<hash>/``, where the hash covers every field that changes the result.
:func:`run_experiment` reuses a finished run, resumes an interrupted one and trains a new
one otherwise (``force=True`` retrains), so re-running the study skips finished work.
The weights evaluated are those of the epoch with the lowest validation loss (``best.pt``;
``last.pt`` when there are no validation cases): the validation cases select the model, the
test cases only measure it.

Split: the paper holds out 5 patients for testing (:func:`angio.data.split_cases`); of the
remaining cases ``n_val`` are kept for per-epoch validation and the rest train, each seen
as one of ``variants`` augmented versions per epoch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from angio.data import split_cases
from angio.dataset import VesselDataset
from angio.pipeline import GEOMETRY_NAMES, TRAINING_TARGETS, VolumeCache, VolumeSpec
from angio.train import TrainConfig, fit, load_checkpoint
from angio.train.checkpoint import read_history

__all__ = ["StudySettings", "Experiment", "Trained", "BIPLANE_EXPERIMENTS", "SMALL_UNET", "study_split", "train_config",
           "run_experiment", "training_dataset", "validation_dataset"]


@dataclass(frozen=True)
class StudySettings:
    """Everything shared by the experiments of one study run.

    Parameters
    ----------
    spec : VolumeSpec
        Volume size, field of view, centring and modality.
    epochs : int
        Training epochs per experiment.
    variants : int
        Augmented variants per training case (0: no augmentation, as the paper).
    n_test, n_val : int
        Held-out test cases (paper: 5) and validation cases taken from the rest.
    max_train_cases : int, optional
        Use only the first this many training cases (for tiny smoke runs).
    max_steps_per_epoch : int, optional
        Cap on optimizer steps per epoch.
    patch_size : int, optional
        Train on random crops of this size (full-resolution training on small memory).
    inference_patch : int, optional
        Sliding-window size for prediction (``None``: whole volumes).
    precision, device : str
        See :class:`angio.train.TrainConfig` (``"auto"``: bf16 on CPU, fp16 on CUDA).
    seed : int
        Seed of the split, augmentation, noise and weights.
    output_prior : float, optional
        Initial vessel probability of the output layer (:class:`angio.train.TrainConfig`).
    results_dir : str
        Root of ``runs/``, ``cache/`` and ``metrics/``.
    geometry : {"parallel", "cone", "cone-rays"}
        How views are acquired for training and evaluation
        (:data:`angio.acquisition.GEOMETRIES`): parallel rays (the paper's), or a clinical
        cone-beam C-arm, demagnified to the isocentre (``"cone"``) or back-projected along
        its own rays (``"cone-rays"``).
    batch_size : int
        Patches per optimizer step (the paper: 1).
    samples_per_volume : int
        Patches drawn from every training case per epoch (each with its own augmented
        variant and crop); 1 is one pass over the cases.
    resident : bool
        Build every training case's inputs once, in parallel, and keep them in memory
        (float16) instead of recomputing them for every patch (see
        :meth:`angio.pipeline.VesselDataset.preload`). Does not change the weights.
    num_workers : int
        DataLoader workers that crop the patches. Does not change the weights.
    angle_jitter_deg : float
        Train on miscalibrated views: each augmented variant's views after the first are
        acquired up to this many degrees off their nominal angles (one error per case and
        variant, uniform in ``[-j, j]``) and back-projected at the nominal angles
        (:class:`angio.pipeline.VesselDataset`). Validation and test views stay nominal.
    """

    spec: VolumeSpec = field(default_factory=VolumeSpec)
    epochs: int = 10
    variants: int = 4
    n_test: int = 5
    n_val: int = 3
    max_train_cases: int | None = None
    max_steps_per_epoch: int | None = None
    patch_size: int | None = None
    inference_patch: int | None = None
    precision: str = "auto"
    device: str = "auto"
    seed: int = 0
    output_prior: float | None = None
    results_dir: str = "results"
    geometry: str = "parallel"
    batch_size: int = 1
    samples_per_volume: int = 1
    resident: bool = False
    num_workers: int = 0
    angle_jitter_deg: float = 0.0

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRY_NAMES:
            raise ValueError(f"StudySettings.geometry must be one of {GEOMETRY_NAMES}, got {self.geometry!r}")
        for name in ("batch_size", "samples_per_volume"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"StudySettings.{name} must be a positive int, got {value!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"StudySettings.num_workers must be a non-negative int, got {self.num_workers!r}")
        if not (isinstance(self.angle_jitter_deg, (int, float)) and 0.0 <= self.angle_jitter_deg < 45.0):
            raise ValueError(f"StudySettings.angle_jitter_deg must be in [0, 45) degrees, "
                             f"got {self.angle_jitter_deg!r}")

    @classmethod
    def from_dict(cls, d: dict) -> StudySettings:
        """Inverse of :func:`dataclasses.asdict` (``spec`` may be a dict)."""
        d = dict(d)
        d["spec"] = VolumeSpec(**d["spec"]) if isinstance(d.get("spec"), dict) else d.get("spec", VolumeSpec())
        return cls(**d)

    @property
    def results(self) -> Path:
        """``results_dir`` as a path."""
        return Path(self.results_dir)

    def cache(self) -> VolumeCache:
        """The volume cache under ``results/cache``."""
        return VolumeCache(self.results / "cache")


@dataclass(frozen=True)
class Experiment:
    """One model to train: architecture, views, input channels, loss and target."""

    model: str = "dae"
    n_views: int = 2
    modes: tuple[str, ...] = ("sum",)
    loss: str = "focal"
    target: str = "otsu"
    model_kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.target not in TRAINING_TARGETS:
            raise ValueError(f"target must be one of {TRAINING_TARGETS}, got {self.target!r}")
        object.__setattr__(self, "modes", tuple(self.modes))
        if isinstance(self.model_kwargs, dict):
            object.__setattr__(self, "model_kwargs", tuple(sorted(self.model_kwargs.items())))

    @property
    def name(self) -> str:
        """Readable id, e.g. ``dae-sum-2v-focal-otsu``."""
        return f"{self.model}-{'+'.join(self.modes)}-{self.n_views}v-{self.loss}-{self.target}"

    @property
    def label(self) -> str:
        """Label for tables, e.g. ``DAE (sum)``."""
        return f"{'DAE' if self.model == 'dae' else 'U-Net'} ({' + '.join(self.modes)})"


#: The U-Net of the live chapters and the zoo: 8 base channels, 4 levels (1.4 M parameters; a
#: training step on a 64^3 volume takes about half as long as with 16 channels and 3 levels).
SMALL_UNET: tuple[tuple[str, int], ...] = (("base_channels", 8), ("depth", 4))

#: The biplane comparison (chapter 7): the paper's autoencoder on the sum back-projection, and
#: the residual U-Net on the sum, on the min and on both.
BIPLANE_EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("dae", 2), Experiment("unet", 2, ("sum",), model_kwargs=SMALL_UNET),
    Experiment("unet", 2, ("min",), model_kwargs=SMALL_UNET),
    Experiment("unet", 2, ("sum", "min"), model_kwargs=SMALL_UNET))


@dataclass
class Trained:
    """A trained (or reloaded) experiment.

    ``checkpoint`` is the file the weights of ``model`` came from and ``epoch`` the
    (0-based) epoch that wrote it.
    """

    experiment: Experiment
    model: torch.nn.Module
    history: dict
    run_dir: Path
    reused: bool
    checkpoint: Path | None = None
    epoch: int | None = None


def study_split(settings: StudySettings) -> tuple[list[str], list[str], list[str]]:
    """``(train, val, test)`` case ids of the study (patient-level, deterministic)."""
    split = split_cases(n_test=settings.n_test, seed=settings.seed)
    rng = np.random.default_rng([settings.seed, 1])
    train = list(split.train)
    val = sorted(rng.choice(train, size=settings.n_val, replace=False).tolist()) if settings.n_val else []
    train = [c for c in train if c not in val]
    if settings.max_train_cases is not None:
        train = train[: settings.max_train_cases]
    return train, val, list(split.test)


def _run_key(exp: Experiment, settings: StudySettings) -> str:
    s = asdict(settings)
    for k in ("results_dir", "device", "inference_patch", "resident", "num_workers"):  # do not change the weights
        s.pop(k)
    # runs keep the keys they had before these were settings
    for k, default in (("geometry", "parallel"), ("batch_size", 1), ("samples_per_volume", 1),
                       ("angle_jitter_deg", 0.0)):
        if s[k] == default:
            s.pop(k)
    text = json.dumps({"experiment": asdict(exp), "settings": s, "format": 1}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def train_config(exp: Experiment, settings: StudySettings, out_dir: Path) -> TrainConfig:
    """The :class:`TrainConfig` of an experiment (paper hyper-parameters unless stated)."""
    return TrainConfig(
        model=exp.model, model_kwargs=dict(exp.model_kwargs), in_channels=len(exp.modes),
        loss=exp.loss, epochs=settings.epochs, max_steps_per_epoch=settings.max_steps_per_epoch,
        precision=settings.precision, patch_size=settings.patch_size, seed=settings.seed,
        output_prior=settings.output_prior,
        device=settings.device, metrics=("iou", "dice"), out_dir=str(out_dir),
        batch_size=settings.batch_size, num_workers=settings.num_workers,
        data={"spec": asdict(settings.spec), "n_views": exp.n_views, "modes": list(exp.modes),
              "target": exp.target, "variants": settings.variants,
              **({} if settings.geometry == "parallel" else {"geometry": settings.geometry}),
              **({} if settings.samples_per_volume == 1 else {"samples_per_volume": settings.samples_per_volume}),
              **({} if not settings.angle_jitter_deg else {"angle_jitter_deg": settings.angle_jitter_deg})})


def training_dataset(exp: Experiment, settings: StudySettings, cases) -> VesselDataset:
    """The training set of ``exp`` (augmented variants, ``samples_per_volume``, preloaded when ``resident``)."""
    return _dataset(exp, settings, cases, variants=settings.variants, samples_per_volume=settings.samples_per_volume)


def validation_dataset(exp: Experiment, settings: StudySettings, cases) -> VesselDataset:
    """The validation set of ``exp``: the cases as scanned (preloaded and kept in memory when ``resident``)."""
    return _dataset(exp, settings, cases, variants=0, samples_per_volume=1)


def _dataset(exp: Experiment, settings: StudySettings, cases, *, variants: int,
             samples_per_volume: int) -> VesselDataset:
    data = VesselDataset(cases, settings.spec, exp.n_views, modes=exp.modes, target=exp.target, variants=variants,
                         cache=settings.cache(), seed=settings.seed, geometry=settings.geometry,
                         samples_per_volume=samples_per_volume, resident=settings.resident,
                         angle_jitter_deg=settings.angle_jitter_deg if variants else 0.0)
    if settings.resident:
        data.preload(device=settings.device)
    return data


def run_experiment(exp: Experiment, settings: StudySettings, *, force: bool = False,
                   progress: bool = True) -> Trained:
    """Train ``exp`` or reuse its finished run (see the module docstring).

    Parameters
    ----------
    exp : Experiment
    settings : StudySettings
    force : bool
        Delete any previous run of this experiment and train again.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    Trained
        With ``reused=True`` when nothing had to be trained.
    """
    run_dir = settings.results / "runs" / f"{exp.name}-{_run_key(exp, settings)}"
    if force and run_dir.exists():
        shutil.rmtree(run_dir)
    last = run_dir / "last.pt"
    history = read_history(run_dir)
    reused = last.exists() and len(history["epochs"]) >= settings.epochs
    if not reused:
        train, val, _ = study_split(settings)
        history = fit(train_config(exp, settings, run_dir), training_dataset(exp, settings, train),
                      validation_dataset(exp, settings, val) if val else None, resume=last.exists(),
                      progress=progress)
    chosen = run_dir / "best.pt" if (run_dir / "best.pt").exists() else last
    model, _, info = load_checkpoint(chosen)
    return Trained(exp, model, history, run_dir, reused=reused, checkpoint=chosen, epoch=info.get("epoch"))
