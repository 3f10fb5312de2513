"""Worker for the 2-process DDP test of :mod:`angio.train` (run under ``torch.distributed.run``).

Usage: ``python -m torch.distributed.run --standalone --nproc_per_node 2 tests/ddp_worker.py OUT``.
Each rank trains the tiny synthetic problem with :func:`angio.train.fit`, then saves its
initial and final state dicts as ``OUT/rank{r}_init.pt`` and ``OUT/rank{r}_final.pt``.
Also provides :func:`make_datasets` for ``python -m angio.train --data ddp_worker:make_datasets``.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from angio.train import TrainConfig, fit


class BlobDataset(Dataset):
    """Smooth random volumes ``(C, S, S, S)`` in ``[0, 1]`` with target ``input[0] > 0.5``."""

    def __init__(self, n: int = 4, size: int = 16, *, channels: int = 1, seed: int = 0) -> None:
        self.n, self.size, self.channels, self.seed = n, size, channels, seed
        self.epochs: list[int] = []

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __getitem__(self, index: int) -> dict:
        g = torch.Generator().manual_seed(1000 * self.seed + index)
        coarse = torch.rand(1, self.channels, 4, 4, 4, generator=g)
        x = F.interpolate(coarse, size=(self.size,) * 3, mode="trilinear", align_corners=True)[0]
        return {"input": x.float(), "target": (x[:1] > 0.5).float(), "case": f"case{index}"}


def tiny_config(out_dir: str, **changes) -> TrainConfig:
    """A small, fast configuration (tiny U-Net, fp32, no memory probe)."""
    base = dict(
        model="unet",
        model_kwargs={"base_channels": 4, "depth": 2},
        epochs=2,
        precision="fp32",
        check_memory=False,
        seed=3,
        out_dir=out_dir,
    )
    base.update(changes)
    return TrainConfig(**base)


def make_datasets(config: TrainConfig) -> tuple[Dataset, Dataset]:
    """Train and validation sets for ``python -m angio.train --data ddp_worker:make_datasets``."""
    return BlobDataset(4, seed=0), BlobDataset(2, seed=1)


def main(out: str) -> None:
    rank = int(os.environ["RANK"])
    config = tiny_config(os.path.join(out, "run"), epochs=2)
    captured = {}

    def on_epoch_end(epoch: int, model: torch.nn.Module, row: dict) -> None:
        captured["final"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    # the initial weights depend on the seed only: rebuild them the way fit does
    from angio.train.config import model_from_config
    from angio.train.determinism import seed_everything

    seed_everything(config.seed)
    init = model_from_config(config).state_dict()
    torch.save(init, os.path.join(out, f"rank{rank}_init.pt"))
    fit(config, BlobDataset(5, seed=0), BlobDataset(3, seed=1), progress=False, on_epoch_end=on_epoch_end)
    torch.save(captured["final"], os.path.join(out, f"rank{rank}_final.pt"))


if __name__ == "__main__":
    main(sys.argv[1])
