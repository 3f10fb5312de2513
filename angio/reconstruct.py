"""Reconstruct a 3D vessel probability volume from a user's own 2D angiograms.

Inputs are 2D images (PNG, TIFF, or single-frame DICOM) with their view angles in degrees,
about the patient's long axis, as the training data (:mod:`angio.projection`). Images are
read as displayed (head up: the first row is superior; DICOM through its modality LUT or
rescale and its VOI LUT or window, MONOCHROME1 inverted: :func:`angio.io.pixels.displayed_pixels`),
converted to grey, mapped to ``[0, 1]`` (integer images by their display range, e.g. 0..255
for 8-bit PNG, so a view exported from a ``[0, 1]`` projection comes back unchanged; other
images min-max), resampled to the model's ``N x N`` detector and optionally inverted
(subtracted angiograms usually show contrast dark; the model expects vessels bright). They
then take the training data's own path to the network
(:func:`angio.pipeline.inputs_from_projections`). X-ray angiography files carry their C-arm's
geometry, and :func:`reconstruct_xa` back-projects them along its diverging rays instead
(:func:`angio.pipeline.inputs_from_cone_views`).

Which model: without ``checkpoint``, the model zoo's entry for the number of views given
(:data:`angio.zoo.DEFAULT_MODELS`: the biplane U-Net for 2 views, the 3-view U-Net for 3;
for X-ray angiography files, which come from a cone-beam C-arm, the entry trained on
cone-beam views where one is shipped, :data:`angio.zoo.CONE_MODELS`), at the resolution it
was trained for (192^3 voxels of 0.5 mm). A model is only used with
the view count and angles it was trained for (within 1 degree); ``allow_other_views``
overrides that, and the output record then carries a warning.

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
from pathlib import Path

import numpy as np

from angio.atomic import atomic_folder
from angio.conebeam import isocentre_view, parallel_equivalent
from angio.device import resolve_device
from angio.errors import InputError
from angio.inference import check_patch_size, is_local, predict_volume
from angio.io import write_dicom_series
from angio.io.views import is_xa, read_images
from angio.io.writing import is_dicom_uid
from angio.io.xa import pair_planes, read_xa
from angio.mesh import save_mesh, surface
from angio.pipeline import inputs_from_cone_views, inputs_from_projections
from angio.projection import mirror_symmetric, view_angles
from angio.train.checkpoint import load_checkpoint
from angio.volume import Volume
from angio.zoo import DEFAULT_MODELS, MIRROR_MODELS, default_model, entries, load_entry

__all__ = ["read_images", "prepare_projections", "reconstruct", "reconstruct_xa", "write_outputs", "is_xa",
           "xa_views",
           "Reconstruction", "ANGLE_TOLERANCE_DEG"]

ANGLE_TOLERANCE_DEG = 1.0
"""How far a view may be from the angle a model was trained for."""

def prepare_projections(images: np.ndarray, n: int, *, vessels: str = "bright") -> np.ndarray:
    """Turn images ``(n_views, H, W)`` into model projections ``P[t, z, j]`` of ``(n_views, n, n)``.

    Each image is flipped so that ``z`` runs inferior -> superior, resized to ``n x n``
    (anti-aliased), kept as is when it already lies in ``[0, 1]`` (as :func:`read_images`
    with ``normalize=True`` gives for integer images) and min-max mapped to ``[0, 1]``
    otherwise, then inverted when ``vessels="dark"``.
    """
    from skimage.transform import resize

    if vessels not in ("bright", "dark"):
        raise ValueError(f"vessels must be 'bright' or 'dark', got {vessels!r}")
    out = np.empty((len(images), n, n), np.float32)
    for k, img in enumerate(images):
        small = img[::-1]
        if small.shape != (n, n):
            small = resize(small, (n, n), anti_aliasing=True, preserve_range=True)
        small = np.asarray(small, dtype=np.float32)
        lo, hi = float(small.min()), float(small.max())
        if lo < 0.0 or hi > 1.0:
            small = (small - lo) / (hi - lo) if hi > lo else np.zeros_like(small)
        out[k] = 1.0 - small if vessels == "dark" else small
    return out


def xa_views(paths: Sequence[str | os.PathLike], n: int, fov_mm: float, *, frame: int | None = None,
             subtract: bool | None = None, vessels: str = "auto",
             **geometry) -> tuple[np.ndarray, list, np.ndarray]:
    """Views of XA files with the rays that made them: ``(images, views, angles)``.

    Each file is read with :func:`angio.io.read_xa` (the frame of peak filling unless
    ``frame`` is given; multi-frame runs are log-subtracted unless ``subtract=False``), and
    its detector image is resampled onto an ``n x n`` grid over ``fov_mm`` in the isocentre
    plane (:func:`angio.conebeam.isocentre_view`). The rays do not change: ``views`` are the
    C-arm's own geometries with this virtual detector at the isocentre (source-to-detector
    distance = source-to-isocentre distance, ``fov_mm / n`` pixels), for
    :func:`angio.pipeline.inputs_from_cone_views`. ``angles`` are the views' angles on the
    parallel contract (:func:`angio.conebeam.parallel_equivalent`, in ``[0, 180)``), which say
    which model fits.

    Returns
    -------
    images : ndarray, shape (n_views, n, n), float32
        In ``[0, 1]`` (min-max over the grid), vessels bright, row 0 at the bottom
        (inferior), as :func:`angio.conebeam.cone_mip` returns.
    views : list of angio.conebeam.CArmGeometry
        One per image.
    angles : ndarray, shape (n_views,)
        Parallel-contract angles in degrees.

    ``vessels``: ``"bright"``, ``"dark"`` or ``"auto"`` (bright when subtracted, dark
    otherwise: iodine absorbs X-rays). ``geometry`` overrides positioner values (see
    :func:`angio.io.read_xa`). A blank plane (one value everywhere, e.g. a subtracted frame
    without contrast) is refused with an :class:`angio.InputError` naming its file.
    """
    if vessels not in ("auto", "bright", "dark"):
        raise ValueError(f"vessels must be 'auto', 'bright' or 'dark', got {vessels!r}")
    from dataclasses import replace

    read = [read_xa(p, frame=frame, subtract=subtract, **geometry) for p in paths]
    pair_planes(read, paths)
    _check_not_blank([v.image for v in read], [str(p) for p in paths])
    images, views, angles = [], [], []
    h = fov_mm / n
    for v in read:
        if abs(v.geometry.tilt_deg) > ANGLE_TOLERANCE_DEG:
            raise InputError(f"a view is tilted {v.geometry.tilt_deg:g} deg cranial/caudal; the models take "
                             "views about the patient's long axis only (secondary angle 0)")
        img = isocentre_view(v.image[::-1], v.geometry, n, fov_mm)  # detector rows bottom-up
        lo, hi = float(img.min()), float(img.max())
        img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        dark = vessels == "dark" or (vessels == "auto" and not v.subtracted)
        images.append(1.0 - img if dark else img)
        g = v.geometry
        views.append(replace(g, source_detector_mm=g.source_isocenter_mm, detector_shape=(n, n), pixel_mm=(h, h)))
        angles.append(parallel_equivalent(g.angle_deg)[0])
    return np.stack(images).astype(np.float32), views, np.asarray(angles)


@dataclass
class Reconstruction:
    """Result of :func:`reconstruct`: probabilities ``(N, N, N)`` in ``[0, 1]`` and geometry.

    The volume is indexed ``[z, y, x]`` along the DICOM patient axes (LPS: ``x`` towards the
    patient's left, ``y`` posterior, ``z`` superior) with the C-arm's isocentre at its
    centre; :attr:`origin_mm` places it in patient coordinates with the isocentre at
    ``(0, 0, 0)`` (see :mod:`angio.conebeam` for how the view angles map onto these axes).
    """

    probability: np.ndarray
    spacing_mm: float
    angles_deg: np.ndarray
    inputs: np.ndarray
    model: str = ""
    warnings: tuple[str, ...] = ()
    mirror: bool = False
    """Whether the prediction was averaged with that of the mirrored input (mirror test-time augmentation)."""
    frame_of_reference_uid: str = ""
    """The input views' shared FrameOfReferenceUID (XA files), written with the outputs; ``""``: none."""

    @property
    def origin_mm(self) -> tuple[float, float, float]:
        """Patient position ``(x, y, z)`` in mm of voxel ``[0, 0, 0]``: the isocentre at the origin."""
        return tuple(-(n - 1) / 2.0 * self.spacing_mm for n in self.probability.shape[::-1])  # type: ignore[return-value]


def _check_views(angles: np.ndarray, trained: np.ndarray, what: str, allow: bool) -> list[str]:
    """Refuse (or, with ``allow``, warn about) views the model was not trained for."""
    if len(angles) != len(trained):
        problem = (f"{what} was trained on {len(trained)} views at {trained.tolist()} deg; "
                   f"{len(angles)} images were given")
    elif np.abs(np.sort(angles) - np.sort(trained)).max() > ANGLE_TOLERANCE_DEG:
        problem = (f"{what} was trained on views at {trained.tolist()} deg; the images are at "
                   f"{angles.tolist()} deg (more than {ANGLE_TOLERANCE_DEG:g} deg apart)")
    else:
        return []
    if not allow:
        raise InputError(f"{problem}; give the views it was trained for, choose another model "
                         f"({_available()}), or pass --allow-other-views to use it anyway")
    return [f"model used outside its training views: {problem}"]


def _available() -> str:
    shipped = entries()
    views = [f"{n} views: {name}" for n, name in sorted(DEFAULT_MODELS.items()) if name in shipped]
    return "shipped models: " + ("; ".join(views) if views else "none")


def _load_model(n_images: int, checkpoint: str | os.PathLike | None, geometry: str = "parallel"):
    """``(model, n, fov_mm, modes, training angles, description, window, zoo name)`` of the model to use.

    Without ``checkpoint`` it is the zoo's entry for ``n_images`` views acquired with
    ``geometry`` (:func:`angio.zoo.default_model`). ``window`` is the sliding-window size a
    model with instance or group normalisation is applied with (its training patch;
    ``None`` for a local model, which runs whole-volume). The zoo name is ``None`` for a
    checkpoint.
    """
    if checkpoint is None:
        shipped = entries()
        name = default_model(n_images, geometry, shipped)
        if name is None:
            raise InputError(f"no shipped model takes {n_images} view(s) ({_available()}); "
                             "give --checkpoint for a model of your own")
        model, entry = load_entry(name)
        exp, spec = entry.experiment, entry.spec
        desc = (f"zoo model {name!r} ({entry.record['label']}, {spec.size}^3 voxels of "
                f"{spec.voxel_mm:g} mm over {spec.fov_mm:g} mm, trained on {entry.settings.geometry}-beam views)")
        window = None if is_local(model) else entry.settings.inference_patch
        return model, spec.size, spec.fov_mm, tuple(exp.modes), view_angles(exp.n_views), desc, window, name
    path = Path(checkpoint)
    model, config, _ = load_checkpoint(path)
    data = config.data or {}
    spec = data.get("spec")
    if not spec:
        raise InputError(f"{path}: checkpoint has no data description (spec, modes); train it with angio")
    n = int(spec["size"])
    trained = view_angles(int(data["n_views"])) if data.get("n_views") else None
    desc = f"checkpoint {path.name} ({n}^3 voxels of {float(spec['fov_mm']) / n:g} mm)"
    window = None if is_local(model) else (config.val_patch or config.patch_size)
    return model, n, float(spec["fov_mm"]), tuple(data.get("modes", ("sum",))), trained, desc, window, None


def _use_mirror(mirror: bool | None, zoo_name: str | None, angles: np.ndarray) -> bool:
    """Whether to average with the mirrored input's prediction (mirror test-time augmentation).

    ``None`` (automatic): for the zoo entries chosen for it on the validation trees
    (:data:`angio.zoo.MIRROR_MODELS`) when the views are mirror symmetric
    (:func:`angio.projection.mirror_symmetric`); ``True`` insists (an ``InputError`` for views
    that are not symmetric); ``False`` never.
    """
    symmetric = mirror_symmetric(angles, tol_deg=ANGLE_TOLERANCE_DEG)
    if mirror is None:
        return zoo_name in MIRROR_MODELS and symmetric
    if mirror and not symmetric:
        raise InputError(f"--mirror needs views that are their own left-right mirror image (e.g. 0 and 90 deg); "
                         f"the views are at {np.asarray(angles).tolist()} deg")
    return bool(mirror)


def _check_patch(model, patch_size: int | None, n: int, what: str) -> None:
    """Refuse a ``--patch`` the model cannot be applied with over an ``n^3`` volume, before any work.

    Parameters
    ----------
    model : torch.nn.Module
        The network to apply.
    patch_size : int or None
        The sliding-window size asked for (``None``: the model's own default).
    n : int
        The model's volume size.
    what : str
        The model, as described to the user.

    Raises
    ------
    angio.InputError
        A size that is not a positive multiple of the model's spatial divisor, or too small
        for its exact tiling (:func:`angio.inference.check_patch_size`); the message names
        the ``--patch`` flag.
    """
    if patch_size is None:
        return
    try:
        check_patch_size(model, int(patch_size), (n, n, n))
    except ValueError as exc:
        raise InputError(f"--patch {patch_size} cannot be used with {what}: {exc}") from None


def reconstruct(images: np.ndarray, angles: Sequence[float], checkpoint: str | os.PathLike | None = None,
                *, vessels: str = "bright", device: str | None = None,
                patch_size: int | None = None, allow_other_views: bool = False,
                names: Sequence[str] | None = None, mirror: bool | None = None) -> Reconstruction:
    """Vessel probabilities from 2D views with a trained model.

    Parameters
    ----------
    images : ndarray, shape (n_views, H, W)
        From :func:`read_images` (``normalize=True`` for integer image files).
    angles : sequence of float
        View angles in degrees, one per image.
    checkpoint : path-like, optional
        A checkpoint from :func:`angio.train.fit`; default: the zoo's model for this
        number of views (:data:`angio.zoo.DEFAULT_MODELS`).
    vessels : {"bright", "dark"}
        How contrast appears in the images.
    device : str, optional
        ``"cpu"``, ``"cuda"``... (default: CUDA when available).
    patch_size : int, optional
        Sliding-window size for large volumes.
    allow_other_views : bool
        Use the model even with a view count or angles it was not trained for (recorded
        in :attr:`Reconstruction.warnings`).
    names : sequence of str, optional
        How errors name the views (their files); default ``view 1 (0 deg)``, ...
    mirror : bool, optional
        Mirror test-time augmentation (:func:`angio.inference.predict_volume`): ``None``
        (default) uses it for the zoo models chosen for it on the validation trees
        (:data:`angio.zoo.MIRROR_MODELS`) when the views are mirror symmetric; ``True``
        insists, ``False`` never. :attr:`Reconstruction.mirror` says whether it was used.

    Raises
    ------
    angio.InputError
        A blank view (one value everywhere: refused before any work, as the models invent
        vessels in blank views), angles that are not finite or repeat, one angle per image
        missing, views the model was not trained for (without ``allow_other_views``), or a
        ``patch_size`` the model cannot be applied with (checked before any prediction).
    """
    angles = _check_angles(angles, len(images))
    _check_not_blank(images, names or [f"view {k + 1} ({a:g} deg)" for k, a in enumerate(angles)])
    torch_device = _device(device)
    model, n, fov_mm, modes, trained, desc, window, zoo_name = _load_model(len(images), checkpoint)
    _check_patch(model, patch_size, n, desc)
    warnings = _check_views(angles, trained, desc, allow_other_views) if trained is not None else []
    mirrored = _use_mirror(mirror, zoo_name, angles)
    proj = prepare_projections(images, n, vessels=vessels)
    inputs = inputs_from_projections(proj, angles, modes=modes)
    prob = predict_volume(model, inputs, patch_size=patch_size or window, device=torch_device, mirror=mirrored)
    return Reconstruction(prob.astype(np.float32), fov_mm / n, angles, inputs, model=desc,
                          warnings=tuple(warnings), mirror=mirrored)


def _check_not_blank(images: np.ndarray, names: Sequence[str]) -> None:
    """Refuse views that hold one value everywhere: they show no vessel, and a model would invent one.

    Parameters
    ----------
    images : ndarray, shape (n_views, H, W)
        The views.
    names : sequence of str
        How the error names each view (its file).

    Raises
    ------
    angio.InputError
        Naming every blank view.
    """
    blank = [name for img, name in zip(images, names) if float(np.max(img)) == float(np.min(img))]
    if blank:
        raise InputError(f"{', '.join(map(str, blank))}: blank (one value everywhere, no contrast); a blank view "
                         "shows no vessel to reconstruct (the model would only invent one)")


def _check_angles(angles, n_images: int) -> np.ndarray:
    angles = np.asarray(angles, dtype=float).ravel()
    if len(angles) != n_images:
        raise InputError(f"{n_images} images but {len(angles)} angles; give one angle per image")
    if not np.isfinite(angles).all():
        raise InputError(f"angles must be finite numbers of degrees, got {angles.tolist()}")
    if len(np.unique(np.round(angles, 6))) != len(angles):
        raise InputError(f"angles repeat ({angles.tolist()}); each view needs its own angle")
    return angles


def _device(device: str | None):
    try:
        return resolve_device(device or "auto")
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"--device {device!r}: {exc}") from None


