"""Reading a single-frame DICOM series (e.g. a CTA) from a folder: :func:`read_dicom_series`."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.uid import UID, UID_dictionary

from angio.errors import InputError
from angio.io.deid import meta_from
from angio.volume import Volume

__all__ = ["read_dicom_series", "read_dataset"]

_POSITION_TOL_MM = 1e-3  # slices closer than this along the normal are duplicates
_SPACING_REL_TOL = 0.05  # allowed relative deviation of a slice step from the series step
_MAX_LISTED = 5  # how many gaps / files an error message lists at most
_SCANNED_BYTES = 1 << 20  # how much of a non-DICOM file is searched for the series' UID
_DICOM_ROOT = "1.2.840.10008."  # the root of the UIDs the DICOM standard registers
_UID_CHARACTERS = re.compile(r"[0-9.]{1,64}")


@dataclass(frozen=True)
class _Slice:
    """One image file of a series: its path, header (no pixels) and position along the normal."""

    path: Path
    header: Dataset
    position: float = 0.0


def read_dicom_series(folder: str | os.PathLike, *, series_uid: str | None = None) -> Volume:
    """Read a single-frame DICOM series from a folder into a :class:`~angio.volume.Volume`.

    Only the folder's own files are read (no recursion); files that are not DICOM images
    (other files, ``DICOMDIR``, structured reports, images without position) are skipped,
    except those that look like a damaged slice of the series (see Raises): a damaged slice
    is refused, never dropped.

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
        ``ImageOrientationPatient`` and the normal; ``meta`` only :data:`~angio.io.META_FIELDS`.

    Raises
    ------
    InputError
        The folder is missing, empty or holds no DICOM image; it holds several series and
        ``series_uid`` is not given, or ``series_uid`` is absent; slices are missing,
        duplicated or irregularly spaced; slice size, pixel spacing or orientation differ;
        the pixel data cannot be decoded (for example compressed with no decoder installed);
        a file is damaged or truncated (a DICOM file that cannot be parsed, a header value
        that is not a number, a file that holds the series' UID but no readable DICOM header).
        The message names the file.
    """
    path = _existing_folder(folder)
    images, others, foreign = _scan_images(path)
    groups = _group_by_series(images)
    uid, slices = _select_series(groups, series_uid, path)
    _check_no_damaged_file(uid, foreign)
    _check_no_incomplete_slice(uid, slices, others)
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
        meta=meta_from(first),
    )


def _existing_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as a :class:`Path`; :class:`InputError` unless it is an existing directory."""
    path = Path(folder)
    if not path.exists():
        raise InputError(f"DICOM folder '{path}' does not exist.")
    if not path.is_dir():
        raise InputError(f"'{path}' is not a folder; pass the folder that holds the DICOM files.")
    return path


def _scan_images(folder: Path) -> tuple[list[_Slice], list[_Slice], list[Path]]:
    """The folder's DICOM image slices and its other DICOM files (headers only), and its files that are not DICOM."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if not files:
        raise InputError(f"DICOM folder '{folder}' is empty.")
    images, others, foreign = [], [], []
    for file in files:
        header = _read_header(file)
        if header is None:
            foreign.append(file)
        elif _is_volume_slice(header):
            images.append(_Slice(file, header))
        else:
            others.append(_Slice(file, header))
    if not images:
        listed = ", ".join(f"'{p.name}'" for p in files[:_MAX_LISTED]) + (", ..." if len(files) > _MAX_LISTED else "")
        raise InputError(
            f"No DICOM image slices in '{folder}': of {len(files)} file(s) ({listed}), {len(foreign)} are "
            f"not DICOM and {len(others)} are DICOM files without an image or without "
            "ImagePositionPatient/ImageOrientationPatient (e.g. DICOMDIR, reports, or damaged slices)."
        )
    return images, others, foreign


def _sop_class(header: Dataset) -> str | None:
    """The SOP class of a header, from the data set or its file meta information."""
    sop = header.get("SOPClassUID") or getattr(header, "file_meta", {}).get("MediaStorageSOPClassUID")
    return str(sop) if sop else None


def _check_no_incomplete_slice(uid: str, slices: list[_Slice], others: list[_Slice]) -> None:
    """Refuse a series beside a DICOM file that may be one of its slices, damaged (e.g. truncated).

    Such a file has no rows/columns/position/orientation, and either is of the series' SOP
    class (or a prefix of it, or none) and names the series (or a prefix of its UID, or no
    series at all), or has a damaged header that cannot say what it is (see
    :func:`_damaged_header`). Skipping it would silently drop a slice from the volume (at either
    end of the stack no gap would show).
    """
    sop = _sop_class(slices[0].header) or ""
    for o in others:
        kind = _sop_class(o.header) or ""
        series = str(o.header.get("SeriesInstanceUID", "") or "")
        if _damaged_header(kind, series) or (sop.startswith(kind) and uid.startswith(series)):
            raise InputError(
                f"DICOM file '{o.path}' may be an image of series '{uid}' (its SOP class and series are the "
                "series' own, cut short, absent or damaged) but lacks Rows/Columns/ImagePositionPatient/"
                "ImageOrientationPatient: it is truncated or damaged. Restore or remove it; reading on "
                "would drop a slice from the volume."
            )


def _damaged_header(sop_class: str, series: str) -> bool:
    """Whether a SOP class or series UID read from a header is damaged: not a UID anyone wrote.

    A UID holds digits and dots only, at most 64 of them (leading zeros, which old writers
    emit, are accepted); a SOP class under the DICOM root must be a registered one.
    """
    broken = any(text and not _UID_CHARACTERS.fullmatch(text) for text in (sop_class, series))
    return broken or (sop_class.startswith(_DICOM_ROOT) and sop_class not in UID_dictionary)


def _check_no_damaged_file(uid: str, foreign: list[Path]) -> None:
    """Refuse a file that is not readable as DICOM but may be a slice of the series whose header is damaged.

    Files that are not DICOM are skipped (a README, a checksum list), except one that carries
    the series' ``SeriesInstanceUID`` or a UID under the DICOM root (a DICOM file whose preamble
    or ``DICM`` prefix was overwritten) and one that is empty or holds only the start of a DICOM
    preamble (a file cut short): skipping them could drop a slice from the volume.
    """
    for path in foreign:
        try:
            with open(path, "rb") as fh:
                head = fh.read(_SCANNED_BYTES)
        except OSError as exc:
            raise InputError(f"File '{path}' in the DICOM folder cannot be read ({exc.strerror or exc}).") from None
        if uid and uid.encode("ascii", "replace") in head:
            problem = f"holds the UID of series '{uid}' but has no readable DICOM header"
        elif _DICOM_ROOT.encode("ascii") in head:
            problem = f"holds UIDs under the DICOM root {_DICOM_ROOT[:-1]} but has no readable DICOM header"
        elif len(head) < 132 and not head[:128].strip(b"\0") and b"DICM".startswith(head[128:]):
            problem = "is empty or holds only the start of a DICOM preamble"
        else:
            continue
        raise InputError(f"File '{path}' {problem}: it is a damaged or truncated DICOM file (or not in the "
                         "DICOM file format). Restore or remove it; reading on could drop a slice from the volume.")


def read_dataset(path: str | os.PathLike, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file with the value of every element converted, so a damaged file fails here.

    pydicom converts an element's stored bytes when the element is first used; a damaged
    header (an unknown value representation, a value of the wrong length, a broken sequence)
    would otherwise fail wherever it is used first, with no file named.

    Parameters
    ----------
    path : str or path-like
        The file.
    stop_before_pixels : bool
        Read the header only.

    Returns
    -------
    pydicom.dataset.Dataset
        The file's data set, its file meta included, every value converted.

    Raises
    ------
    pydicom.errors.InvalidDicomError
        Not a DICOM file (no ``DICM`` prefix after the preamble).
    angio.InputError
        A file that cannot be read, or a DICOM file that is damaged or truncated (names the
        file and what the parser said).
    """
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
        for dataset in (getattr(ds, "file_meta", Dataset()), ds):
            for _ in dataset.iterall():  # converts each value
                pass
    except InvalidDicomError:
        raise
    except OSError as exc:
        raise InputError(f"DICOM file '{path}' cannot be read ({exc.strerror or exc}).") from None
    except Exception as exc:
        raise InputError(f"DICOM file '{path}' is damaged or truncated ({type(exc).__name__}: {exc}).") from exc
    return ds


