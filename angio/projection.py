"""Maximum-intensity projection and back-projection about the z axis (parallel beam).

The contract
------------
Volumes are ``V[z, y, x]`` of shape ``(N, N, N)``; views rotate about the ``z`` axis (the
patient's long axis, as a C-arm rotates) through the centre ``c = (N - 1) / 2``; angles are in
degrees.

* :func:`mip`: image ``P_t[z, j]`` is the maximum along the ray through the points::

      x = c + (j - c) cos t - (i - c) sin t
      y = c + (j - c) sin t + (i - c) cos t        for i = 0, 1, ..., N - 1

  sampled with bilinear interpolation in ``(y, x)``. The samples cover the whole ray inside
  the inscribed cylinder of radius ``c`` about the z axis (the field of view the contract is
  about); samples outside ``[0, N-1]^2`` do not count. Hence ``t = 0`` gives exactly
  ``V.max(axis=1)`` and ``t = 90`` exactly ``V.max(axis=2)``.
* :func:`backproject`: voxel ``(z, y, x)`` receives ``P_t[z, u]`` at
  ``u = (x - c) cos t + (y - c) sin t + c`` (linear interpolation in ``u``; views whose ``u`` is
  outside ``[0, N-1]`` do not contribute). ``mode="sum"`` adds the views (the paper's input),
  ``mode="min"`` takes their minimum: the tightest volume consistent with all the MIPs. Every
  voxel of the original is below it (exactly at 0 and 90 degrees, up to interpolation error at
  other angles). ``normalize=True`` rescales the result linearly to ``[0, 1]``.

Both are the same ray geometry: the sample ``(i, j)`` of view ``t`` lies at ``u = j``.
This is the parallel-beam geometry of the paper; a cone-beam C-arm only changes how
:func:`_mip_plan` and :func:`_bp_plan` map rays and voxels to detector positions.

Implementation
--------------
The fast path gathers in torch with ``z`` as the contiguous axis (each ``(y, x)`` sample
reads a run of ``z`` values), processes ``z`` in chunks so memory stays bounded, and is fused
into one loop per chunk by ``torch.compile`` when a C++ compiler is available (CPU) or Triton
(CUDA); otherwise the same code runs eagerly. ``ANGIO_COMPILE=0`` forces the eager path.
Samples that do not count are routed to a sentinel row (``-_BIG`` for the maximum, ``+_BIG``
for the minimum, ``0`` for the sum), so the kernels need no masks.
:func:`mip_reference` and :func:`backproject_reference` do the same the paper's way, by
rotating volumes with :func:`scipy.ndimage.rotate`; they are kept for tests and benchmarks.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage

__all__ = ["view_angles", "mirror_symmetric", "mip", "backproject", "mip_reference", "backproject_reference",
           "PAPER_VIEW_COUNTS", "set_backend"]

PAPER_VIEW_COUNTS: tuple[int, ...] = (90, 46, 24, 10, 5, 3, 2)
"""The numbers of views studied in the paper (Table 1)."""

_BIG = 1.0e30
_CHUNK_BYTES = 64 * 2**20  # working set of one z-chunk
_backend = os.environ.get("ANGIO_COMPILE", "auto")
_compiled: dict[str, Callable] = {}


def set_backend(backend: str) -> None:
    """Choose the kernel backend: ``"auto"`` (compile, fall back to eager), ``"compile"`` or ``"eager"``."""
    global _backend
    if backend not in ("auto", "compile", "eager", "1", "0"):
        raise ValueError(f"backend must be 'auto', 'compile' or 'eager', got {backend!r}")
    _backend = backend


def view_angles(n: int, *, span_deg: float = 90.0) -> np.ndarray:
    """The study's view schedule: ``n`` angles evenly spaced over ``[0, span]`` degrees.

    ``view_angles(2)`` is the orthogonal biplane ``[0, 90]``, ``view_angles(3)`` is
    ``[0, 45, 90]``, ``view_angles(46)`` every 2 degrees. ``view_angles(1)`` is ``[0]``.
    The paper's own subsets of its projections at 0 to 89 degrees end 1 degree short
    (:func:`angio.paper.view_schedule`: its biplane pair is 0/89); every model here was
    trained with this schedule.

    Returns
    -------
    ndarray, shape (n,), float64
        Angles in degrees.
    """
    if n < 1:
        raise ValueError(f"number of views must be >= 1, got {n}")
    return np.linspace(0.0, span_deg, n) if n > 1 else np.zeros(1)


def mirror_symmetric(angles_deg: Sequence[float], *, tol_deg: float = 1e-6) -> bool:
    """Whether a set of views is its own image under the left-right (``x``) mirror.

    Mirroring a volume along ``x`` (``x -> 2c - x``) turns its view at angle ``t`` into the
    view at ``180 - t`` of the mirrored volume (the detector coordinate ``u`` of the contract
    is unchanged), and a parallel or C-arm view at ``t + 180`` back-projects as the one at
    ``t``. So when the angles, taken modulo 180 degrees, are closed under ``t -> -t``, the
    mirrored back-projection is exactly the back-projection of the mirrored anatomy from the
    same views, an input a model trained with left-right mirroring has seen; this is what
    makes mirror test-time augmentation (:func:`angio.inference.predict_volume` with
    ``mirror=True``) valid. The biplane ``[0, 90]`` is symmetric; ``[0, 45, 90]`` is not
    (45 would have to pair with 135).

    Parameters
    ----------
    angles_deg : sequence of float
        View angles in degrees.
    tol_deg : float
        Angles closer than this (modulo 180) count as equal.

    Returns
    -------
    bool
    """
    a = np.mod(np.asarray(angles_deg, dtype=np.float64), 180.0)
    if a.size == 0 or not np.all(np.isfinite(a)):
        return False
    d = np.abs(np.mod(-a, 180.0)[:, None] - a[None, :])
    d = np.minimum(d, 180.0 - d)  # distance on the circle of 180 degrees
    return bool(np.all(d.min(axis=1) <= tol_deg))


# --------------------------------------------------------------------------- geometry
def _cos_sin(angle_deg: float) -> tuple[float, float]:
    """``cos`` and ``sin`` of an angle in degrees, exact at multiples of 90 degrees."""
    r = np.deg2rad(angle_deg)
    c, s = float(np.cos(r)), float(np.sin(r))
    snap = lambda v: float(round(v)) if abs(v - round(v)) < 1e-12 else v  # noqa: E731
    return snap(c), snap(s)


def _floor_weight(p: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower neighbour (in ``[0, n-2]``), its interpolation weight, and validity of positions."""
    tol = 1e-9
    valid = (p >= -tol) & (p <= n - 1 + tol)
    p0 = torch.floor(p).clamp_(0, n - 2)
    w = (p - p0).clamp_(0.0, 1.0)
    return p0.to(torch.int64), w.to(torch.float32), valid


