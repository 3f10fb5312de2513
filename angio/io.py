"""DICOM series input/output and resampling to a cube.

* :func:`read_dicom_series` reads one single-frame DICOM series (e.g. a CTA) from a folder into a
  :class:`~angio.volume.Volume` in modality units (Hounsfield units for CT), with slices ordered
  by their position along the slice normal and the geometry taken from the headers.
* :func:`write_dicom_series` writes a :class:`~angio.volume.Volume` as a new, anonymous
  CT Image Storage series (one file per ``z`` slice), atomically.
* :func:`resample_to_cube` resamples a volume to isotropic voxels in an ``(n, n, n)`` cube
  (the paper resizes its CTAs to ``384^3``), keeping voxel positions physically correct.

Geometry follows DICOM's patient coordinate system (LPS, mm): ``Volume.origin`` is the
``ImagePositionPatient`` of slice ``z = 0``; the columns of ``Volume.direction`` are the row
cosine (array ``x``), the column cosine (array ``y``) and the slice normal (array ``z``).

Privacy: neither function copies patient-identifying data. The reader fills ``Volume.meta``
only from :data:`META_FIELDS`; the writer copies only :data:`WRITTEN_META_FIELDS` from
``Volume.meta``, writes ``PatientName = "ANONYMOUS"``, ``PatientID = "ANGIO3D"``, fresh UIDs
and empty values for the other mandatory patient and study attributes.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds
from scipy import ndimage

from angio import __version__
from angio.atomic import atomic_folder
from angio.errors import InputError
from angio.volume import Volume

__all__ = [
    "META_FIELDS",
    "WRITTEN_META_FIELDS",
    "read_dicom_series",
    "resample_to_cube",
    "write_dicom_series",
]

#: Non-identifying header fields that :func:`read_dicom_series` copies into ``Volume.meta``.
META_FIELDS: tuple[str, ...] = (
    "Modality",
    "SeriesDescription",
    "BodyPartExamined",
    "PatientPosition",
    "ImageType",
    "Manufacturer",
    "ManufacturerModelName",
    "ConvolutionKernel",
    "KVP",
    "ContrastBolusAgent",
    "SliceThickness",
)

#: Fields of ``Volume.meta`` that :func:`write_dicom_series` copies into its output (all else in
#: ``meta`` is ignored; ``Modality`` and ``SeriesDescription`` come from its arguments).
WRITTEN_META_FIELDS: tuple[str, ...] = (
    "BodyPartExamined",
    "PatientPosition",
    "ConvolutionKernel",
    "KVP",
    "ContrastBolusAgent",
)

_POSITION_TOL_MM = 1e-3  # slices closer than this along the normal are duplicates
_SPACING_REL_TOL = 0.05  # allowed relative deviation of a slice step from the series step
_MAX_LISTED = 5  # how many gaps / files an error message lists at most


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slice:
    """One image file of a series: its path, header (no pixels) and position along the normal."""

    path: Path
    header: Dataset
    position: float = 0.0


def read_dicom_series(folder: str | os.PathLike, *, series_uid: str | None = None) -> Volume:
    """Read a single-frame DICOM series from a folder into a :class:`~angio.volume.Volume`.

    Only the folder's own files are read (no recursion); files that are not DICOM images
    (other files, ``DICOMDIR``, structured reports, images without position) are skipped.

    Parameters
    ----------
    folder : str or path-like
        Folder holding the series' files.
    series_uid : str, optional
        ``SeriesInstanceUID`` to read when the folder holds several series.

    Returns
    -------
    Volume
        ``array`` float32, shape ``(Z, Y, X)``, in modality units (``RescaleSlope`` and
        ``RescaleIntercept`` applied per slice: Hounsfield units for CT); slices sorted by
        position along the slice normal (not by file name or ``InstanceNumber``).
        ``spacing`` ``(dz, dy, dx)`` in mm, ``dz`` from the slice positions; ``origin`` the
        ``ImagePositionPatient`` of the first slice (mm); ``direction`` from
        ``ImageOrientationPatient`` and the normal; ``meta`` only :data:`META_FIELDS`.

    Raises
    ------
    InputError
        The folder is missing, empty or holds no DICOM image; it holds several series and
        ``series_uid`` is not given, or ``series_uid`` is absent; slices are missing,
        duplicated or irregularly spaced; slice size, pixel spacing or orientation differ;
        the pixel data cannot be decoded (for example compressed with no decoder installed).
    """
    path = _existing_folder(folder)
    groups = _group_by_series(_scan_images(path))
    uid, slices = _select_series(groups, series_uid, path)
    _check_consistent(slices, path)
    slices, normal = _sort_along_normal(slices)
    dz = _slice_step(slices, uid, path)
    _check_stacking(slices, normal, path)
    array = _decode_series(slices, uid)
    first = slices[0].header
    dy, dx = (float(v) for v in first.PixelSpacing)
    row, col = _orientation(first)
    return Volume(
        array=array,
        spacing=(dz, dy, dx),
        origin=tuple(float(v) for v in first.ImagePositionPatient),
        direction=np.column_stack([row, col, normal]),
        meta=_meta_from(first),
    )


def _existing_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as a :class:`Path`; :class:`InputError` unless it is an existing directory."""
    path = Path(folder)
    if not path.exists():
        raise InputError(f"DICOM folder '{path}' does not exist.")
    if not path.is_dir():
        raise InputError(f"'{path}' is not a folder; pass the folder that holds the DICOM files.")
    return path