def _read_header(file: Path) -> Dataset | None:
    """Header of ``file`` read without its pixel data, or ``None`` if it is not DICOM.

    A DICOM file that cannot be parsed raises :class:`InputError`: it may be a slice of the
    series, which must not silently go missing.
    """
    try:
        return read_dataset(file, stop_before_pixels=True)
    except InvalidDicomError:
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
    """One line per series: UID, modality, slice count and (the first few) file names."""
    lines = []
    for uid, slices in groups.items():
        # no SeriesDescription: free text that the de-identification profile removes
        name = uid or "(no SeriesInstanceUID)"
        modality = slices[0].header.get("Modality", "") or "?"
        files = ", ".join(f"'{s.path.name}'" for s in slices[:_MAX_LISTED])
        more = f", ... ({len(slices) - _MAX_LISTED} more)" if len(slices) > _MAX_LISTED else ""
        lines.append(f"  {name}  {modality}  {len(slices)} slice(s): {files}{more}")
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


#: Header values every slice needs, with their number of values (all must be finite numbers).
_GEOMETRY = {"Rows": 1, "Columns": 1, "PixelSpacing": 2, "ImagePositionPatient": 3, "ImageOrientationPatient": 6}


def _check_slice_header(s: _Slice) -> None:
    """A single grayscale frame with usable geometry values; :class:`InputError` naming the file otherwise.

    A damaged header can hold text where a number belongs, or one value where several do.
    """
    if s.header.get("PixelSpacing") in (None, ""):
        raise InputError(f"DICOM file '{s.path}' has no PixelSpacing.")
    geometry = {key: _numbers(s, key, count) for key, count in _GEOMETRY.items()}
    if min(*geometry["Rows"], *geometry["Columns"], *geometry["PixelSpacing"]) <= 0:
        raise InputError(f"DICOM file '{s.path}': Rows, Columns and PixelSpacing must be positive, got "
                         f"{_plain(geometry['Rows'] + geometry['Columns'])} and {_plain(geometry['PixelSpacing'])}.")
    if _count(s, "NumberOfFrames") > 1:
        raise InputError(
            f"DICOM file '{s.path}' is multi-frame ({s.header.NumberOfFrames} frames); only "
            "single-frame series (one file per slice) are supported."
        )
    if _count(s, "SamplesPerPixel") != 1:
        raise InputError(f"DICOM file '{s.path}' is not grayscale (SamplesPerPixel != 1).")
    _check_transfer_syntax(s.header, s.path)


