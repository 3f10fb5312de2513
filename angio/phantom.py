"""Angiography-like intensity volumes built from voxelized vessels.

The model, per voxel ``v`` with vessel fraction ``f(v)`` (from :mod:`angio.voxelize`)::

    I(v) = (1 - f(v)) * B(v) + f(v) * vessel          (partial-volume mixing)
    I    = G_sigma * I  +  noise                      (system blur, then noise)

``B`` is the background: 0 for subtracted rotational angiography; for CTA, air outside the
head, brain tissue inside, and a skull shell between. ``G_sigma`` is an isotropic Gaussian
point-spread function and the noise is white Gaussian. The head is an ellipsoid fitted to the
tree's bounding box (plus a margin) on the voxel grid; the skull is a shell of fixed
thickness outside it, clipped by the field of view like a real scan.

Presets (:data:`PRESETS`; numbers in the preset's units):

=================  ============  ============  =============
parameter          ``rotational``  ``cta``       unit
=================  ============  ============  =============
vessel (iodine)    1.0           400           a.u. / HU
tissue (brain)     0.0           35            a.u. / HU
bone (skull)       --            1200          HU
air                0.0           -1000         a.u. / HU
skull thickness    --            6             mm
PSF sigma          0.3           0.35          mm
noise sigma        0.02          12            a.u. / HU
window -> [0, 1]   0 .. 1        -1000 .. 1500 a.u. / HU
=================  ============  ============  =============

``rotational`` (the default) is a subtracted 3D rotational angiogram (3D-RA / 3D-DSA):
only contrast-filled vessels remain after subtracting the mask run. ``cta`` is a CT angiogram
in Hounsfield units, as in the paper, with bone that an intensity threshold cannot tell from
contrast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from angio.voxelize import Grid

__all__ = ["Modality", "PRESETS", "angiography_volume", "head_masks", "to_unit_range"]


@dataclass(frozen=True)
class Modality:
    """Parameters of the intensity model (see the module docstring for meanings and units)."""

    name: str
    vessel: float
    tissue: float
    air: float
    bone: float | None = None
    skull_mm: float = 0.0
    head_margin_mm: float = 5.0
    psf_sigma_mm: float = 0.3
    noise_sigma: float = 0.0
    unit: str = "a.u."
    window: tuple[float, float] = (0.0, 1.0)
    """Intensity range mapped to ``[0, 1]`` before projection (values outside are clipped)."""
    vessel_window: tuple[float, float] | None = None
    """Intensity range the ``"otsu_window"`` ground truth clips to before Otsu's threshold
    (:meth:`angio.pipeline.CaseVolumes.target`); ``None``: no window (the same as ``"otsu"``)."""

    @property
    def has_bone(self) -> bool:
        """Whether the volume has a skull (a bone intensity and a positive thickness)."""
        return self.bone is not None and self.skull_mm > 0


PRESETS: dict[str, Modality] = {
    "rotational": Modality("rotational", vessel=1.0, tissue=0.0, air=0.0,
                           psf_sigma_mm=0.3, noise_sigma=0.02),
    "cta": Modality("cta", vessel=400.0, tissue=35.0, air=-1000.0, bone=1200.0, skull_mm=6.0,
                    psf_sigma_mm=0.35, noise_sigma=12.0, unit="HU", window=(-1000.0, 1500.0),
                    vessel_window=(100.0, 600.0)),
}


def head_masks(grid: Grid, lo_mm: np.ndarray, hi_mm: np.ndarray, *, margin_mm: float,
               skull_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Brain and skull masks: an ellipsoid around a box, and a shell around the ellipsoid.

    Parameters
    ----------
    grid : Grid
        Voxel grid.
    lo_mm, hi_mm : ndarray, shape (3,)
        Box to enclose (the tree's bounding box), ``(z, y, x)`` in mm.
    margin_mm, skull_mm : float
        Extra radius of the brain ellipsoid and thickness of the skull shell, in mm.

    Returns
    -------
    brain, skull : ndarray, shape (n, n, n), bool
    """
    centre = (np.asarray(lo_mm) + np.asarray(hi_mm)) / 2
    semi = (np.asarray(hi_mm) - np.asarray(lo_mm)) / 2 + margin_mm
    axes = [grid.center_mm[k] + (np.arange(grid.n) - (grid.n - 1) / 2) * grid.voxel_mm for k in range(3)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)

    def inside(extra: float) -> np.ndarray:
        s = semi + extra
        return ((z - centre[0]) / s[0]) ** 2 + ((y - centre[1]) / s[1]) ** 2 + ((x - centre[2]) / s[2]) ** 2 <= 1

    brain = inside(0.0)
    skull = inside(skull_mm) & ~brain if skull_mm > 0 else np.zeros_like(brain)
    return brain, skull