def _scan_images(folder: Path) -> list[_Slice]:
    """Read the headers (no pixel data) of the folder's DICOM image files, skipping the rest."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise InputError(f"DICOM folder '{folder}' is empty.")
    images, n_not_dicom, n_not_image = [], 0, 0
    for file in files:
        header = _read_header(file)
        if header is None:
            n_not_dicom += 1
        elif _is_volume_slice(header):
            images.append(_Slice(file, header))
        else:
            n_not_image += 1
    if not images:
        raise InputError(
            f"No DICOM image slices in '{folder}': of {len(files)} file(s), {n_not_dicom} are "
            f"not DICOM and {n_not_image} are DICOM files without an image or without "
            "ImagePositionPatient/ImageOrientationPatient (e.g. DICOMDIR, reports)."
        )
    return images


def _read_header(file: Path) -> Dataset | None:
    """Header of ``file`` read without its pixel data, or ``None`` if it is not DICOM."""
    try:
        return pydicom.dcmread(file, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    except Exception as exc:  # truncated or corrupt DICOM: skip, but say so
        warnings.warn(f"Skipping unreadable DICOM file '{file}': {exc}", stacklevel=4)
        return None


def _is_volume_slice(header: Dataset) -> bool:
    """Whether a header describes an image with a position and orientation in the patient."""
    needed = ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient")
    return all(header.get(k) not in (None, "") for k in needed)


def _group_by_series(slices: list[_Slice]) -> dict[str, list[_Slice]]:
    """Group slices by ``SeriesInstanceUID`` (``""`` for files without one)."""
    groups: dict[str, list[_Slice]] = {}
    for s in slices:
        groups.setdefault(str(s.header.get("SeriesInstanceUID", "")), []).append(s)
    return groups


def _select_series(
    groups: dict[str, list[_Slice]], series_uid: str | None, folder: Path
) -> tuple[str, list[_Slice]]:
    """Pick the requested series, or the only one; :class:`InputError` otherwise."""
    if series_uid is not None:
        if series_uid not in groups:
            raise InputError(
                f"Series '{series_uid}' is not in '{folder}'. Series found:\n"
                + _describe_series(groups)
            )
        return series_uid, groups[series_uid]
    if len(groups) > 1:
        raise InputError(
            f"'{folder}' holds {len(groups)} DICOM series; pass series_uid= to choose one:\n"
            + _describe_series(groups)
        )
    return next(iter(groups.items()))


def _describe_series(groups: dict[str, list[_Slice]]) -> str:
    """One line per series: UID, SeriesDescription and slice count."""
    lines = []
    for uid, slices in groups.items():
        description = slices[0].header.get("SeriesDescription", "") or "(no description)"
        name = uid or "(no SeriesInstanceUID)"
        lines.append(f"  {name}  '{description}'  {len(slices)} slice(s)")
    return "\n".join(lines)


def _check_consistent(slices: list[_Slice], folder: Path) -> None:
    """Each slice is a single grayscale frame, and size, pixel spacing and orientation agree.

    A differing file is named against a file holding the majority value.
    """
    for s in slices:
        _check_slice_header(s)
    properties = {
        "Rows x Columns": lambda h: (int(h.Rows), int(h.Columns)),
        "PixelSpacing": lambda h: _rounded(h, "PixelSpacing"),
        "ImageOrientationPatient": lambda h: _rounded(h, "ImageOrientationPatient"),
    }
    for what, value_of in properties.items():
        values = [value_of(s.header) for s in slices]
        majority = Counter(values).most_common(1)[0][0]
        odd = [k for k, v in enumerate(values) if v != majority]
        if odd:
            s, ref = slices[odd[0]], slices[values.index(majority)]
            raise InputError(
                f"Inconsistent series in '{folder}': {what} of '{s.path.name}' is "
                f"{_plain(values[odd[0]])} but {_plain(majority)} in '{ref.path.name}' and "
                f"{values.count(majority) - 1} other file(s) ({len(odd)} file(s) differ). "
                "Remove the odd file(s) or pass series_uid=."
            )


def _check_slice_header(s: _Slice) -> None:
    if s.header.get("PixelSpacing") in (None, ""):
        raise InputError(f"DICOM file '{s.path}' has no PixelSpacing.")
    if int(s.header.get("NumberOfFrames", 1) or 1) > 1:
        raise InputError(
            f"DICOM file '{s.path}' is multi-frame ({s.header.NumberOfFrames} frames); only "
            "single-frame series (one file per slice) are supported."
        )
    if int(s.header.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(f"DICOM file '{s.path}' is not grayscale (SamplesPerPixel != 1).")


def _rounded(header: Dataset, key: str) -> tuple[float, ...]:
    """Values of a multi-valued DS field, rounded to 1e-4 so they compare with a tolerance."""
    return tuple(round(float(v), 4) + 0.0 for v in header.get(key))


def _plain(value: tuple) -> str:
    return "[" + ", ".join(f"{v:g}" for v in value) + "]"


def _floats(header: Dataset, key: str) -> np.ndarray:
    return np.asarray([float(v) for v in header.get(key)], dtype=float)


def _orientation(header: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Row and column direction cosines (unit vectors, patient mm) from the header."""
    iop = _floats(header, "ImageOrientationPatient")
    return iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])


