"""angio: 3D cerebral vessel reconstruction from a few 2D angiograms.

Conventions used throughout the package
---------------------------------------
Volumes
    ``numpy.ndarray`` or ``torch.Tensor`` indexed ``V[z, y, x]``, shape ``(N, N, N)`` once
    cubed, ``float32``. ``z`` is the patient's long (inferior -> superior) axis, the axis a
    C-arm rotates about; ``y`` is posterior -> anterior; ``x`` is the patient's right -> left.
    Voxel spacing is given as ``(dz, dy, dx)`` in millimetres.
Rotation
    Views rotate about the ``z`` axis through the volume centre ``c = (N - 1) / 2``.
    Angles are in degrees. See :mod:`angio.projection` for the exact sampling contract.
Projections
    Shape ``(n_views, N, N)``, image ``P[t, z, j]`` (``j`` across the detector).
Intensities
    Synthetic volumes are in modality units (see :mod:`angio.phantom`); network inputs and
    outputs are in ``[0, 1]``; masks are ``bool``.
Lengths
    Millimetres for anatomy (SWC trees, spacing, field of view); voxels for array geometry.
"""

from __future__ import annotations

from angio.errors import InputError

__all__ = ["InputError", "__version__"]
__version__ = "0.1.0"
