"""Training loop: seeded, resumable, atomic checkpoints, mixed precision, DistributedDataParallel.

The procedure
-------------
Wu et al. train the denoising autoencoder (:class:`angio.models.DenoisingAutoencoder3D`) to
map a back-projected volume (``C`` channels in ``[0, 1]``) to the binary vessel mask, with
the **focal loss** (``alpha = 0.5``, ``gamma = 0.2``), the **Adam** optimizer at a learning
rate of **1e-3** and a **batch size of 1** (one whole volume per step). Those are the
defaults of :class:`TrainConfig`. :func:`fit` runs, for every epoch:

1. ``train_set.set_epoch(epoch)`` when the data set has it (on-the-fly augmentation is then
   a function of ``(seed, epoch, index)``), and a shuffle of the indices seeded by
   ``(seed, epoch)`` (:class:`~torch.utils.data.DistributedSampler`, also without DDP);
2. optionally a random crop of ``patch_size`` voxels from every volume (:class:`RandomCrop`,
   biased towards crops that contain vessel voxels, seeded by ``(seed, epoch, index)``);
3. forward under autocast, loss, backward, Adam step, for up to ``max_steps_per_epoch``
   steps, with a check that the loss is finite at every step;
4. every ``val_every`` epochs (and after the last one), whole-volume validation: mean loss
   and the mean per-volume metrics of :mod:`angio.metrics` (IoU, Dice, MSE, MAE, accuracy
   by default; clDice on request, it is slow);
5. ``out_dir/last.pt`` (and ``best.pt`` when the validation loss improves), then
   ``history.json`` and ``log.csv``, each written atomically.

Before the first step the run is checked against the memory available on the device
(:func:`angio.memory.check_fits`); a run that would not fit is refused with the
:class:`MemoryError` that says what would fit.

Determinism
-----------
:func:`fit` seeds Python's :mod:`random`, NumPy's global generator and torch (CPU and CUDA)
with ``config.seed`` before building the model, so the initial weights depend on the seed
only. Nothing in the loop draws from the global generators: the shuffle, the DataLoader's
worker seeds and the crops use generators derived from ``(seed, epoch[, index])``. On the
CPU the kernels the models use are deterministic for a given number of threads, so the
same seed gives bit-identical weights and metrics; ``torch.use_deterministic_algorithms``
is *not* switched on there, because it adds nothing on the CPU and makes every
``torch.empty`` fill its memory. On CUDA, ``config.deterministic`` (default ``True``)
sets ``cudnn.deterministic``, disables cuDNN autotuning and enables
``torch.use_deterministic_algorithms(True, warn_only=True)`` (without filling uninitialized
memory) for the duration of :func:`fit`, restoring the previous global settings afterwards;
``CUBLAS_WORKSPACE_CONFIG`` is set when absent (it only takes effect if cuBLAS was not
initialised yet). Results on different devices, thread counts or library versions differ.

Resume
------
A checkpoint holds the model (BatchNorm running statistics included), the Adam moments and
step counts, the GradScaler state, the RNG states (torch CPU and CUDA, NumPy, Python), the
number of completed epochs and optimizer steps, the configuration, the history and the
package version. Because the shuffle, the data set's epoch and the crops are functions of
``(seed, epoch, index)`` rather than of a generator that advances, restoring those state
dicts is enough for ``fit(config, ..., resume=True)`` to continue exactly where the
interrupted run would have been: on the CPU the final weights are bit-identical to an
uninterrupted run. Fields that change the mathematics (model, loss, lr, seed, patch size,
...) must match the checkpoint's; ``epochs``, ``out_dir``, ``device``, ``num_workers``,
``val_every``, ``metrics``, ``check_memory`` may change. Epochs are counted from 0
everywhere (``set_epoch``, history, messages); global steps count optimizer steps from 0.

Files are replaced atomically (write a temporary file in the same folder, flush, fsync,
``os.replace``), so a run killed at any moment leaves either the previous or the new
``last.pt``, never a truncated one.

Non-finite losses
-----------------
A NaN or infinite loss (or, without a GradScaler, a non-finite gradient norm) raises
:class:`NonFiniteLossError` (a :class:`FloatingPointError`) naming the epoch, the global
step and the cases of the batch, before the optimizer step. Checkpoints are written only at
the end of an epoch, so the last good ``last.pt`` is left untouched. Under fp16 a GradScaler
skips steps whose gradients overflow, as usual; a non-finite *loss* still stops the run.

Multi-GPU and multi-node
------------------------
Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) :func:`fit` initialises the
process group itself when needed (``nccl`` on CUDA, ``gloo`` on the CPU), puts rank ``r``
on ``cuda:LOCAL_RANK``, wraps the model in :class:`~torch.nn.parallel.DistributedDataParallel`
and shards the data with a seeded :class:`~torch.utils.data.DistributedSampler`. Gradients
are averaged, so the effective batch is ``batch_size * WORLD_SIZE`` (the paper's setting is
one GPU, batch 1). BatchNorm normalises with per-process batch statistics unless
``sync_batchnorm=True`` (CUDA only); DDP copies rank 0's running statistics to every rank at
each forward, and at the end of every epoch the floating-point running statistics are
averaged over the ranks, so all ranks (and the checkpoint) hold the same buffers.
Validation is sharded and reduced. Only rank 0 writes files and shows progress bars. On the
CPU the memory check divides the host's available memory by ``LOCAL_WORLD_SIZE``. Entry
point: ``torchrun --nproc_per_node N -m angio.train --config cfg.json --data pkg.mod:make``
(see :func:`main`).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib
import io
import itertools
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm.auto import tqdm

import angio
from angio.atomic import TEMP_SUFFIX, atomic_write
from angio.device import autocast, cpu_has_native_bf16, resolve_device, resolve_precision
from angio.errors import InputError
from angio.validation import size3

__all__ = [
    "TrainConfig",
    "RandomCrop",
    "PatchDataset",
    "NonFiniteLossError",
    "fit",
    "load_checkpoint",
    "export_checkpoint",
    "resolve_device",
    "resolve_precision",
    "main",
]

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "angio.train/1"
_MODELS = ("dae", "unet")
_LOSSES = ("focal", "dice_bce", "bce")
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_METRICS = ("iou", "dice", "mse", "mae", "accuracy", "cldice")
#: Config fields that may differ between a checkpoint and the config that resumes it.
RESUMABLE_CHANGES = frozenset({"epochs", "out_dir", "device", "num_workers", "val_every", "metrics", "check_memory",
                               "patience"})
_SELECT = ("loss", "dice", "iou")


# ============================================================================= configuration
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
        Adam learning rate (the paper's 1e-3); constant.
    batch_size
        Volumes (or patches) per step and per process (the paper's 1).
    epochs
        Number of epochs (passes over the training set, or ``max_steps_per_epoch`` steps).
    max_steps_per_epoch
        Optional cap on the optimizer steps of one epoch.
    precision
        ``"auto"`` (bf16 autocast on the CPU, fp16 autocast with a GradScaler on CUDA),
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` (the latter with a GradScaler).
    checkpointing
        Activation checkpointing in the model (less memory, one extra forward pass).
    patch_size
        ``None`` to train on whole volumes; else an int or ``(Z, Y, X)`` crop size, each a
        multiple of the model's ``spatial_divisor``.
    vessel_prob
        Probability that a crop is centred on a random vessel voxel (see :class:`RandomCrop`).
    val_every
        Validate every this many epochs (and after the last epoch).
    select
        What picks ``best.pt``: the lowest validation ``"loss"`` (default) or the highest
        validation ``"dice"`` or ``"iou"`` (which must then be among ``metrics``).
    patience
        Stop early when the selection value has not improved for this many validations
        (``None``: train all ``epochs``).
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
        On CUDA, use deterministic algorithms (see the module docstring); no effect on the CPU.
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
    """

    model: str = "dae"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    in_channels: int = 1
    loss: str = "focal"
    focal_alpha: float = 0.5
    focal_gamma: float = 0.2
    loss_kwargs: dict[str, Any] = field(default_factory=dict)
    lr: float = 1e-3
    batch_size: int = 1
    epochs: int = 100
    max_steps_per_epoch: int | None = None
    precision: str = "auto"
    checkpointing: bool = False
    patch_size: int | tuple[int, int, int] | None = None
    vessel_prob: float = 0.7
    val_every: int = 1
    select: str = "loss"
    patience: int | None = None
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

    def __post_init__(self) -> None:
        if isinstance(self.patch_size, list):
            self.patch_size = tuple(self.patch_size)
        self.metrics = tuple(self.metrics)
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
        positive_int("num_workers", self.num_workers, 0)
        if self.max_steps_per_epoch is not None:
            positive_int("max_steps_per_epoch", self.max_steps_per_epoch)
        if self.patience is not None:
            positive_int("patience", self.patience)
        if self.select not in _SELECT:
            raise ValueError(f"TrainConfig.select must be one of {_SELECT}, got {self.select!r}.")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"TrainConfig.lr must be a positive number, got {self.lr!r}.")
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
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ValueError(f"TrainConfig.device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}.")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["metrics"] = list(self.metrics)
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


