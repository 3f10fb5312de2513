"""The bundled BraVa cerebral arterial trees and the patient-level train/test split.

The package carries 50 real human cerebral arterial trees (centerline + radius in mm) from
the BraVa database (Wright et al., NeuroImage 2013; http://cng.gmu.edu/brava), compressed in
``angio/_data/brava/brava_swc.tar.xz`` with their attribution in ``SOURCE.md`` beside it.

Orientation. In the BraVa SWC files the circle of Willis sits at the low end of the file's
``y`` axis and the arteries rise towards high ``y`` (so ``y`` is inferior -> superior); the
anterior cerebral arteries lie at low ``z`` and the posterior ones at high ``z`` (``z`` is
anterior -> posterior); ``x`` is lateral. :func:`load_tree` turns this into the package's
volume frame ``(z, y, x)`` = (inferior -> superior, posterior -> anterior, lateral) with the
proper rotation ``z_vol = y_swc``, ``y_vol = -z_swc``, ``x_vol = x_swc`` (determinant +1, so
no mirror image). Which side of ``x`` is the patient's left was not verified in the source.
"""

from __future__ import annotations

import csv
import hashlib
import tarfile
import warnings
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

import numpy as np

from angio.errors import InputError
from angio.swc import Tree, parse_swc

__all__ = ["list_cases", "load_tree", "source_text", "swc_bytes", "Split", "split_cases",
           "to_volume_frame"]

_PKG = "angio._data.brava"
_ARCHIVE = "brava_swc.tar.xz"
# Rows: volume (z, y, x) axes; columns: SWC (x, y, z) columns. Read in (x, y, z) order on
# both sides (rows reversed) it is a rotation by +90 degrees about x (determinant +1).
_SWC_TO_VOLUME = np.array([[0.0, 1.0, 0.0],
                           [0.0, 0.0, -1.0],
                           [1.0, 0.0, 0.0]])


@lru_cache(maxsize=1)
def _manifest() -> dict[str, dict[str, str]]:
    with resources.files(_PKG).joinpath("manifest.csv").open("r", encoding="utf-8") as fh:
        return {row["case_id"]: row for row in csv.DictReader(fh)}


@lru_cache(maxsize=1)
def _archive_members() -> dict[str, bytes]:
    """All SWC files of the bundled archive, checked against the manifest's sha256."""
    out: dict[str, bytes] = {}
    with resources.as_file(resources.files(_PKG).joinpath(_ARCHIVE)) as path:
        with tarfile.open(path, "r:xz") as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.endswith(".swc"):
                    out[member.name] = tar.extractfile(member).read()  # type: ignore[union-attr]
    for case_id, row in _manifest().items():
        data = out.get(row["swc"])
        if data is None:
            raise InputError(f"{_ARCHIVE}: case {case_id} ({row['swc']}) is missing")
        if hashlib.sha256(data).hexdigest() != row["swc_sha256"]:
            raise InputError(f"{_ARCHIVE}: {row['swc']} does not match its sha256 in manifest.csv")
    return out


def list_cases() -> list[str]:
    """Ids of the bundled BraVa cases, sorted (e.g. ``['BG0002', 'BG001', ...]``)."""
    return sorted(_manifest())


def source_text() -> str:
    """The data's origin, terms and citation (``SOURCE.md``)."""
    return resources.files(_PKG).joinpath("SOURCE.md").read_text(encoding="utf-8")


def swc_bytes(case_id: str) -> bytes:
    """The original SWC file of ``case_id`` as stored (CRLF line endings kept)."""
    row = _manifest().get(case_id)
    if row is None:
        raise KeyError(f"unknown case {case_id!r}; available: {', '.join(list_cases())}")
    return _archive_members()[row["swc"]]


def to_volume_frame(tree: Tree) -> Tree:
    """Rotate a BraVa tree from SWC ``(x, y, z)`` columns to the volume frame ``(z, y, x)``."""
    if tree.frame == "zyx":
        return tree
    if tree.frame != "swc-xyz":
        raise ValueError(f"tree {tree.name!r}: unknown frame {tree.frame!r}")
    return tree.with_points(tree.points @ _SWC_TO_VOLUME.T, frame="zyx")


def load_tree(case_id: str) -> Tree:
    """Load a bundled case in the volume frame ``(z, y, x)``, coordinates in mm.

    Parameters
    ----------
    case_id : str
        One of :func:`list_cases`.

    Returns
    -------
    Tree
        ``frame="zyx"``, ``name=case_id``.
    """
    source = f"{_ARCHIVE}:{_manifest()[case_id]['swc']}"
    with warnings.catch_warnings():
        # BH0027's truncated last line is a documented quirk of the source (SOURCE.md).
        warnings.filterwarnings("ignore", message=".*last line is truncated")
        tree = parse_swc(swc_bytes(case_id), source=source)
    return replace(to_volume_frame(tree), name=case_id)


@dataclass(frozen=True)
class Split:
    """A patient-level split: no case is on both sides."""

    train: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        both = set(self.train) & set(self.test)
        if both:
            raise ValueError(f"cases on both sides of the split: {sorted(both)}")


def split_cases(cases: list[str] | None = None, *, n_test: int = 5, seed: int = 0) -> Split:
    """Split cases into train and test, deterministically for a given seed.

    Parameters
    ----------
    cases : list of str, optional
        Case ids; defaults to all bundled cases.
    n_test : int
        Number of held-out test cases (the paper holds out 5 of 49 patients).
    seed : int
        Seed of the permutation; the same seed and cases give the same split.

    Returns
    -------
    Split
        ``train`` and ``test`` tuples, each sorted.
    """
    cases = sorted(list_cases() if cases is None else cases)
    if len(set(cases)) != len(cases):
        raise ValueError("duplicate case ids in the list to split")
    if not 0 < n_test < len(cases):
        raise ValueError(f"n_test must be between 1 and {len(cases) - 1}, got {n_test}")
    order = np.random.default_rng(seed).permutation(len(cases))
    test = sorted(cases[i] for i in order[:n_test])
    train = sorted(cases[i] for i in order[n_test:])
    return Split(train=tuple(train), test=tuple(test))
