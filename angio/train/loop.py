"""The training loop: :func:`fit`, one epoch of steps, validation, model selection.

The procedure
-------------
Wu et al. train the denoising autoencoder (:class:`angio.models.DenoisingAutoencoder3D`) to
map a back-projected volume (``C`` channels in ``[0, 1]``) to the binary vessel mask, with
the **focal loss** (``alpha = 0.5``, ``gamma = 0.2``), the **Adam** optimizer at a learning
rate of **1e-3** and a **batch size of 1** (one whole volume per step). Those are the
defaults of :class:`~angio.train.config.TrainConfig`. :func:`fit` runs, for every epoch:

1. ``train_set.set_epoch(epoch)`` when the data set has it (on-the-fly augmentation is then
   a function of ``(seed, epoch, index)``), and a shuffle of the indices seeded by
   ``(seed, epoch)`` (:class:`~torch.utils.data.DistributedSampler`, also without DDP);
2. optionally a random crop of ``patch_size`` voxels from every volume (:class:`~angio.train.sampling.RandomCrop`,
   biased towards crops that contain vessel voxels, seeded by ``(seed, epoch, index)``);
3. forward under autocast, loss, backward, Adam step, for up to ``max_steps_per_epoch``
   steps, with a check that the loss is finite at every step;
4. every ``val_every`` epochs (and after the last one), whole-volume validation: mean loss
   and the mean per-volume metrics of :mod:`angio.metrics` (IoU, Dice, MSE, MAE, accuracy
   by default; clDice on request, it is slow);
5. ``out_dir/last.pt`` (and ``best.pt`` when the selection value improves), then
   ``history.json`` and ``log.csv``, each written atomically.

Selection and early stopping
----------------------------
``best.pt`` holds the epoch with the best validation value of ``select`` (the lowest loss,
or the highest Dice or IoU; the first such epoch on ties), among the epochs from
``select_from`` on. With ``patience`` set, the run stops after ``patience`` validations
without *progress*: a new best selection value or, for each quantity of ``patience_watch``,
a new best value of that quantity (among the validations from ``select_from`` on). The
defaults (``patience_watch=()``, ``select_from=0``) are the classic rule: patience on the
selection value alone, every epoch eligible.

Why the other quantities: a thresholded metric can be flat while the network is still
learning. With the focal loss an autoencoder first spends epochs driving the background
probability down; its validation loss falls steadily while its IoU at 0.5 stays near zero,
or is inflated by a near-constant output that happens to overlap a large target. Patience on
IoU alone then stops the run, and selects an untrained epoch; ``patience_watch=("loss",)``
keeps it going while the loss falls and ``select_from`` keeps the first epochs from being
shipped. Neither changes what an epoch computes, so :func:`~angio.train.selection.replay_rule` applies any rule to a
recorded curve exactly.

Before the first step the run is checked against the memory available on the device
(:func:`angio.memory.check_fits`); a run that would not fit is refused with the
:class:`MemoryError` that says what would fit.

Non-finite losses
-----------------
A NaN or infinite loss (or, without a GradScaler, a non-finite gradient norm) raises
:class:`NonFiniteLossError` (a :class:`FloatingPointError`) naming the epoch, the global
step and the cases of the batch, before the optimizer step. Checkpoints are written only at
the end of an epoch, so the last good ``last.pt`` is left untouched. Under fp16 a GradScaler
skips steps whose gradients overflow, as usual; a non-finite *loss* still stops the run.

Seeds and determinism: :mod:`angio.train.determinism`; resume and files:
:mod:`angio.train.checkpoint`; crops and the epoch's loader: :mod:`angio.train.sampling`;
DDP: :mod:`angio.train.distributed`.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from angio import memory
from angio import metrics as m
from angio.checks import size3
from angio.device import autocast, resolve_device, resolve_precision
from angio.inference import predict_volume
from angio.train.checkpoint import (
    TrainState,
    checkpoint_payload,
    init_weights,
    remove_stale_temps,
    restore_state,
    resume_payload,
    save_checkpoint,
    write_logs,
)
from angio.train.config import TrainConfig, loss_from_config, model_from_config
from angio.train.determinism import deterministic_algorithms, seed_everything
from angio.train.distributed import DistInfo, all_reduce_sum, setup_distributed, sync_buffers, teardown_distributed
from angio.train.sampling import PatchDataset, epoch_loader, pad_to
from angio.train.selection import improved_on, patience_exhausted

__all__ = ["NonFiniteLossError", "fit"]

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """Training hit a NaN or infinite loss (or gradient); ``epoch`` and ``step`` say where."""

    def __init__(self, message: str, *, epoch: int, step: int) -> None:
        super().__init__(message)
        self.epoch, self.step = epoch, step


def _padded(shape: Sequence[int], divisor: int) -> tuple[int, int, int]:
    return tuple(math.ceil(n / divisor) * divisor for n in shape)  # type: ignore[return-value]


def _forward(model: nn.Module, x: torch.Tensor, divisor: int) -> torch.Tensor:
    """Logits ``(B, 1, Z, Y, X)`` of ``x`` ``(B, C, Z, Y, X)``, zero-padded to the model's divisor and cropped back."""
    shape = tuple(x.shape[-3:])
    padded = _padded(shape, divisor)
    if padded == shape:
        return model(x)
    logits = model(pad_to(x, padded))
    return logits[..., : shape[0], : shape[1], : shape[2]]