def _shared_frame_of_reference(paths: Sequence[str | os.PathLike]) -> str:
    """The valid FrameOfReferenceUID that every file of ``paths`` carries, or ``""`` when they share none."""
    import pydicom

    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).get("FrameOfReferenceUID", "")) for p in paths}
    shared = uids.pop() if len(uids) == 1 else ""
    return shared if is_dicom_uid(shared) else ""


def reconstruct_xa(paths: Sequence[str | os.PathLike], checkpoint: str | os.PathLike | None = None, *,
                   angles: Sequence[float] | None = None, frame: int | None = None, subtract: bool | None = None,
                   vessels: str = "auto", device: str | None = None, patch_size: int | None = None,
                   allow_other_views: bool = False, mirror: bool | None = None, **geometry) -> Reconstruction:
    """Vessel probabilities from X-ray angiography files: angles and scale from their headers.

    The planes are read by :func:`xa_views` (peak-filling frame, log subtraction of runs,
    resampled to the isocentre plane) and back-projected along the C-arm's own diverging rays
    (:func:`angio.pipeline.inputs_from_cone_views`), so no view is mirrored or demagnified to
    a single depth; ``angles`` (parallel-contract degrees) override the angles derived from the
    positioner tags (each view keeps the side of the patient its header gives).
    Without ``checkpoint`` the zoo's model trained on cone-beam views is used where one is
    shipped for this number of views (:data:`angio.zoo.CONE_MODELS`), else the
    parallel-beam one. Other arguments as :func:`reconstruct`; ``geometry`` as
    :func:`angio.io.read_xa`. When the files share a FrameOfReferenceUID, the result carries
    it (:attr:`Reconstruction.frame_of_reference_uid`) and :func:`write_outputs` writes the
    DICOM series in that frame of reference, so it overlays the source study.
    """
    torch_device = _device(device)
    model, n, fov_mm, modes, trained, desc, window, zoo_name = _load_model(len(paths), checkpoint, geometry="cone")
    _check_patch(model, patch_size, n, desc)
    images, views, derived = xa_views(paths, n, fov_mm, frame=frame, subtract=subtract, vessels=vessels,
                                      **geometry)
    frame_of_reference = _shared_frame_of_reference(paths)
    use = _check_angles(derived if angles is None else angles, len(paths))
    warnings = _check_views(use, trained, desc, allow_other_views) if trained is not None else []
    if angles is not None:
        views = [g.rotated(float(a) + (180.0 if parallel_equivalent(g.angle_deg)[1] else 0.0))
                 for g, a in zip(views, use)]
    mirrored = _use_mirror(mirror, zoo_name, use)
    inputs = inputs_from_cone_views(images, views, n, spacing_mm=fov_mm / n, modes=modes)
    prob = predict_volume(model, inputs, patch_size=patch_size or window, device=torch_device, mirror=mirrored)
    return Reconstruction(prob.astype(np.float32), fov_mm / n, use, inputs, model=desc, warnings=tuple(warnings),
                          mirror=mirrored, frame_of_reference_uid=frame_of_reference)


