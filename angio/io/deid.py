"""De-identification: which header fields cross the boundary between a DICOM file and angio.

Neither the reader nor the writer copies patient-identifying data. The reader fills
``Volume.meta`` only from :data:`META_FIELDS` (:func:`meta_from`); the writer copies only
:data:`WRITTEN_META_FIELDS` from ``Volume.meta`` (:func:`copy_written_meta`) and writes an
anonymous patient and study (:func:`set_anonymous_identity`): ``PatientName = "ANONYMOUS"``,
``PatientID = "ANGIO3D"`` and empty values for the other mandatory patient and study
attributes (the writer adds fresh UIDs).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.valuerep import format_number_as_ds

__all__ = ["META_FIELDS", "WRITTEN_META_FIELDS", "copy_written_meta", "meta_from", "set_anonymous_identity"]

#: Non-identifying header fields that :func:`~angio.io.read_dicom_series` copies into ``Volume.meta``.
META_FIELDS: tuple[str, ...] = (
    "Modality",
    "BodyPartExamined",
    "PatientPosition",
    "ImageType",
    "Manufacturer",
    "ManufacturerModelName",
    "ConvolutionKernel",
    "KVP",
    "SliceThickness",
)
# Not copied: free-text descriptors such as SeriesDescription and ContrastBolusAgent, which the
# DICOM de-identification profile (PS3.15 Annex E, Clean Descriptors) removes or cleans, as
# operators type names, dates and accession numbers into them.

#: Fields of ``Volume.meta`` that :func:`~angio.io.write_dicom_series` copies into its output (all else in
#: ``meta`` is ignored; ``Modality`` and ``SeriesDescription`` come from its arguments).
WRITTEN_META_FIELDS: tuple[str, ...] = (
    "BodyPartExamined",
    "PatientPosition",
    "ConvolutionKernel",
    "KVP",
)


def meta_from(header: Dataset) -> dict:
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


def set_anonymous_identity(ds: Dataset) -> None:
    """Make the patient and study of ``ds`` anonymous (PS3.15 action "Z" for type 2 attributes)."""
    ds.PatientName = "ANONYMOUS"
    ds.PatientID = "ANGIO3D"
    # type 2 attributes: present but empty
    for keyword in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "AccessionNumber", "StudyID", "Manufacturer",
                    "PositionReferenceIndicator", "AcquisitionNumber"):
        setattr(ds, keyword, "")
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "angio3d: new UIDs, whitelisted non-identifying fields only"
    ds.BurnedInAnnotation = "NO"


def copy_written_meta(ds: Dataset, meta: Mapping[str, object]) -> None:
    """Copy the :data:`WRITTEN_META_FIELDS` of ``meta`` (a ``Volume.meta``) into ``ds``."""
    for key in WRITTEN_META_FIELDS:
        _copy_meta_field(ds, key, meta.get(key))


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
