"""What a training epoch sees: random crops, patch data sets, and the seeded, sharded loader.

Kept apart from the loop (as TorchIO keeps its samplers apart from training): everything
here is a function of ``(seed, epoch, index)``, never of a generator that advances, so an
epoch's items are the same whether the run was interrupted and resumed or not.

* :class:`RandomCrop`: a crop of a volume and its mask, biased towards vessel voxels.
* :class:`PatchDataset`: item ``i`` of epoch ``e`` cropped with
  ``numpy.random.default_rng([seed, e, i])``.
* :func:`epoch_loader`: the :class:`~torch.utils.data.DataLoader` of one epoch, shuffled by a
  :class:`~torch.utils.data.DistributedSampler` seeded by ``(seed, epoch)`` (sharded under
  DDP, also used without it) with worker seeds derived from ``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from angio.checks import size3
from angio.train.config import TrainConfig
from angio.train.determinism import derive_seed
from angio.train.distributed import DistInfo

__all__ = ["PatchDataset", "RandomCrop", "epoch_loader", "pad_to", "set_dataset_epoch"]


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
            pad_to(t, self.size)[..., z0 : z0 + pz, y0 : y0 + py, x0 : x0 + px].contiguous() for t in (volume, target)
        )


def pad_to(t: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
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
        set_dataset_epoch(self.dataset, epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.dataset[index])
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        item["input"], item["target"] = self.crop(item["input"], item["target"], rng)
        return item


def set_dataset_epoch(dataset: Any, epoch: int) -> None:
    """Call ``dataset.set_epoch(epoch)`` when the data set has it."""
    fn = getattr(dataset, "set_epoch", None)
    if callable(fn):
        fn(epoch)


def epoch_loader(dataset: Dataset, config: TrainConfig, epoch: int, info: DistInfo, device: torch.device) -> DataLoader:
    """A DataLoader for one epoch: seeded shuffle (sharded under DDP) and seeded worker seeds."""
    set_dataset_epoch(dataset, epoch)
    sampler = DistributedSampler(dataset, num_replicas=info.world, rank=info.rank, shuffle=True, seed=config.seed)
    sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(derive_seed(config.seed, epoch, 1))
    return DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=config.num_workers,
        generator=generator,
        pin_memory=device.type == "cuda",
    )
