"""Quality per CPU-hour, and the levers tried for the biplane gap (issue #33), from the records.

The biplane U-Net misses its target (:data:`angio.zoo.QUALITY_TARGETS`). Chapter 9 shows what
each lever tried so far bought on the validation trees and what it cost:

- :func:`session_table` and :func:`cpu_hours_curve`: the sessions of a training record
  (``record["training"]``: its ``curve`` and ``sessions``) and its validation Dice against the
  cumulative CPU-hours of its CPU sessions (wall seconds times threads), GPU sessions apart;
- :func:`training_lever`, :func:`mirror_lever`, :func:`consistency_lever` and
  :func:`continuity_lever`: one row each (continued training, mirror test-time augmentation,
  view consistency, the continuity prior), all on the validation trees, gains ``after - before``;
- :func:`levers`: those rows from the shipped records (a record not written yet leaves its
  row out), and :func:`best_entry`, the best shipped entry of a view count on the test trees.

The functions take records (plain mappings) so that a changed record changes the rows; the
defaults read the shipped ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from angio.errors import InputError
from angio.study import view_consistency as vc
from angio.study import zoo_tables
from angio.zoo import MIRROR_MODELS, QUALITY_TARGETS, entries
from angio.zoo.continuity import continuity_table, read_continuity
from angio.zoo.robustness import ROBUSTNESS_DIR, read_robustness

__all__ = ["CPU_ENTRY", "BASE_ENTRY", "UNTRIED", "sessions", "on_gpu", "session_cpu_hours", "session_table",
           "cpu_hours_curve", "training_lever", "mirror_lever", "consistency_lever", "continuity_lever", "levers",
           "best_entry"]

#: The biplane U-Net continued on the CPU, session after session.
CPU_ENTRY = "unet-biplane-cpu"

#: The biplane entry whose test-time refinements were recorded on the validation trees.
BASE_ENTRY = "unet-biplane"

#: Levers for the biplane gap not tried yet (named in the chapter, no figures).
UNTRIED = ("a 2D network on the two projections whose output is lifted along the rays inside the two-view hull",
           "fresh augmented variants drawn during training instead of a fixed set",
           "coarse-to-fine reconstruction")


def sessions(training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A training record's sessions (one session on the record's hardware for records without them)."""
    return list(training.get("sessions") or [{"hardware": training["hardware"], "first_epoch": 0,
                                              "epochs_after": training["epochs_run"],
                                              "wall_s": training["wall_time_s"]}])


def on_gpu(session: Mapping[str, Any]) -> bool:
    """Whether a session trained on a GPU."""
    return bool(session["hardware"].get("cuda"))


def session_cpu_hours(session: Mapping[str, Any]) -> float:
    """CPU-hours of a CPU session: wall seconds times threads, over 3600 (0 for a GPU session)."""
    if on_gpu(session):
        return 0.0
    return float(session["wall_s"]) * int(session["hardware"].get("threads") or 1) / 3600


def _val(curve: Mapping[int, Mapping[str, Any]], epochs: Iterable[int]) -> list[tuple[int, float]]:
    return [(k, float(curve[k]["val_dice"])) for k in epochs if curve.get(k, {}).get("val_dice") is not None]


def _machine(hardware: Mapping[str, Any]) -> str:
    if hardware.get("cuda"):
        return f"GPU: {hardware['cuda']}"
    threads = int(hardware.get("threads") or 1)
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"


