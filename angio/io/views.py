"""2D angiograms from disk: PNG, TIFF and single-frame DICOM views, as displayed.

:func:`read_images` reads one file per view, all of one detector size, as displayed (head
up: the first row is superior; DICOM through its modality LUT or rescale and its VOI LUT or
window, MONOCHROME1 inverted: :func:`angio.io.pixels.displayed_pixels`), converted to grey,
optionally mapped to ``[0, 1]`` by its display range. A declared size beyond
:data:`~angio.io.pixels.MAX_IMAGE_PIXELS` is refused before decoding, and a damaged or
truncated file becomes an :class:`~angio.errors.InputError` naming it. :func:`is_xa` tells
an X-ray angiography file (read with :func:`angio.io.xa.read_xa`) from a plain DICOM view.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from angio.errors import InputError, reading_errors
from angio.io.pixels import MAX_IMAGE_PIXELS, displayed_pixels

__all__ = ["read_images", "is_xa", "DisplayRange"]

_DICOM_SUFFIXES = {".dcm", ".dicom", ""}
_IMAGE_PLUGINS = {".png": "pillow", ".jpg": "pillow", ".jpeg": "pillow", ".tif": "tifffile", ".tiff": "tifffile"}


def _check_declared_size(path: Path) -> None:
    """Refuse an image whose header declares an absurd size, before decoding it."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
            _check_tiff_data(path, tif.pages[0], tif.filehandle.size)
    else:
        from PIL import Image

        with Image.open(path) as im:  # lazy: reads the header only
            shape = im.size[::-1]
    pixels = int(np.prod(shape[:2], dtype=np.int64))
    if pixels > MAX_IMAGE_PIXELS:
        raise InputError(f"{path}: declares {shape[0]} x {shape[1]} pixels, more than the "
                         f"{MAX_IMAGE_PIXELS:,} accepted; refusing to decode it")


def _check_tiff_data(path: Path, page, file_size: int) -> None:
    """Refuse a TIFF page whose data lie past the end of the file or (uncompressed) fall short of its size.

    tifffile reads such a page as zeros where the data are missing: a truncated file, or a
    damaged header declaring more rows or columns than stored, would be read as an image.
    """
    offsets, counts = page.dataoffsets, page.databytecounts
    if any(offset + count > file_size for offset, count in zip(offsets, counts)):
        raise InputError(f"{path}: the image data run past the end of the file (truncated or damaged)")
    if page.compression == 1:  # uncompressed: the size is known (a lower bound: rows may be padded)
        needed = (int(np.prod(page.shape, dtype=np.int64)) * int(page.bitspersample) + 7) // 8
        if sum(counts) < needed:
            raise InputError(f"{path}: declares {' x '.join(map(str, page.shape))} values but holds "
                             f"{sum(counts)} bytes of image data, fewer than the {needed} they need (damaged)")


DisplayRange = tuple[float, float]


def _read_dicom_view(path: Path) -> tuple[np.ndarray, DisplayRange | None]:
    """A single-frame DICOM view as displayed (:func:`angio.io.pixels.displayed_pixels`) and its range.

    The frame count and decoded size are checked from the header before the pixel data are
    decoded.
    """
    import pydicom

    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(f"{path}: multi-frame DICOM ({frames} frames); give one image per view")
    return displayed_pixels(ds, path)


def _read_plain_image(path: Path) -> tuple[np.ndarray, DisplayRange | None]:
    """A PNG/JPEG/TIFF view (size checked from its header first) and ``(0, full scale)`` if integer."""
    import imageio.v3 as iio

    _check_declared_size(path)
    raw = np.asarray(iio.imread(path, plugin=_IMAGE_PLUGINS[path.suffix.lower()]))
    shown = (0.0, float(np.iinfo(raw.dtype).max)) if np.issubdtype(raw.dtype, np.integer) else None
    return raw.astype(np.float32), shown


def _read_one(path: Path) -> tuple[np.ndarray, DisplayRange | None]:
    """Grey image as displayed, and its display range (integer images) or ``None`` (float images)."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    with reading_errors(path, "cannot read image"):  # unreadable or unsupported file: name it
        if path.suffix.lower() in _DICOM_SUFFIXES:
            img, shown = _read_dicom_view(path)
        elif path.suffix.lower() in _IMAGE_PLUGINS:
            img, shown = _read_plain_image(path)
        else:
            raise InputError(f"{path}: unsupported image type {path.suffix!r} "
                             f"(use {', '.join(sorted(_IMAGE_PLUGINS))} or DICOM)")
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        img = img[..., :3].mean(axis=-1)
    if img.ndim != 2 or img.size == 0:  # a damaged header may declare no rows or columns
        raise InputError(f"{path}: expected a non-empty 2D grey or colour image, got shape {img.shape}")
    if not np.isfinite(img).all():
        raise InputError(f"{path}: image holds non-finite values")
    return img, shown


def _to_unit(img: np.ndarray, shown: DisplayRange | None) -> np.ndarray:
    """Map an image from its display range to ``[0, 1]`` (unchanged without a range)."""
    if shown is None or shown[1] <= shown[0]:
        return img
    lo, hi = shown
    return ((img - lo) / (hi - lo)).astype(np.float32)


def read_images(paths: Sequence[str | os.PathLike], *, normalize: bool = False) -> np.ndarray:
    """Read 2D angiograms; all must have the same size.

    Parameters
    ----------
    paths : sequence of path-like
        PNG, TIFF or single-frame DICOM files, one per view.
    normalize : bool
        Map integer images to ``[0, 1]`` by their display range (PNG/TIFF: ``0`` to
        ``2**bits - 1``; DICOM: the stored range through the modality and VOI LUTs, see
        :mod:`angio.io.pixels`); float images are left as stored.

    Returns
    -------
    ndarray, shape (n_views, H, W), float32
        Images as displayed (first row at the top), as read or normalized.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no images given")
    read = [_read_one(p) for p in paths]
    images = [_to_unit(img, shown) if normalize else img for img, shown in read]
    shapes = {p.name: im.shape for p, im in zip(paths, images)}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{name} {h}x{w}" for name, (h, w) in shapes.items())
        raise InputError(f"images differ in size ({listing}); give views of the same detector size")
    return np.stack(images)


def is_xa(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a DICOM file that carries X-ray positioner geometry (an XA view)."""
    path = Path(path)
    if path.suffix.lower() not in _DICOM_SUFFIXES or not path.is_file():
        return False
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return "PositionerPrimaryAngle" in ds or str(ds.get("Modality", "")) == "XA"
    except Exception:  # not DICOM, or damaged: read_images or read_xa will say so
        return False
