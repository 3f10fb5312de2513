"""Chapter 9's reading of the robustness records: the acquisitions, what they cost, and the remedies.

The conditions of the robustness table and the C-arm they model (:func:`conditions`), what
each costs the biplane model (:func:`robustness_reading`), what the jitter fine-tune bought
back (:func:`jitter_reading`) and what mirror test-time augmentation adds on every recorded
condition (:func:`mirror_reading`). :func:`angio.study.prose.calibration` and
:func:`angio.study.prose.mirror` say the same records' figures in the words of the zoo page.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

from angio.acquisition import CONDITIONS
from angio.conebeam import CArmGeometry
from angio.projection import view_angles
from angio.study import zoo_tables
from angio.study.prose.unets import _robust
from angio.study.prose.words import count_word, join, ordinal
from angio.zoo import MIRROR_MODELS, entries
from angio.zoo.robustness import ROBUSTNESS_DIR, read_robustness

__all__ = ["conditions", "robustness_reading", "jitter_reading", "mirror_reading"]

#: The biplane model the robustness table is about, and its fine-tune on jittered angles.
_BIPLANE, _JITTER = "unet-biplane", "unet-biplane-jitter"

#: Simple fractions the prose names, for :func:`_fraction`.
_FRACTIONS = {1 / 4: "a quarter", 1 / 3: "a third", 1 / 2: "half", 2 / 3: "two thirds", 1.0: "", 2.0: "twice",
              3.0: "three times"}


def _fraction(ratio: float, tolerance: float = 0.15) -> str | None:
    """The simple fraction within ``tolerance`` (relative) of ``ratio`` as a word, else ``None``."""
    for value, word in _FRACTIONS.items():
        if abs(ratio / value - 1) <= tolerance:
            return word
    return None


def _as_much(cost: float, reference: float, what: str = "") -> str:
    """``"about as much as a 2° error"``, ``"about half as much"``: ``cost`` beside ``reference``."""
    ratio = cost / reference if reference else math.inf
    word = _fraction(ratio)
    head = f"{ratio:.1f} times as much" if word is None else f"about {word} as much".replace("  ", " ")
    return f"{head} as {what}" if what else head


def _cut(ratio: float) -> str:
    """What keeping ``ratio`` of the Dice does to it: ``0.53`` -> ``"halves its Dice"``."""
    word = _fraction(ratio, 0.12)
    if word == "half":
        return "halves its Dice"
    if word in ("a quarter", "a third"):
        return f"cuts its Dice to {word}"
    if word == "two thirds":
        return "cuts its Dice by a third"
    return f"cuts its Dice by {1 - ratio:.0%}"


def _labels(**match: Any) -> list[str]:
    """The labels of :data:`angio.acquisition.CONDITIONS` whose acquisition matches ``match``."""
    return [label for label, a in CONDITIONS.items()
            if all(getattr(a, k) == v if not callable(v) else v(getattr(a, k)) for k, v in match.items())]


def _angles() -> list[float]:
    return sorted({abs(a.angle_error_deg) for a in CONDITIONS.values() if a.angle_error_deg})


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _views(n: int, sep: str = "/", unit: str = "°") -> str:
    return sep.join(f"{a:g}{unit}" for a in view_angles(n))


def conditions(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The robustness table's acquisitions and the views they perturb (keys ``acq_*``).

    Returns
    -------
    dict of str to str
        ``acq_views2`` ("0° and 90°"), ``acq_pair`` ("0°/90°"), ``acq_second`` (the second
        view's angle), ``acq_views3`` ("0/45/90"), ``acq_angles`` (the angle errors,
        "±2° or ±5°"), ``acq_small`` and ``acq_large`` (the smallest and largest), ``acq_noise``
        ("twice"), ``acq_mag`` ("±10%") and ``acq_mag_one`` ("10%"), ``acq_source`` and
        ``acq_detector`` (the clinical C-arm's distances, :meth:`angio.conebeam.CArmGeometry.typical`)
        and ``acq_predictions`` (the predictions of the biplane model's robustness record).
    """
    shipped = entries() if shipped is None else shipped
    angles = _angles()
    noise = max(a.noise_scale for a in CONDITIONS.values())
    mag = max(a.magnification for a in CONDITIONS.values())
    typical = inspect.signature(CArmGeometry.typical).parameters
    two = view_angles(2)
    out = {
        "acq_views2": f"{two[0]:g}° and {two[1]:g}°",
        "acq_pair": _views(2),
        "acq_second": f"{two[1]:g}°",
        "acq_views3": _views(3, unit=""),
        "acq_angles": " or ".join(f"±{a:g}°" for a in angles),
        "acq_small": f"{angles[0]:g}°",
        "acq_large": f"{angles[-1]:g}°",
        "acq_noise": {2.0: "twice", 3.0: "three times"}.get(noise, f"{noise:g} times"),
        "acq_mag": f"±{100 * (mag - 1):.0f}%",
        "acq_mag_one": f"{100 * (mag - 1):.0f}%",
        "acq_source": f"{typical['source_isocenter_mm'].default:g} mm",
        "acq_detector": f"{typical['source_detector_mm'].default:g} mm",
    }
    if _BIPLANE in shipped:
        out["acq_predictions"] = str(len(read_robustness(_BIPLANE)["rows"]))
    return out


