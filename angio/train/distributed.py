"""Multi-GPU and multi-node training: process group, reductions and buffer synchronisation.

Under ``torchrun`` (``WORLD_SIZE > 1`` in the environment) :func:`~angio.train.fit` initialises the
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
(see :func:`angio.train.cli.main`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from angio.device import resolve_device

__all__ = ["DistInfo", "all_reduce_sum", "broadcast_from_main", "setup_distributed", "sync_buffers",
           "teardown_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Process-group facts of this process (``world == 1`` without DDP)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        """Whether this process is one of several (DDP)."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes files and shows progress."""
        return self.rank == 0


def setup_distributed(device_name: str) -> DistInfo:
    """Join the ``torchrun`` process group, initialising it when needed (nothing unless ``WORLD_SIZE > 1``)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = resolve_device(device_name).type == "cuda"
    owns = False
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        owns = True
    return DistInfo(
        rank=dist.get_rank(),
        world=dist.get_world_size(),
        local_rank=local_rank,
        local_world=int(os.environ.get("LOCAL_WORLD_SIZE", str(dist.get_world_size()))),
        owns_group=owns,
    )


def teardown_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`setup_distributed` created it."""
    if info.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``values`` over the ranks, in place (unchanged without DDP); returns ``values``."""
    if info.enabled:
        import torch.distributed as dist

        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def sync_buffers(model: nn.Module, info: DistInfo) -> None:
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


def broadcast_from_main(value: Any, info: DistInfo, device: torch.device) -> Any:
    """Rank 0's ``value`` on every rank (pickled; other nodes may not share the file system)."""
    if not info.enabled:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0, device=device if device.type == "cuda" else None)
    return box[0]