def angiography_volume(fraction: np.ndarray, grid: Grid, *, modality: str | Modality = "rotational",
                       tree_bounds: tuple[np.ndarray, np.ndarray] | None = None,
                       rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Angiography-like intensities from a vessel-fraction volume.

    Parameters
    ----------
    fraction : ndarray, shape (n, n, n), float
        Vessel fraction per voxel in ``[0, 1]`` (:func:`angio.voxelize.voxelize_tree`).
    grid : Grid
        Its geometry (voxel size sets the blur in voxels).
    modality : str or Modality
        A key of :data:`PRESETS` or custom parameters.
    tree_bounds : (lo, hi), optional
        Box in mm around which the head is built (needed for presets with bone or tissue);
        defaults to the box of nonzero ``fraction``.
    rng : Generator or int or None
        Noise generator or seed (``None``: fresh entropy).

    Returns
    -------
    ndarray, shape (n, n, n), float32
        Intensities in the modality's unit.
    """
    mod = PRESETS[modality] if isinstance(modality, str) else modality
    fraction = np.asarray(fraction, dtype=np.float32)
    if fraction.shape != (grid.n,) * 3:
        raise ValueError(f"fraction has shape {fraction.shape}, grid is {(grid.n,) * 3}")
    if mod.tissue != mod.air or mod.has_bone:
        if tree_bounds is None:
            tree_bounds = _nonzero_bounds(fraction, grid)
        brain, skull = head_masks(grid, *tree_bounds, margin_mm=mod.head_margin_mm,
                                  skull_mm=mod.skull_mm if mod.has_bone else 0.0)
        background = np.full(fraction.shape, mod.air, np.float32)
        background[brain] = mod.tissue
        if mod.has_bone:
            background[skull] = mod.bone
    else:
        background = np.float32(mod.air)
    image = background + fraction * (np.float32(mod.vessel) - background)
    image = np.asarray(image, dtype=np.float32)
    if mod.psf_sigma_mm > 0:
        image = ndimage.gaussian_filter(image, mod.psf_sigma_mm / grid.voxel_mm, mode="nearest")
    if mod.noise_sigma > 0:
        gen = np.random.default_rng(rng)
        image += gen.standard_normal(image.shape, dtype=np.float32) * np.float32(mod.noise_sigma)
    return image


def to_unit_range(volume: np.ndarray, *, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Linearly map ``[low, high]`` (default: the volume's min and max) to ``[0, 1]``, clipped.

    A constant volume maps to zeros. Returns float32 of the same shape.
    """
    v = np.asarray(volume, dtype=np.float32)
    lo = float(v.min()) if low is None else low
    hi = float(v.max()) if high is None else high
    if hi <= lo:
        return np.zeros_like(v)
    out = (v - np.float32(lo)) * np.float32(1.0 / (hi - lo))
    return np.clip(out, 0.0, 1.0, out=out)


def _nonzero_bounds(fraction: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(fraction > 0)
    if idx.size == 0:
        half = grid.fov_mm / 4
        c = np.asarray(grid.center_mm)
        return c - half, c + half
    to_mm = lambda k: np.asarray(grid.center_mm) + (k - (grid.n - 1) / 2) * grid.voxel_mm  # noqa: E731
    return to_mm(idx.min(axis=0)), to_mm(idx.max(axis=0))