def robustness_reading(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What each acquisition error costs the biplane model on the test trees (keys ``rob_*``).

    Returns
    -------
    dict of str to str
        ``rob_noise`` (nominal to doubled-noise Dice), ``rob_small`` (what the smallest angle
        error does: "halves its Dice"), ``rob_small_dice``, ``rob_large_dice`` and
        ``rob_mag_dice`` (mean over the ± pair), ``rob_mag_scaled`` (against the anatomy
        scaled by the same factor), ``rob_mag_mm`` (the scale error at the edge of the field),
        ``rob_cone_demag`` (the demagnified cone beam beside the smallest angle error),
        ``rob_cone_rays`` (cone-ray back-projection beside that) and ``rob_cone_rays_dice``.
    """
    shipped = entries() if shipped is None else shipped
    if _BIPLANE not in shipped:
        return {}
    r = _robust(_BIPLANE)
    nominal = r["nominal"]
    angles = _angles()
    small = _mean([r[c] for c in _labels(angle_error_deg=lambda a: abs(a) == angles[0])])
    large = _mean([r[c] for c in _labels(angle_error_deg=lambda a: abs(a) == angles[-1])])
    plus = _labels(magnification=lambda m: m > 1)[0]
    minus = _labels(magnification=lambda m: m < 1)[0]
    mag = CONDITIONS[plus].magnification
    noise = _labels(noise_scale=lambda s: s > 1)[0]
    demag = r[_labels(cone_beam=True, cone_rays=False)[0]]
    rays = r[_labels(cone_rays=True)[0]]
    pct = f"{100 * (mag - 1):.0f}%"
    return {
        "rob_noise": f"{nominal:.3f} to {r[noise]:.3f}",
        "rob_small": _cut(small / nominal),
        "rob_small_dice": f"{small:.2f}",
        "rob_large_dice": f"{large:.2f}",
        "rob_mag_dice": f"{(r[plus] + r[minus]) / 2:.2f}",
        "rob_mag_scaled": f"{r[plus + ' (rescaled)']:.2f} (+{pct}) and {r[minus + ' (rescaled)']:.2f} (−{pct})",
        "rob_mag_mm": f"{(mag - 1) * shipped[_BIPLANE].spec.fov_mm / 2:.0f} mm",
        "rob_cone_demag": _as_much(nominal - demag, nominal - small, f"a {angles[0]:g}° error"),
        "rob_cone_rays": _as_much(nominal - rays, nominal - demag),
        "rob_cone_rays_dice": f"{rays:.2f}",
    }


def jitter_reading(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What training on jittered angles bought back, and how its run ended (keys ``jit_*``).

    Returns
    -------
    dict of str to str
        ``jit_max`` (the largest angle error of its training views), ``jit_gain`` (test Dice
        gained under the angle errors), ``jit_cost`` (lost at the nominal geometry),
        ``jit_best`` (the epoch that ships) and ``jit_stop`` (how the run ended).
    """
    shipped = entries() if shipped is None else shipped
    if _BIPLANE not in shipped or _JITTER not in shipped:
        return {}
    r, j = _robust(_BIPLANE), _robust(_JITTER)
    gains = []
    for a in _angles():
        labels = _labels(angle_error_deg=lambda x, a=a: abs(x) == a)
        gains.append((a, _mean([j[c] for c in labels]) - _mean([r[c] for c in labels])))
    said = [f"{g:.2f}" for _, g in gains]
    where = [f"±{a:g}°" for a, _ in gains]
    if len(set(said)) == 1:
        gain = f"about {said[0]} of Dice at " + " and at ".join(where)
    else:
        rest = join([f"{s} at {w}" for s, w in zip(said[1:], where[1:])])
        gain = f"about {said[0]} of Dice at {where[0]} and {rest}"
    t = shipped[_JITTER].record["training"]
    validated = [row["epoch"] for row in t["curve"] if row.get("val_dice") is not None]
    k = int(t["selected_epoch"])
    best = (f"its first validated epoch (the {ordinal(k + 1)})" if k == validated[0] and k
            else "its first epoch" if k == 0 else f"its {ordinal(k + 1)} epoch")
    ended = "patience stopped the run" if t["stopped_by_patience"] else "the run ended"
    return {
        "jit_max": f"{shipped[_JITTER].settings.angle_jitter_deg:g}°",
        "jit_gain": gain,
        "jit_cost": f"{r['nominal'] - j['nominal']:.2f}",
        "jit_best": best,
        "jit_stop": f"{ended} after {t['epochs_run']}",
    }


def mirror_reading(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Mirror test-time augmentation on every recorded condition of both sets of trees (key ``mir_every``).

    Returns
    -------
    dict of str to str
        ``mir_every``: the range of the gains (validation and test records of
        :data:`angio.zoo.MIRROR_MODELS`), and whether every condition gained.
    """
    shipped = entries() if shipped is None else shipped
    names = sorted(MIRROR_MODELS & set(shipped))
    if not names:
        return {}
    rows = zoo_tables.mirror_gain(names, {"validation": ROBUSTNESS_DIR / "validation", "test": ROBUSTNESS_DIR})
    gains = [r["gain"] for r in rows]
    lo, hi = f"{min(gains):+.3f}", f"{max(gains):+.3f}"
    where = ("on every condition of both sets" if min(gains) > 0
             else f"on {count_word(sum(g > 0 for g in gains))} of the {count_word(len(gains))} conditions")
    return {"mir_every": (f"about {lo}" if lo == hi else f"{lo} to {hi}") + f" of Dice {where}"}
