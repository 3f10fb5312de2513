"""The U-Net side of the prose, from the records, the robustness records and the GPU sessions' logs.

How the base U-Nets were trained (:func:`unets`), the cone-beam entries and conditions
(:func:`cone_beam`), what acquisition errors cost and the jitter fine-tune
(:func:`calibration`), mirror test-time augmentation (:func:`mirror`), view consistency as a
refinement (:func:`consistency`), and the lent GPU's sessions, the autoencoders' included
(:func:`gpu_sessions`).
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from angio.errors import InputError
from angio.study import zoo_tables
from angio.study.prose.history import before, read_superseded
from angio.study.prose.records import _sessions
from angio.study.prose.words import _many, _minutes, count_word, join, lr_text, ordinal, span
from angio.study.tables import mean_table
from angio.study.view_consistency import diagnostics_table, read_view_consistency, view_consistency_table
from angio.zoo import QUALITY_TARGETS, entries
from angio.zoo.gpu_runs import GPU_RUNS, gpu_runs, side_by_side
from angio.zoo.robustness import ROBUSTNESS_DIR, read_robustness

__all__ = ["UNETS", "UNET_LOG", "DAE_LOG", "unets", "cone_beam", "calibration", "mirror", "consistency",
           "gpu_sessions"]

#: The U-Nets trained on the lent GPU and continued on the CPU, as the zoo page tells it.
UNETS = ("unet-biplane", "unet-3view")

#: The GPU session logs the prose reads (``angio/_data/zoo/gpu_runs/``): the U-Nets' first
#: session and the paper's autoencoders' first session.
UNET_LOG = "2026-11-27-h100-session1.log"
DAE_LOG = "2026-11-27-h100-session3.log"


def _resumed_after(t: Mapping[str, Any]) -> int | None:
    """The epoch (from 0) after which a run was resumed from exported weights, from its notes."""
    for note in t.get("notes") or []:
        m = re.search(r"resumed after epoch (\d+)", note)
        if m:
            return int(m.group(1))
    return None


def _mean(rows: Iterable[Mapping[str, Any]], key: str = "dice") -> float:
    values = [float(r[key]) for r in rows]
    return sum(values) / len(values)


def _robust(name: str, *, validation: bool = False, mirrored: bool = False) -> dict[str, float]:
    """``{condition: mean Dice}`` of an entry's robustness record (test trees, or validation)."""
    folder = ROBUSTNESS_DIR / "validation" if validation else ROBUSTNESS_DIR
    record = read_robustness(name, robustness_dir=folder, mirror=mirrored)
    out: dict[str, float] = {}
    for c in dict.fromkeys(r["condition"] for r in record["rows"]):
        rows = [r for r in record["rows"] if r["condition"] == c]
        out[c] = _mean(rows)
        if all("dice_rescaled" in r for r in rows):
            out[c + " (rescaled)"] = _mean(rows, "dice_rescaled")
    out["_wall_s"] = float(record.get("wall_s") or 0)
    out["_threads"] = float((record.get("evaluated_on") or {}).get("threads") or 0)
    out["_trees"] = float(len(record["cases"]))
    return out


