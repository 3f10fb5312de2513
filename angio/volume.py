"""The :class:`Volume` container: a 3D array with its voxel spacing and position in mm."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Volume"]


@dataclass
class Volume:
    """A 3D image with physical geometry.

    Parameters
    ----------
    array : ndarray, shape (Z, Y, X), float32
        Voxel values indexed ``[z, y, x]`` (for CT: Hounsfield units).
    spacing : tuple of 3 floats
        Voxel size ``(dz, dy, dx)`` in mm.
    origin : tuple of 3 floats, optional
        Position of voxel ``[0, 0, 0]`` in patient coordinates, ``(x, y, z)`` order as DICOM
        ``ImagePositionPatient``, in mm. Defaults to zeros.
    direction : ndarray, shape (3, 3), optional
        Columns are the unit vectors (patient x, y, z) of the array's ``x``, ``y`` and ``z``
        index axes, as DICOM ``ImageOrientationPatient`` plus the slice normal. Identity by
        default.
    meta : dict, optional
        Non-identifying descriptive fields (e.g. ``Modality``, ``BodyPartExamined``).
        Never holds patient-identifying information.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise ValueError(f"Volume.array must be 3D [z, y, x], got shape {self.array.shape}")
        self.spacing = tuple(float(s) for s in self.spacing)  # type: ignore[assignment]
        if len(self.spacing) != 3 or min(self.spacing) <= 0:
            raise ValueError(f"Volume.spacing must be 3 positive mm values, got {self.spacing}")
        self.origin = tuple(float(o) for o in self.origin)  # type: ignore[assignment]
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(Z, Y, X)``."""
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def extent_mm(self) -> tuple[float, float, float]:
        """Physical size ``(Z, Y, X)`` in mm (number of voxels times spacing)."""
        return tuple(n * s for n, s in zip(self.array.shape, self.spacing))  # type: ignore[return-value]