def _sort_along_normal(slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray]:
    """Slices sorted by position along the normal ``row x col``, and that unit normal."""
    row, col = _orientation(slices[0].header)
    normal = np.cross(row, col)
    if np.linalg.norm(normal) < 0.5:
        raise InputError(
            f"DICOM file '{slices[0].path}' has a degenerate ImageOrientationPatient "
            f"{_floats(slices[0].header, 'ImageOrientationPatient').tolist()}."
        )
    normal /= np.linalg.norm(normal)
    placed = [
        _Slice(s.path, s.header, float(_floats(s.header, "ImagePositionPatient") @ normal))
        for s in slices
    ]
    return sorted(placed, key=lambda s: s.position), normal


def _slice_step(slices: list[_Slice], uid: str, folder: Path) -> float:
    """Slice spacing ``dz`` in mm; :class:`InputError` for duplicated or missing slices."""
    if len(slices) == 1:
        return _single_slice_step(slices[0])
    positions = np.array([s.position for s in slices])
    steps = np.diff(positions)
    duplicates = np.flatnonzero(steps < _POSITION_TOL_MM)
    if duplicates.size:
        i = duplicates[0]
        raise InputError(
            f"Duplicated slice position in series '{uid}' in '{folder}': "
            f"'{slices[i].path.name}' and '{slices[i + 1].path.name}' are both at "
            f"{positions[i]:.3f} mm along the slice normal ({duplicates.size} duplicate(s) in "
            "all). The folder may mix two acquisitions; keep one of them."
        )
    step = float(np.median(steps))
    gaps = np.flatnonzero(steps > (1 + _SPACING_REL_TOL) * step)
    if gaps.size:
        raise InputError(_gap_message(slices, gaps, step, uid, folder))
    irregular = np.flatnonzero(np.abs(steps - step) > _SPACING_REL_TOL * step)
    if irregular.size:
        i = irregular[0]
        raise InputError(
            f"Irregular slice spacing in series '{uid}' in '{folder}': step of "
            f"{steps[i]:.3f} mm between '{slices[i].path.name}' and "
            f"'{slices[i + 1].path.name}' but {step:.3f} mm elsewhere."
        )
    return float((positions[-1] - positions[0]) / (len(slices) - 1))