def _numbers(s: _Slice, key: str, count: int) -> tuple[float, ...]:
    """The ``count`` finite numbers of header element ``key``; :class:`InputError` naming the file otherwise."""
    raw = s.header.get(key)
    values = list(raw) if isinstance(raw, (MultiValue, list, tuple)) else [raw]
    numbers = tuple(_header_number(v, key, s.path) for v in values if v not in (None, ""))
    if len(numbers) != count or not np.isfinite(numbers).all():
        text = "\\".join(str(v) for v in values)
        raise InputError(f"DICOM file '{s.path}': {key} {text!r} is not {count} finite number(s); "
                         "the file may be damaged.")
    return numbers


def _header_number(value: Any, key: str, path: Path) -> float:
    """One value of header element ``key`` of ``path`` as a float; :class:`InputError` naming both otherwise.

    A damaged header can hold text where a number belongs (pydicom then keeps the text).
    Whether the number is usable (finite, positive, in range) is the caller's to say.
    """
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"DICOM file '{path}': {key} {str(value)!r} is not a number.") from None


def _count(s: _Slice, key: str) -> int:
    """A count in the header (``NumberOfFrames``, ``SamplesPerPixel``), 1 when absent or empty."""
    raw = s.header.get(key)
    try:
        return int(raw or 1)
    except (TypeError, ValueError):
        raise InputError(f"DICOM file '{s.path}': {key} {str(raw)!r} is not a whole number.") from None


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
    if not np.linalg.norm(normal) >= 0.5:  # also NaN, from a zero direction
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
        if value in (None, ""):
            continue
        step = _header_number(value, key, s.path)
        if math.isfinite(step) and step > 0:
            return step
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
        ds = _read_image(s.path)
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
        _check_rescale(ds, s.path)
        try:
            out[k] = apply_modality_lut(pixels, ds)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise InputError(f"DICOM file '{s.path}': unusable modality LUT ({type(exc).__name__}: {exc}).") from None
        if not np.isfinite(out[k]).all():
            raise InputError(f"DICOM file '{s.path}': the modality LUT gives non-finite values.")
    return out