def unets(shipped: Mapping[str, Any] | None = None,
          superseded: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """How the base U-Nets were trained, from their records (keys ``unet_*``).

    Returns
    -------
    dict of str to str
        ``unet_gpu_minutes`` (the GPU sessions of the biplane entry), ``unet_gpu_steps``,
        ``unet_cpu`` ("two epochs at a tenth of the learning rate on one CPU thread"),
        ``unet_cpu_gain`` (test Dice and clDice before and after, from the replaced
        records), ``unet_val_gain`` (validation Dice after the GPU and after the CPU),
        ``unet_targets`` (:data:`angio.zoo.QUALITY_TARGETS`), ``unet_literature`` (the
        biplane Dice target, after the best published result), ``unet_wide`` (the 16-channel
        variants beside the 8-channel ones, from the GPU sessions' curves), ``unet_cpu_step``,
        ``unet_cpu_epoch``, ``unet_retrain`` (a CPU retrain of the GPU run's epochs, in hours)
        and ``unet_test_trees``.
    """
    shipped = entries() if shipped is None else shipped
    superseded = read_superseded() if superseded is None else superseded
    names = [n for n in UNETS if n in shipped]
    if not names:
        return {}
    out: dict[str, str] = {}
    first = shipped[names[0]].record["training"]
    sessions = _sessions(first)
    gpu = [s for s in sessions if s["hardware"].get("cuda")]
    cpu = [s for s in sessions if not s["hardware"].get("cuda")]
    resumed = _resumed_after(first)
    curve = first["curve"]
    if gpu:
        out["unet_gpu_minutes"] = join([_minutes(s["wall_s"]) for s in gpu])
    if resumed is not None:
        gpu_steps = sum(int(r["steps"]) for r in curve[:resumed + 1])
        out["unet_gpu_steps"] = f"{gpu_steps:,}"
        later = curve[resumed + 1:]
        factor = later[0]["lr"] / curve[0]["lr"] if later else 1.0
        fraction = {0.1: "a tenth of", 0.5: "half", 1.0: "the same"}.get(round(factor, 3), f"{factor:g} times")
        threads = {int(s["hardware"].get("threads") or 0) for s in cpu}
        out["unet_cpu"] = (f"{count_word(len(later))} epochs at {fraction} the learning rate on "
                           f"{join([count_word(n) for n in sorted(threads)])} CPU "
                           f"{_many(max(threads, default=1), 'thread', 'threads')}")
        out["unet_cpu_epochs"] = count_word(len(later))
        if cpu:
            steps = sum(int(r["steps"]) for r in later)
            per_step = float(cpu[-1]["wall_s"]) / max(1, steps)
            per_epoch = per_step * curve[0]["steps"]
            out["unet_cpu_step"] = f"{per_step:.0f} s"
            out["unet_cpu_epoch"] = f"{per_epoch / 60:.0f} minutes"
            out["unet_epoch_steps"] = str(curve[0]["steps"])
            out["unet_retrain"] = f"about {(resumed + 1) * per_epoch / 3600:.0f} hours"
            out["unet_retrain_epochs"] = str(resumed + 1)
    dice, cldice, val = [], [], []
    for name in names:
        e = shipped[name]
        t = e.record["training"]
        label = f"({'biplane' if e.experiment.n_views == 2 else f'{e.experiment.n_views} views'})"
        means = mean_table([r for r in e.record["test"]["rows"] if r["target"] == "exact"], by=("target",),
                           metrics=("dice", "cldice"))[0]
        prev = before(e, superseded)
        if prev:
            dice.append(f"from {prev['dice_exact']:.3f} to {means['dice']:.3f} {label}")
            cldice.append(f"from {prev['cldice_exact']:.3f} to {means['cldice']:.3f}")
        k = _resumed_after(t)
        if k is not None:
            curve_n = t["curve"]
            val.append(f"{label[1:-1]} {curve_n[k]['val_dice']:.3f} after the GPU, "
                       f"{curve_n[t['selected_epoch']]['val_dice']:.3f} after the CPU epochs")
    if dice:
        out["unet_cpu_gain"] = f"the test Dice {join(dice)}, clDice {join(cldice)}"
    if val:
        out["unet_val_gain"] = "; ".join(val)
    out["unet_targets"] = "; ".join(
        (("biplane" if n == 2 else f"{n} views") + " " + " and ".join(
            f"{'clDice' if m == 'cldice' else m.capitalize()} ≥ {v:.2f}" for m, v in goal.items()))
        for n, goal in sorted(QUALITY_TARGETS.items()) if n in (2, 3))
    out["unet_literature"] = f"{QUALITY_TARGETS[2]['dice']:.2f}"
    out["unet_test_trees"] = str(len(shipped[names[0]].record["test"]["cases"]))
    wide = _wide()
    if wide:
        out["unet_wide"] = wide
    return out


def _wide() -> str:
    """The 16-channel U-Nets beside the 8-channel ones in their shared first GPU session."""
    try:
        rows = side_by_side(gpu_runs())
    except (InputError, KeyError):  # no GPU-run records, or not of these recipes: nothing to say
        return ""
    by = {(r["views"], r["channels"]): r for r in rows}
    pairs = [(v, by[(v, 8)], by[(v, 16)]) for v in sorted({r["views"] for r in rows if r["views"]})
             if (v, 8) in by and (v, 16) in by]
    if not pairs:
        return ""
    ended = join([f"{w['best_dice']:.3f} vs {n['best_dice']:.3f} " + ("biplane" if v == 2 else f"{v} views")
                  for v, n, w in pairs])
    equal = [(v, n, w) for v, n, w in pairs if w["dice_at_equal_steps"] > n["dice_at_equal_steps"] + 0.01]
    text = f"validation Dice {ended}"
    if equal:
        text += "; at equal steps the wide " + join(
            [("biplane" if v == 2 else f"{v}-view") + f" network was ahead ({w['dice_at_equal_steps']:.3f} vs "
             f"{n['dice_at_equal_steps']:.3f})" for v, n, w in equal])
    return text


def cone_beam(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The cone-beam entries and conditions, from the records and robustness records (keys ``cone_*``).

    Returns
    -------
    dict of str to str
        ``cone_table`` (a Markdown table: test Dice on parallel views, demagnified cone-beam
        views and cone-ray back-projection), ``cone_parallel`` (the biplane model's test
        Dice on parallel and demagnified cone-beam views, and the fine-tuned entry's),
        ``cone_val`` (the validation Dice with cone-ray input against demagnified views),
        ``cone_val_trees``, ``cone_ft_steps`` and ``cone_parent_steps``, ``cone_ft_lr``,
        ``cone_rays_minutes``, ``cone_rays_threads``, ``cone_rays_best``, ``cone_gap``
        (nominal minus the best two-plane cone-ray Dice), ``cone_fan`` (the half fan angle of
        the clinical C-arm over the field), ``cone_two``, ``cone_three`` (the best test Dice of
        two and three views on cone-ray input) and ``cone_parallel_two``/``cone_parallel_three``.
    """
    shipped = entries() if shipped is None else shipped
    names = [n for n in ("unet-biplane", "unet-biplane-cone", "unet-biplane-conerays", "unet-3view") if n in shipped]
    if "unet-biplane" not in names:
        return {}
    demag, rays = "cone beam (750/1100 mm)", "cone beam, cone-ray back-projection"
    test = {n: _robust(n) for n in names}
    val = {n: _robust(n, validation=True) for n in names}
    best2 = max((n for n in names if shipped[n].experiment.n_views == 2), key=lambda n: test[n].get(rays, 0))
    lines = ["| model | parallel views | cone beam, demagnified | cone beam, cone-ray back-projection |",
             "|---|---|---|---|"]
    for n in names:
        top = max(test[m].get(rays, 0) for m in names if shipped[m].experiment.n_views == shipped[n].experiment.n_views)
        cell = f"{test[n].get(rays, float('nan')):.3f}"
        lines.append(f"| `{n}` | {test[n]['nominal']:.3f} | {test[n].get(demag, float('nan')):.3f} | "
                     + (f"**{cell}**" if test[n].get(rays) == top else cell) + " |")
    out = {"cone_table": "\n".join(lines)}
    if "unet-biplane-cone" in names:
        cone = shipped["unet-biplane-cone"].record
        parent = shipped["unet-biplane"].record["training"]
        k = _resumed_after(parent)
        out["cone_parallel"] = (f"falls from Dice {test['unet-biplane']['nominal']:.3f} on parallel views to "
                                f"{test['unet-biplane'][demag]:.3f}, and the fine-tuned entry reaches "
                                f"{test['unet-biplane-cone'][demag]:.3f}")
        out["cone_ft_steps"] = f"{cone['training']['optimizer_steps']:,}"
        on_gpu = parent["curve"] if k is None else parent["curve"][:k + 1]  # the parent as the GPU left it
        out["cone_parent_steps"] = f"{sum(int(r['steps']) for r in on_gpu):,}"
        out["cone_ft_lr"] = lr_text(cone["recipe"]["lr"])
    base = [n for n in ("unet-biplane", "unet-biplane-cone", "unet-3view") if n in names]
    out["cone_val"] = (" / ".join(f"{val[n][rays]:.3f}" for n in base) + " against "
                       + " / ".join(f"{val[n][demag]:.3f}" for n in base) + " for "
                       + join([f"`{n}`" for n in base]))
    out["cone_val_trees"] = str(int(val["unet-biplane"]["_trees"]))
    if "unet-biplane-conerays" in names:
        t = shipped["unet-biplane-conerays"].record["training"]
        out["cone_rays_val"] = f"{val['unet-biplane-conerays'][rays]:.3f}"
        out["cone_rays_minutes"] = _minutes(t["wall_time_s"])
        out["cone_rays_threads"] = str(t["hardware"].get("threads"))
        out["cone_rays_best"] = (f"best {t['curve'][t['selected_epoch']]['val_dice']:.3f} at the "
                                 f"{ordinal(t['selected_epoch'] + 1)} of its {t['epochs_run']} epochs")
    out["cone_gap"] = f"{test['unet-biplane']['nominal'] - test[best2][rays]:.2f}"
    out["cone_two"] = f"{test[best2][rays]:.3f}"
    out["cone_parallel_two"] = f"{test['unet-biplane']['nominal']:.3f}"
    if "unet-3view" in names:
        out["cone_three"] = f"{test['unet-3view'][rays]:.3f}"
        out["cone_parallel_three"] = f"{test['unet-3view']['nominal']:.3f}"
    out["cone_fan"] = _fan(shipped["unet-biplane"].spec.fov_mm, demag)
    return out


def _fan(fov_mm: float, condition: str) -> str:
    """The half fan angle over the field of a cone beam named ``"cone beam (<source>/<detector> mm)"``."""
    m = re.search(r"\((\d+)/(\d+) mm\)", condition)
    source = float(m.group(1)) if m else 750.0
    return f"±{math.degrees(math.atan(fov_mm / 2 / source)):.1f}°"


def calibration(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """What the biplane model loses under acquisition errors, and the jitter fine-tune (``calib_*``, ``jitter_*``).

    Returns
    -------
    dict of str to str
        ``calib_trees``, ``calib_minutes`` and ``calib_threads`` (the robustness record's
        first measurement), ``calib_dice`` (the sentence of Dice per condition), and for
        ``unet-biplane-jitter``: ``jitter_minutes``, ``jitter_threads``, ``jitter_steps``,
        ``jitter_scores``, ``jitter_best`` (its best validation epoch), ``jitter_epochs``
        and ``jitter_val`` (nominal validation Dice of the plain model against the jittered
        one).
    """
    shipped = entries() if shipped is None else shipped
    if "unet-biplane" not in shipped:
        return {}
    r = _robust("unet-biplane")

    def mean_of(*conds: str) -> float:
        return sum(r[c] for c in conds) / len(conds)

    out = {"calib_trees": str(int(r["_trees"])), "calib_minutes": _minutes(r["_wall_s"]),
           "calib_threads": count_word(int(r["_threads"])),
           "calib_dice": (f"Dice {r['nominal']:.3f} with the nominal geometry, {r['doubled noise']:.3f} with doubled "
                          f"noise, {mean_of('views off by +2 deg', 'views off by -2 deg'):.2f} when the second view is "
                          f"2° off, {mean_of('views off by +5 deg', 'views off by -5 deg'):.2f} at 5°, "
                          f"{mean_of('magnification +10%', 'magnification -10%'):.2f} with a 10% magnification error "
                          f"({r['magnification +10% (rescaled)']:.2f} and {r['magnification -10% (rescaled)']:.2f} "
                          "against the anatomy scaled by the same ±10%: the shape comes back at the wrong size), "
                          f"{r['cone beam (750/1100 mm)']:.2f} on cone-beam views demagnified to the isocentre and "
                          f"{r['cone beam, cone-ray back-projection']:.2f} on cone-beam views back-projected along "
                          "their rays")}
    if "unet-biplane-jitter" in shipped:
        j, t = _robust("unet-biplane-jitter"), shipped["unet-biplane-jitter"].record["training"]
        validated = [k for k, row in enumerate(t["curve"]) if row.get("val_dice") is not None]
        out["jitter_minutes"] = _minutes(t["wall_time_s"])
        out["jitter_threads"] = str(t["hardware"].get("threads"))
        out["jitter_steps"] = f"{t['optimizer_steps']:,}"
        out["jitter_scores"] = (
            f"scores {j['views off by +2 deg']:.3f} / {j['views off by -2 deg']:.3f} at ±2° (against "
            f"{r['views off by +2 deg']:.3f} / {r['views off by -2 deg']:.3f}) and {j['views off by +5 deg']:.3f} / "
            f"{j['views off by -5 deg']:.3f} at ±5° (against {r['views off by +5 deg']:.3f} / "
            f"{r['views off by -5 deg']:.3f}), and pays {r['nominal'] - j['nominal']:.3f} at the nominal geometry "
            f"({j['nominal']:.3f})")
        out["jitter_best"] = ("the first one" if validated and t["selected_epoch"] == validated[0]
                              else f"epoch {t['selected_epoch'] + 1}")
        out["jitter_epochs"] = str(t["epochs_run"])
        vr, vj = _robust("unet-biplane", validation=True), _robust("unet-biplane-jitter", validation=True)
        out["jitter_val"] = f"{vr['nominal']:.3f} against {vj['nominal']:.3f}"
    return out


def mirror(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Mirror test-time augmentation, from the mirrored robustness records (keys ``mirror_*``).

    Returns
    -------
    dict of str to str
        ``mirror_val`` (the validation Dice without and with it), ``mirror_test`` (the test
        Dice per condition) and ``mirror_gain`` (the mean gain at the nominal geometry,
        rounded to 0.01).
    """
    shipped = entries() if shipped is None else shipped
    names = [n for n in ("unet-biplane", "unet-biplane-conerays") if n in shipped]
    if not names:
        return {}
    rows = zoo_tables.mirror_gain(names, {"validation": ROBUSTNESS_DIR / "validation", "test": ROBUSTNESS_DIR})
    arrow = "→"

    def cell(r: Mapping[str, Any], bold: bool = False) -> str:
        new = f"{r['mirror']:.3f}"
        return f"{r['plain']:.3f} {arrow} " + (f"**{new}**" if bold else new)

    val = [r for r in rows if r["trees"].startswith("validation")]
    test = [r for r in rows if r["trees"].startswith("test")]
    out = {"mirror_val": join([f"`{r['model']}`" + (" on cone-ray input" if "cone" in r["condition"] else "")
                               + f" {cell(r)}" for r in val])}
    parts = []
    for name in names:
        mine = [r for r in test if r["model"] == name]
        plain = {r["condition"]: r for r in mine}
        bits = []
        if "nominal" in plain:
            bits.append(f"{cell(plain['nominal'], bold=True)} nominal")
        if "doubled noise" in plain:
            bits.append(f"{cell(plain['doubled noise'])} with doubled noise")
        off = [r["gain"] for c, r in plain.items() if c.startswith("views off")]
        if off:
            bits.append(f"about {sum(off) / len(off):+.3f} at ±2° and ±5°")
        cone = [r for c, r in plain.items() if "cone-ray" in c]
        if cone:
            bits.append(f"{cell(cone[0])} on cone-ray input")
        parts.append(f"`{name}` " + ", ".join(bits))
    out["mirror_test"] = "; ".join(parts)
    nominal = [r["gain"] for r in test if r["condition"] == "nominal"] or [r["gain"] for r in test]
    out["mirror_gain"] = f"{sum(nominal) / len(nominal):+.2f}"
    return out


def consistency() -> dict[str, str]:
    """View consistency as a test-time refinement, from its record (keys ``consist_*``).

    Returns
    -------
    dict of str to str
        ``consist_low`` (the fill threshold chosen on the validation trees),
        ``consist_predictions``, ``consist_minutes``, ``consist_threads``, ``consist_test``
        (test Dice as predicted and refined, per model), ``consist_truth`` (with the exact
        mask's silhouettes), ``consist_hull`` (the silhouette hull's volume per vessel
        volume, per model).
    """
    record = read_view_consistency()
    table = view_consistency_table(record)
    diag = {r["model"]: r for r in diagnostics_table(record)}
    models = list(record["models"])
    plain = {r["model"]: r for r in table if r["refinement"] == "as predicted"}
    refined = {r["model"]: r for r in table
               if r["refinement"].startswith("carve + fill") and "true" not in r["refinement"]}
    truth = {r["model"]: r for r in table if "true silhouettes" in r["refinement"]}
    lows = sorted({r["low"] for r in refined.values()})
    return {
        "consist_low": join([f"{x:g}" for x in lows]),
        "consist_predictions": str(sum(int(r["cases"]) for r in diag.values())),
        "consist_minutes": _minutes(float(record.get("wall_s") or 0)),
        "consist_threads": str((record.get("evaluated_on") or {}).get("threads")),
        "consist_test": join([f"`{m}` {plain[m]['dice']:.3f} → {refined[m]['dice']:.3f}" for m in models]),
        "consist_truth": join([f"{truth[m]['dice']:.3f}" for m in models]),
        "consist_hull": join([f"{diag[m]['hull_ratio']:.0f} times" + (" the vessel volume" if i == 0 else "")
                              + f" ({plain[m]['views']} views)" for i, m in enumerate(models)]),
    }


def gpu_sessions(shipped: Mapping[str, Any] | None = None, *, logs: str | os.PathLike = GPU_RUNS) -> dict[str, str]:
    """The lent GPU's sessions, from the records and the sessions' logs (keys ``gpu_*``).

    Returns
    -------
    dict of str to str
        From the U-Nets' first session log: ``gpu_volumes``, ``gpu_build_s`` (the volume
        cache) and ``gpu_input_diff`` (largest difference of the GPU's network inputs from
        the CPU's); from the biplane U-Net's record: ``gpu_epoch_s`` (median seconds of an
        epoch per session, "20 and 11") and ``gpu_val_trees``; from the autoencoders' records:
        ``gpu_dae_count`` (entries trained on the GPU), ``gpu_dae_minutes`` (their sessions,
        longest per session), ``gpu_dae_epochs`` (the span of epochs per run, the replaced
        runs included), ``gpu_dae_data_s`` (the span of data building in the first session),
        and ``gpu_dae_data_s_cta`` (the same for the CTA runs), ``gpu_dae_threads``,
        ``gpu_dae_sessions``, ``gpu_dae_patience``; from the autoencoders' log
        ``gpu_dae_epoch_s``; and from the CPU fine-tunes ``gpu_cpu_steps_per_s``.
    """
    shipped = entries() if shipped is None else shipped
    logs = Path(logs)
    out: dict[str, str] = {}
    text = (logs / UNET_LOG).read_text() if (logs / UNET_LOG).exists() else ""
    m = re.search(r"cache: (\d+) volumes in (\d+) s", text)
    if m:
        out["gpu_volumes"], out["gpu_build_s"] = m.group(1), m.group(2)
    m = re.search(r"max \|diff\| ([0-9.eE+-]+)", text)
    if m:
        out["gpu_input_diff"] = f"{float(m.group(1)):g}"
    if "unet-biplane" in shipped:
        t = shipped["unet-biplane"].record["training"]
        per = []
        for s in _sessions(t):
            if s["hardware"].get("cuda"):
                times = [r["time_s"] for r in t["curve"][int(s["first_epoch"]):int(s["epochs_after"])]]
                per.append(f"{statistics.median(times):.0f}")
        out["gpu_epoch_s"] = join(per)
        out["gpu_val_trees"] = str(len(shipped["unet-biplane"].record["split"]["val"]))
    dae = {n: e for n, e in shipped.items() if e.record["recipe"]["experiment"]["model"] == "dae"}
    on_gpu = {n: [s for s in _sessions(e.record["training"]) if s["hardware"].get("cuda")] for n, e in dae.items()}
    on_gpu = {n: s for n, s in on_gpu.items() if s}
    if on_gpu:
        k = max(len(s) for s in on_gpu.values())
        out["gpu_dae_count"] = count_word(len(on_gpu))
        out["gpu_dae_sessions"] = count_word(k)
        out["gpu_dae_minutes"] = join([f"{max(float(s[i]['wall_s']) for s in on_gpu.values() if len(s) > i) / 60:.0f}"
                                       for i in range(k)])
        epochs = [max(int(x["epochs_after"]) for x in s) for s in on_gpu.values()]
        epochs += [s["epochs_run"] for s in read_superseded().values()
                   if s["on_gpu"] and s["entry"] in dae and not s["initialised_from"]]
        out["gpu_dae_epochs"] = span(epochs, "{:.0f}".format)
        out["gpu_dae_data_s"] = span([float(s[0].get("data_s") or 0) for n, s in on_gpu.items()
                                      if zoo_tables.setting_of(dae[n]) == "rotational"], "{:.0f}".format)
        out["gpu_dae_data_s_cta"] = span([float(s[0].get("data_s") or 0) for n, s in on_gpu.items()
                                          if zoo_tables.setting_of(dae[n]) != "rotational"], "{:.0f}".format)
        out["gpu_dae_threads"] = count_word(int(next(iter(on_gpu.values()))[0]["hardware"].get("threads") or 0))
        out["gpu_dae_patience"] = join([count_word(p) for p in sorted(
            {int(dae[n].record["recipe"]["patience"]) for n in on_gpu})])
    text = (logs / DAE_LOG).read_text() if (logs / DAE_LOG).exists() else ""
    times = [float(x) for x in re.findall(r"\] epoch \d+ step \d+ .* ([0-9.]+)s$", text, re.M)]
    if times:
        out["gpu_dae_epoch_s"] = f"{statistics.median(times):.0f}"
    rates = []
    for name in ("unet-biplane-conerays", "unet-biplane-jitter"):
        if name in shipped:
            rates += [r["steps"] / r["time_s"] for r in shipped[name].record["training"]["curve"]
                      if r.get("val_dice") is None and r["time_s"] > 0]
    if rates:
        out["gpu_cpu_steps_per_s"] = f"{statistics.median(rates):.1f}"
    return out