# ============================================================================= patches
class RandomCrop:
    """Random crops of a volume and its mask, biased towards crops that contain vessels.

    With probability ``vessel_prob`` (and when the mask has any vessel voxel) a vessel voxel
    is drawn uniformly and the crop start is drawn uniformly among the starts whose crop
    contains it; otherwise the start is uniform over the volume. Volumes smaller than the
    crop along an axis are zero-padded at the high end first.

    Parameters
    ----------
    size
        Crop size, an int or ``(Z, Y, X)``.
    vessel_prob
        Probability of a vessel-centred crop, in ``[0, 1]``.
    """

    def __init__(self, size: int | Sequence[int], *, vessel_prob: float = 0.7) -> None:
        self.size = size3(size, "RandomCrop size")
        if not 0.0 <= vessel_prob <= 1.0:
            raise ValueError(f"vessel_prob must be in [0, 1], got {vessel_prob!r}.")
        self.vessel_prob = float(vessel_prob)

    def starts(self, target: torch.Tensor, rng: np.random.Generator) -> tuple[int, int, int]:
        """Crop origin ``(z0, y0, x0)`` for a mask of shape ``(..., Z, Y, X)`` (padded size if smaller)."""
        shape = [max(n, p) for n, p in zip(target.shape[-3:], self.size)]
        biased = rng.random() < self.vessel_prob
        if biased:
            vessel = (target.reshape(-1, *target.shape[-3:]) > 0).any(0).reshape(-1)
            flat = torch.nonzero(vessel).squeeze(1)
            if flat.numel():
                centre = np.unravel_index(int(flat[int(rng.integers(flat.numel()))]), tuple(target.shape[-3:]))
                return tuple(  # type: ignore[return-value]
                    int(rng.integers(max(0, c - p + 1), min(c, n - p) + 1)) for c, n, p in zip(centre, shape, self.size)
                )
        return tuple(int(rng.integers(0, n - p + 1)) for n, p in zip(shape, self.size))  # type: ignore[return-value]

    def __call__(
        self, volume: torch.Tensor, target: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Crop ``volume`` ``(C, Z, Y, X)`` and ``target`` ``(1, Z, Y, X)`` to ``(C, *size)`` and ``(1, *size)``."""
        if volume.shape[-3:] != target.shape[-3:]:
            raise ValueError(f"input {tuple(volume.shape)} and target {tuple(target.shape)} differ in spatial size.")
        z0, y0, x0 = self.starts(target, rng)
        pz, py, px = self.size
        return tuple(  # type: ignore[return-value]
            _pad_to(t, self.size)[..., z0 : z0 + pz, y0 : y0 + py, x0 : x0 + px].contiguous() for t in (volume, target)
        )


def _pad_to(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Zero-pad the last three axes of ``t`` at the high end to at least ``size``."""
    pads = [max(p - n, 0) for n, p in zip(t.shape[-3:], size)]
    if not any(pads):
        return t
    return F.pad(t, [0, pads[2], 0, pads[1], 0, pads[0]])


class PatchDataset(Dataset):
    """A data set of dicts whose ``input`` and ``target`` are random crops of another's.

    Item ``i`` of epoch ``e`` is cropped with ``numpy.random.default_rng([seed, e, i])``, so
    crops are reproducible and independent of the loading order or worker. ``set_epoch``
    is forwarded to the wrapped data set.

    Parameters
    ----------
    dataset
        Items ``{"input": (C, Z, Y, X), "target": (1, Z, Y, X), "case": str}``.
    size, vessel_prob
        See :class:`RandomCrop`.
    seed
        Non-negative seed.
    """

    def __init__(self, dataset: Dataset, size: int | Sequence[int], *, seed: int = 0, vessel_prob: float = 0.7) -> None:
        self.dataset = dataset
        self.crop = RandomCrop(size, vessel_prob=vessel_prob)
        self.seed = int(seed)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (and forward it to the wrapped data set)."""
        self.epoch = int(epoch)
        _set_epoch(self.dataset, epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        item["input"], item["target"] = self.crop(item["input"], item["target"], rng)
        return item


def _set_epoch(dataset: Any, epoch: int) -> None:
    fn = getattr(dataset, "set_epoch", None)
    if callable(fn):
        fn(epoch)


# ============================================================================= errors
class NonFiniteLossError(FloatingPointError):
    """Training hit a NaN or infinite loss (or gradient); ``epoch`` and ``step`` say where."""

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


# ============================================================================= atomic files
def _remove_stale_temps(out_dir: Path) -> None:
    """Delete temporary files left by a run killed while writing (``.last.pt.*.tmp``, ...)."""
    for name in ("last.pt", "best.pt", "history.json", "log.csv"):
        for stale in out_dir.glob(f".{name}.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                stale.unlink()


def _write_logs(out_dir: Path, history: dict[str, Any]) -> None:
    rows = history["epochs"]
    atomic_write(out_dir / "history.json", lambda fh: fh.write(json.dumps(history, indent=2).encode()))
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    atomic_write(out_dir / "log.csv", lambda fh: fh.write(text.getvalue().encode()))


# ============================================================================= RNG state
def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative ints (via NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@contextlib.contextmanager
def _determinism(device: torch.device, enabled: bool) -> Iterator[None]:
    """Deterministic CUDA algorithms for the duration of the block (no-op on the CPU)."""
    if device.type != "cuda" or not enabled:
        yield
        return
    import torch.utils.deterministic

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.utils.deterministic.fill_uninitialized_memory,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
        torch.utils.deterministic.fill_uninitialized_memory = saved[4]


# ============================================================================= distributed
@dataclass(frozen=True)
class _Dist:
    """Process-group facts of this process (``world == 1`` without DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _setup_dist(device_name: str) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(device_name).type == "cuda"
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return _Dist(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=local_rank,
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size()))),
        owns_group=owns,
    )