def _gap_message(
    slices: list[_Slice], gaps: np.ndarray, step: float, uid: str, folder: Path
) -> str:
    """Describe each gap (positions, files, how many slices seem missing)."""
    lines = []
    for i in gaps[:_MAX_LISTED]:
        a, b = slices[i], slices[i + 1]
        missing = max(1, round((b.position - a.position) / step) - 1)
        lines.append(
            f"  between {a.position:.3f} mm ('{a.path.name}') and {b.position:.3f} mm "
            f"('{b.path.name}'): about {missing} slice(s) missing"
        )
    if gaps.size > _MAX_LISTED:
        lines.append(f"  ... and {gaps.size - _MAX_LISTED} more gap(s)")
    return (
        f"Missing slices in series '{uid}' in '{folder}' (slice step {step:.3f} mm along the "
        "normal):\n" + "\n".join(lines)
    )


def _single_slice_step(s: _Slice) -> float:
    """``dz`` of a one-slice series: SpacingBetweenSlices, SliceThickness, else 1 mm."""
    for key in ("SpacingBetweenSlices", "SliceThickness"):
        value = s.header.get(key)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    warnings.warn(
        f"Single-slice series '{s.path}' has no SpacingBetweenSlices or SliceThickness; "
        "using dz = 1.0 mm.",
        stacklevel=4,
    )
    return 1.0


def _check_stacking(slices: list[_Slice], normal: np.ndarray, folder: Path) -> None:
    """Warn when slices are shifted in-plane (gantry tilt): the volume is then sheared."""
    if len(slices) < 2:
        return
    first = _floats(slices[0].header, "ImagePositionPatient")
    last = _floats(slices[-1].header, "ImagePositionPatient")
    offset = (last - first) - ((last - first) @ normal) * normal
    if np.linalg.norm(offset) > max(0.01, 1e-3 * np.linalg.norm(last - first)):
        warnings.warn(
            f"Slices in '{folder}' are shifted in-plane by {np.linalg.norm(offset):.2f} mm over "
            "the series (gantry tilt?); the returned volume ignores that shear.",
            stacklevel=3,
        )


def _decode_series(slices: list[_Slice], uid: str) -> np.ndarray:
    """Decode the slices' pixel data and apply the modality LUT: float32 ``(Z, Y, X)``."""
    _check_decodable(slices, uid)
    out = np.empty((len(slices), slices[0].header.Rows, slices[0].header.Columns), np.float32)
    for k, s in enumerate(slices):
        ds = pydicom.dcmread(s.path)
        if "PixelData" not in ds:
            raise InputError(f"DICOM file '{s.path}' has no PixelData.")
        try:
            pixels = ds.pixel_array
        except Exception as exc:
            raise InputError(_decode_failure(s.path, _transfer_syntax(ds), exc)) from exc
        if pixels.shape != out.shape[1:]:
            raise InputError(
                f"DICOM file '{s.path}' decodes to shape {pixels.shape}, expected a "
                f"single grayscale frame of {out.shape[1:]}."
            )
        out[k] = apply_modality_lut(pixels, ds)
    return out


