"""X-ray angiography (XA) DICOM in: frames as float images and the C-arm geometry of the view.

:func:`read_xa` reads a single- or multi-frame XA file (a DSA run is a multi-frame file),
picks one frame, and returns it as displayed (modality and VOI LUTs, MONOCHROME1 inverted) with a
:class:`~angio.conebeam.CArmGeometry` built from the positioner tags:

================================  ===========  ===============================
tag                               keyword      command-line flag that supplies it
================================  ===========  ===============================
(0018,1510) primary angle (LAO+)  PositionerPrimaryAngle     ``--angles``
(0018,1511) secondary angle       PositionerSecondaryAngle   ``--secondary`` (default 0)
(0018,1110) source to detector    DistanceSourceToDetector   ``--sdd``
(0018,1111) source to patient     DistanceSourceToPatient    ``--spd``
(0018,1164) detector pixel (mm)   ImagerPixelSpacing         ``--pixel-spacing``
================================  ===========  ===============================

When the file also carries EstimatedRadiographicMagnificationFactor (0018,1114), defined by
DICOM as source-to-detector over source-to-patient distance, it must agree with the two
distances within :data:`MAGNIFICATION_TOLERANCE` (else the file's geometry contradicts itself
and is refused, unless ``--sdd``/``--spd`` override the distances); it is kept in
:attr:`XAView.estimated_magnification`. It does not replace a missing distance (the error
says so): the geometry needs both distances, not only their ratio.

Pixels
------
Frames are decoded as displayed (:func:`angio.io.pixels.displayed_pixels`): the size the
header declares is checked before decoding, compressed data without a decoder are refused,
and the modality LUT (or rescale), the VOI LUT (or window) and the MONOCHROME1 inversion are
applied in that order.

Frame choice
------------
With ``frame=None`` the frame of **peak arterial filling** is chosen: contrast absorbs
X-rays, so in log space every frame is ``log(mask) - log(frame) >= 0`` where iodine is,
with the first frame as the mask (injection starts after it); the chosen frame has the
largest sum of that positive difference. ``subtract=True`` returns the log-subtracted image
``log(mask) - log(frame)`` (vessels bright, background 0) instead of the frame itself; an
already subtracted (DSA) series is returned as stored.

Nothing patient-identifying crosses this boundary: :class:`XAView` carries pixels, geometry,
frame numbers and the (opaque) study and frame-of-reference UIDs used to pair planes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from angio.conebeam import CArmGeometry
from angio.errors import InputError, reading_errors
from angio.io.pixels import displayed_pixels
from angio.io.reading import read_dataset

__all__ = ["XAView", "read_xa", "pair_planes", "GEOMETRY_TAGS", "MAGNIFICATION_TOLERANCE"]

#: Positioner tags read by :func:`read_xa`, with the command-line flag that supplies each.
GEOMETRY_TAGS: dict[str, str] = {
    "PositionerPrimaryAngle": "--angles",
    "PositionerSecondaryAngle": "--secondary",
    "DistanceSourceToDetector": "--sdd",
    "DistanceSourceToPatient": "--spd",
    "ImagerPixelSpacing": "--pixel-spacing",
}
_OPTIONAL = {"PositionerSecondaryAngle": 0.0}
_DISTANCES = ("DistanceSourceToDetector", "DistanceSourceToPatient")

#: Largest relative difference accepted between EstimatedRadiographicMagnificationFactor and
#: DistanceSourceToDetector / DistanceSourceToPatient of the same file.
MAGNIFICATION_TOLERANCE = 0.05


@dataclass(frozen=True)
class XAView:
    """One view of an XA file.

    Attributes
    ----------
    image : ndarray, shape (rows, cols), float32
        The chosen frame as displayed (or log-subtracted), first row at the top.
    geometry : CArmGeometry
        The view's C-arm geometry (detector rows counted from the *bottom*, see
        :mod:`angio.conebeam`; flip ``image`` vertically to match).
    frame : int
        Index of the chosen frame (0-based).
    n_frames : int
        Frames in the file.
    subtracted : bool
        Whether ``image`` is log-subtracted.
    study_uid, frame_of_reference_uid : str
        Opaque UIDs used to pair the planes of one biplane acquisition.
    estimated_magnification : float or None
        EstimatedRadiographicMagnificationFactor (0018,1114) when the file carries it
        (checked against the distances, see the module docstring).
    """

    image: np.ndarray
    geometry: CArmGeometry
    frame: int
    n_frames: int
    subtracted: bool
    study_uid: str = ""
    frame_of_reference_uid: str = ""
    estimated_magnification: float | None = None


def _number(ds, key: str, path: Path, overrides: dict, index: int | None = None) -> float:
    if overrides.get(key) is not None:
        return float(overrides[key])
    value = ds.get(key)
    if value in (None, ""):
        if key in _OPTIONAL:
            return _OPTIONAL[key]
        try:
            factor = _optional_float(ds, "EstimatedRadiographicMagnificationFactor") if key in _DISTANCES else None
        except ValueError:  # not a number: no use here either
            factor = None
        note = "" if factor is None else (f" (the file's EstimatedRadiographicMagnificationFactor {factor:g} "
                                          "gives only the ratio of the two distances)")
        raise InputError(f"{path}: XA geometry tag {key} is missing; supply it with {GEOMETRY_TAGS[key]}{note}")
    try:
        out = float(value[index] if index is not None else value)
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{path}: XA tag {key} has an unusable value") from None
    if not math.isfinite(out):
        raise InputError(f"{path}: XA tag {key} is not finite")
    return out


def _optional_float(ds, key: str) -> float | None:
    """The number in element ``key``, ``None`` when absent or empty; ``ValueError(stored text)`` if not a number."""
    element = ds.get_item(key)
    if element is None or element.value in (None, b"", ""):
        return None
    raw = element.value
    text = raw.decode("ascii", "replace").strip() if isinstance(raw, bytes) else str(raw).strip()
    try:
        return float(text)
    except ValueError:
        raise ValueError(repr(text)) from None


def _estimated_magnification(ds, path: Path, values: dict[str, float], overridden: bool) -> float | None:
    """EstimatedRadiographicMagnificationFactor of the file, checked against its two distances.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The XA file's dataset.
    path : Path
        The file, named in errors.
    values : dict
        The distances used (``DistanceSourceToDetector``, ``DistanceSourceToPatient``, mm).
    overridden : bool
        Whether a command-line value replaced either distance: the flags then win and the
        file's factor is not checked against them.

    Returns
    -------
    float or None
        The factor, or ``None`` when the file does not carry it.

    Raises
    ------
    angio.InputError
        A factor that is not a positive finite number, or one more than
        :data:`MAGNIFICATION_TOLERANCE` away from source-to-detector / source-to-patient.
    """
    try:
        factor = _optional_float(ds, "EstimatedRadiographicMagnificationFactor")
    except ValueError as exc:
        raise InputError(f"{path}: EstimatedRadiographicMagnificationFactor {exc} is not a number") from None
    if factor is None:
        return None
    if not (math.isfinite(factor) and factor > 0):
        raise InputError(f"{path}: EstimatedRadiographicMagnificationFactor {factor!r} is not a positive number")
    sdd, spd = values["DistanceSourceToDetector"], values["DistanceSourceToPatient"]
    ratio = sdd / spd if spd > 0 else math.inf
    if not overridden and abs(factor - ratio) > MAGNIFICATION_TOLERANCE * ratio:
        raise InputError(f"{path}: EstimatedRadiographicMagnificationFactor {factor:g} disagrees with "
                         f"DistanceSourceToDetector / DistanceSourceToPatient = {sdd:g} / {spd:g} = {ratio:.4g} "
                         f"(more than {MAGNIFICATION_TOLERANCE:.0%} apart); correct the file or give the "
                         "distances with --sdd and --spd")
    return factor


def read_xa(path: str | os.PathLike, *, frame: int | None = None, subtract: bool | None = False,
            primary_deg: float | None = None, secondary_deg: float | None = None,
            source_detector_mm: float | None = None, source_patient_mm: float | None = None,
            pixel_mm: Sequence[float] | None = None) -> XAView:
    """Read one XA file: the chosen frame and the C-arm geometry (see the module docstring).

    Parameters
    ----------
    path : path-like
        A single- or multi-frame XA (or any single-plane X-ray) DICOM file.
    frame : int, optional
        Frame to use (0-based); default: the frame of peak arterial filling.
    subtract : bool or None
        Return ``log(mask) - log(frame)`` with the first frame as the mask; ``None``: do so
        for multi-frame runs only.
    primary_deg, secondary_deg, source_detector_mm, source_patient_mm, pixel_mm
        Override (or supply missing) positioner values.

    Raises
    ------
    angio.InputError
        Not DICOM, more than one plane in the file, an unsupported photometric
        interpretation or compression (no installed decoder), a declared size above
        :data:`angio.io.pixels.MAX_IMAGE_PIXELS` per frame or
        :data:`angio.io.pixels.MAX_DECODED_PIXELS` in all (refused before decoding), frames
        of different sizes, a frame index out of range, a missing geometry tag (naming the
        tag and the flag that supplies it), or an EstimatedRadiographicMagnificationFactor
        that disagrees with the distances (naming both); a damaged or truncated file, whatever
        pydicom or numpy raise for it (naming the file and what failed).
    """
    path = Path(path)
    ds = _read_file(path)
    overrides = {"PositionerPrimaryAngle": primary_deg, "PositionerSecondaryAngle": secondary_deg,
                 "DistanceSourceToDetector": source_detector_mm, "DistanceSourceToPatient": source_patient_mm}
    with reading_errors(path, "damaged XA file, its header or pixel data cannot be used"):
        return _view(ds, path, frame=frame, subtract=subtract, overrides=overrides, pixel_mm=pixel_mm)


def _read_file(path: Path) -> Dataset:
    """The XA file's data set, every value converted; :class:`InputError` naming the file if it does not read."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        return read_dataset(path)
    except InvalidDicomError as exc:
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from None


