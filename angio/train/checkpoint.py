"""Checkpoints of a training run: what they hold, writing, reading, resuming, exporting.

:func:`load_checkpoint` and :func:`export_checkpoint` are all that inference needs; they
do not import the training loop.

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
...) must match the checkpoint's; those of :data:`~angio.train.config.RESUMABLE_CHANGES`
(``epochs``, ``out_dir``, ``device``, ``num_workers``, ``val_every``, ``metrics``,
``check_memory``, the stopping rule ``patience`` and ``patience_watch``, the learning-rate
schedule, ``val_patch``) may change. A field missing from a checkpoint's config (one written
before the field existed) counts as its default, the behaviour the run was trained with, so
adding a field keeps older runs resumable. Epochs are counted from 0
everywhere (``set_epoch``, history, messages); global steps count optimizer steps from 0.

Files are replaced atomically (write a temporary file in the same folder, flush, fsync,
``os.replace``), so a run killed at any moment leaves either the previous or the new
``last.pt``, never a truncated one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import angio
from angio.atomic import TEMP_SUFFIX, atomic_write
from angio.errors import InputError
from angio.train.config import RESUMABLE_CHANGES, TrainConfig, model_from_config
from angio.train.determinism import rng_state, set_rng_state
from angio.train.distributed import DistInfo, broadcast_from_main
from angio.train.selection import replay_rule

__all__ = [
    "CHECKPOINT_FORMAT",
    "TrainState",
    "checkpoint_payload",
    "export_checkpoint",
    "init_weights",
    "load_checkpoint",
    "read_checkpoint",
    "read_history",
    "remove_stale_temps",
    "restore_state",
    "resumable_from_export",
    "resume_payload",
    "save_checkpoint",
    "write_logs",
]

CHECKPOINT_FORMAT = "angio.train/1"


@dataclass
class TrainState:
    """Mutable training state (what a checkpoint captures)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    epoch: int = -1  # last completed epoch
    global_step: int = 0  # optimizer steps done
    history: dict[str, Any] = field(default_factory=lambda: {"epochs": [], "best_epoch": None, "best_val_loss": None})
    elapsed: float = 0.0  # wall time of the completed epochs, seconds