def _transfer_syntax(ds: Dataset) -> UID | None:
    """The file's transfer syntax, or ``None`` if its file meta does not say."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return None
    return UID(meta.TransferSyntaxUID)


def _check_decodable(slices: list[_Slice], uid: str) -> None:
    """:class:`InputError` if a compressed transfer syntax of the series has no usable decoder."""
    by_syntax: dict[UID, list[Path]] = {}
    for s in slices:
        ts = _transfer_syntax(s.header)
        if ts is not None and ts.is_compressed:
            by_syntax.setdefault(ts, []).append(s.path)
    for ts, paths in by_syntax.items():
        try:
            decoder = get_decoder(ts)
        except NotImplementedError:
            missing = "pydicom has no decoder for it"
        else:
            if decoder.is_available:
                continue
            missing = "pydicom plugins: " + "; ".join(decoder.missing_dependencies)
        raise InputError(
            f"Cannot decode series '{uid}': {len(paths)} file(s) (e.g. '{paths[0]}') use "
            f"the compressed transfer syntax {_syntax_name(ts)} and no installed decoder "
            f"handles it ({missing}). {_decoder_hint(ts)}"
        )


def _decode_failure(path: Path, ts: UID | None, exc: Exception) -> str:
    """Message for pixel data that pydicom failed to decode."""
    syntax = _syntax_name(ts) if ts is not None else "unknown transfer syntax"
    message = f"Could not decode the pixel data of '{path}' ({syntax}): {exc}"
    if ts is not None and ts.is_compressed:
        message += f". The file may be corrupt, or need another decoder: {_decoder_hint(ts)}"
    return message


def _syntax_name(ts: UID) -> str:
    return f"{ts.name} ({ts})" if ts.name != str(ts) else str(ts)


def _decoder_hint(ts: UID) -> str:
    """Which package(s) to install to decode a compressed transfer syntax."""
    name = ts.name
    if "JPEG 2000" in name:
        pkgs = "pylibjpeg and pylibjpeg-openjpeg (pip install pylibjpeg pylibjpeg-openjpeg)"
        return f"Install {pkgs}" + ("." if "High-Throughput" in name else " or python-gdcm.")
    if "JPEG-LS" in name:
        return "Install pyjpegls, or pylibjpeg and pylibjpeg-libjpeg, or python-gdcm."
    if "JPEG" in name:
        return (
            "Install pylibjpeg and pylibjpeg-libjpeg (pip install pylibjpeg "
            "pylibjpeg-libjpeg) or python-gdcm."
        )
    if "RLE" in name:
        return "Install pylibjpeg and pylibjpeg-rle."
    return "See pydicom's list of pixel data decoders for a package that supports it."


def _meta_from(header: Dataset) -> dict:
    """The whitelisted, non-identifying :data:`META_FIELDS` of a header, as plain Python values."""
    meta = {}
    for key in META_FIELDS:
        value = header.get(key)
        if value in (None, ""):
            continue
        if isinstance(value, pydicom.multival.MultiValue):
            meta[key] = [str(v) for v in value]
        elif isinstance(value, (pydicom.valuerep.DSfloat, pydicom.valuerep.DSdecimal)):
            meta[key] = float(value)
        elif isinstance(value, pydicom.valuerep.IS):
            meta[key] = int(value)
        else:
            meta[key] = str(value)
    return meta


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    series_description: str = "angio3d",
    modality: str = "CT",
    overwrite: bool = False,
    rescale: tuple[float, float] | None = None,
) -> list[Path]:
    """Write a volume as a new, anonymous DICOM series, one CT Image Storage file per slice.

    Files are written into a temporary sibling folder that is renamed to ``folder`` only once
    every slice is written: a failure leaves no partial series under ``folder`` (and, with
    ``overwrite=True``, leaves the old content in place).

    Parameters
    ----------
    volume : Volume
        ``array`` shape ``(Z, Y, X)``, finite values; ``spacing`` ``(dz, dy, dx)`` mm;
        ``origin`` (mm, patient LPS) and ``direction`` define the slice geometry. A
        left-handed ``direction`` (third column ``-row x col``) is written with the slices
        reversed, which describes the same voxels in space. Of ``meta`` only
        :data:`WRITTEN_META_FIELDS` are written.
    folder : str or path-like
        Output folder; created (with parents) if missing.
    series_description : str, optional
        ``SeriesDescription`` (at most 64 characters).
    modality : str, optional
        ``Modality`` code, e.g. ``"CT"``.
    overwrite : bool, optional
        Replace the content of an existing non-empty ``folder`` (only after the new series
        was fully written). Without it a non-empty ``folder`` is an error.
    rescale : (slope, intercept), optional
        ``RescaleSlope`` and ``RescaleIntercept`` to store with: value = stored * slope +
        intercept, stored as int16 or uint16. By default they are chosen from the data: integer
        data in the int16 range are stored losslessly (slope 1, intercept 0), other data are
        spread over the 16-bit range, so values round-trip within half a step ``slope / 2``.

    Returns
    -------
    list of Path
        The written files, in slice order (``z = 0`` first), named ``slice_0001.dcm`` ...

    Raises
    ------
    InputError
        Not a 3D finite volume; invalid ``direction``, ``modality``, ``series_description`` or
        ``rescale``; values that do not fit 16 bits with the given ``rescale``; ``folder`` is a
        file, or is non-empty and ``overwrite`` is false.
    """
    array, origin, direction = _validated_geometry(volume)
    _check_text(series_description, modality)
    slope, intercept, dtype = _choose_rescale(array, rescale)
    template = _series_template(volume, array, direction, series_description, modality)
    _set_rescale(template, slope, intercept)
    width = max(4, len(str(len(array))))
    names = [f"slice_{k + 1:0{width}d}.dcm" for k in range(len(array))]
    with atomic_folder(folder, overwrite=overwrite) as tmp:
        for k, name in enumerate(names):
            position = origin + k * volume.spacing[0] * direction[:, 2]
            stored = _quantize(array[k], slope, intercept, dtype)
            ds = _slice_dataset(template, stored, k, position, direction[:, 2])
            _save_slice(ds, tmp / name)
    target = Path(folder).absolute()
    return [target / name for name in names]


def _validated_geometry(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Array, origin and direction of ``volume``, made right-handed; :class:`InputError` if bad."""
    if not isinstance(volume, Volume):
        raise InputError(f"write_dicom_series needs an angio.Volume, got {type(volume).__name__}.")
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.ndim != 3 or min(array.shape) < 1:
        raise InputError(
            f"Volume array must be 3D [z, y, x] and non-empty, got shape {array.shape}."
        )
    if max(array.shape[1:]) > 65535:
        raise InputError(f"Slices of {array.shape[1:]} pixels exceed DICOM's 65535 rows/columns.")
    if not np.issubdtype(array.dtype, np.number) or not np.all(np.isfinite(array)):
        raise InputError("Volume array must hold finite numbers (found NaN, inf or non-numbers).")
    direction = np.asarray(volume.direction, dtype=float)
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise InputError(f"Volume.direction must be orthonormal, got\n{direction}.")
    origin = np.asarray(volume.origin, dtype=float)
    if np.linalg.det(direction) < 0:  # left-handed: reverse the slices, keep the physical voxels
        origin = origin + (array.shape[0] - 1) * volume.spacing[0] * direction[:, 2]
        direction = direction * np.array([1.0, 1.0, -1.0])
        array = array[::-1]
    return array, origin, direction