def _view(ds: Dataset, path: Path, *, frame: int | None, subtract: bool | None, overrides: dict[str, float | None],
          pixel_mm: Sequence[float] | None) -> XAView:
    """The :class:`XAView` of a read XA data set (see :func:`read_xa`); ``overrides`` by positioner keyword."""
    primary_deg = overrides["PositionerPrimaryAngle"]
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if not photometric:
        raise InputError(f"{path}: no PhotometricInterpretation: not an image, or a truncated or damaged file")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"{path}: photometric interpretation {photometric!r} is not supported; "
                         "XA views must be MONOCHROME1 or MONOCHROME2")
    if "PerFrameFunctionalGroupsSequence" in ds:
        raise InputError(f"{path}: an enhanced multi-frame file with per-frame geometry (possibly more than "
                         "one plane); give one classic XA file per plane")
    if ds.get("PositionerPrimaryAngleIncrement") not in (None, "") and primary_deg is None:
        raise InputError(f"{path}: holds a rotational run (per-frame positioner angles); give one plane "
                         "per file, or name the frame (--frame) and its angle (--angles)")
    frames, _ = displayed_pixels(ds, path)  # checks the declared size, NumberOfFrames included
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    if n_frames == 1:
        frames = frames[None]
    if frames.ndim != 3 or len(frames) != n_frames or frames.size == 0:
        raise InputError(f"{path}: expected {n_frames} grey frames, decoded shape {frames.shape}")
    dsa = "SUBTRACTED" in str(ds.get("ImageType", "")).upper() or ds.get("RecommendedViewingMode") == "SUB"
    log = np.log(np.maximum(frames, 1.0))
    filling = np.maximum(log[:1] - log, 0.0).reshape(n_frames, -1).sum(1) if not dsa else frames.reshape(
        n_frames, -1).sum(1)
    if frame is None:
        frame = int(np.argmax(filling))
    elif not 0 <= frame < n_frames:
        raise InputError(f"{path}: frame {frame} does not exist (the file has {n_frames} frame(s))")
    if subtract is None:
        subtract = n_frames > 1
    image = np.maximum(log[0] - log[frame], 0.0) if subtract and not dsa else frames[frame]
    rows, cols = image.shape
    if pixel_mm is not None:
        spacing = tuple(float(v) for v in pixel_mm)
    else:
        spacing = (_number(ds, "ImagerPixelSpacing", path, {}, 0), _number(ds, "ImagerPixelSpacing", path, {}, 1))
    values = {k: _number(ds, k, path, overrides) for k in overrides}
    overridden = any(overrides[k] is not None for k in _DISTANCES)
    magnification = _estimated_magnification(ds, path, values, overridden)
    try:
        geometry = CArmGeometry.from_dicom(values["PositionerPrimaryAngle"], values["PositionerSecondaryAngle"],
                                           source_detector_mm=values["DistanceSourceToDetector"],
                                           source_patient_mm=values["DistanceSourceToPatient"],
                                           pixel_mm=spacing, detector_shape=(rows, cols))
    except ValueError as exc:
        raise InputError(f"{path}: inconsistent XA geometry: {exc}") from None
    return XAView(image.astype(np.float32), geometry, frame, n_frames, bool(subtract or dsa),
                  str(ds.get("StudyInstanceUID", "")), str(ds.get("FrameOfReferenceUID", "")), magnification)


def pair_planes(views: Sequence[XAView], paths: Sequence[str | os.PathLike]) -> list[XAView]:
    """Check that views form one acquisition (same study and frame of reference, same detector).

    Raises :class:`angio.InputError` naming the files otherwise.
    """
    if len(views) < 2:
        return list(views)
    studies = {v.study_uid for v in views}
    frames = {v.frame_of_reference_uid for v in views if v.frame_of_reference_uid}
    names = ", ".join(Path(p).name for p in paths)
    if len(studies) > 1 or len(frames) > 1:
        raise InputError(f"{names}: the views come from different studies or frames of reference; "
                         "give the planes of one acquisition")
    shapes = {v.image.shape for v in views}
    if len(shapes) > 1:
        listing = ", ".join(f"{Path(p).name} {v.image.shape[0]}x{v.image.shape[1]}" for v, p in zip(views, paths))
        raise InputError(f"{names}: the views' frames differ in size ({listing}); give planes of one detector size")
    return list(views)
