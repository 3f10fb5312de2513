"""Segmentation metrics between a predicted probability volume and a binary vessel mask.

These follow Wu et al.: the network outputs a vessel probability per voxel, which is
compared with the Otsu ground-truth mask (:func:`angio.segment.otsu_mask`).

Definitions
-----------
Let ``prob`` be the predicted probabilities in ``[0, 1]`` and ``mask`` the boolean ground
truth, both of the same shape (2D or 3D, e.g. ``[z, y, x]``).

* **Threshold.** The binary prediction is ``P = prob >= 0.5`` (a probability of exactly
  0.5 counts as vessel). :data:`THRESHOLD` holds the value.
* **IoU** ``|P & L| / |P | L|``; **Dice** ``2 |P & L| / (|P| + |L|)``;
  **accuracy** the fraction of voxels where ``P == L``.
* **MSE** and **MAE** compare the raw probabilities with the 0/1 mask:
  ``mean((prob - L) ** 2)`` and ``mean(|prob - L|)``.
* **clDice** (Shit et al., CVPR 2021): with ``S(.)`` the skeleton
  (:func:`skimage.morphology.skeletonize`, Lee's thinning in 3D),
  ``Tprec = |S(P) & L| / |S(P)|``, ``Tsens = |S(L) & P| / |S(L)|`` and
  ``clDice = 2 Tprec Tsens / (Tprec + Tsens)`` (0 when both are 0).

Empty cases
-----------
* IoU, Dice and clDice are ``1.0`` when ``P`` and ``L`` are both empty (perfect agreement)
  and ``0.0`` when exactly one of them is empty.
* Thinning can erase a small object entirely (a 2x2x2 cube has an empty 3D skeleton). The
  skeleton used here therefore keeps every connected component (full, 26- or
  8-connectivity) whose thinned skeleton is empty **as a whole**: each component of a
  non-empty mask contributes at least one skeleton voxel, so ``S(X)`` is never empty
  when ``X`` is not.

Inputs may be ``numpy.ndarray`` or ``torch.Tensor``; results are Python floats. The
overlap metrics use counts on boolean arrays and the error metrics a single ``float32``
(or the input's float dtype) temporary, so 384^3 volumes are cheap; clDice skeletonises
only the bounding box of each mask, but 3D thinning remains the slowest part.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage
from skimage.morphology import skeletonize

from angio.checks import as_numpy, finite_values

__all__ = [
    "METRICS",
    "THRESHOLD",
    "binarize",
    "cldice",
    "connectivity",
    "dice",
    "evaluate",
    "iou",
    "mae",
    "mse",
    "pixel_accuracy",
    "skeleton",
    "summarize",
]

#: Probability at or above which a voxel is predicted as vessel (``prob >= THRESHOLD``).
THRESHOLD: float = 0.5

#: Keys of :func:`evaluate`, in reporting order.
METRICS: tuple[str, ...] = ("iou", "dice", "mse", "mae", "accuracy", "cldice")


# ----------------------------------------------------------------------------- inputs


def _check_prob(prob: np.ndarray) -> np.ndarray:
    """Validate probabilities and return them as a float array.

    Parameters
    ----------
    prob : ndarray
        Predicted probabilities; bool and integer arrays are read as 0/1 probabilities.

    Returns
    -------
    ndarray
        ``prob`` itself when it is already floating point, else a ``float32`` copy.

    Raises
    ------
    ValueError
        If ``prob`` is not real-valued, holds NaN or infinity, or leaves ``[0, 1]``.
    """
    prob, lo, hi = finite_values(prob, "pred_prob")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"pred_prob must lie in [0, 1], got values in [{lo:g}, {hi:g}]")
    return prob


def _check_mask(mask: np.ndarray) -> np.ndarray:
    """Validate a ground-truth mask and return it as bool.

    Parameters
    ----------
    mask : ndarray
        Boolean mask, or a numeric array holding only 0 and 1.

    Returns
    -------
    ndarray of bool
        The mask (no copy when it is already boolean).

    Raises
    ------
    ValueError
        If a numeric mask holds values other than 0 and 1.
    """
    if mask.dtype == bool:
        return mask
    if not (np.issubdtype(mask.dtype, np.integer) or np.issubdtype(mask.dtype, np.floating)):
        raise ValueError(f"mask must be boolean, got dtype {mask.dtype}")
    as_bool = mask != 0
    if np.count_nonzero(mask == 1) != np.count_nonzero(as_bool):
        raise ValueError("mask must be boolean or hold only 0 and 1")
    return as_bool


def _prepare(pred_prob: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Convert and validate a prediction and a mask of the same shape.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape S
        Predicted probabilities in ``[0, 1]``.
    mask : ndarray or torch.Tensor, shape S
        Ground-truth mask (bool, or 0/1 numbers).

    Returns
    -------
    prob : ndarray, shape S, float
    label : ndarray of bool, shape S

    Raises
    ------
    ValueError
        If the shapes differ (the message names both), the arrays are empty or 0-D, or
        either input is invalid (see :func:`_check_prob`, :func:`_check_mask`).
    """
    prob, label = as_numpy(pred_prob), as_numpy(mask)
    if prob.shape != label.shape:
        raise ValueError(
            f"pred_prob and mask shapes differ: pred_prob {prob.shape} vs mask {label.shape}"
        )
    if prob.ndim == 0 or prob.size == 0:
        raise ValueError(f"pred_prob and mask must be non-empty arrays, got shape {prob.shape}")
    return _check_prob(prob), _check_mask(label)