def _trig(angles: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of all angles (float64), exact at multiples of 90 degrees, shape (T, 1, 1)."""
    cs = np.array([_cos_sin(float(t)) for t in angles], dtype=np.float64).reshape(-1, 2, 1, 1)
    return torch.from_numpy(cs[:, 0]), torch.from_numpy(cs[:, 1])


def _cached(fn: Callable) -> Callable:
    """Keep the last two plans of ``fn`` per (N, angles, device).

    Training and benchmarks project thousands of volumes with the same geometry, and a 384^3
    plan of 90 views takes about half a second to build (and about 200 MB to hold).
    """
    cache = functools.lru_cache(maxsize=2)(lambda n, angles, device: fn(n, np.asarray(angles), torch.device(device)))
    return lambda n, angles, device: cache(int(n), tuple(float(a) for a in angles), str(device))


@_cached
def _mip_plan(n: int, angles: np.ndarray, device: torch.device):
    """Gather indices into the ``(N*N + 1, Z)`` table and weights, for all views, ``(T, I, J)``.

    Sample ``(i, j)`` of view ``t`` sits at ``x = c + (j-c) cos t - (i-c) sin t``,
    ``y = c + (j-c) sin t + (i-c) cos t`` (float64, all views at once); samples outside the
    volume get index ``-1``, which the kernel routes to the sentinel row ``N*N``.
    """
    c = (n - 1) / 2
    ct, st = _trig(angles)
    i = torch.arange(n, dtype=torch.float64).view(1, n, 1) - c
    j = torch.arange(n, dtype=torch.float64).view(1, 1, n) - c
    x0, wx, vx = _floor_weight(c + j * ct - i * st, n)
    y0, wy, vy = _floor_weight(c + j * st + i * ct, n)
    base = torch.where(vx & vy, y0 * n + x0, -1)
    return base.to(device), wx.to(device), wy.to(device)


@_cached
def _bp_plan(n: int, angles: np.ndarray, device: torch.device):
    """Gather indices into the ``(T*N + 1, Z)`` detector table and weights, ``(T, N*N)``.

    Voxel column ``(y, x)`` sits at ``u = (x-c) cos t + (y-c) sin t + c`` on view ``t``'s
    detector (float64, all views at once); voxels a view does not reach get index ``-1``,
    routed to the sentinel row ``T*N``.
    """
    c = (n - 1) / 2
    ct, st = _trig(angles)
    y = torch.arange(n, dtype=torch.float64).view(1, n, 1) - c
    x = torch.arange(n, dtype=torch.float64).view(1, 1, n) - c
    u0, w, valid = _floor_weight(x * ct + y * st + c, n)
    idx = torch.where(valid, u0 + torch.arange(len(angles)).view(-1, 1, 1) * n, -1)
    return idx.reshape(len(angles), -1).to(device), w.reshape(len(angles), -1).to(device)


# --------------------------------------------------------------------------- kernels
def _mip_kernel(table: torch.Tensor, base: torch.Tensor, wx: torch.Tensor, wy: torch.Tensor,
                n: int) -> torch.Tensor:
    """``table`` (N*N+1, Zc) with sentinel last; base/wx/wy (T, I, J) -> (T, J, Zc)."""
    sentinel = table.shape[0] - 1
    b00 = torch.where(base < 0, sentinel, base)
    b01 = torch.where(base < 0, sentinel, base + 1)
    b10 = torch.where(base < 0, sentinel, base + n)
    b11 = torch.where(base < 0, sentinel, base + n + 1)
    wx = wx[..., None]
    wy = wy[..., None]
    top = torch.lerp(table[b00], table[b01], wx)
    bottom = torch.lerp(table[b10], table[b11], wx)
    return torch.lerp(top, bottom, wy).amax(dim=1)


def _bp_sum_kernel(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``table`` (T*N+1, Zc) with a zero row last; idx/w (T, M) -> (M, Zc)."""
    sentinel = table.shape[0] - 1
    i0 = torch.where(idx < 0, sentinel, idx)
    i1 = torch.where(idx < 0, sentinel, idx + 1)
    return torch.lerp(table[i0], table[i1], w[..., None]).sum(dim=0)


def _bp_min_kernel(table: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``table`` (T*N+1, Zc) with a +_BIG row last; idx/w (T, M) -> (M, Zc)."""
    sentinel = table.shape[0] - 1
    i0 = torch.where(idx < 0, sentinel, idx)
    i1 = torch.where(idx < 0, sentinel, idx + 1)
    return torch.lerp(table[i0], table[i1], w[..., None]).amin(dim=0)


_KERNELS = {"mip": _mip_kernel, "bp_sum": _bp_sum_kernel, "bp_min": _bp_min_kernel}


def _kernel(name: str) -> Callable:
    """The compiled kernel when allowed and working, else the eager one."""
    if _backend in ("eager", "0"):
        return _KERNELS[name]
    if name not in _compiled:
        _compiled[name] = torch.compile(_KERNELS[name], dynamic=True)
    return _compiled[name]


def _run(name: str, *args) -> torch.Tensor:
    global _backend
    fn = _kernel(name)
    if fn is _KERNELS[name]:
        return fn(*args)
    try:
        return fn(*args)
    except Exception as exc:  # compiler missing or broken: the eager kernel is equivalent
        if _backend == "compile":
            raise
        warnings.warn(f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                      "using the eager projection kernels (slower)", RuntimeWarning, stacklevel=3)
        _backend = "eager"
        return _KERNELS[name](*args)


def _round_down(value: int, step: int) -> int:
    """``value`` rounded down to a multiple of ``step`` (at least ``min(value, step)``, >= 1)."""
    return max(1, value if value < step else value - value % step)


def _chunks(kind: str, n_views: int, plane: int, n_z: int, device: torch.device) -> tuple[int, int]:
    """Views and z-slices per kernel call, so each call's working set stays cache-sized.

    ``plane`` is the number of gathered rows per view (``N*N``). Fused (compiled) kernels hold
    only their input table and output: the MIP runs best with a z-chunk table of about 28 MB
    and about 42M samples per call (6 views at 384^3; every call has a fixed cost of some
    milliseconds), the back-projection with an output chunk of about 80 MB and all
    views (measured on a 2-core Xeon at 384^3). Eager kernels materialize about 8
    temporaries of ``views x plane x z`` floats, so they get smaller chunks. z-chunks are
    multiples of 16 floats (one AVX-512 vector: a ragged tail costs nearly a full vector).
    """
    scale = 8 if device.type == "cuda" else 1
    if _backend not in ("eager", "0"):
        if kind == "mip":
            zc = _round_down(min(n_z, scale * 28 * 2**20 // (4 * plane)), 16)
            # about 42M samples per call (6 views at 384^3) amortize the call overhead; an even
            # number of views keeps both threads of the outer parallel loop busy
            return _round_down(min(n_views, scale * 42_500_000 // (plane * zc)), 2), zc
        return n_views, _round_down(min(n_z, scale * 80 * 2**20 // (4 * plane)), 16)
    budget = scale * _CHUNK_BYTES
    zc = max(1, min(n_z, budget // (4 * 8 * plane)))
    return max(1, min(n_views, budget // (4 * 8 * plane * zc))), zc


# --------------------------------------------------------------------------- public API
def _as_tensor(a, device: str | torch.device | None, name: str) -> tuple[torch.Tensor, bool]:
    is_numpy = not isinstance(a, torch.Tensor)
    t = torch.as_tensor(np.asarray(a) if is_numpy else a)
    if device is not None:
        t = t.to(device)
    if not torch.is_floating_point(t):
        t = t.float()
    t = t.to(torch.float32)
    if t.numel() and not bool(torch.isfinite(torch.stack(torch.aminmax(t))).all()):
        raise ValueError(f"{name} contains NaN or infinite values")  # NaN and inf reach min or max
    return t, is_numpy


def _check_angles(angles: Sequence[float] | np.ndarray | float) -> np.ndarray:
    a = np.atleast_1d(np.asarray(angles, dtype=np.float64))
    if a.ndim != 1 or a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"angles must be a non-empty 1D sequence of finite degrees, got {angles!r}")
    return a


def mip(volume, angles, *, device: str | torch.device | None = None):
    """Maximum-intensity projections of a cubic volume about its z axis.

    Parameters
    ----------
    volume : ndarray or Tensor, shape (N, N, N)
        ``V[z, y, x]``, any real dtype (computed in float32).
    angles : sequence of float, shape (n_views,)
        View angles in degrees (see :func:`view_angles`).
    device : str or torch.device, optional
        Where to compute (default: the tensor's device, CPU for numpy input).

    Returns
    -------
    ndarray or Tensor, shape (n_views, N, N), float32
        ``P[t, z, j]``; numpy in -> numpy out, tensor in -> tensor on the compute device.
    """
    v, is_numpy = _as_tensor(volume, device, "volume")
    if v.ndim != 3 or len(set(v.shape)) != 1 or v.shape[0] < 2:
        raise ValueError(f"volume must be a cube (N, N, N) with N >= 2, got shape {tuple(v.shape)}")
    n = v.shape[0]
    a = _check_angles(angles)
    base, wx, wy = _mip_plan(n, a, v.device)
    out = torch.empty((len(a), n, n), dtype=torch.float32, device=v.device)
    tc, zc = _chunks("mip", len(a), n * n, n, v.device)
    sentinel = torch.full((1, 1), -_BIG, dtype=torch.float32, device=v.device)
    for z0 in range(0, n, zc):
        z1 = min(n, z0 + zc)
        table = torch.cat([v[z0:z1].permute(1, 2, 0).reshape(n * n, z1 - z0),
                           sentinel.expand(1, z1 - z0)])
        for t0 in range(0, len(a), tc):
            t1 = min(len(a), t0 + tc)
            res = _run("mip", table, base[t0:t1], wx[t0:t1], wy[t0:t1], n)  # (T, J, Zc)
            out[t0:t1, z0:z1, :] = res.transpose(1, 2)
    return out.cpu().numpy() if is_numpy else out


def backproject(projections, angles, *, mode: str = "sum", normalize: bool = True,
                device: str | torch.device | None = None):
    """Smear projections back along their rays and combine the views.

    Parameters
    ----------
    projections : ndarray or Tensor, shape (n_views, N, N)
        ``P[t, z, j]`` as returned by :func:`mip` (or real angiograms resampled to it).
    angles : sequence of float, shape (n_views,)
        Their angles in degrees.
    mode : {"sum", "min"}
        ``"sum"``: add the views (the paper); ``"min"``: their minimum, the tightest volume
        consistent with all the MIPs. Voxels seen by no view are 0.
    normalize : bool
        Rescale linearly so the result spans ``[0, 1]`` (a constant result becomes 0).
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    ndarray or Tensor, shape (N, N, N), float32
        ``B[z, y, x]``; numpy in -> numpy out, tensor in -> tensor.
    """
    if mode not in ("sum", "min"):
        raise ValueError(f"mode must be 'sum' or 'min', got {mode!r}")
    p, is_numpy = _as_tensor(projections, device, "projections")
    a = _check_angles(angles)
    if p.ndim != 3 or p.shape[1] != p.shape[2] or p.shape[1] < 2:
        raise ValueError(f"projections must have shape (n_views, N, N), got {tuple(p.shape)}")
    if p.shape[0] != len(a):
        raise ValueError(f"{p.shape[0]} projections but {len(a)} angles")
    t, n = p.shape[0], p.shape[1]
    idx, w = _bp_plan(n, a, p.device)
    out = torch.empty((n, n, n), dtype=torch.float32, device=p.device)
    fill = 0.0 if mode == "sum" else _BIG
    sentinel = torch.full((1, 1), fill, dtype=torch.float32, device=p.device)
    tc, zc = _chunks("bp", t, n * n, n, p.device)
    name = "bp_sum" if mode == "sum" else "bp_min"
    for z0 in range(0, n, zc):
        z1 = min(n, z0 + zc)
        table = torch.cat([p[:, z0:z1, :].permute(0, 2, 1).reshape(t * n, z1 - z0),
                           sentinel.expand(1, z1 - z0)])
        res = None
        for t0 in range(0, t, tc):
            part = _run(name, table, idx[t0:t0 + tc], w[t0:t0 + tc])  # (N*N, Zc)
            res = part if res is None else (res + part if mode == "sum" else torch.minimum(res, part))
        out[z0:z1] = res.T.reshape(z1 - z0, n, n)
    if mode == "min":
        out = torch.where(out >= _BIG / 2, torch.zeros((), device=out.device), out)
    if normalize:
        out = _rescale(out)
    return out.cpu().numpy() if is_numpy else out


def _rescale(b: torch.Tensor) -> torch.Tensor:
    """Linear map of ``b`` onto ``[0, 1]``, in place (a constant ``b`` becomes 0)."""
    lo, hi = (float(v) for v in torch.aminmax(b))
    if hi <= lo:
        return b.zero_()
    return b.sub_(lo).mul_(1.0 / (hi - lo))


# --------------------------------------------------------------------------- references
def _rotate(volume: np.ndarray, angle_deg: float, cval: float) -> np.ndarray:
    """``R[z, i, j] = V[z, y(i, j), x(i, j)]`` with the contract's geometry, by scipy.ndimage."""
    return ndimage.rotate(volume, angle_deg, axes=(1, 2), reshape=False, order=1,
                          mode="constant", cval=cval, prefilter=False)


def mip_reference(volume: np.ndarray, angles) -> np.ndarray:
    """MIPs the paper's way: rotate the whole volume, then take the maximum along ``i``.

    Same contract as :func:`mip` (float64 internally); slow: one full 3D rotation per view.
    Samples that fall outside the volume take the volume's minimum.
    """
    v = np.asarray(volume, dtype=np.float64)
    cval = float(v.min())
    return np.stack([_rotate(v, t, cval).max(axis=1) for t in _check_angles(angles)]).astype(np.float32)


def backproject_reference(projections: np.ndarray, angles, *, mode: str = "sum",
                          normalize: bool = True) -> np.ndarray:
    """Back-projection the paper's way: smear each image along ``i``, rotate back, combine.

    Same contract as :func:`backproject`, except that voxels a view does not reach take 0
    (``sum``) or the projections' maximum (``min``) from that view.
    """
    p = np.asarray(projections, dtype=np.float64)
    a = _check_angles(angles)
    n = p.shape[1]
    cval = 0.0 if mode == "sum" else float(p.max())
    acc = None
    for k, t in enumerate(a):
        smear = np.broadcast_to(p[k][:, None, :], (n, n, n))
        back = ndimage.rotate(smear, -t, axes=(1, 2), reshape=False, order=1, mode="constant",
                              cval=cval, prefilter=False)
        if acc is None:
            acc = back
        elif mode == "sum":
            acc = acc + back
        else:
            acc = np.minimum(acc, back)
    out = torch.from_numpy(acc.astype(np.float32))
    return (_rescale(out) if normalize else out).numpy()
