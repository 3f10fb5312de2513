"""Training: seeded, resumable, atomic checkpoints, mixed precision, DistributedDataParallel.

:func:`fit` trains a network of :mod:`angio.models` as Wu et al. do (focal loss, Adam at
1e-3, batch 1: the defaults of :class:`TrainConfig`), writing ``last.pt``, ``best.pt``,
``history.json`` and ``log.csv``; :func:`load_checkpoint` rebuilds the trained model.
One job per module:

:mod:`angio.train.config`
    :class:`TrainConfig`, its validation, and the model and loss it describes.
:mod:`angio.train.sampling`
    :class:`RandomCrop`, :class:`PatchDataset` and the seeded, sharded loader of an epoch.
:mod:`angio.train.determinism`
    Seeds, RNG states and deterministic CUDA algorithms.
:mod:`angio.train.distributed`
    The ``torchrun`` process group, reductions and BatchNorm buffer synchronisation.
:mod:`angio.train.checkpoint`
    What a checkpoint holds; writing, reading, resuming (:func:`load_checkpoint`,
    :func:`export_checkpoint`).
:mod:`angio.train.loop`
    :func:`fit`: the procedure, validation, model selection, :class:`NonFiniteLossError`.
:mod:`angio.train.cli`
    ``python -m angio.train --config cfg.json --data pkg.module:make_datasets``, also under
    ``torchrun --nproc_per_node N -m angio.train ...``.

The names below are re-exported here and imported on first use, so that
``from angio.train.checkpoint import load_checkpoint`` (all that inference needs) does not
import the training loop. :func:`resolve_device`, :func:`resolve_precision` and
:func:`cpu_has_native_bf16` live in :mod:`angio.device`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from angio.device import cpu_has_native_bf16 as cpu_has_native_bf16
    from angio.device import resolve_device, resolve_precision
    from angio.train.checkpoint import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
    from angio.train.checkpoint import export_checkpoint, load_checkpoint
    from angio.train.cli import main
    from angio.train.config import RESUMABLE_CHANGES as RESUMABLE_CHANGES
    from angio.train.config import TrainConfig
    from angio.train.loop import NonFiniteLossError, fit
    from angio.train.sampling import PatchDataset, RandomCrop

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

#: Where each re-exported name lives.
_HOMES = {
    "TrainConfig": "angio.train.config",
    "RESUMABLE_CHANGES": "angio.train.config",
    "RandomCrop": "angio.train.sampling",
    "PatchDataset": "angio.train.sampling",
    "NonFiniteLossError": "angio.train.loop",
    "fit": "angio.train.loop",
    "CHECKPOINT_FORMAT": "angio.train.checkpoint",
    "load_checkpoint": "angio.train.checkpoint",
    "export_checkpoint": "angio.train.checkpoint",
    "resolve_device": "angio.device",
    "resolve_precision": "angio.device",
    "cpu_has_native_bf16": "angio.device",
    "main": "angio.train.cli",
}


def __getattr__(name: str) -> Any:
    """Import a re-exported name from its module on first use (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