def _teardown_dist(info: _Dist) -> None:
    if info.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def _all_reduce_sum(values: torch.Tensor, info: _Dist) -> torch.Tensor:
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def _sync_buffers(model: nn.Module, info: _Dist) -> None:
    """Average floating-point buffers (BatchNorm running stats) over ranks; copy the rest from rank 0."""
    if not info.enabled:
        return
    import torch.distributed as dist

    for buf in model.buffers():
        if buf.is_floating_point():
            dist.all_reduce(buf, op=dist.ReduceOp.SUM)
            buf.div_(info.world)
        else:
            dist.broadcast(buf, src=0)


# ============================================================================= building blocks
def _build_model(config: TrainConfig) -> nn.Module:
    from angio.models import build_model, set_output_prior

    model = build_model(
        config.model, in_channels=config.in_channels, checkpointing=config.checkpointing, **config.model_kwargs
    )
    if config.output_prior is not None:
        set_output_prior(model, config.output_prior)
    return model


def _build_loss(config: TrainConfig) -> nn.Module:
    from angio.models.losses import build_loss

    if config.loss == "focal":
        return build_loss("focal", alpha=config.focal_alpha, gamma=config.focal_gamma, **config.loss_kwargs)
    return build_loss(config.loss, **config.loss_kwargs)