def write_outputs(result: Reconstruction, out_dir: str | os.PathLike, *, overwrite: bool = False,
                  level: float = 0.5) -> Path:
    """Write ``probability.npz``, ``dicom/``, ``surface.stl`` and ``surface.vtp`` atomically.

    The DICOM series takes ``result.frame_of_reference_uid`` when set (the input views' frame
    of reference), else a new one.

    The files are written into a temporary sibling folder that replaces ``out_dir`` only when
    complete; an existing non-empty ``out_dir`` is refused unless ``overwrite``.
    """
    with atomic_folder(out_dir, overwrite=overwrite) as tmp:
        h = result.spacing_mm
        np.savez_compressed(tmp / "probability.npz", probability=result.probability,
                            spacing_mm=np.float32(h), angles_deg=result.angles_deg)
        origin = result.origin_mm  # (x, y, z), patient LPS, isocentre at (0, 0, 0)
        write_dicom_series(Volume(result.probability, spacing=(h, h, h), origin=origin), tmp / "dicom",
                           series_description="angio3d vessel probability", rescale=(1.0 / 1000.0, 0.0),
                           frame_of_reference_uid=result.frame_of_reference_uid or None)
        mesh = surface(result.probability, level=level, spacing=(h, h, h), origin=origin[::-1])
        if mesh.n_points:
            save_mesh(mesh, tmp / "surface.stl")
            save_mesh(mesh, tmp / "surface.vtp")
        (tmp / "README.json").write_text(json.dumps({
            "probability": "probability.npz: (N, N, N) float32 [z, y, x], z inferior->superior",
            "model": result.model, "warnings": list(result.warnings),
            "mirror_tta": ("yes: averaged with the prediction of the left-right mirrored input" if result.mirror
                           else "no"),
            "spacing_mm": h, "angles_deg": result.angles_deg.tolist(), "surface_level": level,
            "frame": ("DICOM patient coordinates (LPS: x to the patient's left, y posterior, z superior), "
                      "mm, with the C-arm isocentre at (0, 0, 0); the DICOM series' ImagePositionPatient "
                      "and the surfaces' points use it"),
            "origin_mm": list(origin),
            "frame_of_reference": ("the input views' FrameOfReferenceUID" if result.frame_of_reference_uid
                                   else "a new FrameOfReferenceUID (the inputs share none)"),
            "surface": ("surface.stl / surface.vtp (points x, y, z in mm, patient LPS)" if mesh.n_points
                        else "empty: no voxel reached the level"),
        }, indent=1))
    return Path(out_dir)
