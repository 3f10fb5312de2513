"""Build small synthetic DICOM CT series and single images with pydicom, for tests.

Import from a test module as ``from dicom_factory import write_ct_series`` (pytest puts the
``tests`` folder on ``sys.path``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

__all__ = ["ct_slice", "new_instance", "write_ct_series", "write_view"]


def new_instance(sop_class: str) -> Dataset:
    """An empty dataset of SOP class ``sop_class`` with a new instance UID, explicit VR little endian."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    return ds


def ct_slice(
    pixels: np.ndarray,
    *,
    position: Sequence[float],
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (0.5, 0.5),
    slope: float = 1.0,
    intercept: float = -1024.0,
    series_uid: str,
    study_uid: str,
    instance_number: int = 1,
    description: str = "CTA head",
    extra: dict | None = None,
) -> Dataset:
    """One CT Image Storage slice holding ``pixels`` (int16 ``(rows, columns)``) as stored values.

    ``extra`` maps DICOM keywords to values set last (e.g. planted patient data).
    """
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Modality = "CT"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesDescription = description
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [float(v) for v in position]
    ds.ImageOrientationPatient = [float(v) for v in orientation]
    ds.PixelSpacing = [float(v) for v in pixel_spacing]
    ds.SliceThickness = 1.0
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.set_pixel_data(np.asarray(pixels, dtype=np.int16), "MONOCHROME2", 16,
                      generate_instance_uid=False)
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    return ds


def write_ct_series(
    folder: Path,
    stored: np.ndarray,
    *,
    dz: float = 1.0,
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    pixel_spacing: Sequence[float] = (0.5, 0.5),
    slopes: Sequence[float] | None = None,
    intercepts: Sequence[float] | None = None,
    series_uid: str | None = None,
    description: str = "CTA head",
    shuffle_seed: int | None = 0,
    extra: dict | None = None,
) -> list[Path]:
    """Write ``stored`` (int16 ``(Z, Y, X)``) as one file per slice; return paths in ``z`` order.

    Slice ``k`` sits at ``origin + k * dz * normal``. With ``shuffle_seed`` set, file names and
    ``InstanceNumber`` are shuffled independently of the slice order.
    """
    folder.mkdir(parents=True, exist_ok=True)
    n = len(stored)
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    rng = np.random.default_rng(shuffle_seed)
    names = rng.permutation(n) if shuffle_seed is not None else np.arange(n)
    instances = rng.permutation(n) + 1 if shuffle_seed is not None else np.arange(n) + 1
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    paths = []
    for k in range(n):
        ds = ct_slice(
            stored[k],
            position=np.asarray(origin, float) + k * dz * normal,
            orientation=orientation,
            pixel_spacing=pixel_spacing,
            slope=1.0 if slopes is None else slopes[k],
            intercept=-1024.0 if intercepts is None else intercepts[k],
            series_uid=series_uid,
            study_uid=study_uid,
            instance_number=int(instances[k]),
            description=description,
            extra=extra,
        )
        path = folder / f"IM{names[k]:05d}_{series_uid[-6:]}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_view(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int = 12,
    extra: dict | None = None,
) -> Path:
    """Write ``pixels`` (uint16 ``(rows, columns)``) as a single-frame Secondary Capture image.

    ``extra`` maps DICOM keywords to values set last (a rescale, a window, or a header that
    lies about the size: ``Rows``, ``Columns``, ``NumberOfFrames``).
    """
    pixels = np.asarray(pixels, dtype=np.uint16)
    ds = new_instance(SecondaryCaptureImageStorage)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.PixelData = pixels.tobytes()
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path