def _padded(shape: Sequence[int], divisor: int) -> tuple[int, int, int]:
    return tuple(math.ceil(n / divisor) * divisor for n in shape)  # type: ignore[return-value]


def _forward(model: nn.Module, x: torch.Tensor, divisor: int) -> torch.Tensor:
    """Logits ``(B, 1, Z, Y, X)`` of ``x`` ``(B, C, Z, Y, X)``, zero-padding to the model's divisor and cropping back."""
    shape = tuple(x.shape[-3:])
    padded = _padded(shape, divisor)
    if padded == shape:
        return model(x)
    logits = model(_pad_to(x, padded))
    return logits[..., : shape[0], : shape[1], : shape[2]]


def _check_item(item: Mapping[str, Any], what: str, in_channels: int) -> None:
    for key in ("input", "target"):
        if key not in item or not isinstance(item[key], torch.Tensor):
            raise ValueError(f"{what}: items must be dicts with tensor 'input' and 'target', got keys {sorted(item)}.")
    x, y = item["input"], item["target"]
    if x.ndim != 4 or x.shape[0] != in_channels:
        raise ValueError(f"{what}: 'input' must be (C={in_channels}, Z, Y, X), got shape {tuple(x.shape)}.")
    if y.ndim != 4 or y.shape[0] != 1 or y.shape[1:] != x.shape[1:]:
        raise ValueError(f"{what}: 'target' must be (1, Z, Y, X) matching the input, got {tuple(y.shape)} for input {tuple(x.shape)}.")


def _memory_check(
    model: nn.Module,
    config: TrainConfig,
    train_shape: tuple[int, ...],
    val_shape: tuple[int, ...] | None,
    device: torch.device,
    precision: str,
    info: _Dist,
) -> None:
    """Raise the :class:`MemoryError` of :func:`angio.memory.check_fits` if a step would not fit.

    Checks a training step at the patch size (or ``train_shape``, the first item's
    ``(Z, Y, X)``, padded to the model's divisor) and, when training on patches, the
    whole-volume validation pass at ``val_shape``.
    """
    from angio import memory

    divisor = int(getattr(model, "spatial_divisor", 1))
    if config.patch_size is not None:
        size = size3(config.patch_size, "patch_size")
    else:
        size = _padded(train_shape, divisor)
    available = None
    if device.type == "cpu" and info.local_world > 1:
        available = memory.available_memory(device) // info.local_world
    common = {"available": available, "precision": precision, "in_channels": config.in_channels}
    with torch.random.fork_rng(devices=[]):  # the probes draw random inputs
        memory.check_fits(
            model, size, device, checkpointing=config.checkpointing, batch=config.batch_size, loss=config.loss, **common
        )
        if config.patch_size is not None and val_shape is not None:
            memory.check_fits(model, _padded(val_shape, divisor), device, training=False, **common)