def _check_text(series_description: str, modality: str) -> None:
    description = series_description
    if not isinstance(description, str) or len(description) > 64 or "\\" in description:
        raise InputError(
            f"series_description must be a string of at most 64 characters without '\\', "
            f"got {series_description!r}."
        )
    if not isinstance(modality, str) or not modality or len(modality) > 16 or not all(
        c.isascii() and (c.isupper() or c.isdigit() or c in " _") for c in modality
    ):
        raise InputError(f"modality must be a DICOM code such as 'CT' or 'MR', got {modality!r}.")


def _ds_float(x: float) -> float:
    """``x`` rounded as DICOM writes it in a decimal string (at most 16 characters)."""
    return float(format_number_as_ds(float(x)))


def _choose_rescale(
    array: np.ndarray, rescale: tuple[float, float] | None
) -> tuple[float, float, type]:
    """``(slope, intercept, dtype)`` for 16-bit storage of ``array`` (values as written)."""
    lo, hi = float(array.min()), float(array.max())
    if rescale is not None:
        slope, intercept = (float(v) for v in rescale)
        if not (np.isfinite(slope) and np.isfinite(intercept) and slope > 0):
            raise InputError(f"rescale must be (slope > 0, intercept), finite; got {rescale}.")
        slope, intercept = _ds_float(slope), _ds_float(intercept)
        smin, smax = round((lo - intercept) / slope), round((hi - intercept) / slope)
        for dtype in (np.int16, np.uint16):
            info = np.iinfo(dtype)
            if info.min <= smin and smax <= info.max:
                return slope, intercept, dtype
        raise InputError(
            f"Values {lo:g}..{hi:g} do not fit in 16 bits with rescale slope {slope:g} and "
            f"intercept {intercept:g} (stored values would span {smin}..{smax})."
        )
    integral = _is_integral(array)
    if integral and -32768 <= lo and hi <= 32767:
        return 1.0, 0.0, np.int16
    if integral and hi - lo <= 65535:
        return 1.0, lo, np.uint16
    slope = _ds_float((hi - lo) / 65534) if hi > lo else 1.0
    return slope, _ds_float(lo), np.uint16


