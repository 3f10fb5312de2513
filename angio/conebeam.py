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

Implementation
--------------
:func:`cone_mip` samples each ray every ``step`` voxels on a lattice spanning the volume's
bounding sphere (offsets from the ray's closest point to the isocentre), with trilinear
interpolation (:func:`torch.nn.functional.grid_sample`, zero outside the volume, so volumes
must be non-negative, as ``[0, 1]`` angiograms are). Only the run of lattice samples that
can meet the volume (its cube grown by one voxel) is evaluated: every other sample is
exactly 0 and cannot change a maximum of non-negative values. Sample points are built in
float32 grid units directly; detector rows are processed in chunks.

:func:`cone_backproject` maps voxel centres to the detector with one ``3 x 4`` projective
matrix per view (``(x, y, z, 1)`` to grid_sample coordinates times ``w = 1 + (p . r) / D_so``),
evaluated in float64 so that whether a voxel near a detector edge counts is decided to
``1e-6`` pixels, as :meth:`CArmGeometry.project` would; the images are sampled bilinearly in
float32 for a group of views at once (views whose footprint misses a voxel do not count for
it). The volume is processed in chunks of voxels (flat ``z, y, x`` order) and, when many
views do not fit, in groups of views, accumulated into the float32 result.

Memory: besides its inputs and the float32 result, each call works on one chunk at a time
whose working set is at most ``_CHUNK_BYTES`` (16 MiB on the CPU, 8 times that on CUDA):
``_MIP_BYTES_PER_SAMPLE`` bytes per ray sample (whole detector rows of full-length rays;
one row if a single row needs more) and ``_BP_BYTES_PER_PAIR`` bytes per (view, voxel)
pair. The back-projection's peak extra memory is therefore about 16 MiB plus the ``N^3``
result (216 MiB at 384^3) whatever the number of views, instead of full-size coordinate
grids (1.3 GiB of float64 coordinates at 384^3, plus temporaries, for each view).
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

_CHUNK_BYTES = 16 * 2**20
"""Working set of one chunk (bytes): ray samples of :func:`cone_mip`, (view, voxel) pairs of
:func:`cone_backproject`."""
_MIP_BYTES_PER_SAMPLE = 32  # sample points (12), offsets (4, 4), values (4) and amax, rounded up
_BP_BYTES_PER_PAIR = 64  # float64 homogeneous points (24) and grid (16), float32 grid (8), masks (3), values (4), ...


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


def _chunk_items(bytes_per_item: int, device: torch.device) -> int:
    """How many items of ``bytes_per_item`` bytes fit in one chunk's working set (at least 1).

    The working set is :data:`_CHUNK_BYTES` on the CPU (cache-sized) and 8 times that on CUDA
    (fewer, larger kernel launches), as in :mod:`angio.projection`.
    """
    return max(1, (8 if device.type == "cuda" else 1) * _CHUNK_BYTES // bytes_per_item)


def _ray_runs(origin: np.ndarray, direction: np.ndarray, radius: float, delta: float, n_samples: int,
              half: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Per ray, the first lattice sample that can be non-zero, the rays' closest points and the run length.

    The samples of a ray are ``centre + (k delta - radius) direction``, ``k = 0 .. n_samples - 1``
    (``centre``: the ray's closest point to the isocentre). Only those inside the cube of
    half-side ``half`` (mm) can read a non-zero voxel; returns ``(k_lo, centre, length)`` where
    samples ``k_lo .. k_lo + length - 1`` cover every such sample of every ray.
    """
    centre = origin - (origin * direction).sum(-1, keepdims=True) * direction
    with np.errstate(divide="ignore", invalid="ignore"):
        a, b = (-half - centre) / direction, (half - centre) / direction
    parallel_inside = np.abs(centre) < half  # a ray parallel to a face: all or nothing
    moving = direction != 0
    t_lo = np.where(moving, np.minimum(a, b), np.where(parallel_inside, -np.inf, np.inf)).max(-1)
    t_hi = np.where(moving, np.maximum(a, b), np.where(parallel_inside, np.inf, -np.inf)).min(-1)
    k_lo = np.clip(np.ceil((t_lo + radius) / delta), 0, n_samples - 1)
    k_hi = np.clip(np.floor((t_hi + radius) / delta), -1, n_samples - 1)
    length = int(max(0.0, (k_hi - k_lo + 1).max(initial=0.0)))
    return k_lo, centre, length


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
    c = (n - 1) / 2.0
    radius = math.sqrt(3.0) * c * spacing_mm  # bounding sphere of the voxel centres
    n_samples = int(math.ceil(2 * radius / (step * spacing_mm))) + 1
    delta = 2 * radius / max(n_samples - 1, 1)
    # trilinear samples with zeros padding read voxels only within one voxel of the centres' cube
    half = (c + 1.0) * spacing_mm * (1 + 1e-6)
    scale = 1.0 / (spacing_mm * max(c, 0.5))  # mm to grid_sample units (align_corners=True)
    chunk = _chunk_items(cols * n_samples * _MIP_BYTES_PER_SAMPLE, device)  # detector rows per chunk
    grid_volume = v[None, None]  # (1, 1, D=z, H=y, W=x)
    out = torch.zeros((len(geometries), rows, cols), dtype=torch.float32, device=device)
    for k, g in enumerate(geometries):
        for r0 in range(0, rows, chunk):
            origin, direction = g.rays(np.arange(r0, min(rows, r0 + chunk)))
            k_lo, centre, length = _ray_runs(origin, direction, radius, delta, n_samples, half)
            if length == 0:  # no ray of the chunk meets the volume
                continue
            # offsets along each ray, in grid units: (k_lo + s) delta - radius for s < length
            k_lo_t = torch.as_tensor(k_lo, dtype=torch.float32, device=device)
            s = torch.arange(length, dtype=torch.float32, device=device)
            t = (k_lo_t[..., None] + s).mul_(delta * scale).sub_(radius * scale)  # (R, C, S)
            centre_t = torch.as_tensor(centre * scale, dtype=torch.float32, device=device)
            direction_t = torch.as_tensor(direction, dtype=torch.float32, device=device)
            grid = torch.addcmul(centre_t[..., None, :], t[..., None], direction_t[..., None, :])  # (x, y, z)
            del t
            samples = F.grid_sample(grid_volume, grid[None], mode="bilinear", padding_mode="zeros",
                                    align_corners=True)  # (1, 1, R, C, S)
            del grid
            out[k, r0:r0 + samples.shape[2]] = samples[0, 0].amax(-1)
    return out.cpu().numpy()


def _bp_matrices(geometries: Sequence[CArmGeometry], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per view, the ``(3, 4)`` matrix taking ``(x, y, z, 1)`` mm to grid_sample ``(g_x w, g_y w, w)``.

    ``g = (g_x, g_y)`` is the projected point in :func:`torch.nn.functional.grid_sample` units
    (``align_corners=True``: ``-1`` and ``1`` are the first and last pixel centres) and
    ``w = m_0 / m(p) = 1 + (p . r) / D_so`` (1 for parallel rays). Also returns the limits
    ``(V, 2)`` of ``|g_x|``, ``|g_y|`` inside the detector, with a tolerance of
    ``1e-6`` pixels for round-off (as :meth:`CArmGeometry.project` in float64).
    """
    rows, cols = shape
    half = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    unit = np.maximum(half, 0.5)  # a one-pixel axis: any grid value reads the pixel
    mats, lims = [], []
    for g in geometries:
        r, e_u, e_v = g.frame()
        mat = np.zeros((3, 4))
        mat[0, :3] = g.magnification * e_u / (g.pixel_mm[1] * unit[0])
        mat[1, :3] = g.magnification * e_v / (g.pixel_mm[0] * unit[1])
        mat[2, :3] = 0.0 if g.is_parallel else r / g.source_isocenter_mm
        mat[2, 3] = 1.0
        mats.append(mat)
        lims.append((half + 1e-6) / unit)
    return np.stack(mats), np.stack(lims)


def cone_backproject(images, geometries: Sequence[CArmGeometry], n: int, *, spacing_mm: float,
                     mode: str = "sum", normalize: bool = True, require_all_views: bool = False,
                     device: str | torch.device | None = None) -> np.ndarray:
    """Back-project detector images into an ``N^3`` volume (sum or min over the views).

    Voxel ``(z, y, x)`` receives each image, bilinearly interpolated, at the detector
    position its centre projects to (:meth:`CArmGeometry.project`); views that do not see the
    voxel are left out (for ``"min"``, a voxel seen by no view is 0). The volume is computed
    in chunks of voxels (and, with many views, groups of views) whose working set is about
    ``_CHUNK_BYTES`` (see the module docstring), so memory beyond the result stays bounded.

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
    n_views = len(geometries)
    mats, lims = _bp_matrices(geometries, tuple(imgs.shape[1:]))
    # the projected positions are float64: whether a voxel near a detector edge counts is decided
    # to 1e-6 pixels, below float32's resolution on a large detector
    mats = torch.as_tensor(mats, dtype=torch.float64, device=device).reshape(3 * n_views, 4)
    lims = torch.as_tensor(lims, dtype=torch.float64, device=device)[:, :, None]  # (V, 2, 1)
    pairs = _chunk_items(_BP_BYTES_PER_PAIR, device)  # (view, voxel) pairs per chunk
    group = min(n_views, pairs)  # views per grid_sample call
    size = min(n**3, max(1, pairs // group))  # voxels per chunk
    axis = (torch.arange(n, dtype=torch.float64, device=device) - (n - 1) / 2.0) * spacing_mm
    acc = torch.empty(n**3, dtype=torch.float32, device=device)
    keep_seen = mode == "min" and not require_all_views
    fill = 0.0 if mode == "sum" else math.inf
    for i0 in range(0, n**3, size):
        flat = torch.arange(i0, min(n**3, i0 + size), device=device)
        pts = torch.stack([axis[flat % n], axis[flat // n % n], axis[flat // (n * n)],
                           torch.ones(len(flat), dtype=torch.float64, device=device)])  # (4, M): x, y, z, 1
        part = torch.full((len(flat),), fill, dtype=torch.float32, device=device)
        mask = torch.full((len(flat),), not keep_seen, dtype=torch.bool, device=device)
        for v0 in range(0, n_views, group):
            v1 = min(n_views, v0 + group)
            hom = (mats[3 * v0:3 * v1] @ pts).reshape(v1 - v0, 3, -1)  # (G, 3, M)
            grid = hom[:, :2] / hom[:, 2:]  # (G, 2, M): g_x, g_y
            del hom
            grid32 = grid.transpose(1, 2).to(torch.float32, memory_format=torch.contiguous_format)  # (G, M, 2)
            inside = grid.abs_() <= lims[v0:v1]
            inside = inside[:, 0] & inside[:, 1]  # (G, M)
            del grid
            value = F.grid_sample(imgs[v0:v1, None], grid32[:, None], mode="bilinear", padding_mode="border",
                                  align_corners=True)[:, 0, 0]  # (G, M)
            del grid32
            value.masked_fill_(~inside, fill)
            if mode == "sum":
                part += value.sum(0)
            else:
                torch.minimum(part, value.amin(0), out=part)
            if require_all_views:
                mask &= inside.all(0)
            elif keep_seen:
                mask |= inside.any(0)
        if mode == "min" or require_all_views:
            part.masked_fill_(~mask, 0.0)
        acc[i0:i0 + len(flat)] = part
    acc = acc.reshape(n, n, n)
    if normalize:
        lo, hi = acc.min(), acc.max()
        if hi > lo:
            acc.sub_(lo).div_(hi - lo)
        else:
            acc.zero_()
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
