"""From a bundled case to network inputs and targets: volumes, projections, back-projections.

One case becomes, for a :class:`VolumeSpec` (grid size, field of view, modality):

1. its tree, optionally augmented (:mod:`angio.augment`), voxelized (:mod:`angio.voxelize`):
   vessel fraction and the **exact** mask;
2. an angiography-like intensity volume (:mod:`angio.phantom`) and its **Otsu** mask (the
   paper's ground truth, :func:`angio.segment.otsu_mask`);
3. for ``n`` views, MIPs of the intensity mapped to ``[0, 1]`` (:func:`angio.projection.mip`)
   and their back-projections, stacked as input channels (``"sum"``: the paper's; ``"min"``:
   the MIP-consistent hull).

Step 1-2 results are cached on disk (:class:`VolumeCache`, compressed ``.npz`` written
atomically) because they cost about half a second per volume; step 3 is recomputed on the
fly, since the fused projector makes it cheaper than reading it back at training sizes.
Every random draw (augmentation, noise) is a pure function of ``(seed, case, variant)``,
so a volume is the same whether it came from the cache or was rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from angio.atomic import atomic_write
from angio.augment import RandomTreeTransform, TreeTransform
from angio.conebeam import cone_backproject
from angio.data import list_cases, load_tree
from angio.errors import InputError
from angio.phantom import PRESETS, angiography_volume, to_unit_range
from angio.projection import backproject, mip, view_angles
from angio.segment import otsu_mask
from angio.voxelize import DEFAULT_FOV_MM, Grid, voxelize_tree

__all__ = ["VolumeSpec", "CaseVolumes", "build_case", "network_input", "inputs_from_projections",
           "inputs_from_cone_views", "VolumeCache", "GEOMETRY_NAMES", "INPUT_MODES", "MASK_KINDS",
           "TRAINING_TARGETS", "case_seed"]

INPUT_MODES = ("sum", "min")
#: Ground truths every model is scored against by default.
MASK_KINDS = ("otsu", "exact")
#: Ground truths a model can be trained for: :data:`MASK_KINDS` and ``"otsu_window"``, Otsu's
#: threshold of the volume clipped to the modality's vessel window (:class:`angio.phantom.Modality`;
#: for CT angiography 100..600 HU, so that air, head and bone do not decide the threshold).
TRAINING_TARGETS = (*MASK_KINDS, "otsu_window")
_CACHE_VERSION = 1


@dataclass(frozen=True)
class VolumeSpec:
    """How a case becomes a volume.

    Parameters
    ----------
    size : int
        Voxels per side ``N`` (multiple of 8 for the paper's autoencoder).
    fov_mm : float
        Side of the cubic field of view in mm.
    center : {"bbox", "major"}
        Grid centring, see :meth:`angio.voxelize.Grid.around`.
    modality : str
        Intensity preset, a key of :data:`angio.phantom.PRESETS`.
    """

    size: int = 64
    fov_mm: float = DEFAULT_FOV_MM
    center: str = "bbox"
    modality: str = "rotational"

    def __post_init__(self) -> None:
        if self.modality not in PRESETS:
            raise ValueError(f"unknown modality {self.modality!r}; choose from {sorted(PRESETS)}")
        if self.center not in ("bbox", "major"):
            raise ValueError(f"center must be 'bbox' or 'major', got {self.center!r}")

    @property
    def voxel_mm(self) -> float:
        """Voxel side in mm."""
        return self.fov_mm / self.size

    def key(self) -> str:
        """A short, filesystem-safe identifier, e.g. ``n64-fov96-major-rotational``."""
        return f"n{self.size}-fov{self.fov_mm:g}-{self.center}-{self.modality}"


@dataclass
class CaseVolumes:
    """The volumes of one case (all ``(N, N, N)`` indexed ``[z, y, x]``).

    Attributes
    ----------
    case : str
    variant : int
        0 is the case as scanned; ``k > 0`` is the ``k``-th augmented draw.
    intensity : ndarray, float32
        Angiography-like volume in the modality's unit.
    fraction : ndarray, float32
        Vessel fraction per voxel in ``[0, 1]``.
    exact : ndarray, bool
        Exact vessel mask (``fraction >= 0.5``).
    otsu : ndarray, bool
        Otsu threshold of ``intensity`` (the paper's ground truth).
    spec : VolumeSpec
    grid : Grid
    transform : TreeTransform
        The augmentation applied to the tree (identity for variant 0).
    """

    case: str
    variant: int
    intensity: np.ndarray
    fraction: np.ndarray
    exact: np.ndarray
    otsu: np.ndarray
    spec: VolumeSpec
    grid: Grid
    transform: TreeTransform = field(default_factory=TreeTransform)
    _windowed: np.ndarray | None = field(default=None, repr=False, compare=False)

    def unit_intensity(self) -> np.ndarray:
        """Intensity mapped to ``[0, 1]`` with the modality's display window, float32."""
        low, high = PRESETS[self.spec.modality].window
        return to_unit_range(self.intensity, low=low, high=high)

    def target(self, kind: str = "otsu") -> np.ndarray:
        """The ground-truth mask: ``"otsu"`` (paper), ``"exact"`` or ``"otsu_window"``.

        ``"otsu_window"`` is Otsu's threshold of the intensity clipped to the modality's
        ``vessel_window`` (:data:`angio.phantom.PRESETS`), computed on first use and kept;
        where the modality has no such window it is the ``"otsu"`` mask.
        """
        if kind not in TRAINING_TARGETS:
            raise ValueError(f"target must be one of {TRAINING_TARGETS}, got {kind!r}")
        if kind == "otsu_window":
            if self._windowed is None:
                window = PRESETS[self.spec.modality].vessel_window
                self._windowed = (self.otsu if window is None
                                  else otsu_mask(np.clip(self.intensity, *window)))
            return self._windowed
        return self.otsu if kind == "otsu" else self.exact


def case_seed(seed: int, case: str, variant: int) -> np.random.SeedSequence:
    """The seed sequence of all random draws of ``(seed, case, variant)``."""
    return np.random.SeedSequence([seed, zlib.crc32(case.encode()), variant])


def build_case(case: str, spec: VolumeSpec, *, variant: int = 0,
               augment: RandomTreeTransform | None = None, seed: int = 0) -> CaseVolumes:
    """Build the volumes of one case (no cache).

    Parameters
    ----------
    case : str
        A bundled case id (:func:`angio.data.list_cases`).
    spec : VolumeSpec
        Grid and modality.
    variant : int
        0 for the case itself; ``k > 0`` for an augmented copy drawn from ``augment``.
    augment : RandomTreeTransform, optional
        Augmentation sampler (default :class:`RandomTreeTransform()` when ``variant > 0``).
    seed : int
        Base seed; augmentation and noise depend only on ``(seed, case, variant)``.

    Returns
    -------
    CaseVolumes
    """
    aug_rng, noise_rng = (np.random.default_rng(s) for s in case_seed(seed, case, variant).spawn(2))
    tree = load_tree(case)
    transform = TreeTransform()
    if variant > 0:
        transform = (augment or RandomTreeTransform()).sample(aug_rng)
        tree = transform(tree)
    grid = Grid.around(tree, spec.size, spec.fov_mm, center=spec.center)
    vox = voxelize_tree(tree, grid)
    intensity = angiography_volume(vox.fraction, grid, modality=spec.modality,
                                   tree_bounds=tree.bounds(), rng=noise_rng)
    return CaseVolumes(case=case, variant=variant, intensity=intensity, fraction=vox.fraction,
                       exact=vox.mask, otsu=otsu_mask(intensity), spec=spec, grid=grid,
                       transform=transform)


def check_modes(modes: tuple[str, ...]) -> None:
    """Refuse input channels other than a non-empty subset of :data:`INPUT_MODES`."""
    if not modes or any(m not in INPUT_MODES for m in modes):
        raise ValueError(f"modes must be a non-empty subset of {INPUT_MODES}, got {modes!r}")


def network_input(unit_volume: np.ndarray | torch.Tensor, n_views: int | None = None, *,
                  angles: np.ndarray | None = None, modes: tuple[str, ...] = ("sum",),
                  device: str | torch.device | None = None,
                  return_projections: bool = False):
    """Project a ``[0, 1]`` volume at the paper's angles and back-project it.

    Parameters
    ----------
    unit_volume : ndarray or Tensor, shape (N, N, N)
        Volume in ``[0, 1]`` (:meth:`CaseVolumes.unit_intensity`).
    n_views : int, optional
        Number of views over ``[0, 90]`` degrees (:func:`angio.projection.view_angles`).
    angles : ndarray, optional
        Explicit angles in degrees instead of ``n_views``.
    modes : tuple of {"sum", "min"}
        Back-projections to stack as channels, in this order.
    device : str or torch.device, optional
        Where to compute.
    return_projections : bool
        Also return the MIPs.

    Returns
    -------
    inputs : ndarray, shape (len(modes), N, N, N), float32
        Each channel normalized to ``[0, 1]``.
    projections : ndarray, shape (n_views, N, N), float32
        Only with ``return_projections=True``.
    """
    if (n_views is None) == (angles is None):
        raise ValueError("give exactly one of n_views and angles")
    check_modes(modes)
    angles = view_angles(n_views) if angles is None else np.asarray(angles, dtype=float)
    proj = mip(unit_volume, angles, device=device)
    channels = inputs_from_projections(proj, angles, modes=modes, device=device)
    if return_projections:
        return channels, np.asarray(proj)
    return channels


def inputs_from_projections(projections: np.ndarray | torch.Tensor, angles, *,
                            modes: tuple[str, ...] = ("sum",),
                            device: str | torch.device | None = None) -> np.ndarray:
    """Network inputs from views: the one path shared by training, evaluation and ``reconstruct``.

    Parameters
    ----------
    projections : ndarray or Tensor, shape (n_views, N, N)
        Views ``P[t, z, j]`` in ``[0, 1]`` (MIPs of a unit volume, or a user's images
        prepared by :func:`angio.reconstruct.prepare_projections`).
    angles : array-like, shape (n_views,)
        View angles in degrees.
    modes : tuple of {"sum", "min"}
        Back-projections to stack as channels, in this order.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    ndarray, shape (len(modes), N, N, N), float32
        Each channel normalized to ``[0, 1]`` (:func:`angio.projection.backproject`).
    """
    check_modes(modes)
    angles = np.asarray(angles, dtype=float)
    return np.stack([np.asarray(backproject(projections, angles, mode=m, device=device)) for m in modes])


def inputs_from_cone_views(images: np.ndarray, geometries, n: int, *, spacing_mm: float,
                           modes: tuple[str, ...] = ("sum",),
                           device: str | torch.device | None = None) -> np.ndarray:
    """Network inputs from cone-beam views, back-projected along their own diverging rays.

    The cone-beam counterpart of :func:`inputs_from_projections`: each detector image is
    smeared back along the rays from the source through its pixels
    (:func:`angio.conebeam.cone_backproject`), so every vessel lies inside the back-projected
    hull at its true depth, instead of being demagnified to the isocentre plane and smeared
    along parallel rays. Only the voxels every view sees keep a value (``require_all_views``).

    Parameters
    ----------
    images : ndarray, shape (n_views, rows, cols)
        Detector images in ``[0, 1]``, row 0 at the bottom (:func:`angio.conebeam.cone_mip`).
    geometries : sequence of angio.conebeam.CArmGeometry
        One per image.
    n : int
        Volume size ``N``.
    spacing_mm : float
        Voxel size in mm.
    modes : tuple of {"sum", "min"}
        Back-projections to stack as channels, in this order.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    ndarray, shape (len(modes), N, N, N), float32
        Each channel normalized to ``[0, 1]``.
    """
    check_modes(modes)
    return np.stack([cone_backproject(images, geometries, n, spacing_mm=spacing_mm, mode=m,
                                      require_all_views=True, device=device) for m in modes])


class VolumeCache:
    """Compressed on-disk cache of :class:`CaseVolumes`, keyed by spec, case, variant, seed.

    Files live in ``root/<spec.key()>/<case>_v<variant>_s<seed>.npz`` and are written to a
    temporary file first and renamed, so an interrupted run never leaves a truncated entry.
    A corrupt entry is rebuilt (and rewritten) rather than trusted.

    Parameters
    ----------
    root : path-like or None
        Cache folder; ``None`` disables caching (everything is rebuilt in memory).
    augment : RandomTreeTransform, optional
        Sampler for variants ``> 0``; part of the file name through its parameters' hash.
    """

    def __init__(self, root: str | os.PathLike | None, *,
                 augment: RandomTreeTransform | None = None) -> None:
        self.root = None if root is None else Path(root)
        self.augment = augment or RandomTreeTransform()

    def _augment_tag(self) -> str:
        text = json.dumps(asdict(self.augment), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def path(self, case: str, spec: VolumeSpec, variant: int, seed: int) -> Path | None:
        """The cache file of ``(case, spec, variant, seed)`` (``None`` without a cache folder)."""
        if self.root is None:
            return None
        tag = "" if variant == 0 else f"_a{self._augment_tag()}"
        return self.root / spec.key() / f"{case}_v{variant}_s{seed}{tag}.npz"

    def get(self, case: str, spec: VolumeSpec, *, variant: int = 0, seed: int = 0) -> CaseVolumes:
        """Load a case's volumes from the cache, building and storing them when missing."""
        path = self.path(case, spec, variant, seed)
        if path is not None and path.exists():
            try:
                return _load_volumes(path, spec)
            except (OSError, ValueError, KeyError, zlib.error, EOFError):
                path.unlink(missing_ok=True)  # corrupt: rebuild below
        vols = build_case(case, spec, variant=variant, augment=self.augment, seed=seed)
        if path is not None:
            _save_volumes(path, vols)
        return vols


def _save_volumes(path: Path, v: CaseVolumes) -> None:
    meta = {"version": _CACHE_VERSION, "case": v.case, "variant": v.variant,
            "spec": asdict(v.spec), "grid": {"n": v.grid.n, "fov_mm": v.grid.fov_mm,
                                             "center_mm": list(v.grid.center_mm)},
            "transform": asdict(v.transform)}
    atomic_write(path, lambda fh: np.savez_compressed(
        fh, intensity=v.intensity, fraction=v.fraction.astype(np.float16), exact=v.exact, otsu=v.otsu,
        meta=np.array(json.dumps(meta))))


def _load_volumes(path: Path, spec: VolumeSpec) -> CaseVolumes:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        if meta.get("version") != _CACHE_VERSION or VolumeSpec(**meta["spec"]) != spec:
            raise ValueError(f"{path}: stale cache entry")
        g = meta["grid"]
        t = meta["transform"]
        return CaseVolumes(case=meta["case"], variant=meta["variant"],
                           intensity=z["intensity"], fraction=z["fraction"].astype(np.float32),
                           exact=z["exact"], otsu=z["otsu"], spec=spec,
                           grid=Grid(g["n"], g["fov_mm"], tuple(g["center_mm"])),
                           transform=TreeTransform(tuple(t["rotation_deg"]), t["flip"], t["scale"]))


#: Names of the acquisition geometries (:data:`angio.acquisition.GEOMETRIES`).
GEOMETRY_NAMES = ("parallel", "cone", "cone-rays")


def check_cases(cases) -> list[str]:
    """Validate case ids against the bundled data (clear error naming the unknown ones)."""
    known = set(list_cases())
    unknown = [c for c in cases if c not in known]
    if unknown:
        raise InputError(f"unknown case ids {unknown}; available: {', '.join(sorted(known))}")
    return list(cases)