def _is_integral(array: np.ndarray) -> bool:
    """Whether every value is a whole number (checked slice by slice to save memory)."""
    if np.issubdtype(array.dtype, np.integer):
        return True
    return all(np.array_equal(plane, np.rint(plane)) for plane in array)


def _quantize(array: np.ndarray, slope: float, intercept: float, dtype: type) -> np.ndarray:
    """Stored values ``round((array - intercept) / slope)`` as ``dtype``, little-endian.

    ``array`` is one slice, shape ``(Y, X)``.
    """
    info = np.iinfo(dtype)
    stored = np.rint((array.astype(np.float64) - intercept) / slope)
    return np.clip(stored, info.min, info.max).astype(np.dtype(dtype).newbyteorder("<"))


def _series_template(
    volume: Volume, array: np.ndarray, direction: np.ndarray, description: str, modality: str
) -> Dataset:
    """The attributes shared by every slice: anonymous patient, new study and series, geometry.

    ``array`` is the (right-handed) data to write and ``direction`` its orientation.
    """
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SOPClassUID = CTImageStorage
    ds.Modality = modality
    ds.SeriesDescription = description
    # Patient and study: anonymous; type 2 attributes present but empty (PS3.15 action "Z").
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "ANGIO3D"
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "AccessionNumber", "StudyID", "Manufacturer",
                    "PositionReferenceIndicator", "AcquisitionNumber"):
        setattr(ds, keyword, "")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "angio3d: new UIDs, whitelisted non-identifying fields only"
    ds.BurnedInAnnotation = "NO"
    ds.SoftwareVersions = f"angio3d {__version__}"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.KVP = ""
    for key in WRITTEN_META_FIELDS:
        _copy_meta_field(ds, key, volume.meta.get(key))
    dz, dy, dx = volume.spacing
    ds.PixelSpacing = [format_number_as_ds(dy), format_number_as_ds(dx)]
    ds.SliceThickness = format_number_as_ds(dz)
    ds.SpacingBetweenSlices = format_number_as_ds(dz)
    iop = np.concatenate([direction[:, 0], direction[:, 1]])
    ds.ImageOrientationPatient = [format_number_as_ds(float(v)) for v in iop]
    lo, hi = float(array.min()), float(array.max())
    ds.WindowCenter = format_number_as_ds((lo + hi) / 2)
    ds.WindowWidth = format_number_as_ds(max(hi - lo, 1.0))
    return ds


def _set_rescale(ds: Dataset, slope: float, intercept: float) -> None:
    ds.RescaleSlope = format_number_as_ds(slope)
    ds.RescaleIntercept = format_number_as_ds(intercept)


