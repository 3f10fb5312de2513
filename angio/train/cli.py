"""Command line of the trainer: ``python -m angio.train`` (also under ``torchrun -m angio.train``)."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from angio.train.config import TrainConfig
from angio.train.loop import fit

__all__ = ["main"]


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
