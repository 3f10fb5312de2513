"""Writing a volume as a new, anonymous DICOM series, atomically: :func:`write_dicom_series`."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from angio import __version__
from angio.atomic import atomic_folder
from angio.errors import InputError
from angio.io.deid import copy_written_meta, set_anonymous_identity
from angio.volume import Volume

__all__ = ["write_dicom_series"]

_UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def write_dicom_series(
    volume: Volume,
    folder: str | os.PathLike,
    *,
    series_description: str = "angio3d",
    modality: str = "CT",
    overwrite: bool = False,
    rescale: tuple[float, float] | None = None,
    frame_of_reference_uid: str | None = None,
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
        :data:`~angio.io.WRITTEN_META_FIELDS` are written.
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
    frame_of_reference_uid : str, optional
        ``FrameOfReferenceUID`` to write: that of the source images whose patient coordinates
        ``origin`` and ``direction`` are given in, so that viewers overlay the series on them.
        By default a new one (the coordinates then relate to no other series).

    Returns
    -------
    list of Path
        The written files, in slice order (``z = 0`` first), named ``slice_0001.dcm`` ...

    Raises
    ------
    InputError
        Not a 3D finite volume; invalid ``direction``, ``modality``, ``series_description``,
        ``rescale`` or ``frame_of_reference_uid``; values that do not fit 16 bits with the
        given ``rescale``; ``folder`` is a file, or is non-empty and ``overwrite`` is false.
    """
    array, origin, direction = _validated_geometry(volume)
    _check_text(series_description, modality)
    _check_uid(frame_of_reference_uid)
    slope, intercept, dtype = _choose_rescale(array, rescale)
    template = _series_template(volume, array, direction, series_description, modality)
    if frame_of_reference_uid is not None:
        template.FrameOfReferenceUID = frame_of_reference_uid
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


def is_dicom_uid(uid: object) -> bool:
    """Whether ``uid`` is a valid DICOM UID: dot-separated numbers without leading zeros, at most 64 characters."""
    return isinstance(uid, str) and len(uid) <= 64 and _UID_PATTERN.fullmatch(uid) is not None


def _check_uid(uid: str | None) -> None:
    """:class:`InputError` unless ``uid`` is ``None`` or a valid DICOM UID (:func:`is_dicom_uid`)."""
    if uid is not None and not is_dicom_uid(uid):
        raise InputError(f"frame_of_reference_uid must be a DICOM UID (digits and dots, at most 64 characters), "
                         f"got {uid!r}.")


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
    set_anonymous_identity(ds)
    ds.SoftwareVersions = f"angio3d {__version__}"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.SeriesNumber = 1
    ds.KVP = ""
    copy_written_meta(ds, volume.meta)
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
