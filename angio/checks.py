"""Input checks shared across the package (arrays, sizes), with messages that name the input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["as_numpy", "finite_values", "size3"]


def as_numpy(array: Any) -> np.ndarray:
    """Return ``array`` as a NumPy array, detaching torch tensors (no copy when possible)."""
    if hasattr(array, "detach") and hasattr(array, "cpu"):
        tensor = array.detach().cpu()
        try:
            return tensor.numpy()
        except TypeError:  # e.g. bfloat16, which NumPy cannot represent
            return tensor.float().numpy()
    return np.asarray(array)


def finite_values(values: np.ndarray, name: str) -> tuple[np.ndarray, float, float]:
    """``values`` as a float array (bool and integers become float32) with its min and max.

    Raises
    ------
    ValueError
        If ``values`` is not real-valued or holds NaN or infinity (``name`` says which input).
    """
    if values.dtype == bool or np.issubdtype(values.dtype, np.integer):
        values = values.astype(np.float32)
    elif not np.issubdtype(values.dtype, np.floating):
        raise ValueError(f"{name} must be real-valued, got dtype {values.dtype}")
    lo, hi = float(values.min()), float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):  # NaN and inf reach the min or the max
        raise ValueError(f"{name} holds non-finite values (NaN or infinity)")
    return values, lo, hi


def size3(size: int | Sequence[int], what: str = "size") -> tuple[int, int, int]:
    """A ``(Z, Y, X)`` size from an int (a cube) or 3 ints.

    Raises
    ------
    ValueError
        Unless ``size`` is a positive int or 3 positive ints (``what`` names the input).
    """
    dims = (size,) * 3 if isinstance(size, int) else tuple(size)
    if len(dims) != 3 or any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in dims):
        raise ValueError(f"{what} must be a positive int or 3 positive ints (Z, Y, X), got {size!r}.")
    return dims  # type: ignore[return-value]
