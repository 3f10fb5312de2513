"""The configuration of a training run: :class:`TrainConfig`, its validation, and what it builds.

A :class:`TrainConfig` is JSON-serialisable (:meth:`TrainConfig.to_dict`,
:meth:`TrainConfig.from_dict`) and is stored in every checkpoint; on resume the fields that
change the mathematics must match the checkpoint's, the others (:data:`RESUMABLE_CHANGES`)
may change. :func:`model_from_config` and :func:`loss_from_config` build the network and the
loss it describes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from angio.checks import size3
from angio.models import build_model, set_output_prior
from angio.models.losses import build_loss

__all__ = ["RESUMABLE_CHANGES", "TrainConfig", "loss_from_config", "model_from_config"]

_MODELS = ("dae", "unet")
_LOSSES = ("focal", "dice_bce", "bce")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_METRICS = ("iou", "dice", "mse", "mae", "accuracy", "cldice")
_SELECT = ("loss", "dice", "iou")
#: Config fields that may differ between a checkpoint and the config that resumes it.
RESUMABLE_CHANGES = frozenset({"epochs", "out_dir", "device", "num_workers", "val_every", "metrics", "check_memory",
                               "patience", "patience_watch", "lr_milestones", "lr_gamma", "val_patch"})
# The learning-rate schedule may change on resume: epochs after the resume point follow the new
# schedule, so a run resumed with milestones later than its last epoch is the same run as one
# trained with those milestones from the start. The stopping rule (patience, patience_watch) may change
# too: it decides only when the run ends, never what an epoch computes. The selection rule (select,
# select_from) may not, since best.pt on disk was chosen by it; the one exception is a select_from
# under which the recorded epochs give the same best epoch (checked on resume from the history).


@dataclass
class TrainConfig:
    """Everything that defines a training run (JSON-serialisable, see :meth:`to_dict`).

    Attributes
    ----------
    model
        ``"dae"`` (the paper's :class:`~angio.models.DenoisingAutoencoder3D`) or ``"unet"``.
    model_kwargs
        Extra constructor arguments of the model (``in_channels`` and ``checkpointing`` come
        from the fields below).
    in_channels
        Input channels ``C`` of the volumes ``(C, Z, Y, X)``.
    loss
        ``"focal"`` (the paper's), ``"dice_bce"`` or ``"bce"``.
    focal_alpha, focal_gamma
        Focal-loss parameters (the paper's 0.5 and 0.2).
    loss_kwargs
        Extra arguments for the other losses (e.g. ``{"dice_weight": 0.5}``).
    lr
        Adam learning rate (the paper's 1e-3), constant unless ``lr_milestones`` are given.
    lr_milestones, lr_gamma
        Step schedule: from each epoch in ``lr_milestones`` on, the learning rate is
        multiplied by ``lr_gamma`` (as :class:`torch.optim.lr_scheduler.MultiStepLR`).
    batch_size
        Volumes (or patches) per step and per process (the paper's 1).
    epochs
        Number of epochs (passes over the training set, or ``max_steps_per_epoch`` steps).
    max_steps_per_epoch
        Optional cap on the optimizer steps of one epoch.
    precision
        ``"auto"`` (fp16 autocast with a GradScaler on CUDA; on the CPU bf16 autocast where
        it runs natively, else fp32: :func:`angio.device.resolve_precision`), ``"fp32"``,
        ``"bf16"`` or ``"fp16"`` (the latter with a GradScaler).
    checkpointing
        Activation checkpointing in the model (less memory, one extra forward pass).
    patch_size
        ``None`` to train on whole volumes; else an int or ``(Z, Y, X)`` crop size, each a
        multiple of the model's ``spatial_divisor``.
    vessel_prob
        Probability that a crop is centred on a random vessel voxel (see :class:`RandomCrop`).
    val_every
        Validate every this many epochs (and after the last epoch).
    val_patch
        ``None``: validate each volume in one pass. An int: validate with Gaussian-blended
        sliding windows of this size (:func:`angio.inference.predict_volume`), as a model
        whose normalisation uses the statistics of its input (instance or group norm, or
        BatchNorm at batch size 1 in training) is used at inference; the validation loss is
        then computed from the blended probabilities.
    select
        What picks ``best.pt``: the lowest validation ``"loss"`` (default) or the highest
        validation ``"dice"`` or ``"iou"`` (which must then be among ``metrics``).
    patience
        Stop early after this many validations without progress (``None``: train all
        ``epochs``). Progress is a new best selection value (a new ``best.pt``) or, for each
        quantity of ``patience_watch``, a new best value of that quantity; validations before
        ``select_from`` count for neither. See :mod:`angio.train.loop`.
    patience_watch
        Validation quantities besides the selection value whose improvement also counts as
        progress for ``patience``: ``"loss"`` or names of ``metrics`` (lower is better for
        loss, MSE and MAE, higher for the others). Empty (the default): only the selection
        value. ``("loss",)`` keeps a run selected by a thresholded metric going while its
        validation loss still falls, as it does in the early epochs of a focal-loss
        network whose IoU at 0.5 is still flat.
    select_from
        First epoch (counted from 0) that may be selected: earlier epochs are trained,
        validated and logged, but never written to ``best.pt`` and not counted by
        ``patience`` (so no run stops before epoch ``select_from + patience``). 0 (the
        default): every epoch. A guard against shipping an epoch whose metric is an
        artifact of an untrained network (e.g. a near-constant output that overlaps a large
        target); a run that ends before ``select_from`` has no ``best.pt``. It may change
        on resume only when, over the epochs recorded, the new value selects the epoch
        already in ``best.pt``.
    metrics
        Validation metrics, a subset of ``("iou", "dice", "mse", "mae", "accuracy", "cldice")``.
    seed
        Non-negative seed for the weights, the shuffle and the crops.
    output_prior
        Start the output layer's bias at the log-odds of this vessel probability (Lin et al.,
        RetinaNet) instead of PyTorch's default initialization; ``None`` (default) keeps the
        default, as the paper does not say otherwise. With vessels filling well under 1% of a
        volume, a prior near that fraction saves the first epochs a network otherwise
        spends learning that almost every voxel is background.
    deterministic
        On CUDA, use deterministic algorithms (see :mod:`angio.train.determinism`); no effect
        on the CPU.
    sync_batchnorm
        Under DDP on CUDA, synchronise BatchNorm statistics across processes.
    device
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    num_workers
        DataLoader worker processes (0: load in the main process).
    check_memory
        Refuse up front a run that would not fit in memory (:func:`angio.memory.check_fits`).
    out_dir
        Folder for ``last.pt``, ``best.pt``, ``history.json`` and ``log.csv``.
    data
        Free-form, JSON-serialisable description of the data (e.g. the phantom spec, the
        number of views, the input modes); not used by :func:`fit`, but recorded in the
        checkpoint and compared on resume like the other fields.
    init_from
        Checkpoint (of :func:`~angio.train.fit`, full or exported) whose weights initialise a
        new run (fine-tuning); its network must match ``model``/``model_kwargs`` up to
        BatchNorm running statistics. Ignored when the run resumes.
    """

    model: str = "dae"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    in_channels: int = 1
    loss: str = "focal"
    focal_alpha: float = 0.5
    focal_gamma: float = 0.2
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    batch_size: int = 1
    epochs: int = 100
    max_steps_per_epoch: int | None = None
    precision: str = "auto"
    checkpointing: bool = False
    patch_size: int | tuple[int, int, int] | None = None
    vessel_prob: float = 0.7
    val_every: int = 1
    val_patch: int | None = None
    select: str = "loss"
    patience: int | None = None
    patience_watch: tuple[str, ...] = ()
    select_from: int = 0
    metrics: tuple[str, ...] = ("iou", "dice", "mse", "mae", "accuracy")
    seed: int = 0
    output_prior: float | None = None
    deterministic: bool = True
    sync_batchnorm: bool = False
    device: str = "auto"
    num_workers: int = 0
    check_memory: bool = True
    out_dir: str = "runs/train"
    data: dict[str, Any] = field(default_factory=dict)
    init_from: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.patch_size, list):
            self.patch_size = tuple(self.patch_size)
        self.metrics = tuple(self.metrics)
        self.patience_watch = tuple(self.patience_watch)
        self.lr_milestones = tuple(self.lr_milestones)
        self.out_dir = os.fspath(self.out_dir)
        # JSON round trip: plain dicts/lists, so a config built in Python and one read from
        # JSON (or a checkpoint) compare equal on resume
        for name in ("model_kwargs", "loss_kwargs", "data"):
            try:
                setattr(self, name, dict(json.loads(json.dumps(dict(getattr(self, name))))))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"TrainConfig.{name} must be a JSON-serialisable dict: {exc}") from None
        self._validate()

    def _validate(self) -> None:
        def positive_int(name: str, value: Any, minimum: int = 1) -> None:
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"TrainConfig.{name} must be an int >= {minimum}, got {value!r}.")

        if self.model not in _MODELS:
            raise ValueError(f"TrainConfig.model must be one of {_MODELS}, got {self.model!r}.")
        if self.loss not in _LOSSES:
            raise ValueError(f"TrainConfig.loss must be one of {_LOSSES}, got {self.loss!r}.")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {_PRECISIONS}, got {self.precision!r}.")
        clash = {"in_channels", "checkpointing"} & set(self.model_kwargs)
        if clash:
            raise ValueError(f"set {sorted(clash)} with the TrainConfig fields, not in model_kwargs.")
        positive_int("in_channels", self.in_channels)
        positive_int("batch_size", self.batch_size)
        positive_int("epochs", self.epochs, 0)
        positive_int("val_every", self.val_every)
        positive_int("seed", self.seed, 0)
        positive_int("select_from", self.select_from, 0)
        positive_int("num_workers", self.num_workers, 0)
        if self.max_steps_per_epoch is not None:
            positive_int("max_steps_per_epoch", self.max_steps_per_epoch)
        if self.patience is not None:
            positive_int("patience", self.patience)
        if self.val_patch is not None:
            positive_int("val_patch", self.val_patch)
        if self.init_from is not None and not isinstance(self.init_from, str):
            raise ValueError(f"TrainConfig.init_from must be a checkpoint path (str), got {self.init_from!r}.")
        if self.select not in _SELECT:
            raise ValueError(f"TrainConfig.select must be one of {_SELECT}, got {self.select!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}.")
        if any(not isinstance(m, int) or isinstance(m, bool) or m < 1 for m in self.lr_milestones):
            raise ValueError(f"TrainConfig.lr_milestones must be epochs >= 1, got {self.lr_milestones!r}.")
        if not (isinstance(self.lr_gamma, (int, float)) and 0 < self.lr_gamma <= 1):
            raise ValueError(f"TrainConfig.lr_gamma must be in (0, 1], got {self.lr_gamma!r}.")
        if self.output_prior is not None and not 0.0 < self.output_prior < 1.0:
            raise ValueError(f"TrainConfig.output_prior must be in (0, 1), got {self.output_prior!r}.")
        if not 0.0 <= self.vessel_prob <= 1.0:
            raise ValueError(f"TrainConfig.vessel_prob must be in [0, 1], got {self.vessel_prob!r}.")
        if self.patch_size is not None:
            size3(self.patch_size, "TrainConfig.patch_size")
        unknown = set(self.metrics) - set(_METRICS)
        if unknown:
            raise ValueError(f"TrainConfig.metrics: unknown {sorted(unknown)}; choose from {_METRICS}.")
        if self.select != "loss" and self.select not in self.metrics:
            raise ValueError(f"TrainConfig.select={self.select!r} needs {self.select!r} in metrics {self.metrics}.")
        watchable = ("loss", *self.metrics)
        if any(q not in watchable for q in self.patience_watch):
            raise ValueError(f"TrainConfig.patience_watch must name validation quantities among {watchable}, "
                             f"got {self.patience_watch!r}.")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["metrics"] = list(self.metrics)
        out["lr_milestones"] = list(self.lr_milestones)
        out["patience_watch"] = list(self.patience_watch)
        if isinstance(self.patch_size, tuple):
            out["patch_size"] = list(self.patch_size)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {sorted(unknown)}; known: {sorted(names)}.")
        return cls(**dict(data))


def model_from_config(config: TrainConfig) -> nn.Module:
    """The untrained network of ``config`` (its model, channels, checkpointing and output prior)."""
    model = build_model(
        config.model, in_channels=config.in_channels, checkpointing=config.checkpointing, **config.model_kwargs
    )
    if config.output_prior is not None:
        set_output_prior(model, config.output_prior)
    return model


def loss_from_config(config: TrainConfig) -> nn.Module:
    """The loss of ``config`` (the focal loss with ``focal_alpha`` and ``focal_gamma``, or another)."""
    if config.loss == "focal":
        return build_loss("focal", alpha=config.focal_alpha, gamma=config.focal_gamma, **config.loss_kwargs)
    return build_loss(config.loss, **config.loss_kwargs)
