"""Reconstruct a 3D vessel probability volume from a user's own 2D angiograms.

Inputs are 2D images (PNG, TIFF, or single-frame DICOM) with their view angles in degrees,
about the patient's long axis, as the training data (:mod:`angio.projection`). Images are
read as displayed (head up: the first row is superior), converted to grey, resampled to the
model's ``N x N`` detector, optionally inverted (subtracted angiograms usually show contrast
dark; the model expects vessels bright), and mapped to ``[0, 1]``. They are back-projected
as the model was trained (sum, min or both) and the model predicts vessel probabilities.

Outputs (written to a temporary folder and renamed into place, so a failure leaves nothing
half-written): ``probability.npz`` (``probability`` ``(N, N, N)`` float32, ``spacing_mm``,
``angles_deg``), a DICOM series ``dicom/`` of the probabilities, and the 0.5 iso-surface as
``surface.stl`` and ``surface.vtp``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from angio.atomic import atomic_folder
from angio.errors import InputError

__all__ = ["read_images", "prepare_projections", "reconstruct", "write_outputs",
           "shipped_checkpoint", "Reconstruction"]

_DICOM_SUFFIXES = {".dcm", ".dicom", ""}
_IMAGE_PLUGINS = {".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".tif": "tifffile", ".tiff": "tifffile"}


def shipped_checkpoint() -> Path:
    """The small trained checkpoint shipped with the package (paper's model, 2 views, CPU size)."""
    ref = resources.files("angio._data.checkpoints").joinpath("biplane_cpu.pt")
    with resources.as_file(ref) as path:
        return Path(path)


def _read_one(path: Path) -> np.ndarray:
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        if path.suffix.lower() in _DICOM_SUFFIXES:
            import pydicom

            ds = pydicom.dcmread(path)
            img = ds.pixel_array.astype(np.float32)
            if img.ndim == 3 and getattr(ds, "NumberOfFrames", 1) > 1:
                raise InputError(f"{path}: multi-frame DICOM ({img.shape[0]} frames); give one image per view")
        elif path.suffix.lower() in _IMAGE_PLUGINS:
            import imageio.v3 as iio

            img = np.asarray(iio.imread(path, plugin=_IMAGE_PLUGINS[path.suffix.lower()]), dtype=np.float32)
        else:
            raise InputError(f"{path}: unsupported image type {path.suffix!r} "
                             f"(use {', '.join(sorted(_IMAGE_PLUGINS))} or DICOM)")
    except InputError:
        raise
    except Exception as exc:  # unreadable or unsupported file: name it
        raise InputError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from None
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].mean(axis=-1)
    if img.ndim != 2:
        raise InputError(f"{path}: expected a 2D grey or colour image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError(f"{path}: image holds non-finite values")
    return img


def read_images(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Read 2D angiograms; all must have the same size.

    Returns
    -------
    ndarray, shape (n_views, H, W), float32
        Images as stored (first row at the top).
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no images given")
    images = [_read_one(p) for p in paths]
    shapes = {p.name: im.shape for p, im in zip(paths, images)}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{name} {h}x{w}" for name, (h, w) in shapes.items())
        raise InputError(f"images differ in size ({listing}); give views of the same detector size")
    return np.stack(images)


def prepare_projections(images: np.ndarray, n: int, *, vessels: str = "bright") -> np.ndarray:
    """Turn images ``(n_views, H, W)`` into model projections ``P[t, z, j]`` of ``(n_views, n, n)``.

    Each image is flipped so that ``z`` runs inferior -> superior, resized to ``n x n``
    (anti-aliased), inverted when ``vessels="dark"``, and mapped to ``[0, 1]`` (min-max per
    image).
    """
    from skimage.transform import resize

    if vessels not in ("bright", "dark"):
        raise ValueError(f"vessels must be 'bright' or 'dark', got {vessels!r}")
    out = np.empty((len(images), n, n), np.float32)
    for k, img in enumerate(images):
        small = resize(img[::-1], (n, n), anti_aliasing=True, preserve_range=True).astype(np.float32)
        lo, hi = float(small.min()), float(small.max())
        small = (small - lo) / (hi - lo) if hi > lo else np.zeros_like(small)
        out[k] = 1.0 - small if vessels == "dark" else small
    return out


@dataclass
class Reconstruction:
    """Result of :func:`reconstruct`: probabilities ``(N, N, N)`` in ``[0, 1]`` and geometry."""

    probability: np.ndarray
    spacing_mm: float
    angles_deg: np.ndarray
    inputs: np.ndarray


def reconstruct(images: np.ndarray, angles: Sequence[float], checkpoint: str | os.PathLike | None = None,
                *, vessels: str = "bright", device: str | None = None,
                patch_size: int | None = None) -> Reconstruction:
    """Vessel probabilities from 2D views with a trained checkpoint.

    Parameters
    ----------
    images : ndarray, shape (n_views, H, W)
        From :func:`read_images`.
    angles : sequence of float
        View angles in degrees, one per image.
    checkpoint : path-like, optional
        A checkpoint from :func:`angio.train.fit`; default :func:`shipped_checkpoint`.
    vessels : {"bright", "dark"}
        How contrast appears in the images.
    device : str, optional
        ``"cpu"``, ``"cuda"``... (default: CUDA when available).
    patch_size : int, optional
        Sliding-window size for large volumes.
    """
    import torch

    from angio.inference import predict_volume
    from angio.projection import backproject
    from angio.train import load_checkpoint

    angles = np.asarray(angles, dtype=float).ravel()
    if len(angles) != len(images):
        raise InputError(f"{len(images)} images but {len(angles)} angles; give one angle per image")
    path = Path(checkpoint) if checkpoint is not None else shipped_checkpoint()
    model, config, _ = load_checkpoint(path)
    data = config.data or {}
    spec = data.get("spec")
    if not spec:
        raise InputError(f"{path}: checkpoint has no data description (spec, modes); train it with angio")
    n, modes = int(spec["size"]), tuple(data.get("modes", ("sum",)))
    proj = prepare_projections(images, n, vessels=vessels)
    inputs = np.stack([backproject(proj, angles, mode=m) for m in modes])
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    prob = predict_volume(model, inputs, patch_size=patch_size, device=device)
    return Reconstruction(prob.astype(np.float32), float(spec["fov_mm"]) / n, angles, inputs)


def write_outputs(result: Reconstruction, out_dir: str | os.PathLike, *, overwrite: bool = False,
                  level: float = 0.5) -> Path:
    """Write ``probability.npz``, ``dicom/``, ``surface.stl`` and ``surface.vtp`` atomically.

    The files are written into a temporary sibling folder that replaces ``out_dir`` only when
    complete; an existing non-empty ``out_dir`` is refused unless ``overwrite``.
    """
    from angio.io import write_dicom_series
    from angio.mesh import save_mesh, surface
    from angio.volume import Volume

    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        h = result.spacing_mm
        np.savez_compressed(tmp / "probability.npz", probability=result.probability,
                            spacing_mm=np.float32(h), angles_deg=result.angles_deg)
        write_dicom_series(Volume(result.probability, spacing=(h, h, h)), tmp / "dicom",
                           series_description="angio3d vessel probability", rescale=(1.0 / 1000.0, 0.0))
        mesh = surface(result.probability, level=level, spacing=(h, h, h))
        if mesh.n_points:
            save_mesh(mesh, tmp / "surface.stl")
            save_mesh(mesh, tmp / "surface.vtp")
        (tmp / "README.json").write_text(json.dumps({
            "probability": "probability.npz: (N, N, N) float32 [z, y, x], z inferior->superior",
            "spacing_mm": h, "angles_deg": result.angles_deg.tolist(), "surface_level": level,
            "surface": "surface.stl / surface.vtp (points x, y, z in mm)" if mesh.n_points else "empty: no voxel reached the level",
        }, indent=1))
    return Path(out_dir)
