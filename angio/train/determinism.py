"""Seeds, RNG states and deterministic algorithms of a training run.

:func:`~angio.train.fit` seeds Python's :mod:`random`, NumPy's global generator and torch (CPU and CUDA)
with ``config.seed`` before building the model, so the initial weights depend on the seed
only. Nothing in the loop draws from the global generators: the shuffle, the DataLoader's
worker seeds and the crops use generators derived from ``(seed, epoch[, index])``. On the
CPU the kernels the models use are deterministic for a given number of threads, so the
same seed gives bit-identical weights and metrics; ``torch.use_deterministic_algorithms``
is *not* switched on there, because it adds nothing on the CPU and makes every
``torch.empty`` fill its memory. On CUDA, ``config.deterministic`` (default ``True``)
sets ``cudnn.deterministic``, disables cuDNN autotuning and enables
``torch.use_deterministic_algorithms(True, warn_only=True)`` (without filling uninitialized
memory) for the duration of :func:`~angio.train.fit`, restoring the previous global settings afterwards;
``CUBLAS_WORKSPACE_CONFIG`` is set when absent (it only takes effect if cuBLAS was not
initialised yet). Results on different devices, thread counts or library versions differ.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["derive_seed", "deterministic_algorithms", "rng_state", "seed_everything", "set_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed Python's :mod:`random`, NumPy's global generator and torch (CPU and CUDA) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the legacy global generator is the one to seed
    torch.manual_seed(seed)


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative ints (via NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(2, np.uint64)[0] >> np.uint64(1))


def rng_state() -> dict[str, Any]:
    """The states of the global generators (torch CPU and CUDA, NumPy, Python), as saved in a checkpoint."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - the legacy global generator's state
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the global generators from :func:`rng_state`'s result."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))  # noqa: NPY002 - as saved
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@contextlib.contextmanager
def deterministic_algorithms(device: torch.device, enabled: bool) -> Iterator[None]:
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
