"""What a C-arm's calibration must deliver: a model's accuracy under acquisition errors.

A trained model assumes the geometry it was trained with: views at exactly the nominal
angles, the detector's scale, and the noise level of the training data. This module builds
the inputs of a held-out case as a slightly miscalibrated acquisition would, while the
model is told the nominal geometry:

``angle_error_deg``
    Every view after the first is acquired ``angle_error_deg`` further round than nominal
    (the first view is the reference, so the error is in the *relative* angle, the only one
    that changes the reconstruction rather than rotating it as a whole).
``magnification``
    Each view is scaled by this factor about the detector centre (a source-to-patient
    distance error of a cone-beam C-arm, seen through a parallel-beam model).
``noise_scale``
    The volume's white noise has ``noise_scale`` times the preset's standard deviation
    (independent extra noise is added to the cached volume).
``cone_beam``
    The views come from a clinical cone-beam C-arm (source 750 mm from the isocentre,
    detector at 1100 mm; :mod:`angio.conebeam`) and are demagnified to the isocentre plane
    (:func:`angio.conebeam.isocentre_view`) before the parallel-beam back-projection.
``cone_rays``
    With ``cone_beam``: the views are instead back-projected along the cone's own rays
    (:func:`angio.pipeline.inputs_from_cone_views`, at the nominal angles), as
    ``angio reconstruct`` does with XA input.

:data:`CONDITIONS` are the rows of the book's robustness table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from angio.conebeam import CArmGeometry, cone_mip, isocentre_view
from angio.phantom import PRESETS
from angio.pipeline import GEOMETRY_NAMES, CaseVolumes, inputs_from_cone_views, inputs_from_projections
from angio.projection import mip, view_angles

if TYPE_CHECKING:
    import torch

__all__ = ["Acquisition", "CONDITIONS", "GEOMETRIES", "acquired_inputs", "acquired_projections", "magnify",
           "magnified_truth", "more_noise"]


@dataclass(frozen=True)
class Acquisition:
    """Deviations of an acquisition from the nominal geometry (see the module docstring)."""

    angle_error_deg: float = 0.0
    magnification: float = 1.0
    noise_scale: float = 1.0
    cone_beam: bool = False
    cone_rays: bool = False

    def __post_init__(self) -> None:
        if not np.isfinite(self.angle_error_deg):
            raise ValueError(f"angle_error_deg must be finite, got {self.angle_error_deg!r}")
        if not (np.isfinite(self.magnification) and self.magnification > 0):
            raise ValueError(f"magnification must be a positive number, got {self.magnification!r}")
        if not (np.isfinite(self.noise_scale) and self.noise_scale >= 1.0):
            raise ValueError(f"noise_scale must be >= 1 (noise can only be added), got {self.noise_scale!r}")
        if self.cone_rays and not self.cone_beam:
            raise ValueError("cone_rays back-projects cone-beam views: it needs cone_beam=True")


#: The book's robustness table: a label and the acquisition of each row.
CONDITIONS: dict[str, Acquisition] = {
    "nominal": Acquisition(),
    "views off by +2 deg": Acquisition(angle_error_deg=2.0),
    "views off by -2 deg": Acquisition(angle_error_deg=-2.0),
    "views off by +5 deg": Acquisition(angle_error_deg=5.0),
    "views off by -5 deg": Acquisition(angle_error_deg=-5.0),
    "doubled noise": Acquisition(noise_scale=2.0),
    "magnification +10%": Acquisition(magnification=1.1),
    "magnification -10%": Acquisition(magnification=1 / 1.1),
    "cone beam (750/1100 mm)": Acquisition(cone_beam=True),
    "cone beam, cone-ray back-projection": Acquisition(cone_beam=True, cone_rays=True),
}


def magnify(images: np.ndarray, factor: float) -> np.ndarray:
    """Scale images ``(n, H, W)`` by ``factor`` about their centres (linear, zero outside).

    ``factor > 1`` enlarges: a feature at distance ``d`` from the centre moves to
    ``factor * d``.
    """
    images = np.asarray(images, dtype=np.float32)
    if factor == 1.0:
        return images.copy()
    out = np.empty_like(images)
    centre = (np.array(images.shape[1:]) - 1) / 2.0
    for k, img in enumerate(images):
        # output pixel o samples input at centre + (o - centre) / factor
        out[k] = ndimage.affine_transform(img, np.full(2, 1.0 / factor), offset=centre - centre / factor,
                                          order=1, mode="constant", cval=0.0)
    return out


def magnified_truth(mask: np.ndarray, factor: float) -> np.ndarray:
    """A mask ``(N, N, N)`` scaled by ``factor`` about the volume centre (the isocentre).

    Views magnified by ``factor`` about their centres (:func:`magnify`) are exactly the
    parallel views of the object scaled by ``factor`` about the isocentre, so a model given
    them at the nominal scale can at best return this mask: the anatomy, ``factor`` times
    too large. Scoring against it separates the shape a model recovers from the scale error
    no model can see.

    Parameters
    ----------
    mask : ndarray, shape (N, N, N)
        Vessel mask ``[z, y, x]`` (bool or ``{0, 1}``).
    factor : float
        Magnification (``> 1`` enlarges).

    Returns
    -------
    ndarray, shape (N, N, N), bool
        Voxels whose source point ``c + (o - c) / factor`` lies inside the mask (trilinear
        weight >= 0.5).
    """
    m = np.asarray(mask, dtype=np.float32)
    if factor == 1.0:
        return m > 0.5
    centre = (np.array(m.shape) - 1) / 2.0
    out = ndimage.affine_transform(m, np.full(3, 1.0 / factor), offset=centre - centre / factor, order=1,
                                   mode="constant", cval=0.0)
    return out >= 0.5


def more_noise(unit: np.ndarray, modality: str, noise_scale: float, *, seed: int = 0) -> np.ndarray:
    """A ``[0, 1]`` volume whose white noise is ``noise_scale`` times the preset's.

    Independent Gaussian noise of standard deviation ``sigma * sqrt(noise_scale**2 - 1)``
    (``sigma``: the preset's noise in display units) is added, so the total variance is
    ``noise_scale**2 * sigma**2``; the result is clipped to ``[0, 1]`` like the display window.
    """
    unit = np.asarray(unit, dtype=np.float32)
    if noise_scale == 1.0:
        return unit
    preset = PRESETS[modality]
    low, high = preset.window
    extra = preset.noise_sigma * np.sqrt(noise_scale ** 2 - 1.0) / (high - low)
    rng = np.random.default_rng([seed, 7])
    return np.clip(unit + rng.normal(0.0, extra, unit.shape).astype(np.float32), 0.0, 1.0)


#: Acquisition geometries a model can be trained and evaluated with
#: (:attr:`angio.study.StudySettings.geometry`): ideal parallel rays, or a clinical cone-beam
#: C-arm (source 750 mm from the isocentre, detector at 1100 mm) whose views are demagnified
#: to the isocentre (``"cone"``) or back-projected along its own rays, as ``angio reconstruct``
#: reads XA files (``"cone-rays"``).
GEOMETRIES: dict[str, Acquisition] = dict(zip(GEOMETRY_NAMES, (Acquisition(), Acquisition(cone_beam=True),
                                                               Acquisition(cone_beam=True, cone_rays=True)),
                                              strict=True))


def acquired_inputs(vols: CaseVolumes, n_views: int, modes: tuple[str, ...], acquisition: Acquisition, *,
                    seed: int = 0, device: str | torch.device | None = None) -> np.ndarray:
    """Network inputs ``(len(modes), N, N, N)`` of a case acquired with ``acquisition``.

    The views are taken at the perturbed angles (and scale, and noise); the back-projection
    uses the nominal angles :func:`angio.projection.view_angles`, as the model would be told
    (with ``cone_rays``, the nominal C-arm geometry's own rays). ``device`` says where the
    projections and back-projections are computed (default: the CPU).
    """
    if acquisition.cone_rays:
        images, _ = _cone_views(vols, n_views, acquisition, seed=seed, device=device)
        n, h = vols.spec.size, vols.spec.voxel_mm
        nominal = _cone_geometries(n, h, view_angles(n_views))
        return inputs_from_cone_views(magnify(images, acquisition.magnification), nominal, n, spacing_mm=h,
                                      modes=modes, device=device)
    proj = acquired_projections(vols, n_views, acquisition, seed=seed)
    return inputs_from_projections(proj, view_angles(n_views), modes=modes, device=device)


def _cone_geometries(n: int, spacing_mm: float, angles) -> list:
    return [CArmGeometry.typical(n, spacing_mm, t) for t in angles]


def _cone_views(vols: CaseVolumes, n_views: int, acquisition: Acquisition, *,
                seed: int = 0, device: str | torch.device | None = None) -> tuple[np.ndarray, list]:
    """Detector images ``(n_views, N, N)`` of the typical C-arm at the acquired angles, and their views."""
    n, h = vols.spec.size, vols.spec.voxel_mm
    unit = more_noise(vols.unit_intensity(), vols.spec.modality, acquisition.noise_scale, seed=seed)
    views = _cone_geometries(n, h, _acquired_angles(n_views, acquisition))
    return cone_mip(unit, views, spacing_mm=h, device=device), views


def _acquired_angles(n_views: int, acquisition: Acquisition) -> np.ndarray:
    nominal = view_angles(n_views)
    return nominal + np.r_[0.0, np.full(n_views - 1, acquisition.angle_error_deg)]


def acquired_projections(vols: CaseVolumes, n_views: int, acquisition: Acquisition, *,
                         seed: int = 0) -> np.ndarray:
    """Views ``(n_views, N, N)`` in ``[0, 1]`` of a case acquired with ``acquisition``.

    As seen by the parallel-beam back-projection at the nominal angles (cone-beam views are
    already demagnified to the isocentre).
    """
    if acquisition.cone_beam:
        detector, views = _cone_views(vols, n_views, acquisition, seed=seed)
        n = vols.spec.size
        proj = np.stack([isocentre_view(img, g, n, vols.spec.fov_mm) for img, g in zip(detector, views)])
    else:
        unit = more_noise(vols.unit_intensity(), vols.spec.modality, acquisition.noise_scale, seed=seed)
        proj = np.asarray(mip(unit, _acquired_angles(n_views, acquisition)))
    return magnify(proj, acquisition.magnification)