def _read_image(path: Path) -> Dataset:
    """The whole file of a slice whose header was read; :class:`InputError` if it no longer reads."""
    try:
        return read_dataset(path)
    except InvalidDicomError as exc:  # replaced since its header was read
        raise InputError(f"DICOM file '{path}' is no longer a DICOM file ({exc}).") from None


_MAX_SLOPE = 1e4
_MAX_INTERCEPT = 1e6


def _check_rescale(ds: Dataset, path: Path) -> None:
    """Refuse a RescaleSlope/RescaleIntercept that is not finite, zero or absurd."""
    for key, limit in (("RescaleSlope", _MAX_SLOPE), ("RescaleIntercept", _MAX_INTERCEPT)):
        raw = ds.get(key)
        if raw in (None, ""):
            continue
        value = _header_number(raw, key, path)
        if not np.isfinite(value) or abs(value) > limit or (key == "RescaleSlope" and value == 0):
            raise InputError(
                f"DICOM file '{path}': {key} {value!r} is not usable (it must be finite"
                f"{', non-zero' if key == 'RescaleSlope' else ''} and at most {limit:g} in magnitude)."
            )


def _transfer_syntax(ds: Dataset) -> UID | None:
    """The file's transfer syntax, or ``None`` if its file meta does not say."""
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return None
    return UID(meta.TransferSyntaxUID)


def _check_transfer_syntax(ds: Dataset, path: Path) -> None:
    """Refuse a TransferSyntaxUID that is not a transfer syntax (a damaged file meta), naming the file."""
    ts = _transfer_syntax(ds)
    if ts is not None and not ts.is_transfer_syntax:
        raise InputError(f"DICOM file '{path}': TransferSyntaxUID {str(ts)[:64]!r} is not a known transfer syntax "
                         "(damaged file meta?).")


def _missing_decoder(ts: UID) -> str | None:
    """Why no installed pydicom decoder handles transfer syntax ``ts``; ``None`` when one does."""
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return "pydicom has no decoder for it"
    if decoder.is_available:
        return None
    return "pydicom plugins: " + "; ".join(decoder.missing_dependencies)


def _check_decodable(slices: list[_Slice], uid: str) -> None:
    """:class:`InputError` if a compressed transfer syntax of the series has no usable decoder."""
    by_syntax: dict[UID, list[Path]] = {}
    for s in slices:
        ts = _transfer_syntax(s.header)
        if ts is not None and ts.is_compressed:
            by_syntax.setdefault(ts, []).append(s.path)
    for ts, paths in by_syntax.items():
        missing = _missing_decoder(ts)
        if missing is None:
            continue
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
