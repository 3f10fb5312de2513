"""Binary vessel masks from intensity volumes by Otsu thresholding.

Wu et al. obtain the binary vessel ground truth by thresholding the original (noise-free)
volume with Otsu's method. The paper cites scikit-learn for this step, but scikit-learn has
no Otsu implementation; the method lives in scikit-image, and this module uses
:func:`skimage.filters.threshold_otsu`.

Conventions
-----------
* Volumes are indexed ``[z, y, x]`` (see :mod:`angio`); any real dtype is accepted, as a
  ``numpy.ndarray`` or a ``torch.Tensor``. Results are always NumPy.
* A voxel is vessel when its value is **strictly greater** than the threshold
  (scikit-image's convention: ``image > threshold_otsu(image)``).
* A constant volume has no two classes to separate: its threshold is that constant value and
  its mask is all ``False`` (no exception).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.filters import threshold_otsu

from angio.checks import as_numpy, finite_values

__all__ = ["otsu_threshold", "otsu_mask"]


def _prepare_volume(volume: Any) -> tuple[np.ndarray, float, float]:
    """Validate a volume and return it (as float) with its minimum and maximum.

    Parameters
    ----------
    volume : ndarray or torch.Tensor, shape (Z, Y, X)
        Real-valued 3D volume.

    Returns
    -------
    values : ndarray, shape (Z, Y, X), float32 or float64
        The volume; integer and boolean inputs are cast to ``float32`` so that ``nbins``
        always applies (scikit-image otherwise uses one bin per integer value).
    vmin, vmax : float
        Smallest and largest value.

    Raises
    ------
    ValueError
        If the volume is not 3D, is empty, is not real-valued or holds NaN or infinity.
    """
    values = as_numpy(volume)
    if values.ndim != 3:
        raise ValueError(f"volume must be 3D [z, y, x], got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"volume must not be empty, got shape {values.shape}")
    return finite_values(values, "volume")


def otsu_threshold(volume: Any, *, nbins: int = 256) -> float:
    """Otsu's threshold of a 3D volume.

    Computed with :func:`skimage.filters.threshold_otsu` on a histogram of ``nbins``
    equal-width bins spanning ``[volume.min(), volume.max()]`` (the paper cites
    scikit-learn, but Otsu's method is implemented in scikit-image). The returned value is
    the centre of the bin that maximises the between-class variance.

    Parameters
    ----------
    volume : ndarray or torch.Tensor, shape (Z, Y, X)
        Intensity volume indexed ``[z, y, x]``, any real dtype, in modality units.
    nbins : int, optional
        Number of histogram bins (at least 2). Default 256.

    Returns
    -------
    float
        The threshold, in the volume's intensity units. For a constant volume this is the
        constant value itself (so ``volume > threshold`` is empty).

    Raises
    ------
    ValueError
        If ``volume`` is not 3D, is empty, or holds NaN or infinity, or ``nbins < 2``.
    """
    return _threshold(*_prepare_volume(volume), nbins)[0]


def _threshold(values: np.ndarray, vmin: float, vmax: float, nbins: int) -> tuple[float, np.ndarray]:
    """Otsu threshold of validated values, and the values (constant volume: the constant)."""
    if int(nbins) < 2:
        raise ValueError(f"nbins must be at least 2, got {nbins}")
    if vmin == vmax:
        return vmin, values
    # Flatten so scikit-image does not mistake a (.., .., 3) volume for an RGB image.
    return float(threshold_otsu(values.reshape(-1), nbins=int(nbins))), values


def otsu_mask(volume: Any, *, nbins: int = 256) -> np.ndarray:
    """Binary vessel mask of a 3D volume by Otsu thresholding.

    Parameters
    ----------
    volume : ndarray or torch.Tensor, shape (Z, Y, X)
        Intensity volume indexed ``[z, y, x]``, any real dtype, in modality units.
    nbins : int, optional
        Number of histogram bins (at least 2). Default 256.

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
        ``volume > otsu_threshold(volume)``: ``True`` for vessel voxels. All ``False`` for a
        constant volume, which has nothing to separate. The mask is invariant to a positive
        affine intensity change ``a * volume + b`` with ``a > 0`` (up to floating-point
        rounding of voxels lying exactly on the threshold).

    Raises
    ------
    ValueError
        If ``volume`` is not 3D, is empty, or holds NaN or infinity, or ``nbins < 2``.
    """
    threshold, values = _threshold(*_prepare_volume(volume), nbins)
    return values > threshold
