"""Seeded geometric augmentation of vessel trees, applied before voxelization.

Rotating a 384^3 volume is slow (the paper could not afford augmentation); transforming the
few thousand centerline points of a tree and voxelizing afterwards costs nothing extra, and
gives exact, alias-free volumes for every draw.

As in TorchIO, a random transform (:class:`RandomTreeTransform`) only *samples* parameters
from a seeded generator; the deterministic :class:`TreeTransform` it returns applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from angio.swc import Tree

__all__ = ["TreeTransform", "RandomTreeTransform", "rotation_matrix"]


def rotation_matrix(angles_deg: tuple[float, float, float]) -> np.ndarray:
    """Proper rotation about the volume axes ``(z, y, x)``, applied z first, then y, then x.

    Parameters
    ----------
    angles_deg : tuple of 3 floats
        Rotation angles about the z, y and x axes, in degrees (right-handed).

    Returns
    -------
    ndarray, shape (3, 3)
        Matrix ``R`` acting on ``(z, y, x)`` column vectors; ``det(R) = +1``.
    """
    az, ay, ax = np.deg2rad(angles_deg)

    def plane(i: int, j: int, a: float) -> np.ndarray:
        m = np.eye(3)
        m[i, i] = m[j, j] = np.cos(a)
        m[i, j], m[j, i] = -np.sin(a), np.sin(a)
        return m

    # In (z, y, x) order: about z rotates the (x, y) plane, about y the (z, x), about x the (y, z).
    return plane(1, 0, ax) @ plane(0, 2, ay) @ plane(2, 1, az)


@dataclass(frozen=True)
class TreeTransform:
    """A deterministic similarity transform about the tree's bounding-box centre.

    ``p' = centre + scale * R @ F @ (p - centre)`` with ``F`` mirroring the lateral ``x`` axis
    when ``flip`` is true; radii are multiplied by ``scale``.

    Parameters
    ----------
    rotation_deg : tuple of 3 floats
        Angles about ``(z, y, x)`` in degrees, see :func:`rotation_matrix`.
    flip : bool
        Mirror left-right (the ``x`` axis).
    scale : float
        Isotropic scale factor (> 0).
    """

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    flip: bool = False
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    @property
    def is_identity(self) -> bool:
        """Whether the transform leaves every tree unchanged."""
        return self.rotation_deg == (0.0, 0.0, 0.0) and not self.flip and self.scale == 1.0

    def matrix(self) -> np.ndarray:
        """The linear part ``scale * R @ F``, shape ``(3, 3)``."""
        f = np.diag([1.0, 1.0, -1.0 if self.flip else 1.0])
        return self.scale * rotation_matrix(self.rotation_deg) @ f

    def __call__(self, tree: Tree) -> Tree:
        """The transformed copy of ``tree`` (in the volume frame ``zyx``)."""
        if tree.frame != "zyx":
            raise ValueError(f"tree {tree.name!r}: augment in the volume frame (zyx), got {tree.frame!r}")
        lo, hi = tree.bounds()
        centre = (lo + hi) / 2
        points = (tree.points - centre) @ self.matrix().T + centre
        return tree.with_points(points, tree.radius * self.scale)


@dataclass(frozen=True)
class RandomTreeTransform:
    """Sampler of :class:`TreeTransform` parameters.

    Parameters
    ----------
    max_rotation_deg : tuple of 3 floats
        Angles about ``(z, y, x)`` are drawn uniformly in ``[-max, max]`` degrees. The default
        turns the head up to 15 degrees about the C-arm axis ``z`` and tilts it up to 10
        degrees about the other two, like the spread of patient positioning on the table:
        the views stay roughly frontal and lateral, as in the clinic and the test set.
    flip_probability : float
        Probability of a left-right mirror.
    scale_range : tuple of 2 floats
        Isotropic scale drawn uniformly in this range (head size varies about +-10%).
    """

    max_rotation_deg: tuple[float, float, float] = (15.0, 10.0, 10.0)
    flip_probability: float = 0.5
    scale_range: tuple[float, float] = (0.9, 1.1)

    def sample(self, rng: np.random.Generator | int | None) -> TreeTransform:
        """Draw one transform from ``rng`` (a Generator or a seed)."""
        rng = np.random.default_rng(rng)
        limits = np.asarray(self.max_rotation_deg, dtype=float)
        angles = rng.uniform(-limits, limits)
        flip = bool(rng.random() < self.flip_probability)
        scale = float(rng.uniform(*self.scale_range))
        return TreeTransform(tuple(float(a) for a in angles), flip, scale)