def checkpoint_payload(state: TrainState, config: TrainConfig) -> dict[str, Any]:
    """Everything :func:`fit(resume=True) <angio.train.fit>` needs to continue from ``state``."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": angio.__version__,
        "torch_version": str(torch.__version__),
        "model": state.model.state_dict(),
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict(),
        "rng": rng_state(),
        "epoch": state.epoch,
        "global_step": state.global_step,
        "config": config.to_dict(),
        "history": state.history,
    }


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically (the previous file survives a failure)."""
    atomic_write(path, lambda fh: torch.save(payload, fh))


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict, turning every failure into an :class:`InputError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint file not found.")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, bad pickle, wrong file type, ...
        raise InputError(
            f"{path}: cannot read the checkpoint: the file is truncated or corrupt, or not a checkpoint "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    required = ("format", "model", "config", "epoch", "global_step")
    missing = [k for k in required if not isinstance(payload, dict) or k not in payload]
    if missing or payload.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not an angio training checkpoint (format {CHECKPOINT_FORMAT!r}; missing {missing}).")
    return payload


def load_checkpoint(
    path: str | os.PathLike, *, map_location: Any = "cpu"
) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Rebuild the trained model of a checkpoint written by :func:`~angio.train.fit`.

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
        The file is missing, truncated, corrupt, not a checkpoint of :func:`~angio.train.fit`,
        or its weights do not fit the model its config describes; the message names the file.
    """
    payload = read_checkpoint(path, map_location)
    try:
        config = TrainConfig.from_dict(payload["config"])
        model = model_from_config(config)
        model.load_state_dict(payload["model"])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        raise InputError(f"{path}: the checkpoint's config or weights are invalid: {exc}") from exc
    if map_location is not None and not callable(map_location) and not isinstance(map_location, dict):
        model.to(map_location)
    model.eval()
    info = {k: v for k, v in payload.items() if k not in ("model", "config")}
    return model, config, info


def export_checkpoint(src: str | os.PathLike, dst: str | os.PathLike, *, half: bool = False) -> Path:
    """Write a slim copy of a checkpoint for inference: weights, config and history only.

    The optimizer, GradScaler and RNG states (needed only to resume training) are left out,
    which makes the paper's model about a third of the size. :func:`load_checkpoint` reads
    the result; ``fit(resume=True)`` does not (:func:`resumable_from_export` makes it
    resumable again). With ``half``, floating-point weights are stored in float16 (half the
    size again; ``weights_dtype`` says so) and :func:`load_checkpoint` computes with them in
    float16 until the model is cast.
    """
    payload = read_checkpoint(src)
    slim = {k: v for k, v in payload.items() if k not in ("optimizer", "scaler", "rng")}
    if half:
        slim["model"] = {k: v.half() if v.is_floating_point() else v for k, v in slim["model"].items()}
        slim["weights_dtype"] = "float16"
    dst = Path(dst)
    atomic_write(dst, lambda fh: torch.save(slim, fh))
    return dst


def resumable_from_export(src: str | os.PathLike, dst: str | os.PathLike, *, notes: list[str] | None = None) -> Path:
    """Turn an exported checkpoint back into one that ``fit(resume=True)`` continues.

    A run whose ``last.pt`` is gone (a lent GPU keeps nothing) can go on from the weights it
    shipped: the weights (cast back to float32 if they were stored in float16), the epoch and
    step counts, the configuration and the history of ``src`` are kept; the Adam moments
    start again from zero and the RNG states are the current ones. The continuation is
    therefore not bit-identical to an uninterrupted run; a note saying so is appended to the
    history (``history["notes"]``), which the run's record carries.

    Parameters
    ----------
    src : path-like
        A checkpoint of :func:`~angio.train.fit` (``best.pt``, exported or not).
    dst : path-like
        The ``last.pt`` to write; refused when it exists (it would be a run to resume as is).
        The ``history.json`` and ``log.csv`` beside it are rewritten to its history, so that
        they end at ``src``'s epoch as the continuation does.
    notes : list of str, optional
        Notes to keep before the new one (default: those in ``src``'s history), e.g. the
        run's ``history.json`` notes when they were written after ``src``.

    Returns
    -------
    pathlib.Path
        ``dst``.

    Raises
    ------
    angio.InputError
        ``src`` is unreadable or its weights do not fit its config (names the file).
    FileExistsError
        ``dst`` exists.
    """
    dst = Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} exists: resume that run instead of rebuilding it from {src}.")
    model, config, info = load_checkpoint(src)
    model.float()
    state = TrainState(model, torch.optim.Adam(model.parameters(), lr=config.lr),
                       torch.amp.GradScaler("cpu", enabled=False),  # no state: the run's own scaler starts afresh
                       epoch=int(info["epoch"]), global_step=int(info["global_step"]))
    if info.get("history"):
        state.history = dict(info["history"])
    kept = list(state.history.get("notes") or []) if notes is None else list(notes)
    state.history["notes"] = [*kept, f"resumed after epoch {info['epoch']} from the exported weights of "
                              f"{Path(src).name} ({info.get('weights_dtype', 'float32')}); Adam moments restarted"]
    save_checkpoint(dst, checkpoint_payload(state, config))
    write_logs(dst.parent, state.history)  # the run's history.json and log.csv now end where dst does
    return dst


def resume_payload(
    config: TrainConfig, last: Path, *, resume: bool, info: DistInfo, device: torch.device
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
                raise FileExistsError(
                    f"{last} exists: pass resume=True to continue that run, or choose another out_dir."
                )
            if resume and last.exists():
                result = read_checkpoint(last)
                _check_resumable(result["config"], config, last, result.get("history"))
        except Exception as exc:  # re-raised below, on every rank
            result = exc
    result = broadcast_from_main(result, info, device)  # other nodes may not share the file system
    if isinstance(result, BaseException):
        raise result
    return result


def _check_resumable(saved: Mapping[str, Any], config: TrainConfig, path: Path,
                     history: Mapping[str, Any] | None = None) -> None:
    current = config.to_dict()
    # a checkpoint written before a field existed was trained with the field's default
    saved = {**{k: v for k, v in TrainConfig().to_dict().items() if k not in saved}, **saved}
    changed = sorted(
        k for k in set(saved) | set(current) if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)
    )
    if "select_from" in changed and history is not None and _same_selection(history, config):
        changed.remove("select_from")
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise InputError(
            f"cannot resume {path}: the config differs in fields that change the training ({detail}). "
            f"Only {sorted(RESUMABLE_CHANGES)} may change on resume; delete {path.parent} to start over."
        )


def _same_selection(history: Mapping[str, Any], config: TrainConfig) -> bool:
    """Whether ``config``'s selection rule picks, from the recorded epochs, the epoch of ``best.pt``.

    ``select_from`` may then change on resume: the weights on disk are the ones the new rule
    would have kept (e.g. a run selected from epoch 0 whose best epoch is past the new
    ``select_from``), so the resumed run is the one trained under the new rule from the start.
    """
    rows = history.get("epochs") or []
    if not rows:
        return False
    picked = replay_rule(rows, select=config.select, patience=None, select_from=config.select_from)["best_epoch"]
    return picked == history.get("best_epoch")


def restore_state(state: TrainState, payload: Mapping[str, Any]) -> None:
    """Load a checkpoint's payload (from :func:`resume_payload`) into ``state`` and the global RNGs."""
    state.model.load_state_dict(payload["model"])
    state.optimizer.load_state_dict(payload["optimizer"])
    if payload.get("scaler"):
        state.scaler.load_state_dict(payload["scaler"])
    state.epoch = int(payload["epoch"])
    state.global_step = int(payload["global_step"])
    state.history = payload["history"]
    rows = state.history["epochs"]
    state.elapsed = float(rows[-1]["wall_time_s"]) if rows else 0.0
    set_rng_state(payload["rng"])


_RUNNING_STATS = ("running_mean", "running_var", "num_batches_tracked")


def init_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Load the weights of checkpoint ``path`` into ``model`` (a fine-tuning start).

    The checkpoint's network must have the same parameters (names and shapes) as ``model``;
    BatchNorm running statistics may be present on one side only (a network trained with
    BatchNorm at batch size 1 normalises exactly as instance normalisation does in training,
    so its weights start an instance-norm run). Floating-point weights are cast to ``model``'s
    dtype.

    Raises
    ------
    angio.InputError
        The file is unreadable, or its parameters do not fit ``model`` (names the file).
    """
    payload = read_checkpoint(path)
    theirs = {k: v for k, v in payload["model"].items() if k.rsplit(".", 1)[-1] not in _RUNNING_STATS}
    ours = {k: v for k, v in model.state_dict().items() if k.rsplit(".", 1)[-1] not in _RUNNING_STATS}
    missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    wrong = sorted(k for k in set(ours) & set(theirs) if tuple(ours[k].shape) != tuple(theirs[k].shape))
    if missing or extra or wrong:
        raise InputError(f"{path}: its weights do not fit the model to initialise (missing {missing[:3]}, "
                         f"unexpected {extra[:3]}, other shape {wrong[:3]}).")
    model.load_state_dict({k: v.to(ours[k].dtype) for k, v in theirs.items()}, strict=False)


def remove_stale_temps(out_dir: Path) -> None:
    """Delete temporary files left by a run killed while writing (``.last.pt.*.tmp``, ...)."""
    for name in ("last.pt", "best.pt", "history.json", "log.csv"):
        for stale in out_dir.glob(f".{name}.*{TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                stale.unlink()


def read_history(run_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``history.json`` that :func:`write_logs` wrote into ``run_dir``.

    Returns ``{"epochs": []}`` when the file is missing, unreadable or has no list of
    epochs (a run that has not finished an epoch yet).
    """
    try:
        history = json.loads((Path(run_dir) / "history.json").read_text())
        if isinstance(history.get("epochs"), list):
            return history
    except (OSError, ValueError, AttributeError):
        pass
    return {"epochs": []}


def write_logs(out_dir: Path, history: dict[str, Any]) -> None:
    """Write ``history.json`` and ``log.csv`` (one row per epoch) into ``out_dir``, atomically."""
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