def session_table(training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per training session: where it ran, what it cost and what it gained on the validation trees.

    A session continued from exported weights starts from the best weights so far (the
    shipped ones), so its starting Dice is the best validation Dice before its first epoch.

    Parameters
    ----------
    training : mapping
        A zoo record's ``training`` (``curve`` rows with ``epoch``, ``val_dice``, ``lr``;
        ``sessions`` with ``hardware``, ``first_epoch``, ``epochs_after``, ``wall_s``).

    Returns
    -------
    list of dict
        ``session`` (from 1), ``machine`` (``"GPU: <name>"`` or ``"CPU, 2 threads"``), ``gpu``
        (bool), ``threads``, ``epochs`` (``"first–last"``, from 1), ``n_epochs``, ``lr`` (the
        session's learning rates), ``minutes`` (wall time), ``cpu_hours`` (``None`` on a GPU), ``cpu_hours_total``
        (cumulative over the CPU sessions so far), ``start`` (validation Dice of the weights it
        started from; ``None`` from scratch), ``last`` (its last epoch's), ``best`` (the best
        so far at its end), ``gain`` (``best - start``) and ``gain_per_cpu_hour``.
    """
    curve = {int(r["epoch"]): r for r in training["curve"]}
    out, total = [], 0.0
    for i, s in enumerate(sessions(training)):
        first, after = int(s["first_epoch"]), int(s["epochs_after"])
        before, during = _val(curve, range(first)), _val(curve, range(first, after))
        start = max((d for _, d in before), default=None)
        best = max((d for _, d in before + during), default=None)
        hours = None if on_gpu(s) else session_cpu_hours(s)
        total += hours or 0.0
        gain = best - start if best is not None and start is not None else None
        out.append({
            "session": i + 1,
            "machine": _machine(s["hardware"]),
            "gpu": on_gpu(s),
            "threads": s["hardware"].get("threads"),
            "epochs": f"{first + 1}–{after}",
            "n_epochs": after - first,
            "lr": ", ".join(_lr(lr) for lr in sorted({curve[k]["lr"] for k in range(first, after) if k in curve})),
            "minutes": float(s["wall_s"]) / 60,
            "cpu_hours": hours,
            "cpu_hours_total": None if hours is None else total,
            "start": start,
            "last": during[-1][1] if during else None,
            "best": best,
            "gain": gain,
            "gain_per_cpu_hour": gain / hours if gain is not None and hours else None,
        })
    return out


def cpu_hours_curve(training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The validation Dice of every CPU-trained epoch against the cumulative CPU-hours at its end.

    A session's data building (``data_s``, where recorded) comes first; each epoch then adds
    its ``time_s`` times the session's threads. The first row of each CPU session is its
    starting point (``epoch`` ``None``: the best validation Dice before it).

    Returns
    -------
    list of dict
        ``session`` (from 1), ``epoch`` (from 0, ``None`` for a session's start),
        ``threads``, ``cpu_hours`` and ``val_dice``.
    """
    curve = {int(r["epoch"]): r for r in training["curve"]}
    out, total = [], 0.0
    for i, s in enumerate(sessions(training)):
        if on_gpu(s):
            continue
        first, after = int(s["first_epoch"]), int(s["epochs_after"])
        threads = int(s["hardware"].get("threads") or 1)
        start = max((d for _, d in _val(curve, range(first))), default=None)
        if start is not None:
            out.append({"session": i + 1, "epoch": None, "threads": threads, "cpu_hours": total, "val_dice": start})
        spent = float(s.get("data_s") or 0.0)
        for k in range(first, after):
            if k not in curve:
                continue
            spent += float(curve[k]["time_s"])
            if curve[k].get("val_dice") is not None:
                out.append({"session": i + 1, "epoch": k, "threads": threads,
                            "cpu_hours": total + spent * threads / 3600, "val_dice": float(curve[k]["val_dice"])})
        total += session_cpu_hours(s)
    return out


def _lr(lr: float) -> str:
    """``0.0001`` -> ``"1e-4"`` (as :func:`angio.study.prose.lr_text`)."""
    mantissa, exponent = f"{lr:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}" if float(f"{lr:.0e}") == lr else f"{lr:g}"


def _row(lever: str, what: str, model: str, kind: str, before: float, after: float, cpu_hours: float,
         cost: str) -> dict[str, Any]:
    gain = after - before
    return {"lever": lever, "what": what, "model": model, "kind": kind, "before": before, "after": after,
            "gain": gain, "cpu_hours": cpu_hours, "cost": cost,
            "gain_per_cpu_hour": gain / cpu_hours if kind == "training" and cpu_hours else None}


def training_lever(training: Mapping[str, Any], model: str = CPU_ENTRY) -> dict[str, Any] | None:
    """Continued training on the CPU: validation Dice before the first CPU session and at the end of the last.

    ``None`` where the record has no CPU session after a first one.
    """
    rows = [r for r in session_table(training) if not r["gpu"] and r["start"] is not None]
    if not rows:
        return None
    lrs = sorted({lr for r in rows for lr in r["lr"].split(", ") if lr}, key=float)
    hours = sum(r["cpu_hours"] for r in rows)
    threads = sorted({int(r["threads"] or 1) for r in rows})
    return _row("continued training", f"training continued at learning rate {', '.join(lrs)} on "
                f"{zoo_tables.join_and(threads)} CPU thread{'s' if threads != [1] else ''}, "
                "each session from the best weights so far", model, "training", rows[0]["start"], rows[-1]["best"],
                hours, f"{len(rows)} CPU session{'s' if len(rows) > 1 else ''} of training")


def mirror_lever(rows: Sequence[Mapping[str, Any]], record: Mapping[str, Any] | None = None,
                 model: str = BASE_ENTRY) -> dict[str, Any] | None:
    """Mirror test-time augmentation: nominal validation Dice without and with it.

    Parameters
    ----------
    rows : sequence of mapping
        Rows of :func:`angio.study.zoo_tables.mirror_gain` (the validation ones are used).
    record : mapping, optional
        The mirrored validation robustness record: its ``wall_s`` and threads give the CPU cost.
    """
    row = next((r for r in rows if r["model"] == model and r["condition"] == "nominal"
                and str(r["trees"]).startswith("validation")), None)
    if row is None:
        return None
    return _row("mirror test-time augmentation", "the prediction averaged with that of the left-right mirrored "
                "views", model, "test time", row["plain"], row["mirror"], _record_hours(record),
                "a second forward pass per reconstruction")


def consistency_lever(record: Mapping[str, Any], model: str = BASE_ENTRY) -> dict[str, Any] | None:
    """View consistency (carve to the silhouette hull, fill missed rays): validation Dice as predicted and refined."""
    if model not in record["models"]:
        return None
    rows = [r for r in vc.view_consistency_table(record) if r["model"] == model and "true" not in r["refinement"]]
    plain = next(r for r in rows if r["refinement"] == "as predicted")
    refined = next(r for r in rows if r["low"] is not None)
    return _row("view consistency", f"{refined['refinement']}: the prediction carved to the views' silhouette "
                "hull, the rays it misses filled", model, "test time", plain["val_dice"], refined["val_dice"],
                _record_hours(record), "a carve and a fill per reconstruction (no network)")


def continuity_lever(record: Mapping[str, Any], model: str = BASE_ENTRY) -> dict[str, Any] | None:
    """The continuity prior (hysteresis, small pieces removed): validation Dice at threshold 0.5 and refined."""
    if model not in record["models"]:
        return None
    plain, chosen = [r for r in continuity_table(record) if r["model"] == model]
    how = ["hysteresis"] + (["small pieces removed"] if "pieces" in chosen["refinement"] else []) \
        + (["on mirror-averaged predictions"] if model in MIRROR_MODELS else [])
    return _row("continuity prior", f"{chosen['refinement']}: voxels kept where connected to confident vessel "
                f"({', '.join(how)})", model, "test time", plain["val_dice"], chosen["val_dice"],
                _record_hours(record), "connected components per reconstruction (no network)")


def _record_hours(record: Mapping[str, Any] | None) -> float:
    """CPU-hours a recorded measurement took: its ``wall_s`` times its threads."""
    if not record:
        return 0.0
    return float(record.get("wall_s") or 0) * int((record.get("evaluated_on") or {}).get("threads") or 1) / 3600


def levers(training: Mapping[str, Any] | None = None, *, mirror: Sequence[Mapping[str, Any]] | None = None,
           mirror_record: Mapping[str, Any] | None = None, consistency: Mapping[str, Any] | None = None,
           continuity: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The levers tried for the biplane gap, one row each, on the validation trees.

    Parameters
    ----------
    training : mapping, optional
        The ``training`` of :data:`CPU_ENTRY`'s record (default: the shipped one).
    mirror, mirror_record : optional
        :func:`angio.study.zoo_tables.mirror_gain` rows and the mirrored validation record
        of :data:`BASE_ENTRY` (default: the shipped ones).
    consistency, continuity : mapping, optional
        The view-consistency and continuity records (default: the shipped ones; a record not
        written yet leaves its row out).

    Returns
    -------
    list of dict
        ``lever``, ``what``, ``model``, ``kind`` (``"training"`` or ``"test time"``),
        ``before`` and ``after`` (mean validation Dice against the exact mask), ``gain``
        (``after - before``), ``cpu_hours`` (the training sessions, or the recorded
        measurement of a test-time lever), ``cost`` (what it costs in use) and
        ``gain_per_cpu_hour`` (training levers only).
    """
    if training is None:
        shipped = entries()
        training = shipped[CPU_ENTRY].record["training"] if CPU_ENTRY in shipped else None
    folder = ROBUSTNESS_DIR / "validation"
    if mirror is None:
        mirror = _or_none(lambda: zoo_tables.mirror_gain([BASE_ENTRY], {"validation": folder})) or []
        mirror_record = mirror_record or _or_none(lambda: read_robustness(BASE_ENTRY, robustness_dir=folder,
                                                                          mirror=True))
    consistency = consistency if consistency is not None else _or_none(vc.read_view_consistency)
    continuity = continuity if continuity is not None else _or_none(read_continuity)
    rows = [training_lever(training) if training else None, mirror_lever(mirror, mirror_record),
            consistency_lever(consistency) if consistency else None,
            continuity_lever(continuity) if continuity else None]
    return [r for r in rows if r is not None]


def _or_none(read):
    try:
        return read()
    except (InputError, FileNotFoundError):
        return None


def best_entry(shipped: Mapping[str, Any] | None = None, views: int = 2) -> dict[str, Any]:
    """The shipped parallel-beam entry of ``views`` views with the best mean test Dice (exact mask), and its gap.

    Returns
    -------
    dict
        ``entry``, ``dice``, ``cldice``, ``cases``, and per metric of
        :data:`angio.zoo.QUALITY_TARGETS` ``[views]``: ``target_<m>`` and ``short_<m>``
        (target minus measured; negative where it is met).
    """
    shipped = entries() if shipped is None else shipped
    scored = []
    for name, e in shipped.items():
        if e.experiment.n_views != views or e.settings.geometry != "parallel":
            continue
        rows = [r for r in e.record["test"]["rows"] if r["target"] == "exact"]
        if rows:
            scored.append({"entry": name, "cases": len(rows),
                           **{m: sum(r[m] for r in rows) / len(rows) for m in ("dice", "cldice")}})
    if not scored:
        raise KeyError(f"no shipped entry of {views} views")
    best = max(scored, key=lambda r: r["dice"])
    for m, goal in QUALITY_TARGETS.get(views, {}).items():
        best[f"target_{m}"] = goal
        best[f"short_{m}"] = goal - best[m]
    return best
