"""Reading and writing the files of the field: DICOM series, XA files and 2D views, one module each.

* :func:`read_dicom_series` (:mod:`angio.io.reading`) reads one single-frame DICOM series
  (e.g. a CTA) from a folder into a :class:`~angio.volume.Volume` in modality units
  (Hounsfield units for CT), with slices ordered by their position along the slice normal
  and the geometry taken from the headers.
* :func:`write_dicom_series` (:mod:`angio.io.writing`) writes a :class:`~angio.volume.Volume`
  as a new, anonymous CT Image Storage series (one file per ``z`` slice), atomically.
* :func:`resample_to_cube` (:mod:`angio.io.resampling`) resamples a volume to isotropic
  voxels in an ``(n, n, n)`` cube (the paper resizes its CTAs to ``384^3``), keeping voxel
  positions physically correct.

* :func:`read_xa` (:mod:`angio.io.xa`) reads one plane of an X-ray angiography file (single
  or multi-frame): the frame of peak arterial filling (or a named one), optionally
  log-subtracted, and the C-arm geometry from its positioner tags.
* :func:`read_images` (:mod:`angio.io.views`) reads 2D angiograms (PNG, TIFF, single-frame
  DICOM) as displayed, one per view; :func:`is_xa` tells an XA file from a plain view.
* :func:`~angio.io.pixels.displayed_pixels` (:mod:`angio.io.pixels`) decodes one DICOM image
  as displayed (modality LUT, VOI LUT, MONOCHROME1 inversion), refusing an absurd declared
  size before decoding and compressed data without a decoder.

Geometry follows DICOM's patient coordinate system (LPS, mm): ``Volume.origin`` is the
``ImagePositionPatient`` of slice ``z = 0``; the columns of ``Volume.direction`` are the row
cosine (array ``x``), the column cosine (array ``y``) and the slice normal (array ``z``).

Privacy (:mod:`angio.io.deid`): neither function copies patient-identifying data. The reader
fills ``Volume.meta`` only from :data:`META_FIELDS`; the writer copies only
:data:`WRITTEN_META_FIELDS` from ``Volume.meta``, writes ``PatientName = "ANONYMOUS"``,
``PatientID = "ANGIO3D"``, fresh UIDs (the FrameOfReferenceUID of the source images only
when the caller passes it, so the series overlays them) and empty values for the other
mandatory patient and study attributes.
"""

from __future__ import annotations

from angio.io.deid import META_FIELDS, WRITTEN_META_FIELDS
from angio.io.reading import read_dicom_series
from angio.io.resampling import resample_to_cube
from angio.io.views import is_xa, read_images
from angio.io.writing import write_dicom_series
from angio.io.xa import XAView, pair_planes, read_xa

__all__ = [
    "META_FIELDS",
    "WRITTEN_META_FIELDS",
    "read_dicom_series",
    "resample_to_cube",
    "write_dicom_series",
    "read_xa",
    "pair_planes",
    "XAView",
    "read_images",
    "is_xa",
]
