"""A continuity prior at test time: keep what is connected to confident vessel.

Two views leave *ghosts*: where the smears of two vessels cross at the wrong depth the
network places vessel that is not there. Ghosts tend to be short, isolated and less
confident than the vessels they shadow; real vessels are long and connected. This module
turns a probability volume into a mask that favours connected vessels, with two classical
steps whose parameters are chosen on the validation trees (never on the test trees):

- :func:`hysteresis`: a voxel is vessel when its probability reaches ``low`` and it is
  26-connected, through such voxels, to a voxel that reaches ``high`` (Canny's rule in 3D;
  ``low == high`` is a plain threshold);
- :func:`drop_small`: remove 26-connected pieces of fewer than ``min_voxels`` voxels;
- :func:`refine`: both, in that order; :func:`sweep` scores a grid of settings against
  exact masks and :func:`best_setting` picks the one with the highest mean Dice.

Conventions: volumes ``V[z, y, x]`` of shape ``(Z, Y, X)``; probabilities in ``[0, 1]``.
Connectivity is the full 26-neighbourhood, as in :func:`angio.metrics.connectivity`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from angio.metrics import cldice, dice

__all__ = ["Setting", "hysteresis", "drop_small", "refine", "sweep", "best_setting", "grid"]

_FULL = np.ones((3, 3, 3), dtype=bool)


@dataclass(frozen=True)
class Setting:
    """One refinement: hysteresis thresholds and the smallest piece kept.

    Parameters
    ----------
    high : float
        Probability a piece must reach somewhere to be kept, in ``(0, 1]``.
    low : float
        Probability every voxel of a piece reaches, in ``(0, high]``.
    min_voxels : int
        Pieces with fewer voxels are removed (0 keeps all).
    """

    high: float = 0.5
    low: float = 0.5
    min_voxels: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.low <= self.high <= 1.0:
            raise ValueError(f"need 0 < low <= high <= 1, got low={self.low!r}, high={self.high!r}")
        if self.min_voxels < 0:
            raise ValueError(f"min_voxels must be >= 0, got {self.min_voxels!r}")

    @property
    def label(self) -> str:
        """``"high 0.6, low 0.3, pieces >= 125 voxels"`` (or ``"threshold 0.5"``)."""
        head = f"threshold {self.high:g}" if self.low == self.high else f"high {self.high:g}, low {self.low:g}"
        return head + (f", pieces >= {self.min_voxels} voxels" if self.min_voxels else "")

    def to_dict(self) -> dict[str, Any]:
        """The setting as JSON data."""
        return asdict(self)


def _prob(prob: Any) -> np.ndarray:
    p = np.asarray(prob)
    if p.ndim != 3:
        raise ValueError(f"prob must be a 3D volume (Z, Y, X), got shape {p.shape}")
    return p


def hysteresis(prob: Any, high: float, low: float) -> np.ndarray:
    """Voxels at or above ``low`` that are 26-connected to a voxel at or above ``high``.

    Parameters
    ----------
    prob : array-like, shape (Z, Y, X)
        Vessel probabilities.
    high, low : float
        Thresholds, ``low <= high``.

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
    """
    p = _prob(prob)
    if low > high:
        raise ValueError(f"low ({low}) must not exceed high ({high})")
    weak = p >= low
    if low == high:
        return weak
    labels, n = ndimage.label(weak, structure=_FULL)
    if n == 0:
        return weak
    keep = np.zeros(n + 1, dtype=bool)
    keep[np.unique(labels[p >= high])] = True
    keep[0] = False
    return keep[labels]


def drop_small(mask: Any, min_voxels: int) -> np.ndarray:
    """``mask`` without its 26-connected pieces of fewer than ``min_voxels`` voxels.

    Parameters
    ----------
    mask : array-like of bool, shape (Z, Y, X)
    min_voxels : int
        Smallest piece kept (0 or 1 keep everything).

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 3:
        raise ValueError(f"mask must be a 3D volume (Z, Y, X), got shape {m.shape}")
    if min_voxels <= 1:
        return m.copy()
    labels, n = ndimage.label(m, structure=_FULL)
    if n == 0:
        return m.copy()
    sizes = np.bincount(labels.ravel())
    keep = sizes >= min_voxels
    keep[0] = False
    return keep[labels]


def refine(prob: Any, setting: Setting = Setting()) -> np.ndarray:
    """The vessel mask of ``prob`` under ``setting``: :func:`hysteresis`, then :func:`drop_small`.

    The default setting is the plain threshold at 0.5 of :data:`angio.metrics.THRESHOLD`.

    Returns
    -------
    ndarray of bool, shape (Z, Y, X)
    """
    return drop_small(hysteresis(prob, setting.high, setting.low), setting.min_voxels)


def grid(highs: Iterable[float], lows: Iterable[float], min_voxels: Iterable[int]) -> list[Setting]:
    """Every valid :class:`Setting` of the three ranges (pairs with ``low > high`` left out)."""
    lows, min_voxels = list(lows), list(min_voxels)
    return [Setting(h, lo, m) for h in highs for lo in lows if lo <= h for m in min_voxels]


def sweep(probs: Mapping[str, Any], masks: Mapping[str, Any], settings: Sequence[Setting], *,
          with_cldice: bool = False) -> list[dict[str, Any]]:
    """Score each setting on each case against its exact mask.

    Parameters
    ----------
    probs : mapping of str to array, shape (Z, Y, X)
        Vessel probabilities per case.
    masks : mapping of str to array of bool, shape (Z, Y, X)
        The exact mask of each case (same keys).
    settings : sequence of Setting
    with_cldice : bool
        Also compute clDice (3D thinning: seconds per case and setting).

    Returns
    -------
    list of dict
        One row per (setting, case): the setting's fields, ``case``, ``dice`` (and ``cldice``).
    """
    missing = sorted(set(probs) ^ set(masks))
    if missing:
        raise ValueError(f"cases without both a prediction and a mask: {', '.join(missing)}")
    rows = []
    for s in settings:
        for case in probs:
            mask = refine(probs[case], s).astype(np.float32)
            row = {**s.to_dict(), "case": case, "dice": dice(mask, masks[case])}
            if with_cldice:
                row["cldice"] = cldice(mask, masks[case])
            rows.append(row)
    return rows


def best_setting(rows: Sequence[Mapping[str, Any]]) -> tuple[Setting, float]:
    """The setting with the highest mean Dice over its cases in ``rows`` (from :func:`sweep`).

    Ties go to the earlier setting in ``rows``. Returns the setting and its mean Dice.
    """
    means: dict[Setting, list[float]] = {}
    for r in rows:
        means.setdefault(Setting(r["high"], r["low"], r["min_voxels"]), []).append(float(r["dice"]))
    if not means:
        raise ValueError("no rows to choose from")
    best = max(means, key=lambda s: np.mean(means[s]))
    return best, float(np.mean(means[best]))
