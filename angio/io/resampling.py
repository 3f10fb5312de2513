"""Resampling a volume to isotropic voxels in an ``(n, n, n)`` cube: :func:`resample_to_cube`."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from angio.errors import InputError
from angio.volume import Volume

__all__ = ["resample_to_cube"]


def resample_to_cube(
    volume: Volume,
    n: int = 384,
    *,
    spacing_mm: float | None = None,
    fill: float | None = None,
    order: int = 1,
) -> Volume:
    """Resample a volume to isotropic voxels, centred in an ``(n, n, n)`` cube.

    The output grid has spacing ``spacing_mm`` on every axis and shares the input's centre
    (the physical point at the middle of the voxel grid) and ``direction``; it is sampled with
    :func:`scipy.ndimage.affine_transform`, which resamples and centre-pads / centre-crops in
    one pass. Output voxels outside the input's extent (the input voxels' boxes) get ``fill``.
    The returned ``origin`` is the physical position of output voxel ``[0, 0, 0]``, so every
    voxel keeps its physical position.

    Parameters
    ----------
    volume : Volume
        Input, ``array`` shape ``(Z, Y, X)`` finite, ``spacing`` ``(dz, dy, dx)`` in mm.
    n : int, optional
        Output size along every axis (voxels).
    spacing_mm : float, optional
        Output voxel size in mm. Default: the largest physical extent ``max(shape * spacing)``
        divided by ``n``, so the whole input fits in the cube.
    fill : float, optional
        Value outside the input; default the input's minimum (air for CT).
    order : int, optional
        Spline interpolation order, 0 (nearest) to 5; 1 is trilinear. No anti-aliasing is
        applied when downsampling.

    Returns
    -------
    Volume
        ``array`` float32 shape ``(n, n, n)``, ``spacing`` ``(s, s, s)`` mm, updated
        ``origin``, same ``direction``, a copy of ``meta``.

    Raises
    ------
    InputError
        ``n`` not a positive integer, ``spacing_mm`` not positive, ``order`` not in 0..5, or
        non-finite input values.
    """
    _check_cube_args(volume, n, spacing_mm, order)
    source = np.asarray(volume.array, dtype=np.float32)
    in_shape = np.array(source.shape, dtype=float)
    in_spacing = np.array(volume.spacing, dtype=float)
    if spacing_mm is None:
        step = float(np.max(in_shape * in_spacing)) / n  # the whole input fits in the cube
    else:
        step = float(spacing_mm)
    scale = step / in_spacing  # input voxels per output voxel, per axis (z, y, x)
    offset = (in_shape - 1) / 2 - scale * (n - 1) / 2  # input index of output voxel [0, 0, 0]
    out = ndimage.affine_transform(
        source, scale, offset=offset, output_shape=(n, n, n), output=np.float32,
        order=order, mode="nearest",
    )
    _fill_outside(out, offset, scale, source.shape, float(source.min()) if fill is None else fill)
    return Volume(
        array=out,
        spacing=(step, step, step),
        origin=tuple(_index_to_patient(volume, offset)),
        direction=np.array(volume.direction, dtype=float),
        meta=dict(volume.meta),
    )


def _check_cube_args(volume: Volume, n: int, spacing_mm: float | None, order: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}.")
    if spacing_mm is not None and not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise InputError(f"spacing_mm must be a positive number of mm, got {spacing_mm!r}.")
    if order not in range(6):
        raise InputError(f"order must be a spline order 0..5, got {order!r}.")
    if not np.all(np.isfinite(volume.array)):
        raise InputError("Volume array holds NaN or inf; cannot resample it.")


def _fill_outside(
    out: np.ndarray, offset: np.ndarray, scale: np.ndarray, in_shape: Iterable[int], fill: float
) -> None:
    """Set ``out`` to ``fill`` where the sampled input index lies outside ``[-0.5, N - 0.5)``."""
    eps = 1e-6
    for axis, size in enumerate(in_shape):
        index = offset[axis] + scale[axis] * np.arange(out.shape[axis])
        outside = (index < -0.5 - eps) | (index >= size - 0.5 - eps)
        selector: list[object] = [slice(None)] * 3
        selector[axis] = outside
        out[tuple(selector)] = fill


def _index_to_patient(volume: Volume, index_zyx: np.ndarray) -> np.ndarray:
    """Patient position (x, y, z) in mm of a continuous voxel index ``(z, y, x)``."""
    mm_along_axes = np.asarray(index_zyx, dtype=float)[::-1] * np.asarray(volume.spacing)[::-1]
    return np.asarray(volume.origin, dtype=float) + np.asarray(volume.direction) @ mm_along_axes
