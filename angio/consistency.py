"""View consistency of a reconstruction: what its projections owe the views it came from.

A reconstruction from ``n`` views is *view consistent* when its maximum-intensity
projection at each view angle marks the same rays as vessel as the view itself does: no
voxel lies on a ray that a view shows as background, and no ray that a view shows as
vessel is left empty. This module measures that and enforces it as a test-time refinement
(issue #8's data-consistency term, without retraining):

- :func:`view_silhouettes`: each view's vessel pixels (Otsu's threshold per image);
- :func:`silhouette_hull`: the voxels whose rays are vessel in *every* view, the largest
  volume consistent with the silhouettes (the binary analogue of the min back-projection);
- :func:`missed_rays`: the silhouette pixels whose ray the prediction leaves empty;
- :func:`enforce_views`: *carve* the prediction to the hull and *fill* each missed ray with
  the voxels on it that the network rated at least ``low``;
- :func:`view_agreement`: the share of silhouette rays a mask covers and the share of its
  voxels outside the hull.

Conventions are those of :mod:`angio.projection`: volumes ``V[z, y, x]`` of shape
``(N, N, N)``, views ``P[t, z, j]`` of shape ``(n_views, N, N)`` at angles in degrees about
the z axis, parallel rays. A silhouette hull is typically 10 to 20 times the vessel volume
for two views, so consistency alone cannot place a vessel along its ray; it can only remove
what no view supports and restore what a view shows but the network dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from skimage.filters import threshold_otsu

from angio.projection import backproject, mip

__all__ = ["view_silhouettes", "silhouette_hull", "ray_volume", "missed_rays", "enforce_views", "view_agreement"]


def _views(projections: Any, what: str = "projections") -> np.ndarray:
    p = np.asarray(projections)
    if p.ndim != 3 or p.shape[1] != p.shape[2] or p.shape[1] < 2:
        raise ValueError(f"{what} must have shape (n_views, N, N), got {p.shape}")
    return p


def _angles(angles: Sequence[float], n_views: int) -> np.ndarray:
    a = np.asarray(angles, dtype=float).ravel()
    if a.size != n_views:
        raise ValueError(f"{n_views} views but {a.size} angles")
    return a


def _cube(volume: Any, n: int, what: str) -> np.ndarray:
    v = np.asarray(volume)
    if v.shape != (n, n, n):
        raise ValueError(f"{what} must have shape ({n}, {n}, {n}) to match the views, got {v.shape}")
    return v


def view_silhouettes(projections: Any) -> np.ndarray:
    """Each view's vessel pixels: Otsu's threshold of each image on its own.

    Parameters
    ----------
    projections : array-like, shape (n_views, N, N)
        Views ``P[t, z, j]`` (MIPs, any real unit; vessels bright).

    Returns
    -------
    ndarray of bool, shape (n_views, N, N)
        ``True`` where the view is above its Otsu threshold. A constant view has no
        vessel pixels.
    """
    p = _views(projections).astype(np.float32, copy=False)
    out = np.zeros(p.shape, dtype=bool)
    for t, img in enumerate(p):
        if img.max() > img.min():
            out[t] = img > threshold_otsu(img)
    return out


def silhouette_hull(silhouettes: Any, angles: Sequence[float]) -> np.ndarray:
    """Voxels whose ray is vessel in every view.

    Parameters
    ----------
    silhouettes : array-like of bool, shape (n_views, N, N)
        Vessel pixels per view (:func:`view_silhouettes`, or the MIP of a known mask).
    angles : sequence of float, shape (n_views,)
        View angles in degrees.

    Returns
    -------
    ndarray of bool, shape (N, N, N)
        The hull ``V[z, y, x]``: the min back-projection of the silhouettes, above 1/2
        (rays between pixels are interpolated as by :func:`angio.projection.backproject`).
    """
    s = _views(silhouettes, "silhouettes")
    a = _angles(angles, len(s))
    return np.asarray(backproject(s.astype(np.float32), a, mode="min", normalize=False)) > 0.5


def ray_volume(silhouette: Any, angle: float) -> np.ndarray:
    """The voxels on the rays of one view's marked pixels.

    Parameters
    ----------
    silhouette : array-like of bool, shape (N, N)
        Marked pixels ``[z, j]`` of one view.
    angle : float
        The view's angle in degrees.

    Returns
    -------
    ndarray of bool, shape (N, N, N)
    """
    s = np.asarray(silhouette, dtype=np.float32)
    if s.ndim != 2:
        raise ValueError(f"silhouette must be one view (N, N), got shape {s.shape}")
    return np.asarray(backproject(s[None], [float(angle)], mode="sum", normalize=False)) > 0.5


def missed_rays(prob: Any, silhouettes: Any, angles: Sequence[float], *, threshold: float = 0.5) -> np.ndarray:
    """Silhouette pixels whose ray holds no voxel of the thresholded prediction.

    Parameters
    ----------
    prob : array-like, shape (N, N, N)
        Vessel probabilities (or a 0/1 mask).
    silhouettes : array-like of bool, shape (n_views, N, N)
        Vessel pixels per view.
    angles : sequence of float, shape (n_views,)
        View angles in degrees.
    threshold : float
        The prediction's decision threshold.

    Returns
    -------
    ndarray of bool, shape (n_views, N, N)
    """
    s = _views(silhouettes, "silhouettes").astype(bool)
    a = _angles(angles, len(s))
    p = _cube(prob, s.shape[1], "prob").astype(np.float32, copy=False)
    return s & (np.asarray(mip(p, a)) < threshold)


def enforce_views(prob: Any, silhouettes: Any, angles: Sequence[float], *, low: float = 0.1,
                  threshold: float = 0.5, carve: bool = True, fill: bool = True) -> np.ndarray:
    """A mask made consistent with the views: carve to the hull, fill the missed rays.

    Parameters
    ----------
    prob : array-like, shape (N, N, N)
        Vessel probabilities ``V[z, y, x]`` in ``[0, 1]``.
    silhouettes : array-like of bool, shape (n_views, N, N)
        Vessel pixels per view (:func:`view_silhouettes`).
    angles : sequence of float, shape (n_views,)
        View angles in degrees.
    low : float
        Fill: on a missed ray, the voxels inside the hull with probability ``>= low``
        become vessel (``low < threshold``).
    threshold : float
        The prediction's decision threshold.
    carve, fill : bool
        Which of the two steps to apply.

    Returns
    -------
    ndarray of bool, shape (N, N, N)
        The refined mask. With neither step it is ``prob >= threshold``.

    Raises
    ------
    ValueError
        On shapes that do not match or ``low`` not in ``[0, threshold)``.
    """
    if not 0.0 <= low < threshold:
        raise ValueError(f"low must be in [0, threshold={threshold}), got {low}")
    s = _views(silhouettes, "silhouettes").astype(bool)
    a = _angles(angles, len(s))
    p = _cube(prob, s.shape[1], "prob").astype(np.float32, copy=False)
    pred = p >= threshold
    if not (carve or fill):
        return pred
    hull = silhouette_hull(s, a)
    if fill:
        candidates = hull & (p >= low) & ~pred
        for t, missed in enumerate(missed_rays(p, s, a, threshold=threshold)):
            if missed.any():
                pred |= candidates & ray_volume(missed, a[t])
    if carve:
        pred &= hull
    return pred


def view_agreement(mask: Any, silhouettes: Any, angles: Sequence[float]) -> dict[str, float]:
    """How consistent a mask is with the views.

    Parameters
    ----------
    mask : array-like of bool, shape (N, N, N)
    silhouettes : array-like of bool, shape (n_views, N, N)
    angles : sequence of float, shape (n_views,)

    Returns
    -------
    dict
        ``covered``: share of the silhouette pixels whose ray holds a mask voxel;
        ``outside_hull``: share of the mask's voxels outside :func:`silhouette_hull`;
        ``hull_ratio``: hull voxels per mask voxel.
    """
    s = _views(silhouettes, "silhouettes").astype(bool)
    a = _angles(angles, len(s))
    m = _cube(mask, s.shape[1], "mask").astype(bool)
    hull = silhouette_hull(s, a)
    missed = missed_rays(m.astype(np.float32), s, a)
    n_mask = int(m.sum())
    return {"covered": 1.0 - float(missed.sum()) / max(int(s.sum()), 1),
            "outside_hull": float((m & ~hull).sum()) / max(n_mask, 1),
            "hull_ratio": float(hull.sum()) / max(n_mask, 1)}