def _check_item(item: Mapping[str, Any], what: str, in_channels: int) -> None:
    for key in ("input", "target"):
        if key not in item or not isinstance(item[key], torch.Tensor):
            raise ValueError(f"{what}: items must be dicts with tensor 'input' and 'target', got keys {sorted(item)}.")
    x, y = item["input"], item["target"]
    if x.ndim != 4 or x.shape[0] != in_channels:
        raise ValueError(f"{what}: 'input' must be (C={in_channels}, Z, Y, X), got shape {tuple(x.shape)}.")
    if y.ndim != 4 or y.shape[0] != 1 or y.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"{what}: 'target' must be (1, Z, Y, X) matching the input, "
            f"got {tuple(y.shape)} for input {tuple(x.shape)}."
        )


def _memory_check(
    model: nn.Module,
    config: TrainConfig,
    train_shape: tuple[int, ...],
    val_shape: tuple[int, ...] | None,
    device: torch.device,
    precision: str,
    info: DistInfo,
) -> None:
    """Raise the :class:`MemoryError` of :func:`angio.memory.check_fits` if a step would not fit.

    Checks a training step at the patch size (or ``train_shape``, the first item's
    ``(Z, Y, X)``, padded to the model's divisor) and, when training on patches, the
    whole-volume validation pass at ``val_shape``.
    """
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


def _grad_norm(parameters: Sequence[torch.Tensor]) -> torch.Tensor:
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))


@dataclass
class _Run:
    """Fixed facts of one :func:`fit` call."""

    config: TrainConfig
    device: torch.device
    precision: str
    dist: DistInfo
    loss_fn: nn.Module
    net: nn.Module  # the model, DDP-wrapped under DDP
    divisor: int
    out_dir: Path
    progress: bool


def _train_epoch(run: _Run, state: TrainState, loader: DataLoader, epoch: int) -> dict[str, float]:
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
            x = batch["input"].to(device, non_blocking=True).float()  # compact items (float16, uint8)
            y = batch["target"].to(device, non_blocking=True).float()  # travel small, compute in float32
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
    loss: torch.Tensor, params: Sequence[torch.Tensor], *, check_grads: bool, info: DistInfo
) -> tuple[float, float]:
    """Mean loss over ranks and the gradient norm (0 when not checked), with one host sync."""
    norm = _grad_norm(params).to(loss.device) if check_grads else torch.zeros((), device=loss.device)
    both = torch.stack([loss.detach().float(), norm.float()])
    loss_sum, norm_sum = all_reduce_sum(both, info).tolist()
    return loss_sum / info.world, norm_sum


def _raise_non_finite(
    run: _Run, state: TrainState, epoch: int, what: str, value: float, batch: Mapping[str, Any]
) -> None:
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
    table = {"iou": m.iou, "dice": m.dice, "mse": m.mse, "mae": m.mae, "accuracy": m.pixel_accuracy, "cldice": m.cldice}
    return {name: table[name] for name in names}


@torch.no_grad()
def _validate(run: _Run, state: TrainState, val_set: Dataset) -> dict[str, float]:
    """Mean loss and mean per-volume metrics over ``val_set`` (whole volumes, sharded under DDP)."""
    model, device = state.model, run.device
    fns = _metric_fns(run.config.metrics)
    model.eval()
    sums = torch.zeros(2 + len(fns), dtype=torch.float64)
    indices = range(run.dist.rank, len(val_set), run.dist.world)  # type: ignore[arg-type]
    for index in tqdm(indices, desc="validate", leave=False, disable=not (run.progress and run.dist.is_main)):
        item = val_set[index]
        y = item["target"][None].to(device).float()
        if run.config.val_patch is None:
            with autocast(device, run.precision):
                logits = _forward(model, item["input"][None].to(device).float(), run.divisor)
            prob = torch.sigmoid(logits.float())[0, 0].cpu()
        else:
            prob = torch.from_numpy(_window_probabilities(model, item["input"].float(), run))
            logits = torch.logit(prob, eps=1e-6)[None, None].to(device)
        sums[0] += float(run.loss_fn(logits, y))
        sums[1] += 1
        mask = y[0, 0].cpu() > 0.5
        for j, fn in enumerate(fns.values()):
            sums[2 + j] += fn(prob, mask)
    sums = all_reduce_sum(sums.to(device), run.dist).cpu()
    count = max(float(sums[1]), 1.0)
    out = {"val_loss": float(sums[0]) / count}
    out.update({f"val_{name}": float(sums[2 + j]) / count for j, name in enumerate(fns)})
    return out


