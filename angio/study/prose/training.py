"""Chapter 9's account of how the U-Nets were trained, and what the CPU-hours and the other levers bought.

The zoo's grid and the U-Nets' GPU and first CPU sessions (:func:`zoo_training`), the
biplane network continued on the CPU per CPU-hour (:func:`cpu_hours`, from
:func:`angio.study.levers.session_table`) and the biplane target's gap after every lever
tried (:func:`lever_gap`, from :func:`angio.study.levers.levers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from angio.errors import InputError
from angio.study import levers as lev
from angio.study import zoo_tables
from angio.study.prose.history import read_superseded
from angio.study.prose.unets import UNETS
from angio.study.prose.words import _minutes, count_word, join, lr_text
from angio.zoo import entries
from angio.zoo.gpu_runs import gpu_runs, side_by_side

__all__ = ["zoo_training", "cpu_hours", "lever_gap"]


def _patches(n: int, size: int) -> str:
    return f"{count_word(n)} {size}³ patch" + ("" if n == 1 else "es")


def zoo_training(shipped: Mapping[str, Any] | None = None,
                 superseded: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """The zoo's grid and how the U-Nets were trained, from the biplane entry's record (keys ``zoo_*``).

    Returns
    -------
    dict of str to str
        ``zoo_grid`` ("192³ voxels of 0.5 mm"), ``zoo_size`` ("192³"), ``zoo_fov``, ``zoo_voxel``, ``zoo_test_trees``
        (in words), ``zoo_gpu`` (the GPU of the U-Nets' sessions), ``zoo_gpu_batch`` ("four
        96³ patches"), ``zoo_gpu_lr``, ``zoo_cpu_lr``, ``zoo_cpu_steps`` and
        ``zoo_cpu_minutes`` (its CPU session), ``zoo_window`` (the inference window),
        ``zoo_previous`` (the last CPU-trained record the GPU run replaced), ``zoo_wide_channels``
        and ``zoo_wide_compute`` (the wide recipes of the first GPU session) and
        ``zoo_conerays_run`` (how the cone-ray fine-tune was trained).
    """
    shipped = entries() if shipped is None else shipped
    superseded = read_superseded() if superseded is None else superseded
    if UNETS[0] not in shipped:
        return {}
    e = shipped[UNETS[0]]
    spec, s, t = e.spec, e.settings, e.record["training"]
    curve = {int(r["epoch"]): r for r in t["curve"]}
    out = {
        "zoo_grid": f"{spec.size}³ voxels of {spec.voxel_mm:g} mm",
        "zoo_size": f"{spec.size}³",
        "zoo_fov": f"{spec.fov_mm:g} mm",
        "zoo_voxel": f"{spec.voxel_mm:g} mm",
        "zoo_test_trees": count_word(len(e.record["test"]["cases"])),
        "zoo_gpu": join(zoo_tables.machines({n: shipped[n] for n in UNETS if n in shipped})["gpu"]),
        "zoo_gpu_batch": _patches(s.batch_size, s.patch_size),
        "zoo_gpu_lr": lr_text(t["curve"][0]["lr"]),
        "zoo_window": f"{s.inference_patch}³",
    }
    cpu = [x for x in lev.sessions(t) if not lev.on_gpu(x)]
    if cpu:
        epochs = [curve[k] for x in cpu for k in range(int(x["first_epoch"]), int(x["epochs_after"])) if k in curve]
        out["zoo_cpu_steps"] = f"{sum(int(r['steps']) for r in epochs):,}"
        out["zoo_cpu_minutes"] = _minutes(sum(float(x["wall_s"]) for x in cpu))
        out["zoo_cpu_lr"] = join([lr_text(lr) for lr in sorted({r["lr"] for r in epochs})])
    before = sorted((r for r in superseded.values() if r["entry"] == UNETS[0] and not r["on_gpu"]),
                    key=lambda r: r["made"])
    if before:
        out["zoo_previous"] = (f"validation Dice {before[-1]['best_val_dice']:.3f} after "
                               f"{before[-1]['optimizer_steps']:,} steps")
    try:
        channels = sorted({int(r["channels"]) for r in side_by_side(gpu_runs())})
    except (InputError, KeyError):
        channels = []
    if len(channels) > 1:
        out["zoo_wide_channels"] = str(channels[-1])
        out["zoo_wide_compute"] = f"{count_word(round((channels[-1] / channels[0]) ** 2))} times"
    if "unet-biplane-conerays" in shipped:
        c = shipped["unet-biplane-conerays"]
        patches = _patches(c.settings.samples_per_volume, c.settings.patch_size)
        out["zoo_conerays_run"] = f"{c.record['training']['epochs_run']} epochs of {patches} per training tree"
    return out


def cpu_hours(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The biplane network continued on the CPU, per CPU-hour (keys ``cpuh_*``).

    From the sessions of :data:`angio.study.levers.CPU_ENTRY`'s record, whatever it holds.

    Returns
    -------
    dict of str to str
        ``cpuh_gpu`` and ``cpuh_gpu_minutes`` (its GPU sessions), ``cpuh_gpu_dice`` (the
        validation Dice the CPU sessions started from), ``cpuh_lr``, ``cpuh_threads`` ("one
        and two CPU threads"), ``cpuh_count`` (CPU sessions, in words), ``cpuh_sessions``
        (each CPU session's gain and CPU-hours), ``cpuh_total`` (all of them) and
        ``cpuh_trend`` (the first CPU session's gain per CPU-hour beside the last one's).
    """
    shipped = entries() if shipped is None else shipped
    if lev.CPU_ENTRY not in shipped:
        return {}
    rows = lev.session_table(shipped[lev.CPU_ENTRY].record["training"])
    gpu = [r for r in rows if r["gpu"]]
    cpu = [r for r in rows if not r["gpu"] and r["start"] is not None]
    if not cpu:
        return {}
    threads = sorted({int(r["threads"] or 1) for r in cpu})
    out = {
        "cpuh_gpu": join(sorted({r["machine"].removeprefix("GPU: ") for r in gpu})) or "no GPU",
        "cpuh_gpu_minutes": join([f"{r['minutes']:.0f}" for r in gpu]) or "no",
        "cpuh_gpu_dice": f"{cpu[0]['start']:.3f}",
        "cpuh_lr": join(sorted({lr for r in cpu for lr in r["lr"].split(", ")}, key=float)),
        "cpuh_threads": join([count_word(n) for n in threads]) + " CPU thread" + ("s" if threads != [1] else ""),
        "cpuh_count": count_word(len(cpu)),
        "cpuh_sessions": "; ".join(
            f"session {r['session']} ({r['machine'].removeprefix('CPU, ')}, epochs {r['epochs']}) "
            f"{r['gain']:+.3f} in {r['cpu_hours']:.1f} CPU-hours" for r in cpu),
    }
    total = lev.training_lever(shipped[lev.CPU_ENTRY].record["training"])
    out["cpuh_total"] = (f"{total['gain']:+.3f} ({total['before']:.3f} to {total['after']:.3f}) in "
                         f"{total['cpu_hours']:.1f} CPU-hours, {total['gain_per_cpu_hour']:+.4f} per CPU-hour")
    if len(cpu) == 1:
        out["cpuh_trend"] = "one CPU session so far, so no trend yet"
    else:
        first, last = cpu[0]["gain_per_cpu_hour"], cpu[-1]["gain_per_cpu_hour"]
        word = ("falling" if last < first / 2 else "rising" if last > 2 * first else "about steady")
        out["cpuh_trend"] = (f"the returns per CPU-hour are {word}: {first:+.4f} in the first CPU session, "
                             f"{last:+.4f} in the last")
    return out


def lever_gap(shipped: Mapping[str, Any] | None = None,
              rows: Sequence[Mapping[str, Any]] | None = None) -> dict[str, str]:
    """How far the best shipped biplane entry is from its target after the levers tried (keys ``lev_*``).

    Returns
    -------
    dict of str to str
        ``lev_gap`` (the best entry's test Dice and clDice against the target's and the
        shortfall), ``lev_best`` (the largest validation gain of a lever, and which),
        ``lev_count`` (the levers tried, in words) and ``lev_untried``
        (:data:`angio.study.levers.UNTRIED`).
    """
    shipped = entries() if shipped is None else shipped
    best = lev.best_entry(shipped, views=2)
    rows = lev.levers() if rows is None else rows
    metrics = [m for m in ("dice", "cldice") if f"target_{m}" in best]
    name = {"dice": "Dice", "cldice": "clDice"}
    short = [best[f"short_{m}"] for m in metrics]
    out = {
        "lev_gap": (f"The best shipped biplane entry, {best['entry']}, scores a test "
                    + " and ".join(f"{name[m]} of {best[m]:.3f}" for m in metrics) + " against the target's "
                    + " and ".join(f"{best[f'target_{m}']:.2f}" for m in metrics)
                    + (": " + " and ".join(f"{x:.3f}" for x in short) + " short" if max(short) > 0 else ": met")),
        "lev_count": count_word(len(rows)),
        "lev_untried": "; ".join(lev.UNTRIED[:-1]) + ("; and " if len(lev.UNTRIED) > 1 else "") + lev.UNTRIED[-1],
    }
    top = max(rows, key=lambda r: r["gain"], default=None)
    out["lev_best"] = (f"{top['gain']:+.3f} of validation Dice ({top['lever']})" if top
                       else "nothing (no lever recorded)")
    return out
