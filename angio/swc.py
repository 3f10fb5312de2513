"""Read vessel centerline trees in the SWC format (id, type, x, y, z, radius, parent).

SWC files hold one point per line: ``id type x y z radius parent`` separated by white space,
with ``parent = -1`` for a root. Coordinates and radii are in millimetres for the BraVa trees
this project ships (:mod:`angio.data`).

The reader is strict about content and tolerant about layout: CRLF or LF line endings,
blank lines and ``#`` comments are accepted; a last line cut short by one column (BraVa's
``BH0027``) is dropped with a warning; zero radii are kept (the voxelizer applies a floor).
Anything else malformed raises :class:`angio.InputError` naming the file and the line.
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from angio.errors import InputError

__all__ = ["Tree", "read_swc", "parse_swc"]


@dataclass(frozen=True)
class Tree:
    """A vessel tree: points with radii joined to their parent point.

    Parameters
    ----------
    points : ndarray, shape (n, 3), float64
        Point coordinates in mm. Axis order is given by ``frame``.
    radius : ndarray, shape (n,), float64
        Vessel radius at each point in mm (>= 0).
    parent : ndarray, shape (n,), int64
        Row index of each point's parent, ``-1`` for roots.
    frame : str
        ``"swc-xyz"``: the file's (x, y, z) columns as read; ``"zyx"``: the package's volume
        frame, ``(z, y, x)`` with z inferior -> superior (see :mod:`angio`).
    name : str
        Where the tree came from (file name or case id), used in messages.
    """

    points: np.ndarray
    radius: np.ndarray
    parent: np.ndarray
    frame: str = "swc-xyz"
    name: str = ""
    ids: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.points)
        if self.points.shape != (n, 3) or self.radius.shape != (n,) or self.parent.shape != (n,):
            raise ValueError(
                f"tree {self.name!r}: inconsistent shapes points {self.points.shape}, "
                f"radius {self.radius.shape}, parent {self.parent.shape}"
            )

    def __len__(self) -> int:
        return len(self.points)

    @property
    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Child and parent row indices of every edge, each of shape ``(n_edges,)``."""
        child = np.flatnonzero(self.parent >= 0)
        return child, self.parent[child]

    @property
    def length_mm(self) -> float:
        """Total centerline length in mm."""
        child, par = self.segments
        return float(np.linalg.norm(self.points[child] - self.points[par], axis=1).sum())

    def bounds(self, *, with_radius: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned bounding box ``(lo, hi)`` in mm, each of shape ``(3,)``."""
        pad = self.radius[:, None] if with_radius else 0.0
        return (self.points - pad).min(axis=0), (self.points + pad).max(axis=0)

    def with_points(self, points: np.ndarray, radius: np.ndarray | None = None, **kw) -> Tree:
        """A copy with new point coordinates (and optionally radii or other fields)."""
        return replace(self, points=np.asarray(points, dtype=np.float64),
                       radius=self.radius if radius is None else np.asarray(radius, np.float64), **kw)


MAX_COORDINATE_MM = 1e5
"""Largest accepted coordinate magnitude in an SWC file (mm): far beyond any anatomy."""
MAX_RADIUS_MM = 1e3
"""Largest accepted radius in an SWC file (mm)."""


def read_swc(path: str | os.PathLike) -> Tree:
    """Read an SWC file.

    Parameters
    ----------
    path : str or path-like
        The ``.swc`` file.

    Returns
    -------
    Tree
        Points in the file's ``(x, y, z)`` column order (``frame="swc-xyz"``), in the file's
        units (mm for BraVa).

    Raises
    ------
    angio.InputError
        If the file cannot be read or a line is malformed (message names file and line).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read SWC file ({exc.strerror or exc})") from exc
    return parse_swc(data, source=str(path))


def parse_swc(data: bytes | str, *, source: str = "<swc>") -> Tree:
    """Parse SWC text; see :func:`read_swc`. ``source`` names the origin in error messages."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{source}: not a text SWC file ({exc})") from exc
    rows: list[tuple[int, list[str]]] = []
    for lineno, line in enumerate(io.StringIO(data, newline=None), start=1):
        text = line.split("#", 1)[0].strip()
        if text:
            rows.append((lineno, text.split()))
    if not rows:
        raise InputError(f"{source}: no points (empty SWC file)")
    if len(rows[-1][1]) == 6 and all(len(f) == 7 for _, f in rows[:-1]):
        lineno = rows.pop()[0]
        warnings.warn(f"{source}:{lineno}: last line is truncated (no parent column); point dropped",
                      stacklevel=3)
        if not rows:
            raise InputError(f"{source}: no complete points")
    ids = np.empty(len(rows), np.int64)
    parent_ids = np.empty(len(rows), np.int64)
    values = np.empty((len(rows), 4), np.float64)
    for k, (lineno, fields) in enumerate(rows):
        if len(fields) != 7:
            raise InputError(f"{source}:{lineno}: expected 7 columns "
                             f"(id type x y z radius parent), found {len(fields)}")
        try:
            ids[k] = int(fields[0])
            int(fields[1])
            values[k] = [float(v) for v in fields[2:6]]
            parent_ids[k] = int(fields[6])
        except ValueError as exc:
            raise InputError(f"{source}:{lineno}: not a number ({exc})") from None
        except OverflowError:
            raise InputError(f"{source}:{lineno}: point or parent id out of range "
                             f"(ids must fit in 64 bits)") from None
        if not np.isfinite(values[k]).all():
            raise InputError(f"{source}:{lineno}: non-finite coordinate or radius")
        if values[k, 3] < 0:
            raise InputError(f"{source}:{lineno}: negative radius {values[k, 3]}")
        if np.abs(values[k, :3]).max() > MAX_COORDINATE_MM or values[k, 3] > MAX_RADIUS_MM:
            raise InputError(f"{source}:{lineno}: absurd coordinate or radius {values[k].tolist()} "
                             f"(limits: |x|, |y|, |z| <= {MAX_COORDINATE_MM:g} mm, "
                             f"radius <= {MAX_RADIUS_MM:g} mm)")
    return Tree(points=values[:, :3].copy(), radius=values[:, 3].copy(),
                parent=_parent_rows(ids, parent_ids, rows, source), frame="swc-xyz",
                name=Path(source).name, ids=ids)


def _parent_rows(ids: np.ndarray, parent_ids: np.ndarray, rows: list, source: str) -> np.ndarray:
    """Map SWC parent ids to row indices, checking uniqueness and references."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    if dup.size:
        k = order[dup[0] + 1]
        raise InputError(f"{source}:{rows[k][0]}: duplicate point id {ids[k]}")
    pos = np.searchsorted(sorted_ids, parent_ids).clip(0, len(ids) - 1)
    found = sorted_ids[pos] == parent_ids
    is_root = parent_ids == -1
    bad = np.flatnonzero(~found & ~is_root)
    if bad.size:
        k = bad[0]
        raise InputError(f"{source}:{rows[k][0]}: parent id {parent_ids[k]} does not exist")
    if not is_root.any():
        raise InputError(f"{source}: no root point (parent -1)")
    selfref = np.flatnonzero(parent_ids == ids)
    if selfref.size:
        raise InputError(f"{source}:{rows[selfref[0]][0]}: point {ids[selfref[0]]} is its own parent")
    parent = np.where(is_root, -1, order[pos]).astype(np.int64)
    cyclic = _cyclic_rows(parent)
    if cyclic.size:
        k = cyclic[0]
        raise InputError(f"{source}:{rows[k][0]}: point {ids[k]} never reaches a root "
                         f"(its parent chain is a cycle)")
    return parent


def _cyclic_rows(parent: np.ndarray) -> np.ndarray:
    """Rows whose parent chain never reaches a root (pointer jumping, O(n log n))."""
    n = len(parent)
    rows = np.arange(n)
    up = np.where(parent < 0, rows, parent)  # roots point to themselves
    for _ in range(max(1, int(np.ceil(np.log2(max(n, 2))))) + 1):
        up = up[up]
    return np.flatnonzero(parent[up] >= 0)