def _window_probabilities(model: nn.Module, volume: torch.Tensor, run: _Run) -> np.ndarray:
    """``(Z, Y, X)`` probabilities of ``volume`` ``(C, Z, Y, X)`` over Gaussian-blended windows of ``val_patch``."""
    precision = "bf16" if run.precision == "bf16" else "fp32"
    return predict_volume(model, volume, patch_size=run.config.val_patch, mode="gaussian", device=run.device,
                          precision=precision)


def _should_validate(config: TrainConfig, epoch: int) -> bool:
    return (epoch + 1) % config.val_every == 0 or epoch == config.epochs - 1


def _end_epoch(run: _Run, state: TrainState, row: dict[str, Any]) -> None:
    """Record the epoch; on rank 0 write ``last.pt`` (``best.pt``), ``history.json`` and ``log.csv``."""
    history = state.history
    history["epochs"].append(row)
    improved = improved_on(run.config.select, row, history, run.config.select_from)
    if improved:
        history["best_val_loss"], history["best_epoch"] = row["val_loss"], row["epoch"]
    if not run.dist.is_main:
        return
    payload = checkpoint_payload(state, run.config)
    save_checkpoint(run.out_dir / "last.pt", payload)
    if improved:
        save_checkpoint(run.out_dir / "best.pt", payload)
    write_logs(run.out_dir, history)


def fit(
    config: TrainConfig | Mapping[str, Any],
    train_set: Dataset,
    val_set: Dataset | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[int, nn.Module, dict[str, Any]], None] | None = None,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    """Train a network on ``train_set`` as described in :mod:`angio.train.loop`.

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
    time_budget_s
        Wall-clock seconds this call may spend: after the first epoch, no epoch is started
        that would end after it (judged by the longest epoch so far). The run stays
        resumable, as after an interruption; ``history["stopped_by_budget"]`` says whether
        the budget stopped it.

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
    info = setup_distributed(config.device)
    try:
        device = resolve_device(config.device, local_rank=info.local_rank if info.enabled else None)
        with deterministic_algorithms(device, config.deterministic):
            return _fit(
                config, train_set, val_set, info, device, resume=resume, progress=progress, on_epoch_end=on_epoch_end,
                time_budget_s=time_budget_s,
            )
    finally:
        teardown_distributed(info)


def _fit(
    config: TrainConfig,
    train_set: Dataset,
    val_set: Dataset | None,
    info: DistInfo,
    device: torch.device,
    *,
    resume: bool,
    progress: bool,
    on_epoch_end: Callable[[int, nn.Module, dict[str, Any]], None] | None,
    time_budget_s: float | None = None,
) -> dict[str, Any]:
    called = time.perf_counter()
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"time_budget_s must be positive, got {time_budget_s!r}.")
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
    payload = resume_payload(config, last, resume=resume, info=info, device=device)

    seed_everything(config.seed)
    model = model_from_config(config).to(device)
    if info.enabled and config.sync_batchnorm:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    divisor = int(getattr(model, "spatial_divisor", 1))
    if config.patch_size is not None:
        bad = [s for s in size3(config.patch_size, "patch_size") if s % divisor]
        if bad:
            raise ValueError(
                f"patch_size {config.patch_size} must be multiples of the model's spatial_divisor {divisor}."
            )
        train_set = PatchDataset(train_set, config.patch_size, seed=config.seed, vessel_prob=config.vessel_prob)
    if config.check_memory:
        _memory_check(model, config, train_shape, val_shape, device, precision, info)

    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    state = TrainState(model=model, optimizer=optimizer, scaler=scaler)
    if payload is not None:
        restore_state(state, payload)
        log.info("resuming %s after epoch %d (global step %d)", last, state.epoch, state.global_step)
    elif config.init_from is not None:
        init_weights(model, config.init_from)
        log.info("initialised the weights from %s", config.init_from)
    elif resume:
        log.info("no %s to resume; starting a new run", last)

    net: nn.Module = model
    if info.enabled:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(out_dir)
    run = _Run(config, device, precision, info, loss_from_config(config), net, divisor, out_dir, progress)

    longest = 0.0
    state.history["stopped_by_budget"] = False
    for epoch in range(state.epoch + 1, config.epochs):
        if patience_exhausted(config.patience, state.history, watch=config.patience_watch,
                              select_from=config.select_from):
            break
        if time_budget_s is not None and longest and time.perf_counter() - called + longest > time_budget_s:
            state.history["stopped_by_budget"] = True
            log.info("time budget of %.0f s reached before epoch %d", time_budget_s, epoch)
            if info.is_main and state.history["epochs"]:
                write_logs(run.out_dir, state.history)
            break
        start = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch}
        for group in optimizer.param_groups:  # step schedule (constant without milestones)
            group["lr"] = config.lr * config.lr_gamma ** sum(epoch >= m for m in config.lr_milestones)
        stats = _train_epoch(run, state, epoch_loader(train_set, config, epoch, info, device), epoch)
        sync_buffers(state.model, info)
        validated = val_set is not None and _should_validate(config, epoch)
        val = _validate(run, state, val_set) if validated else {}  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        longest = max(longest, seconds)
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
