"""X-ray angiography (XA) DICOM in: frames as float images and the C-arm geometry of the view.

:func:`read_xa` reads a single- or multi-frame XA file (a DSA run is a multi-frame file),
picks one frame, and returns it as displayed (MONOCHROME1 inverted) together with a
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
import pydicom
from pydicom.errors import InvalidDicomError

from angio.conebeam import CArmGeometry
from angio.errors import InputError

__all__ = ["XAView", "read_xa", "pair_planes", "GEOMETRY_TAGS"]

#: Positioner tags read by :func:`read_xa`, with the command-line flag that supplies each.
GEOMETRY_TAGS: dict[str, str] = {
    "PositionerPrimaryAngle": "--angles",
    "PositionerSecondaryAngle": "--secondary",
    "DistanceSourceToDetector": "--sdd",
    "DistanceSourceToPatient": "--spd",
    "ImagerPixelSpacing": "--pixel-spacing",
}
_OPTIONAL = {"PositionerSecondaryAngle": 0.0}


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
    """

    image: np.ndarray
    geometry: CArmGeometry
    frame: int
    n_frames: int
    subtracted: bool
    study_uid: str = ""
    frame_of_reference_uid: str = ""


def _number(ds, key: str, path: Path, overrides: dict, index: int | None = None) -> float:
    if overrides.get(key) is not None:
        return float(overrides[key])
    value = ds.get(key)
    if value in (None, ""):
        if key in _OPTIONAL:
            return _OPTIONAL[key]
        raise InputError(f"{path}: XA geometry tag {key} is missing; supply it with {GEOMETRY_TAGS[key]}")
    try:
        out = float(value[index] if index is not None else value)
    except (TypeError, ValueError, IndexError):
        raise InputError(f"{path}: XA tag {key} has an unusable value") from None
    if not math.isfinite(out):
        raise InputError(f"{path}: XA tag {key} is not finite")
    return out


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
        interpretation or compression, frames of different sizes, a frame index out of
        range, or a missing geometry tag (naming the tag and the flag that supplies it).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError) as exc:
        raise InputError(f"{path}: not a readable DICOM file ({exc})") from None
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(f"{path}: photometric interpretation {photometric or '(none)'!r} is not supported; "
                         "XA views must be MONOCHROME1 or MONOCHROME2")
    if "PerFrameFunctionalGroupsSequence" in ds:
        raise InputError(f"{path}: an enhanced multi-frame file with per-frame geometry (possibly more than "
                         "one plane); give one classic XA file per plane")
    if ds.get("PositionerPrimaryAngleIncrement") not in (None, "") and primary_deg is None:
        raise InputError(f"{path}: holds a rotational run (per-frame positioner angles); give one plane "
                         "per file, or name the frame (--frame) and its angle (--angles)")
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # compressed without a decoder, truncated data, ...
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        raise InputError(f"{path}: cannot decode the pixel data (transfer syntax "
                         f"{getattr(syntax, 'name', syntax)}): {exc}") from None
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = np.asarray(pixels, dtype=np.float32)
    if n_frames == 1:
        frames = frames[None]
    if frames.ndim != 3 or len(frames) != n_frames:
        raise InputError(f"{path}: expected {n_frames} grey frames, decoded shape {pixels.shape}")
    if photometric == "MONOCHROME1":
        full = float(2 ** int(ds.get("BitsStored", 16)) - 1)
        frames = full - frames
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
    overrides = {"PositionerPrimaryAngle": primary_deg, "PositionerSecondaryAngle": secondary_deg,
                 "DistanceSourceToDetector": source_detector_mm, "DistanceSourceToPatient": source_patient_mm}
    values = {k: _number(ds, k, path, overrides) for k in overrides}
    try:
        geometry = CArmGeometry.from_dicom(values["PositionerPrimaryAngle"], values["PositionerSecondaryAngle"],
                                           source_detector_mm=values["DistanceSourceToDetector"],
                                           source_patient_mm=values["DistanceSourceToPatient"],
                                           pixel_mm=spacing, detector_shape=(rows, cols))
    except ValueError as exc:
        raise InputError(f"{path}: inconsistent XA geometry: {exc}") from None
    return XAView(image.astype(np.float32), geometry, frame, n_frames, bool(subtract or dsa),
                  str(ds.get("StudyInstanceUID", "")), str(ds.get("FrameOfReferenceUID", "")))


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
        raise InputError(f"{names}: the views' frames differ in size ({sorted(shapes)})")
    return list(views)
