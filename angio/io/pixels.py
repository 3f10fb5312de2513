"""One DICOM image's pixels as displayed, decoded safely.

:func:`displayed_pixels` is how :func:`angio.io.read_xa` and :func:`angio.reconstruct.read_images`
decode a DICOM view:

1. the size the header declares (Rows x Columns x SamplesPerPixel per frame, times
   NumberOfFrames) is checked against :data:`MAX_IMAGE_PIXELS` and :data:`MAX_DECODED_PIXELS`
   *before* the pixel data are decoded (a small compressed file may expand to gigabytes);
2. a compressed transfer syntax without an installed decoder, and an unusable rescale, are
   refused with the file's name;
3. the stored values go through the display pipeline of DICOM PS3.4 N.2.1.1 (pydicom's
   :func:`~pydicom.pixels.apply_modality_lut` then :func:`~pydicom.pixels.apply_voi_lut`),
   then a MONOCHROME1 image (minimum displayed white) is inverted within its display range, so
   the image reads as a viewer shows it.

The display range (the values the image can take after these steps: the stored range
``[0, 2**BitsStored - 1]`` or its signed counterpart, mapped by the rescale; the output range of
a LUT; for a window, the modality range, as pydicom maps a window onto it) is returned with the
image, so callers map it to ``[0, 1]`` without looking at the data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from angio.errors import InputError
from angio.io.reading import (
    _check_rescale,
    _check_transfer_syntax,
    _decoder_hint,
    _missing_decoder,
    _syntax_name,
    _transfer_syntax,
)

__all__ = ["MAX_IMAGE_PIXELS", "MAX_DECODED_PIXELS", "check_declared_pixels", "check_decodable", "displayed_pixels"]

MAX_IMAGE_PIXELS = 8192 * 8192
"""Largest view accepted (pixels per frame, samples counted); checked from the header before decoding."""

MAX_DECODED_PIXELS = 4 * MAX_IMAGE_PIXELS
"""Largest multi-frame file accepted (pixels of all frames, samples counted; e.g. 256 frames of
1024 x 1024, as a long DSA run holds); checked from the header before decoding."""

DisplayRange = tuple[float, float]


def _raw_text(ds: Dataset, key: str) -> str:
    """The stored text of element ``key``, for naming a value pydicom cannot convert."""
    from pydicom.datadict import tag_for_keyword

    value = ds.get_item(tag_for_keyword(key)).value
    return value.decode("ascii", "replace").strip() if isinstance(value, bytes) else str(value)


def _declared_count(ds: Dataset, key: str, default: int, path: Path) -> int:
    """A non-negative integer header count (``default`` when absent); :class:`InputError` otherwise."""
    try:
        raw = ds.get(key)
    except ValueError:  # pydicom converts the value as it is read
        raw = _raw_text(ds, key)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise InputError(f"{path}: {key} {str(raw)!r} is not a whole number") from None
    if value < 0:
        raise InputError(f"{path}: {key} {value} is negative")
    return value


def check_declared_pixels(ds: Dataset, path: Path) -> None:
    """Refuse a DICOM image whose header declares an absurd decoded size, before decoding it.

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The file's dataset (its pixel data not yet decoded).
    path : Path
        The file, named in the error.

    Raises
    ------
    angio.InputError
        A frame of more than :data:`MAX_IMAGE_PIXELS` pixels (rows x columns x samples per
        pixel), or more than :data:`MAX_DECODED_PIXELS` over all frames.
    """
    rows, cols = _declared_count(ds, "Rows", 0, path), _declared_count(ds, "Columns", 0, path)
    samples = max(1, _declared_count(ds, "SamplesPerPixel", 1, path))
    frames = max(1, _declared_count(ds, "NumberOfFrames", 1, path))
    per_frame = rows * cols * samples
    described = f"{rows} x {cols} pixels" + (f" x {samples} samples" if samples > 1 else "")
    if per_frame > MAX_IMAGE_PIXELS:
        raise InputError(
            f"{path}: declares {described} per frame, more than the {MAX_IMAGE_PIXELS:,} "
            "accepted; refusing to decode it"
        )
    if per_frame * frames > MAX_DECODED_PIXELS:
        raise InputError(
            f"{path}: declares {frames} frames of {described} ({per_frame * frames:,} in all), "
            f"more than the {MAX_DECODED_PIXELS:,} accepted; refusing to decode it"
        )


def check_decodable(ds: Dataset, path: Path) -> None:
    """Refuse compressed pixel data that no installed decoder handles, naming the file and the syntax.

    Raises
    ------
    angio.InputError
        The transfer syntax is compressed and pydicom has no (available) decoder for it; the
        message says which packages would decode it. Or the file meta names a UID that is not a
        transfer syntax.
    """
    _check_transfer_syntax(ds, path)
    ts = _transfer_syntax(ds)
    if ts is None or not ts.is_compressed:
        return
    missing = _missing_decoder(ts)
    if missing is None:
        return
    raise InputError(
        f"{path}: the pixel data use the compressed transfer syntax {_syntax_name(ts)} and no "
        f"installed decoder handles it ({missing}). {_decoder_hint(ts)}"
    )


def _stored_range(ds: Dataset, dtype: np.dtype) -> DisplayRange | None:
    """Range of the stored integer values (``BitsStored``, ``PixelRepresentation``); ``None`` for floats."""
    if not np.issubdtype(dtype, np.integer):
        return None
    bits = int(ds.get("BitsStored") or np.dtype(dtype).itemsize * 8)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
    return 0.0, float(2**bits - 1)


def _lut_range(sequence) -> DisplayRange:
    """Output range of the first item of a Modality or VOI LUT sequence: ``[0, 2**bits - 1]``."""
    return 0.0, float(2 ** int(sequence[0].LUTDescriptor[2]) - 1)


def _modality_range(ds: Dataset, stored: DisplayRange | None) -> DisplayRange | None:
    """The stored range after the modality LUT or rescale (as :func:`~pydicom.pixels.apply_modality_lut`)."""
    if ds.get("ModalityLUTSequence"):
        return _lut_range(ds.ModalityLUTSequence)
    if stored is not None and "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        ends = sorted(v * slope + intercept for v in stored)
        return ends[0], ends[1]
    return stored


def _voi_range(ds: Dataset, modality: DisplayRange | None) -> DisplayRange | None:
    """The range after the VOI LUT (as :func:`~pydicom.pixels.apply_voi_lut`, which prefers a LUT sequence).

    A window maps onto the modality range, so only a VOI LUT sequence changes the range.
    """
    voi = ds.get("VOILUTSequence")
    if voi and "LUTDescriptor" in voi[0] and "LUTData" in voi[0]:
        return _lut_range(voi)
    return modality


def _as_displayed(ds: Dataset, raw: np.ndarray, photometric: str) -> tuple[np.ndarray, DisplayRange | None]:
    """Modality LUT, VOI LUT (monochrome only), then MONOCHROME1 inversion; float32 and display range."""
    shown = _modality_range(ds, _stored_range(ds, raw.dtype))
    values = apply_modality_lut(raw, ds)
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        values = apply_voi_lut(values, ds)
        shown = _voi_range(ds, shown)
    img = np.asarray(values, dtype=np.float32)
    if photometric == "MONOCHROME1":  # the minimum is displayed white: invert within the display range
        lo, hi = shown if shown is not None else (float(img.min()), float(img.max()))
        img = np.float32(lo + hi) - img
    return img, shown


def displayed_pixels(ds: Dataset, path: Path) -> tuple[np.ndarray, DisplayRange | None]:
    """Decode the pixel data of ``ds`` as displayed (see the module docstring).

    Parameters
    ----------
    ds : pydicom.dataset.Dataset
        The file's dataset, as :func:`pydicom.dcmread` returns it (pixel data not yet decoded).
    path : Path
        The file, named in every error.

    Returns
    -------
    image : ndarray, float32
        ``(rows, cols)``, ``(frames, rows, cols)`` or with a trailing samples axis, as pydicom
        decodes it, after the modality and VOI LUTs and the MONOCHROME1 inversion.
    display_range : (float, float) or None
        The values the image can take (``None`` for floating-point pixel data).

    Raises
    ------
    angio.InputError
        An absurd declared size, compressed data without a decoder, an unusable rescale, pixel
        data that fail to decode, or an unusable LUT or window.
    """
    check_declared_pixels(ds, path)
    check_decodable(ds, path)
    _check_rescale(ds, path)
    try:
        raw = ds.pixel_array
    except Exception as exc:  # truncated data, a broken codestream, ...
        ts = _transfer_syntax(ds)
        raise InputError(
            f"{path}: cannot decode the pixel data (transfer syntax "
            f"{_syntax_name(ts) if ts is not None else 'unknown'}): {exc}"
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    try:
        return _as_displayed(ds, raw, photometric)
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: unusable modality or VOI LUT ({type(exc).__name__}: {exc})") from None
