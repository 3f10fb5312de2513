"""Cone-beam C-arm geometry: MIP and back-projection with a point source and a flat detector.

A real C-arm is not a parallel-beam device: its source sits about 750-800 mm from the
isocentre and 1000-1200 mm from the detector, so the head is magnified about 1.5x and the
rays fan out by several degrees. This module has the same contract style as
:mod:`angio.projection`, with a :class:`CArmGeometry` per view; the parallel-beam contract is
its limit as the distances grow (:meth:`CArmGeometry.parallel`).

Frames and conventions
----------------------
Volumes are ``V[z, y, x]`` with isotropic voxels of ``spacing_mm``; the isocentre is the
volume centre ``c = (N - 1) / 2`` in every axis. World points are ``p = (x, y, z)`` in mm
from the isocentre, ``x = (k_x - c) h`` and so on. When the volume is stored in the DICOM
patient frame (LPS: ``x`` towards the patient's left, ``y`` posterior, ``z`` head), world
coordinates are patient coordinates relative to the isocentre.

A view is given by an in-plane angle ``t`` (degrees) about ``z``, as in
:mod:`angio.projection`, and a tilt ``s`` (degrees) out of the axial plane:

* the central ray (source to detector) is ``r = (-sin t cos s, cos t cos s, sin s)``;
* the detector's column axis is ``e_u = (cos t, sin t, 0)`` and its row axis
  ``e_v = (sin t sin s, -cos t sin s, cos s)`` (``z`` up when ``s = 0``);
* the source is at ``-D_so r``; the detector plane is perpendicular to ``r`` at ``D_sd - D_so``
  past the isocentre; detector pixel ``(row, col)`` has its centre at
  ``u = (col - (W - 1) / 2) du``, ``v = (row - (H - 1) / 2) dv`` in that plane (mm).

A point ``p`` projects to ``u = m(p) (p . e_u)``, ``v = m(p) (p . e_v)`` with the
magnification ``m(p) = D_sd / (D_so + p . r)`` (similar triangles). With ``s = 0``, a
detector pixel of ``h * D_sd / D_so`` mm and ``D_so -> infinity`` this is the parallel
contract: column ``j = (p . e_u) / h + c``, row = ``z`` index.

DICOM (PS3.3, X-Ray Angiography positioner): PositionerPrimaryAngle ``a`` (LAO positive)
and PositionerSecondaryAngle ``b`` (cranial positive) describe where the *detector* sits
seen from the isocentre, with ``a = b = 0`` the detector anterior (beam travelling
posterior to anterior, ``-y`` in LPS). :meth:`CArmGeometry.from_dicom` maps them onto
``t = a + 180`` (so that ``r = (sin a, -cos a, 0)`` at ``b = 0``) and ``s = b``.

Implementation: rays are sampled every ``step`` voxels between the points where they enter
and leave the volume's bounding sphere, with trilinear interpolation
(:func:`torch.nn.functional.grid_sample`, zero outside the volume, so volumes must be
non-negative, as ``[0, 1]`` angiograms are); detector rows are processed in chunks so
memory stays bounded. Back-projection maps every voxel centre to the detector and samples
the image bilinearly (views whose footprint misses a voxel do not count for it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from angio.errors import InputError

__all__ = ["CArmGeometry", "cone_mip", "cone_backproject", "cone_mip_reference", "isocentre_view",
           "parallel_equivalent"]

_CHUNK_SAMPLES = 2**24  # ray samples per chunk (x 3 coordinates x 4 bytes = 192 MiB)


@dataclass(frozen=True)
class CArmGeometry:
    """One view of a C-arm: distances, detector and angles (see the module docstring).

    Parameters
    ----------
    source_isocenter_mm : float
        ``D_so``, source to isocentre (``math.inf`` for parallel rays).
    source_detector_mm : float
        ``D_sd``, source to detector (``>= D_so``; ``math.inf`` for parallel rays).
    detector_shape : (int, int)
        ``(rows, columns)`` of the detector image.
    pixel_mm : (float, float)
        Detector pixel spacing ``(dv, du)`` in mm (ImagerPixelSpacing: row, column).
    angle_deg : float
        In-plane angle ``t`` about ``z`` (the parallel contract's angle).
    tilt_deg : float
        Tilt ``s`` out of the axial plane (cranial positive).
    """

    source_isocenter_mm: float
    source_detector_mm: float
    detector_shape: tuple[int, int]
    pixel_mm: tuple[float, float]
    angle_deg: float = 0.0
    tilt_deg: float = 0.0

    def __post_init__(self) -> None:
        dso, dsd = float(self.source_isocenter_mm), float(self.source_detector_mm)
        if not (dso > 0 and dsd > 0) or math.isnan(dso) or math.isnan(dsd):
            raise ValueError(f"distances must be positive, got D_so={dso}, D_sd={dsd}")
        if dsd < dso:
            raise ValueError(f"the detector must lie beyond the isocentre: D_sd={dsd} < D_so={dso}")
        rows, cols = (int(v) for v in self.detector_shape)
        if rows < 1 or cols < 1:
            raise ValueError(f"detector_shape must be positive, got {self.detector_shape}")
        dv, du = (float(v) for v in self.pixel_mm)
        if not (dv > 0 and du > 0 and math.isfinite(dv) and math.isfinite(du)):
            raise ValueError(f"pixel_mm must be positive and finite, got {self.pixel_mm}")
        if not (math.isfinite(self.angle_deg) and math.isfinite(self.tilt_deg)) or abs(self.tilt_deg) >= 90:
            raise ValueError(f"angles must be finite with |tilt| < 90, got {self.angle_deg}, {self.tilt_deg}")
        object.__setattr__(self, "detector_shape", (rows, cols))
        object.__setattr__(self, "pixel_mm", (dv, du))

    # ------------------------------------------------------------------ constructors
    @classmethod
    def parallel(cls, n: int, spacing_mm: float, angle_deg: float = 0.0) -> CArmGeometry:
        """The parallel-beam contract of :mod:`angio.projection` for an ``N^3`` volume."""
        return cls(math.inf, math.inf, (n, n), (spacing_mm, spacing_mm), angle_deg, 0.0)

    @classmethod
    def typical(cls, n: int, spacing_mm: float, angle_deg: float = 0.0, *, source_isocenter_mm: float = 750.0,
                source_detector_mm: float = 1100.0, tilt_deg: float = 0.0) -> CArmGeometry:
        """A clinical C-arm (750 / 1100 mm) whose ``N x N`` detector covers the volume at the isocentre."""
        mag = source_detector_mm / source_isocenter_mm
        return cls(source_isocenter_mm, source_detector_mm, (n, n), (spacing_mm * mag,) * 2, angle_deg, tilt_deg)

    @classmethod
    def from_dicom(cls, primary_deg: float, secondary_deg: float, *, source_detector_mm: float,
                   source_patient_mm: float, pixel_mm: Sequence[float], detector_shape: Sequence[int]
                   ) -> CArmGeometry:
        """A view from XA positioner tags (see the module docstring for the angle mapping)."""
        return cls(float(source_patient_mm), float(source_detector_mm), tuple(detector_shape),
                   tuple(pixel_mm), float(primary_deg) + 180.0, float(secondary_deg))

    def rotated(self, angle_deg: float) -> CArmGeometry:
        """The same C-arm at another in-plane angle."""
        return replace(self, angle_deg=float(angle_deg))

    # ------------------------------------------------------------------ geometry
    @property
    def is_parallel(self) -> bool:
        """Whether the rays are parallel (infinite distances)."""
        return math.isinf(self.source_isocenter_mm)

    @property
    def magnification(self) -> float:
        """``D_sd / D_so`` at the isocentre (1 for parallel rays)."""
        return 1.0 if self.is_parallel else self.source_detector_mm / self.source_isocenter_mm

    def frame(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(r, e_u, e_v)``: central-ray direction and detector axes, unit vectors in ``(x, y, z)``."""
        t, s = math.radians(self.angle_deg), math.radians(self.tilt_deg)
        ct, st, cs, ss = math.cos(t), math.sin(t), math.cos(s), math.sin(s)
        r = np.array([-st * cs, ct * cs, ss])
        e_u = np.array([ct, st, 0.0])
        e_v = np.array([st * ss, -ct * ss, cs])
        return r, e_u, e_v

    def project(self, points_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Detector ``(row, col)`` pixel coordinates of points ``(..., 3)`` given as ``(x, y, z)`` mm."""
        p = np.asarray(points_mm, dtype=np.float64)
        r, e_u, e_v = self.frame()
        m = 1.0 if self.is_parallel else self.source_detector_mm / (self.source_isocenter_mm + p @ r)
        rows, cols = self.detector_shape
        dv, du = self.pixel_mm
        return m * (p @ e_v) / dv + (rows - 1) / 2.0, m * (p @ e_u) / du + (cols - 1) / 2.0

    def rays(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Ray origins and unit directions ``(R, C, 3)`` for detector rows ``rows`` (default all).

        For a cone beam the origin is the source; for parallel rays it is the detector
        pixel's foot point in the plane through the isocentre.
        """
        r, e_u, e_v = self.frame()
        n_rows, n_cols = self.detector_shape
        dv, du = self.pixel_mm
        rows = np.arange(n_rows) if rows is None else np.asarray(rows)
        v = (rows - (n_rows - 1) / 2.0) * dv
        u = (np.arange(n_cols) - (n_cols - 1) / 2.0) * du
        plane = v[:, None, None] * e_v + u[None, :, None] * e_u  # (R, C, 3), in the detector plane
        if self.is_parallel:
            return plane, np.broadcast_to(r, plane.shape).copy()
        source = -self.source_isocenter_mm * r
        pixel = plane + (self.source_detector_mm - self.source_isocenter_mm) * r
        direction = pixel - source
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        return np.broadcast_to(source, plane.shape).copy(), direction


def _as_volume(volume, device) -> torch.Tensor:
    v = torch.as_tensor(np.asarray(volume, dtype=np.float32) if not isinstance(volume, torch.Tensor) else volume,
                        dtype=torch.float32, device=device)
    if v.ndim != 3 or len(set(v.shape)) != 1:
        raise InputError(f"volume must be a cube (N, N, N), got shape {tuple(v.shape)}")
    return v


def _to_grid(points_mm: torch.Tensor, n: int, spacing_mm: float) -> torch.Tensor:
    """World ``(x, y, z)`` mm to grid_sample coordinates in ``[-1, 1]`` (align_corners=True)."""
    c = (n - 1) / 2.0
    return points_mm / (spacing_mm * c)


def cone_mip(volume, geometries: Sequence[CArmGeometry], *, spacing_mm: float, step: float = 0.5,
             device: str | torch.device | None = None) -> np.ndarray:
    """Maximum-intensity projections of a non-negative volume for each view.

    Parameters
    ----------
    volume : ndarray or Tensor, shape (N, N, N)
        ``V[z, y, x]``, values ``>= 0``.
    geometries : sequence of CArmGeometry
        One per view; all with the same ``detector_shape``.
    spacing_mm : float
        Voxel size of the volume.
    step : float
        Distance between ray samples, in voxels.
    device : str or torch.device, optional
        Where to compute (default: the volume's device, else the CPU).

    Returns
    -------
    ndarray, shape (n_views, rows, cols), float32
        ``P[t, row, col]``, row ``0`` at the bottom (``-v``, inferior at ``s = 0``).
    """
    device = torch.device(device) if device is not None else (
        volume.device if isinstance(volume, torch.Tensor) else torch.device("cpu"))
    v = _as_volume(volume, device)
    n = v.shape[0]
    if step <= 0 or not math.isfinite(step):
        raise ValueError(f"step must be a positive number of voxels, got {step}")
    shapes = {g.detector_shape for g in geometries}
    if len(shapes) != 1:
        raise ValueError(f"all views need the same detector shape, got {sorted(shapes)}")
    rows, cols = shapes.pop()
    radius = math.sqrt(3.0) * (n - 1) / 2.0 * spacing_mm  # bounding sphere of the voxel centres
    n_samples = int(math.ceil(2 * radius / (step * spacing_mm))) + 1
    chunk = max(1, _CHUNK_SAMPLES // max(1, cols * n_samples))
    grid_volume = v[None, None]  # (1, 1, D=z, H=y, W=x)
    out = torch.empty((len(geometries), rows, cols), dtype=torch.float32, device=device)
    offsets = torch.linspace(-radius, radius, n_samples, dtype=torch.float64, device=device)
    for k, g in enumerate(geometries):
        for r0 in range(0, rows, chunk):
            origin, direction = (torch.as_tensor(a, dtype=torch.float64, device=device)
                                 for a in g.rays(np.arange(r0, min(rows, r0 + chunk))))
            # closest point of each ray to the isocentre, then samples across the sphere
            centre = origin - (origin * direction).sum(-1, keepdim=True) * direction
            pts = centre[..., None, :] + offsets[:, None] * direction[..., None, :]  # (R, C, S, 3)
            grid = _to_grid(pts, n, spacing_mm).to(torch.float32)  # (x, y, z) order = (W, H, D)
            samples = F.grid_sample(grid_volume, grid[None], mode="bilinear", padding_mode="zeros",
                                    align_corners=True)  # (1, 1, R, C, S)
            out[k, r0:r0 + grid.shape[0]] = samples[0, 0].amax(-1)
    return out.cpu().numpy()


def cone_backproject(images, geometries: Sequence[CArmGeometry], n: int, *, spacing_mm: float,
                     mode: str = "sum", normalize: bool = True, require_all_views: bool = False,
                     device: str | torch.device | None = None) -> np.ndarray:
    """Back-project detector images into an ``N^3`` volume (sum or min over the views).

    Voxel ``(z, y, x)`` receives each image, bilinearly interpolated, at the detector
    position its centre projects to (:meth:`CArmGeometry.project`); views that do not see the
    voxel are left out (for ``"min"``, a voxel seen by no view is 0).

    Parameters
    ----------
    images : ndarray, shape (n_views, rows, cols)
        Detector images in ``[0, 1]``.
    geometries : sequence of CArmGeometry
        One per image.
    n : int
        Volume size ``N``.
    spacing_mm : float
        Voxel size.
    mode : {"sum", "min"}
        How views combine.
    normalize : bool
        Rescale the result linearly to ``[0, 1]``.
    require_all_views : bool
        Keep only the voxels that every view sees (the acquisition's common field of view)
        and set the others to 0 before normalizing. A cone's rays diverge, so near the
        source a view misses the edges of a volume that its detector covers at the
        isocentre; left in, those voxels hold a single view's values and look like bright
        slabs to a model trained on parallel rays (where two orthogonal views see every
        voxel).
    device : str or torch.device, optional
        Where to compute (default: the CPU).

    Returns
    -------
    ndarray, shape (N, N, N), float32
        ``B[z, y, x]``.
    """
    if mode not in ("sum", "min"):
        raise ValueError(f"mode must be 'sum' or 'min', got {mode!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    imgs = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    if imgs.ndim != 3 or len(imgs) != len(geometries):
        raise ValueError(f"need one (rows, cols) image per geometry, got {tuple(imgs.shape)} "
                         f"for {len(geometries)} geometries")
    c = (n - 1) / 2.0
    axis = (torch.arange(n, dtype=torch.float64, device=device) - c) * spacing_mm
    zz, yy, xx = torch.meshgrid(axis, axis, axis, indexing="ij")
    pts = torch.stack([xx, yy, zz], dim=-1)  # (N, N, N, 3) as (x, y, z)
    acc = torch.full((n, n, n), 0.0 if mode == "sum" else math.inf, dtype=torch.float32, device=device)
    seen = torch.zeros((n, n, n), dtype=torch.bool, device=device)
    everywhere = torch.ones((n, n, n), dtype=torch.bool, device=device)
    for img, g in zip(imgs, geometries):
        r, e_u, e_v = (torch.as_tensor(a, device=device) for a in g.frame())
        m = 1.0 if g.is_parallel else g.source_detector_mm / (g.source_isocenter_mm + pts @ r)
        rows, cols = img.shape
        row = m * (pts @ e_v) / g.pixel_mm[0] + (rows - 1) / 2.0
        col = m * (pts @ e_u) / g.pixel_mm[1] + (cols - 1) / 2.0
        inside = (row >= -1e-6) & (row <= rows - 1 + 1e-6) & (col >= -1e-6) & (col <= cols - 1 + 1e-6)
        grid = torch.stack([2 * col / max(cols - 1, 1) - 1, 2 * row / max(rows - 1, 1) - 1], dim=-1)
        value = F.grid_sample(img[None, None], grid.reshape(1, n, n * n, 2).to(torch.float32), mode="bilinear",
                              padding_mode="border", align_corners=True).reshape(n, n, n)
        if mode == "sum":
            acc += torch.where(inside, value, torch.zeros_like(value))
        else:
            acc = torch.where(inside, torch.minimum(acc, value), acc)
        seen |= inside
        everywhere &= inside
    if mode == "min" or require_all_views:
        acc = torch.where(everywhere if require_all_views else seen, acc, torch.zeros_like(acc))
    if normalize:
        lo, hi = acc.min(), acc.max()
        acc = (acc - lo) / (hi - lo) if hi > lo else torch.zeros_like(acc)
    return acc.cpu().numpy()


def cone_mip_reference(volume: np.ndarray, geometry: CArmGeometry, *, spacing_mm: float,
                       step: float = 0.5) -> np.ndarray:
    """Slow, independent reference of one cone-beam MIP (NumPy + SciPy, one ray at a time).

    Each ray is sampled from its entry to its exit of the volume's bounding box (not the
    bounding sphere) with :func:`scipy.ndimage.map_coordinates` (order 1, zero outside).
    """
    from scipy import ndimage

    v = np.asarray(volume, dtype=np.float64)
    n = v.shape[0]
    c = (n - 1) / 2.0
    half = c * spacing_mm
    origin, direction = geometry.rays()
    rows, cols = geometry.detector_shape
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            o, d = origin[i, j], direction[i, j]
            with np.errstate(divide="ignore", invalid="ignore"):
                t1, t2 = (-half - o) / d, (half - o) / d
            lo = np.nanmax(np.where(np.isfinite(t1), np.minimum(t1, t2), -np.inf))
            hi = np.nanmin(np.where(np.isfinite(t1), np.maximum(t1, t2), np.inf))
            if not hi >= lo:
                continue
            t = np.arange(lo, hi + 1e-9, step * spacing_mm)
            p = o + t[:, None] * d  # (S, 3) x, y, z
            idx = np.stack([p[:, 2], p[:, 1], p[:, 0]]) / spacing_mm + c
            out[i, j] = ndimage.map_coordinates(v, idx, order=1, mode="constant", cval=0.0).max(initial=0.0)
    return out.astype(np.float32)


def isocentre_view(image: np.ndarray, geometry: CArmGeometry, n: int, fov_mm: float) -> np.ndarray:
    """Resample a detector image onto an ``n x n`` grid of ``fov_mm`` in the isocentre plane.

    The detector is demagnified by ``D_sd / D_so`` so that a structure at the isocentre keeps
    its size (the only depth a parallel-beam model can assume); the result follows the
    parallel contract's layout ``P[z, j]`` (row 0 inferior) for the same in-plane angle.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
        Detector image with row 0 at the bottom (``-v``), as :func:`cone_mip` returns.
    geometry : CArmGeometry
        Its view.
    n : int
        Output size.
    fov_mm : float
        Side of the output grid at the isocentre, in mm.
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float32)
    rows, cols = geometry.detector_shape
    if img.shape != (rows, cols):
        raise ValueError(f"image shape {img.shape} != detector shape {(rows, cols)}")
    h = fov_mm / n
    k = (np.arange(n) - (n - 1) / 2.0) * h * geometry.magnification  # mm on the detector
    row = k / geometry.pixel_mm[0] + (rows - 1) / 2.0
    col = k / geometry.pixel_mm[1] + (cols - 1) / 2.0
    rr, cc = np.meshgrid(row, col, indexing="ij")
    return ndimage.map_coordinates(img, [rr, cc], order=1, mode="constant", cval=0.0).astype(np.float32)


def parallel_equivalent(angle_deg: float) -> tuple[float, bool]:
    """The parallel-contract angle in ``[0, 180)`` showing the same view, and whether to mirror.

    A view at ``t + 180`` is the left-right mirror image of the view at ``t``.
    """
    t = float(angle_deg) % 360.0
    return (t - 180.0, True) if t >= 180.0 else (t, False)