def _copy_meta_field(ds: Dataset, key: str, value: object) -> None:
    """Set a whitelisted field from ``Volume.meta`` if it holds a plain string, number or list."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float, np.number)):
        value = format_number_as_ds(float(value)) if key == "KVP" else str(value)
    elif isinstance(value, (list, tuple)):
        value = [str(v) for v in value]
    elif not isinstance(value, str):
        return
    setattr(ds, key, value)


def _slice_dataset(
    template: Dataset, pixels: np.ndarray, k: int, position: np.ndarray, normal: np.ndarray,
) -> Dataset:
    """Dataset of slice ``k``: the template plus position, instance number and pixel data."""
    ds = copy.deepcopy(template)
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceNumber = k + 1
    ds.ImagePositionPatient = [format_number_as_ds(float(v)) for v in position]
    ds.SliceLocation = format_number_as_ds(float(position @ normal))
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_pixel_data(np.ascontiguousarray(pixels), "MONOCHROME2", 16, generate_instance_uid=False)
    return ds


def _save_slice(ds: Dataset, path: Path) -> None:
    """Write one slice as a DICOM Part 10 file (one place to patch in tests)."""
    ds.save_as(path, enforce_file_format=True)


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------


def resample_to_cube(
    volume: Volume,
    n: int = 384,
    *,
    spacing_mm: float | None = None,
    fill: float | None = None,
    order: int = 1,
) -> Volume:
    """Resample a volume to isotropic voxels, centred in an ``(n, n, n)`` cube.

    The output grid has spacing ``spacing_mm`` on every axis and shares the input's centre
    (the physical point at the middle of the voxel grid) and ``direction``; it is sampled with
    :func:`scipy.ndimage.affine_transform`, which resamples and centre-pads / centre-crops in
    one pass. Output voxels outside the input's extent (the input voxels' boxes) get ``fill``.
    The returned ``origin`` is the physical position of output voxel ``[0, 0, 0]``, so every
    voxel keeps its physical position.

    Parameters
    ----------
    volume : Volume
        Input, ``array`` shape ``(Z, Y, X)`` finite, ``spacing`` ``(dz, dy, dx)`` in mm.
    n : int, optional
        Output size along every axis (voxels).
    spacing_mm : float, optional
        Output voxel size in mm. Default: the largest physical extent ``max(shape * spacing)``
        divided by ``n``, so the whole input fits in the cube.
    fill : float, optional
        Value outside the input; default the input's minimum (air for CT).
    order : int, optional
        Spline interpolation order, 0 (nearest) to 5; 1 is trilinear. No anti-aliasing is
        applied when downsampling.

    Returns
    -------
    Volume
        ``array`` float32 shape ``(n, n, n)``, ``spacing`` ``(s, s, s)`` mm, updated
        ``origin``, same ``direction``, a copy of ``meta``.

    Raises
    ------
    InputError
        ``n`` not a positive integer, ``spacing_mm`` not positive, ``order`` not in 0..5, or
        non-finite input values.
    """
    _check_cube_args(volume, n, spacing_mm, order)
    source = np.asarray(volume.array, dtype=np.float32)
    in_shape = np.array(source.shape, dtype=float)
    in_spacing = np.array(volume.spacing, dtype=float)
    if spacing_mm is None:
        step = float(np.max(in_shape * in_spacing)) / n  # the whole input fits in the cube
    else:
        step = float(spacing_mm)
    scale = step / in_spacing  # input voxels per output voxel, per axis (z, y, x)
    offset = (in_shape - 1) / 2 - scale * (n - 1) / 2  # input index of output voxel [0, 0, 0]
    out = ndimage.affine_transform(
        source, scale, offset=offset, output_shape=(n, n, n), output=np.float32,
        order=order, mode="nearest",
    )
    _fill_outside(out, offset, scale, source.shape, float(source.min()) if fill is None else fill)
    return Volume(
        array=out,
        spacing=(step, step, step),
        origin=tuple(_index_to_patient(volume, offset)),
        direction=np.array(volume.direction, dtype=float),
        meta=dict(volume.meta),
    )


def _check_cube_args(volume: Volume, n: int, spacing_mm: float | None, order: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"n must be a positive integer, got {n!r}.")
    if spacing_mm is not None and not (np.isfinite(spacing_mm) and spacing_mm > 0):
        raise InputError(f"spacing_mm must be a positive number of mm, got {spacing_mm!r}.")
    if order not in range(6):
        raise InputError(f"order must be a spline order 0..5, got {order!r}.")
    if not np.all(np.isfinite(volume.array)):
        raise InputError("Volume array holds NaN or inf; cannot resample it.")


def _fill_outside(
    out: np.ndarray, offset: np.ndarray, scale: np.ndarray, in_shape: Iterable[int], fill: float
) -> None:
    """Set ``out`` to ``fill`` where the sampled input index lies outside ``[-0.5, N - 0.5)``."""
    eps = 1e-6
    for axis, size in enumerate(in_shape):
        index = offset[axis] + scale[axis] * np.arange(out.shape[axis])
        outside = (index < -0.5 - eps) | (index >= size - 0.5 - eps)
        selector: list[object] = [slice(None)] * 3
        selector[axis] = outside
        out[tuple(selector)] = fill


def _index_to_patient(volume: Volume, index_zyx: np.ndarray) -> np.ndarray:
    """Patient position (x, y, z) in mm of a continuous voxel index ``(z, y, x)``."""
    mm_along_axes = np.asarray(index_zyx, dtype=float)[::-1] * np.asarray(volume.spacing)[::-1]
    return np.asarray(volume.origin, dtype=float) + np.asarray(volume.direction) @ mm_along_axes