def _train_loader(dataset: Dataset, config: TrainConfig, epoch: int, info: _Dist, device: torch.device) -> DataLoader:
    """A DataLoader for one epoch: seeded shuffle (sharded under DDP) and seeded worker seeds."""
    _set_epoch(dataset, epoch)
    sampler = DistributedSampler(dataset, num_replicas=info.world, rank=info.rank, shuffle=True, seed=config.seed)
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(_derive_seed(config.seed, epoch, 1))
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        generator=generator,
        pin_memory=device.type == "cuda",
    )


def _grad_norm(parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


# ============================================================================= checkpoints
def _checkpoint_payload(state: _State, config: TrainConfig) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "version": angio.__version__,
        "torch_version": str(torch.__version__),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "rng": _rng_state(),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "config": config.to_dict(),
        "history": state.history,
    }


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: torch.save(payload, fh))


def _read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict, turning every failure into an :class:`InputError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong file type, ...
        raise InputError(
            f"{path}: cannot read the checkpoint: the file is truncated or corrupt, or not a checkpoint ({type(exc).__name__}: {exc})."
        ) from exc
    missing = [k for k in ("format", "model", "config", "epoch", "global_step") if not isinstance(payload, dict) or k not in payload]
    if missing or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an angio training checkpoint (format {CHECKPOINT_FORMAT!r}; missing {missing}).")
    return payload


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the trained model of a checkpoint written by :func:`fit`.

    Parameters
    ----------
    path
        ``last.pt`` or ``best.pt``.
    map_location
        Where to put the tensors (``torch.load``'s argument).

    Returns
    -------
    model
        The network with the checkpoint's weights, in eval mode; maps ``(B, C, Z, Y, X)`` to
        logits ``(B, 1, Z, Y, X)``.
    config
        The :class:`TrainConfig` of the run.
    info
        Everything else in the file: ``epoch`` (last completed, from 0), ``global_step``
        (optimizer steps done), ``history``, ``version``, ``torch_version``, and the
        ``optimizer``, ``scaler`` and ``rng`` states.

    Raises
    ------
    angio.InputError
        The file is missing, truncated, corrupt, not a checkpoint of :func:`fit`, or its
        weights do not fit the model its config describes; the message names the file.
    """
    payload = _read_checkpoint(path, map_location)
    try:
        config = TrainConfig.from_dict(payload["config"])
        model = _build_model(config)
        model.load_state_dict(payload["model"])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise InputError(f"{path}: the checkpoint's config or weights are invalid: {exc}") from exc
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    model.eval()
    info = {k: v for k, v in payload.items() if k not in ("model", "config")}
    return model, config, info


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write a slim copy of a checkpoint for inference: weights, config and history only.

    The optimizer, GradScaler and RNG states (needed only to resume training) are left out,
    which makes the paper's model about a third of the size. :func:`load_checkpoint` reads
    the result; ``fit(resume=True)`` does not.
    """
    payload = _read_checkpoint(src)
    slim = {k: v for k, v in payload.items() if k not in ("optimizer", "scaler", "rng")}
    dst = Path(dst)
    atomic_write(dst, lambda fh: torch.save(slim, fh))
    return dst


def _resume_payload(
    config: TrainConfig, last: Path, *, resume: bool, info: _Dist, device: torch.device
) -> dict[str, Any] | None:
    """The checkpoint to resume from (``None`` for a new run), read by rank 0 and broadcast under DDP.

    Raises the same error on every rank: ``FileExistsError`` when ``last`` exists without
    ``resume``, :class:`~angio.InputError` for an unreadable file, ``ValueError`` for a
    config that changes the training.
    """
    result: Any = None
    if info.is_main:
        try:
            if last.exists() and not resume:
                raise FileExistsError(f"{last} exists: pass resume=True to continue that run, or choose another out_dir.")
            if resume and last.exists():
                result = _read_checkpoint(last)
                _check_resumable(result["config"], config, last)
        except Exception as exc:  # re-raised below, on every rank
            result = exc
    if info.enabled:  # other nodes may not share the file system
        import torch.distributed as dist

        box = [result]
        dist.broadcast_object_list(box, src=0, device=device if device.type == "cuda" else None)
        result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path) -> None:
    current = config.to_dict()
    changed = sorted(k for k in set(saved) | set(current) if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k))
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"cannot resume {path}: the config differs in fields that change the training ({detail}). "
            f"Only {sorted(RESUMABLE_CHANGES)} may change on resume."
        )


# ============================================================================= the loop
@dataclass
class _State:
    """Mutable training state (what a checkpoint captures)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    epoch: int = -1  # last completed epoch
    global_step: int = 0  # optimizer steps done
    history: dict[str, Any] = field(default_factory=lambda: {"epochs": [], "best_epoch": None, "best_val_loss": None})
    elapsed: float = 0.0  # wall time of the completed epochs, seconds


@dataclass
class _Run:
    """Fixed facts of one :func:`fit` call."""

    config: TrainConfig
    device: torch.device
    precision: str
    dist: _Dist
    loss_fn: nn.Module
    net: nn.Module  # the model, DDP-wrapped under DDP
    divisor: int
    out_dir: Path
    progress: bool


def _train_epoch(run: _Run, state: _State, loader: DataLoader, epoch: int) -> dict[str, float]:
    """One epoch of optimizer steps; returns the mean loss, steps and throughput."""
    config, device = run.config, run.device
    steps = len(loader) if config.max_steps_per_epoch is None else min(len(loader), config.max_steps_per_epoch)
    params = [p for p in state.model.parameters() if p.requires_grad]
    run.net.train()
    total, voxels, start = 0.0, 0, time.perf_counter()
    bar = tqdm(
        total=steps,
        desc=f"epoch {epoch}/{config.epochs - 1}",
        unit="step",
        disable=not (run.progress and run.dist.is_main),
        leave=False,
        dynamic_ncols=True,
    )
    with bar:
        for i, batch in enumerate(itertools.islice(loader, steps)):  # islice: no extra batch is loaded
            x = batch["input"].to(device, non_blocking=True)
            y = batch["target"].to(device, non_blocking=True)
            with autocast(device, run.precision):
                loss = run.loss_fn(_forward(run.net, x, run.divisor), y)
            state.optimizer.zero_grad(set_to_none=True)
            state.scaler.scale(loss).backward()
            value, norm = _step_health(loss, params, check_grads=not state.scaler.is_enabled(), info=run.dist)
            if not math.isfinite(value):
                _raise_non_finite(run, state, epoch, "loss", value, batch)
            if not math.isfinite(norm):
                _raise_non_finite(run, state, epoch, "gradient norm", norm, batch)
            state.scaler.step(state.optimizer)
            state.scaler.update()
            state.global_step += 1
            total += value
            voxels += x.numel() // x.shape[1] * run.dist.world
            rate = voxels / max(time.perf_counter() - start, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{total / (i + 1):.4f}", vox_s=f"{rate:.3g}")
    seconds = time.perf_counter() - start
    return {"train_loss": total / max(steps, 1), "steps": steps, "voxels_per_s": voxels / max(seconds, 1e-9)}


def _step_health(
    loss: torch.Tensor, params: Sequence[torch.Tensor], *, check_grads: bool, info: _Dist
) -> tuple[float, float]:
    """Mean loss over ranks and the gradient norm (0 when not checked), with one host sync."""
    norm = _grad_norm(params).to(loss.device) if check_grads else torch.zeros((), device=loss.device)
    both = torch.stack([loss.detach().float(), norm.float()])
    loss_sum, norm_sum = _all_reduce_sum(both, info).tolist()
    return loss_sum / info.world, norm_sum


def _raise_non_finite(run: _Run, state: _State, epoch: int, what: str, value: float, batch: Mapping[str, Any]) -> None:
    cases = batch.get("case")
    last = run.out_dir / "last.pt"
    kept = (
        f"the last good checkpoint {last} (end of epoch {state.epoch}) was kept"
        if state.epoch >= 0
        else "no checkpoint was written (the first epoch did not finish)"
    )
    raise NonFiniteLossError(
        f"non-finite {what} ({value}) at epoch {epoch}, global step {state.global_step} "
        f"(batch cases {cases}); training stopped and {kept}. Check the inputs for NaN/inf, or try a "
        f"lower lr (now {run.config.lr}) or precision='fp32' (now {run.precision!r}).",
        epoch=epoch,
        step=state.global_step,
    )


def _metric_fns(names: Sequence[str]) -> dict[str, Callable[[Any, Any], float]]:
    from angio import metrics as m

    table = {"iou": m.iou, "dice": m.dice, "mse": m.mse, "mae": m.mae, "accuracy": m.pixel_accuracy, "cldice": m.cldice}
    return {name: table[name] for name in names}


@torch.no_grad()
def _validate(run: _Run, state: _State, val_set: Dataset) -> dict[str, float]:
    """Mean loss and mean per-volume metrics over ``val_set`` (whole volumes, sharded under DDP)."""
    model, device = state.model, run.device
    fns = _metric_fns(run.config.metrics)
    model.eval()
    sums = torch.zeros(2 + len(fns), dtype=torch.float64)
    indices = range(run.dist.rank, len(val_set), run.dist.world)  # type: ignore[arg-type]
    for index in tqdm(indices, desc="validate", leave=False, disable=not (run.progress and run.dist.is_main)):
        item = val_set[index]
        x = item["input"][None].to(device)
        y = item["target"][None].to(device)
        with autocast(device, run.precision):
            logits = _forward(model, x, run.divisor)
        sums[0] += float(run.loss_fn(logits, y))
        sums[1] += 1
        prob = torch.sigmoid(logits.float())[0, 0].cpu()
        mask = y[0, 0].cpu() > 0.5
        for j, fn in enumerate(fns.values()):
            sums[2 + j] += fn(prob, mask)
    sums = _all_reduce_sum(sums.to(device), run.dist).cpu()
    count = max(float(sums[1]), 1.0)
    out = {"val_loss": float(sums[0]) / count}
    out.update({f"val_{name}": float(sums[2 + j]) / count for j, name in enumerate(fns)})
    return out


def _should_validate(config: TrainConfig, epoch: int) -> bool:
    return (epoch + 1) % config.val_every == 0 or epoch == config.epochs - 1


def _end_epoch(run: _Run, state: _State, row: dict[str, Any]) -> None:
    """Record the epoch; on rank 0 write ``last.pt`` (``best.pt``), ``history.json`` and ``log.csv``."""
    history = state.history
    history["epochs"].append(row)
    improved = _improved(run.config.select, row, history)
    if improved:
        history["best_val_loss"], history["best_epoch"] = row["val_loss"], row["epoch"]
    if not run.dist.is_main:
        return
    payload = _checkpoint_payload(state, run.config)
    _save_checkpoint(run.out_dir / "last.pt", payload)
    if improved:
        _save_checkpoint(run.out_dir / "best.pt", payload)
    _write_logs(run.out_dir, history)


def _improved(select: str, row: Mapping[str, Any], history: Mapping[str, Any]) -> bool:
    """Whether the epoch ``row`` beats the best so far by the selection rule ``select``."""
    key = "val_loss" if select == "loss" else f"val_{select}"
    value = row.get(key)
    if value is None:
        return False
    best = history.get("best_epoch")
    if best is None:
        return True
    previous = next(r[key] for r in history["epochs"] if r["epoch"] == best)
    return value < previous if select == "loss" else value > previous


def _patience_exhausted(config: TrainConfig, history: Mapping[str, Any]) -> bool:
    """True when ``config.patience`` validations have passed without a new best epoch."""
    if config.patience is None or history.get("best_epoch") is None:
        return False
    later = [r for r in history["epochs"] if r["epoch"] > history["best_epoch"] and r.get("val_loss") is not None]
    return len(later) >= config.patience


def _restore(state: _State, payload: Mapping[str, Any]) -> None:
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if payload.get("scaler"):
        state.scaler.load_state_dict(payload["scaler"])
    state.epoch = int(payload["epoch"])
    state.global_step = int(payload["global_step"])
    state.history = payload["history"]
    rows = state.history["epochs"]
    state.elapsed = float(rows[-1]["wall_time_s"]) if rows else 0.0
    _set_rng_state(payload["rng"])


def fit(
    config: TrainConfig | Mapping[str, Any],
    train_set: Dataset,
    val_set: Dataset | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train a network on ``train_set`` as described in the module docstring.

    Parameters
    ----------
    config
        A :class:`TrainConfig` (or its :meth:`~TrainConfig.to_dict`).
    train_set
        Items ``{"input": float32 (C, Z, Y, X) in [0, 1], "target": float32 (1, Z, Y, X)
        of 0/1, "case": str}``; an optional ``set_epoch(epoch)`` is called every epoch.
        With ``patch_size`` set it is wrapped in :class:`PatchDataset`.
    val_set
        Same items, evaluated on whole volumes; ``None`` to skip validation.
    resume
        Continue from ``out_dir/last.pt`` (start afresh if there is none). Without it, an
        ``out_dir`` that already holds ``last.pt`` is refused, so a run is never
        overwritten by accident.
    progress
        Show tqdm progress bars (rank 0 only).
    on_epoch_end
        Called on every rank after each epoch's files are written, with the epoch, the
        (unwrapped) model and the epoch's history row.

    Returns
    -------
    dict
        ``{"epochs": [row, ...], "best_epoch": int | None, "best_val_loss": float | None}``;
        each row has ``epoch``, ``global_step``, ``steps``, ``train_loss``, ``val_loss`` and
        ``val_<metric>`` (``None`` when not validated), ``lr``, ``time_s``, ``wall_time_s``
        and ``voxels_per_s``. The same is in ``out_dir/history.json`` and ``log.csv``.

    Raises
    ------
    MemoryError
        From :func:`angio.memory.check_fits`, unchanged, when a step would not fit.
    NonFiniteLossError
        A :class:`FloatingPointError`: NaN/inf loss, naming the epoch and global step.
    FileExistsError
        ``out_dir/last.pt`` exists and ``resume`` is false.
    ValueError
        Bad config or items, or a resume whose config changes the training.
    angio.InputError
        ``last.pt`` is truncated or corrupt.
    """
    config = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
    info = _setup_dist(config.device)
    try:
        device = resolve_device(config.device, local_rank=info.local_rank if info.enabled else None)
        with _determinism(device, config.deterministic):
            return _fit(config, train_set, val_set, info, device, resume=resume, progress=progress, on_epoch_end=on_epoch_end)
    finally:
        _teardown_dist(info)


def _fit(
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    info: _Dist,
    device: torch.device,
    *,
    resume: bool,
    progress: bool,
    on_epoch_end: Callable[[int, nn.Module, dict[str, Any]], None] | None,
) -> dict[str, Any]:
    precision = resolve_precision(config.precision, device)
    if config.sync_batchnorm and info.enabled and device.type != "cuda":
        raise ValueError("sync_batchnorm=True needs CUDA (SyncBatchNorm has no CPU implementation).")
    if len(train_set) == 0:  # type: ignore[arg-type]
        raise ValueError("train_set is empty.")
    # read the first items before seeding, so a data set that draws from the global RNGs
    # sees the same RNG states whether or not the memory check runs
    first = train_set[0]
    _check_item(first, "train_set", config.in_channels)
    train_shape = tuple(first["input"].shape[-3:])
    val_shape = None
    if val_set is not None and len(val_set):  # type: ignore[arg-type]
        first = val_set[0]
        _check_item(first, "val_set", config.in_channels)
        val_shape = tuple(first["input"].shape[-3:])
    del first
    out_dir = Path(config.out_dir)
    last = out_dir / "last.pt"
    payload = _resume_payload(config, last, resume=resume, info=info, device=device)

    _seed_everything(config.seed)
    model = _build_model(config).to(device)
    if info.enabled and config.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    divisor = int(getattr(model, "spatial_divisor", 1))
    if config.patch_size is not None:
        bad = [s for s in size3(config.patch_size, "patch_size") if s % divisor]
        if bad:
            raise ValueError(f"patch_size {config.patch_size} must be multiples of the model's spatial_divisor {divisor}.")
        train_set = PatchDataset(train_set, config.patch_size, seed=config.seed, vessel_prob=config.vessel_prob)
    if config.check_memory:
        _memory_check(model, config, train_shape, val_shape, device, precision, info)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    state = _State(model=model, optimizer=optimizer, scaler=scaler)
    if payload is not None:
        _restore(state, payload)
        log.info("resuming %s after epoch %d (global step %d)", last, state.epoch, state.global_step)
    elif resume:
        log.info("no %s to resume; starting a new run", last)

    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(out_dir)
    run = _Run(config, device, precision, info, _build_loss(config), net, divisor, out_dir, progress)

    for epoch in range(state.epoch + 1, config.epochs):
        if _patience_exhausted(config, state.history):
            break
        start = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch}
        stats = _train_epoch(run, state, _train_loader(train_set, config, epoch, info, device), epoch)
        _sync_buffers(state.model, info)
        validated = val_set is not None and _should_validate(config, epoch)
        val = _validate(run, state, val_set) if validated else {}  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        state.elapsed += seconds
        row.update(global_step=state.global_step, steps=stats["steps"], train_loss=stats["train_loss"])
        row["val_loss"] = val.get("val_loss")
        row.update({f"val_{m}": val.get(f"val_{m}") for m in config.metrics} if val_set is not None else {})
        row.update(lr=optimizer.param_groups[0]["lr"], time_s=seconds, wall_time_s=state.elapsed,
                   voxels_per_s=stats["voxels_per_s"])
        state.epoch = epoch
        _end_epoch(run, state, row)
        if run.progress and info.is_main:
            tqdm.write(_describe_row(row, config.epochs), file=sys.stderr)
        if on_epoch_end is not None:
            on_epoch_end(epoch, state.model, row)
    return state.history


def _describe_row(row: Mapping[str, Any], epochs: int) -> str:
    parts = [f"epoch {row['epoch'] + 1}/{epochs}", f"train_loss {row['train_loss']:.4f}"]
    parts += [f"{k} {v:.4f}" for k, v in row.items() if k.startswith("val_") and v is not None]
    parts.append(f"{row['time_s']:.1f}s")
    return ", ".join(parts)


# ============================================================================= command line
def _load_callable(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    if not module or not name:
        raise ValueError(f"--data must be 'package.module:function', got {spec!r}.")
    return getattr(importlib.import_module(module), name)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Command line: ``python -m angio.train --config cfg.json --data pkg.module:make_datasets [--resume]``.

    ``make_datasets(config)`` returns ``train_set`` or ``(train_set, val_set)``. Works as is
    under ``torchrun --nproc_per_node N -m angio.train ...`` (DDP).
    """
    import argparse

    parser = argparse.ArgumentParser(prog="python -m angio.train", description=main.__doc__)
    parser.add_argument("--config", required=True, help="TrainConfig as JSON")
    parser.add_argument("--data", required=True, help="'package.module:function' returning the data set(s)")
    parser.add_argument("--resume", action="store_true", help="continue from out_dir/last.pt")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    config = TrainConfig.from_dict(json.loads(Path(args.config).read_text()))
    data = _load_callable(args.data)(config)
    train_set, val_set = data if isinstance(data, tuple) else (data, None)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    return fit(config, train_set, val_set, resume=args.resume, progress=not args.no_progress)


if __name__ == "__main__":
    main()