def binarize(pred_prob: Any) -> np.ndarray:
    """Threshold predicted probabilities: ``pred_prob >= 0.5`` is vessel.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, any shape
        Probabilities in ``[0, 1]``.

    Returns
    -------
    ndarray of bool, same shape
        ``True`` where the probability is at least :data:`THRESHOLD` (0.5 inclusive).

    Raises
    ------
    ValueError
        If the probabilities are non-finite or outside ``[0, 1]``.
    """
    return _check_prob(as_numpy(pred_prob)) >= THRESHOLD


# ----------------------------------------------------------------------------- kernels


def _overlap_scores(pred: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """IoU and Dice of two boolean arrays, with the empty cases of the module docstring."""
    n_pred = int(np.count_nonzero(pred))
    n_label = int(np.count_nonzero(label))
    if n_pred == 0 and n_label == 0:
        return 1.0, 1.0
    inter = int(np.count_nonzero(pred & label))
    union = n_pred + n_label - inter
    return inter / union, 2.0 * inter / (n_pred + n_label)


def _accuracy(pred: np.ndarray, label: np.ndarray) -> float:
    """Fraction of elements where two boolean arrays agree."""
    return 1.0 - int(np.count_nonzero(pred != label)) / pred.size


def _errors(prob: np.ndarray, label: np.ndarray) -> tuple[float, float]:
    """MSE and MAE of probabilities against a 0/1 mask, accumulated in float64."""
    diff = np.subtract(prob, label, dtype=prob.dtype)
    np.abs(diff, out=diff)
    mae_value = float(np.mean(diff, dtype=np.float64))
    np.square(diff, out=diff)
    mse_value = float(np.mean(diff, dtype=np.float64))
    return mse_value, mae_value


def skeleton(mask: Any) -> np.ndarray:
    """Skeleton of a 2D or 3D binary mask that never loses a connected component.

    :func:`skimage.morphology.skeletonize` (Lee's method in 3D, Zhang's in 2D) is applied to
    the bounding box of the mask (padded by one voxel, which leaves the result unchanged).
    Any connected component (full connectivity: 8 in 2D, 26 in 3D) that thinning erases
    completely, which happens to objects only one or two voxels thick such as a 2x2x2
    cube, is kept whole instead.

    Parameters
    ----------
    mask : ndarray or torch.Tensor, shape (Y, X) or (Z, Y, X)
        Binary mask (bool, or 0/1 numbers).

    Returns
    -------
    ndarray of bool, same shape as ``mask``
        Skeleton voxels, a subset of ``mask``; empty only when ``mask`` is.

    Raises
    ------
    ValueError
        If ``mask`` is not 2D or 3D or not binary.
    """
    label = _check_mask(as_numpy(mask))
    if label.ndim not in (2, 3):
        raise ValueError(f"skeleton needs a 2D or 3D mask, got shape {label.shape}")
    out = np.zeros(label.shape, dtype=bool)
    if not label.any():
        return out
    box = _bounding_box(label, pad=1)
    crop = label[box]
    thin = skeletonize(crop).astype(bool, copy=False)
    components, n_components = ndimage.label(crop, structure=np.ones((3,) * crop.ndim))
    kept = np.zeros(n_components + 1, dtype=bool)
    kept[np.unique(components[thin])] = True
    kept[0] = True  # background: nothing to restore
    thin |= ~kept[components]
    out[box] = thin
    return out


def _bounding_box(label: np.ndarray, pad: int) -> tuple[slice, ...]:
    """Slices of the bounding box of a non-empty boolean array, padded by ``pad``."""
    box = []
    for axis in range(label.ndim):
        other = tuple(a for a in range(label.ndim) if a != axis)
        hits = np.flatnonzero(label.any(axis=other))
        box.append(slice(max(int(hits[0]) - pad, 0), int(hits[-1]) + 1 + pad))
    return tuple(box)


def _cldice(pred: np.ndarray, label: np.ndarray) -> float:
    """The clDice of two boolean arrays, with the empty cases of the module docstring."""
    if pred.ndim not in (2, 3):
        raise ValueError(f"cldice needs 2D or 3D arrays, got shape {pred.shape}")
    has_pred, has_label = bool(pred.any()), bool(label.any())
    if not has_pred and not has_label:
        return 1.0
    if not has_pred or not has_label:
        return 0.0
    skel_pred, skel_label = skeleton(pred), skeleton(label)
    tprec = np.count_nonzero(skel_pred & label) / np.count_nonzero(skel_pred)
    tsens = np.count_nonzero(skel_label & pred) / np.count_nonzero(skel_label)
    if tprec + tsens == 0.0:
        return 0.0
    return float(2.0 * tprec * tsens / (tprec + tsens))


# ----------------------------------------------------------------------------- public metrics


def iou(pred_prob: Any, mask: Any) -> float:
    """Intersection over union of the thresholded prediction and the mask.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape S (2D or 3D, e.g. (Z, Y, X))
        Predicted vessel probabilities in ``[0, 1]``; vessel where ``>= 0.5``.
    mask : ndarray or torch.Tensor, shape S
        Ground-truth vessel mask (bool, or 0/1 numbers).

    Returns
    -------
    float
        ``|P & L| / |P | L|`` in ``[0, 1]``; 1.0 if both are empty, 0.0 if exactly one is.

    Raises
    ------
    ValueError
        On a shape mismatch, probabilities outside ``[0, 1]`` or non-finite, or a
        non-binary mask.
    """
    prob, label = _prepare(pred_prob, mask)
    return _overlap_scores(prob >= THRESHOLD, label)[0]


def dice(pred_prob: Any, mask: Any) -> float:
    """Dice coefficient of the thresholded prediction and the mask.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape S (2D or 3D)
        Predicted vessel probabilities in ``[0, 1]``; vessel where ``>= 0.5``.
    mask : ndarray or torch.Tensor, shape S
        Ground-truth vessel mask.

    Returns
    -------
    float
        ``2 |P & L| / (|P| + |L|)`` in ``[0, 1]``; 1.0 if both are empty, 0.0 if exactly
        one is.

    Raises
    ------
    ValueError
        As :func:`iou`.
    """
    prob, label = _prepare(pred_prob, mask)
    return _overlap_scores(prob >= THRESHOLD, label)[1]


def pixel_accuracy(pred_prob: Any, mask: Any) -> float:
    """Fraction of voxels where the thresholded prediction equals the mask.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape S (2D or 3D)
        Predicted vessel probabilities in ``[0, 1]``; vessel where ``>= 0.5``.
    mask : ndarray or torch.Tensor, shape S
        Ground-truth vessel mask.

    Returns
    -------
    float
        Accuracy in ``[0, 1]`` over all voxels (background included).

    Raises
    ------
    ValueError
        As :func:`iou`.
    """
    prob, label = _prepare(pred_prob, mask)
    return _accuracy(prob >= THRESHOLD, label)


def mse(pred_prob: Any, mask: Any) -> float:
    """Mean squared error of the raw probabilities against the 0/1 mask.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape S (2D or 3D)
        Predicted vessel probabilities in ``[0, 1]`` (not thresholded).
    mask : ndarray or torch.Tensor, shape S
        Ground-truth vessel mask, read as 0.0 / 1.0.

    Returns
    -------
    float
        ``mean((prob - mask) ** 2)`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        As :func:`iou`.
    """
    prob, label = _prepare(pred_prob, mask)
    return _errors(prob, label)[0]


def mae(pred_prob: Any, mask: Any) -> float:
    """Mean absolute error of the raw probabilities against the 0/1 mask.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape S (2D or 3D)
        Predicted vessel probabilities in ``[0, 1]`` (not thresholded).
    mask : ndarray or torch.Tensor, shape S
        Ground-truth vessel mask, read as 0.0 / 1.0.

    Returns
    -------
    float
        ``mean(|prob - mask|)`` in ``[0, 1]``.

    Raises
    ------
    ValueError
        As :func:`iou`.
    """
    prob, label = _prepare(pred_prob, mask)
    return _errors(prob, label)[1]


def cldice(pred_prob: Any, mask: Any) -> float:
    """Centerline Dice (Shit et al., CVPR 2021) of the thresholded prediction and the mask.

    ``Tprec = |S(P) & L| / |S(P)|``, ``Tsens = |S(L) & P| / |S(L)|`` and
    ``clDice = 2 Tprec Tsens / (Tprec + Tsens)``, with ``S`` the component-preserving
    skeleton of :func:`skeleton`.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape (Y, X) or (Z, Y, X)
        Predicted vessel probabilities in ``[0, 1]``; vessel where ``>= 0.5``.
    mask : ndarray or torch.Tensor, same shape
        Ground-truth vessel mask.

    Returns
    -------
    float
        clDice in ``[0, 1]``; 1.0 if both are empty, 0.0 if exactly one is, 0.0 when
        ``Tprec + Tsens == 0``.

    Raises
    ------
    ValueError
        As :func:`iou`, or if the arrays are not 2D or 3D.
    """
    prob, label = _prepare(pred_prob, mask)
    return _cldice(prob >= THRESHOLD, label)


def evaluate(pred_prob: Any, mask: Any) -> dict[str, float]:
    """All six metrics of one case, validating and thresholding the inputs once.

    Parameters
    ----------
    pred_prob : ndarray or torch.Tensor, shape (Y, X) or (Z, Y, X)
        Predicted vessel probabilities in ``[0, 1]``; vessel where ``>= 0.5``.
    mask : ndarray or torch.Tensor, same shape
        Ground-truth vessel mask.

    Returns
    -------
    dict of str to float
        Keys ``"iou"``, ``"dice"``, ``"mse"``, ``"mae"``, ``"accuracy"``, ``"cldice"``
        (the order of :data:`METRICS`), with the values of the functions of the same name
        (``"accuracy"`` is :func:`pixel_accuracy`).

    Raises
    ------
    ValueError
        As :func:`cldice`.
    """
    prob, label = _prepare(pred_prob, mask)
    pred = prob >= THRESHOLD
    iou_value, dice_value = _overlap_scores(pred, label)
    mse_value, mae_value = _errors(prob, label)
    return {
        "iou": iou_value,
        "dice": dice_value,
        "mse": mse_value,
        "mae": mae_value,
        "accuracy": _accuracy(pred, label),
        "cldice": _cldice(pred, label),
    }


def summarize(rows: Sequence[Mapping[str, float]], *, ddof: int = 0) -> dict[str, dict[str, float]]:
    """Mean and standard deviation of each metric over cases.

    The study's tables average with this function too, group by group
    (:func:`angio.study.mean_table`).

    Parameters
    ----------
    rows : sequence of mapping of str to float
        One mapping per case, e.g. the outputs of :func:`evaluate`. Every row must have the
        same keys; keys are reported in the order of the first row.
    ddof : int, optional
        Delta degrees of freedom of the standard deviation: 0 (default) for the population
        standard deviation, 1 for the sample one.

    Returns
    -------
    dict of str to dict
        ``{metric: {"mean": float, "std": float, "n": int}}`` with ``n`` the number of
        cases. ``std`` is NaN when ``n <= ddof``.

    Raises
    ------
    ValueError
        If ``rows`` is empty or the rows do not all have the same keys.
    """
    if len(rows) == 0:
        raise ValueError("summarize needs at least one row")
    keys = list(rows[0].keys())
    for index, row in enumerate(rows):
        if set(row.keys()) != set(keys):
            raise ValueError(
                f"row {index} has keys {sorted(row.keys())}, expected {sorted(keys)}"
            )
    summary: dict[str, dict[str, float]] = {}
    for key in keys:
        values = np.array([float(row[key]) for row in rows], dtype=np.float64)
        std = float(values.std(ddof=ddof)) if values.size > ddof else float("nan")
        summary[key] = {"mean": float(values.mean()), "std": std, "n": int(values.size)}
    return summary


def connectivity(mask: Any) -> dict[str, float]:
    """How much of a mask is one piece: 26-connected components and the share of the largest.

    Parameters
    ----------
    mask : array-like of bool, shape (Z, Y, X)
        A vessel mask.

    Returns
    -------
    dict
        ``pieces`` (number of 26-connected components) and ``largest`` (fraction of the
        mask's voxels in the largest one; 0 for an empty mask).
    """
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be 3D (Z, Y, X), got shape {m.shape}")
    labels, pieces = ndimage.label(m, structure=np.ones((3, 3, 3), bool))
    if pieces == 0:
        return {"pieces": 0, "largest": 0.0}
    sizes = np.bincount(labels.ravel())[1:]
    return {"pieces": int(pieces), "largest": float(sizes.max() / sizes.sum())}
