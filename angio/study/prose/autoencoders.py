"""The paper's autoencoder in the prose, from the zoo's records.

The vessels-only runs trained on a GPU and continued on the CPU (:func:`continued`), the
paper's setting against Otsu of the windowed CTA (:func:`windowed`) and of the raw CTA
(:func:`raw_cta`), the study's models' margin over the autoencoder (:func:`margins`) and the
zoo's grid beside the paper's (:func:`grid`). The runs that start from the weights of more
views are told by :mod:`angio.study.prose.curriculum`.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from angio import paper
from angio.study import zoo_tables
from angio.study.ground_truth import RECORD as GROUND_TRUTH_RECORD
from angio.study.prose.history import before, read_superseded
from angio.study.prose.records import REPRODUCED_WITHIN, _by_setting, _ended, _epoch_minutes, _sessions, _table1
from angio.study.prose.words import _hyphenated, _many, _minutes, _points, count_word, join, pct, span
from angio.zoo import DEFAULT_MODELS, RECIPES, entries, load_entry

__all__ = ["continued", "windowed", "raw_cta", "margins", "grid"]


def continued(dae: Mapping[str, Any] | None = None,
              superseded: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, str]:
    """The vessels-only autoencoders trained on a GPU and continued on the CPU (keys ``cont_*``).

    Parameters
    ----------
    dae : mapping of str to ZooEntry, optional
        The paper's autoencoder entries (default ``angio.zoo.entries(model="dae")``).
    superseded : mapping, optional
        :func:`read_superseded` (default: the shipped file); gives the IoU before the CPU.

    Returns
    -------
    dict of str to str
        ``cont_count`` (the entries, in words), ``cont_at`` ("the vessels-only entries at 90
        and 46 views"), ``cont_views``,
        ``cont_label`` ("90- and 46-view ones"), ``cont_were``, ``cont_their``,
        ``cont_reach_verb``, ``cont_threads`` (in words), ``cont_epochs`` (more epochs on
        the CPU), ``cont_minutes`` (the CPU sessions'), ``cont_ships`` ("epochs 31 of 35
        and 38 of 38 ship"), ``cont_ended``, ``cont_papers``, ``cont_ious_otsu``,
        ``cont_ious_exact``, ``cont_took`` ("took the 90-view one from 34.0% to 52.4% IoU
        against Otsu, ..."), ``cont_gpu`` (a sentence: how the GPU left them),
        ``cont_then`` and ``cont_result`` (chapter 6's account of the CPU sessions),
        ``cont_reach`` (chapter 10's), ``cont_epoch_minutes`` (the slowest continuation's
        minutes per epoch against the others'). Empty when no such entry is shipped.
    """
    dae = entries(model="dae") if dae is None else dae
    superseded = read_superseded() if superseded is None else superseded
    names = {r["entry"] for r in zoo_tables.session_rows(dae, continued_only=True)}
    mine = sorted(((dae[n].experiment.n_views, n) for n in names
                   if zoo_tables.setting_of(dae[n]) == "rotational"), reverse=True)
    if not mine:
        return {}
    views = [v for v, _ in mine]
    otsu, exact = _table1(dae, "rotational")
    one = len(views) == 1
    rows = []
    for v, name in mine:
        e = dae[name]
        t = e.record["training"]
        sessions = _sessions(t)
        cpu = [s for s in sessions if not s["hardware"].get("cuda")][-1]
        gpu = [s for s in sessions if s["hardware"].get("cuda")]
        rows.append({"views": v, "t": t, "cpu": cpu, "gpu_epochs": max(int(s["epochs_after"]) for s in gpu),
                     "more": t["epochs_run"] - int(cpu["first_epoch"]), "ended": _ended(t, cpu),
                     "threads": cpu["hardware"].get("threads"), "volumes": len(e.record["split"]["train"]),
                     "before": before(e, superseded), "epoch_min": float(cpu["wall_s"]) / 60 / max(
                         1, t["epochs_run"] - int(cpu["first_epoch"]))})
    their, were = _many(len(views), "its", "their"), _many(len(views), "was", "were")
    papers = join([pct(otsu[v]["paper_iou"]) for v in views])
    ious_otsu = join([pct(otsu[v]["iou"]) for v in views])
    ious_exact = join([pct(exact[v]["iou"]) for v in views])
    ships = join([f"{r['t']['selected_epoch'] + 1} of {r['t']['epochs_run']}" for r in rows])
    ships = ("epoch " + ships + " ships") if one else ("epochs " + ships + " ship")
    reasons = {r["ended"] for r in rows}
    ended = (("" if one else "each ") + f"ended by {reasons.pop()}" if len(reasons) == 1
             else join([f"the {r['views']}-view one by {r['ended']}" for r in rows]))
    threads = {r["threads"] for r in rows}
    thread_word = join([count_word(int(n)) for n in sorted(threads) if n]) or "the"
    have_before = all(r["before"] for r in rows)
    took = join([f"the {r['views']}-view one from {pct(r['before']['iou_otsu'])} to {pct(otsu[r['views']]['iou'])}"
                 + (" IoU against Otsu" if i == 0 else "") for i, r in enumerate(rows)]) if have_before else ""
    out = {
        "cont_count": count_word(len(views)),
        "cont_at": f"the vessels-only {_many(len(views), 'entry', 'entries')} at {join(views)} views",
        "cont_views": join(views),
        "cont_label": _hyphenated(views, "one"),
        "cont_were": were,
        "cont_their": their,
        "cont_reach_verb": _many(len(views), "reaches", "reach"),
        "cont_threads": thread_word,
        "cont_epochs": join([r["more"] for r in rows]),
        "cont_minutes": join([_minutes(r["cpu"]["wall_s"]) for r in rows]),
        "cont_ships": ships,
        "cont_ended": ended,
        "cont_papers": papers,
        "cont_ious_otsu": ious_otsu,
        "cont_ious_exact": ious_exact,
        "cont_took": ("took " + took) if took else f"reached {ious_otsu} IoU against Otsu",
    }
    # how the GPU left them (chapter 6)
    gpu = (f"In the vessels-only setting the {_many(len(views), 'run', 'runs')} at {join(views)} views {were} "
           "still improving when the GPU time ended")
    if have_before:
        last = all(r["before"]["selected_epoch"] + 1 == r["before"]["epochs_run"] == r["gpu_epochs"] for r in rows)
        epochs = join(sorted({r["gpu_epochs"] for r in rows}))
        volumes = join(sorted({r["volumes"] for r in rows}))
        shipped = (f"{_many(len(views), 'it', 'each')} shipped its last epoch, after {epochs} epochs of {volumes} "
                   "volumes" if last else "shipping epoch " + join(
                       [f"{r['before']['selected_epoch'] + 1} of {r['before']['epochs_run']}" for r in rows]))
        gaps = [otsu[r["views"]]["paper_iou"] - r["before"]["iou_otsu"] for r in rows]
        gpu += (f" ({shipped}), {their} IoU against Otsu {span(gaps)} below the paper's "
                f"{_many(len(views), 'cell', 'cells')} with the curve still rising")
    out["cont_gpu"] = gpu + "."
    # the CPU sessions (chapter 6)
    out["cont_then"] = (f"The {_hyphenated(views, 'run')} {were} then continued from {their} shipped weights on "
                        f"{thread_word} CPU threads")
    after = [abs(otsu[v]["paper_iou"] - otsu[v]["iou"]) for v in views]
    within = math.ceil(100 * max(after) - 1e-9)
    now = (f"It now lies within {within} points of the paper's cell." if one else
           f"All {count_word(len(views))} now lie within {within} points of the paper's cells.")
    went = (join([f"from {pct(r['before']['iou_otsu'])} to {pct(otsu[r['views']]['iou'])}" for r in rows])
            if have_before else f"to {ious_otsu}")
    vessels = (join([f"from {pct(r['before']['iou_exact'])} to {pct(exact[r['views']]['iou'])}" for r in rows])
               if have_before else f"to {ious_exact}")
    out["cont_result"] = (f"for {out['cont_epochs']} more epochs ({out['cont_minutes']} minutes, {ended}); {ships}, "
                          f"and {their} IoU against Otsu went {went} (against the vessels {vessels}), where the paper "
                          f"reports {papers}. {now}")
    # chapter 10
    reach = (f"continued on {thread_word} CPU threads from {their} GPU weights, the vessels-only "
             f"{_many(len(views), 'run', 'runs')} at {join(views)} views {out['cont_reach_verb']} {ious_otsu} IoU "
             f"against Otsu and {ious_exact} against the vessels, where the paper has {papers}")
    if have_before:
        reach += (f": {their} {_many(len(views), 'gap', 'gaps')} to the paper's {_many(len(views), 'cell', 'cells')} "
                  f"fell from {join([_points(otsu[r['views']]['paper_iou'] - r['before']['iou_otsu']) for r in rows])}"
                  f" to {join([_points(otsu[v]['paper_iou'] - otsu[v]['iou']) for v in views])} points")
    out["cont_reach"] = reach
    slow = max(rows, key=lambda r: r["epoch_min"])
    others = [r["epoch_min"] for r in rows if r is not slow]
    out["cont_epoch_minutes"] = (f"the {slow['views']}-view run took {slow['epoch_min']:.1f} minutes an epoch"
                                 + (f", the others {span(others, '{:.1f}'.format)}" if others else ""))
    return out


def _close_far(otsu: Mapping[int, Mapping[str, Any]]) -> tuple[list[int], list[int]]:
    views = sorted(otsu, reverse=True)
    close = [v for v in views if abs(otsu[v]["iou"] - otsu[v]["paper_iou"]) <= REPRODUCED_WITHIN + 1e-12]
    return close, [v for v in views if v not in close]


def _at_views(values: Sequence[str], views: Sequence[int], what: str = "") -> str:
    """``"51.3% IoU at 90 views, 52.2% at 46 and 48.2% at 2"``."""
    return join([f"{x}{what if i == 0 else ''} at {v}" + (" views" if i == 0 else "")
                 for i, (x, v) in enumerate(zip(values, views))])


def windowed(dae: Mapping[str, Any] | None = None, *, ground_truth: str | os.PathLike = GROUND_TRUTH_RECORD,
             recipes: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The paper's setting against Otsu of the windowed CTA (keys ``win_*``).

    Returns
    -------
    dict of str to str
        ``win_count`` (the entries, in words), ``win_threads`` (their CPU threads, in words),
        ``win_minutes`` (each run's), ``win_minutes_span``,
        ``win_epoch_minutes`` (median of an epoch), ``win_ships`` ("epoch 16 of 19 ships at
        90 views, 15 of 18 at 46, ..."), ``win_still`` (how many the recipes' current stopping
        rule would still be training), ``win_ious`` ("51.3% IoU at 90 views, ..."),
        ``win_papers``, ``win_deltas`` (ours - paper, points), ``win_vs_exact`` (the span of
        IoU against the vessels), the views within :data:`REPRODUCED_WITHIN` of the paper
        (``win_close_views``, ``win_close_within``, ``win_close_ious``, ``win_close_papers``)
        and those not (``win_far_views``, ``win_far_words``, ``win_far_ious``,
        ``win_far_papers``, ``win_far_deltas``, ``win_paper_falls``: how far the paper's IoU
        falls from its most views to each), ``win_most_words`` (the most views, in words), and
        from the ground-truth record ``win_skull`` (the span of the windowed mask's share that
        is not vessel), ``win_trees``, ``win_field`` (the windowed mask's share of the field) and
        ``win_heads`` ("4 of them a head of over 30%": how many of those trees the raw-HU
        threshold marks as a head, over 30% of the field). Empty when no such entry is shipped.
    """
    dae = entries(model="dae") if dae is None else dae
    recipes = RECIPES if recipes is None else recipes
    mine = _by_setting(dae, "cta-window")
    if not mine:
        return {}
    otsu, exact = _table1(dae, "cta-window")
    views = sorted(otsu, reverse=True)
    train = {v: mine[v][1].record["training"] for v in views}
    close, far = _close_far(otsu)
    stops = {r["entry"]: r for r in zoo_tables.stopping_rows({mine[v][0]: mine[v][1] for v in views}, recipes)}
    still = sum(1 for v in views if stops[mine[v][0]]["now_stopped_after"] is None)
    total = count_word(len(views))
    threads = sorted({int(train[v]["hardware"].get("threads") or 0) for v in views})
    out = {
        "win_count": total,
        "win_threads": join([count_word(x) for x in threads if x]),
        "win_minutes": join([_minutes(train[v]["wall_time_s"]) for v in views]),
        "win_minutes_span": span([train[v]["wall_time_s"] / 60 for v in views], "{:.0f}".format) + " minutes",
        "win_epoch_minutes": f"{statistics.median(_epoch_minutes(train[v]['curve']) for v in views):.1f}",
        "win_ships": "epoch " + join([f"{train[v]['selected_epoch'] + 1} of {train[v]['epochs_run']}"
                                      + (" ships" if i == 0 else "") + f" at {v}" + (" views" if i == 0 else "")
                                      for i, v in enumerate(views)]),
        "win_still": ("all " + total if still == len(views) else "none of the " + total if still == 0
                      else f"{count_word(still)} of the {total}"),
        "win_ious": _at_views([pct(otsu[v]["iou"]) for v in views], views, " IoU"),
        "win_papers": join([pct(otsu[v]["paper_iou"]) for v in views]),
        "win_deltas": join([_points(otsu[v]["iou"] - otsu[v]["paper_iou"], signed=True) for v in views]),
        "win_vs_exact": span([100 * exact[v]["iou"] for v in views]) + "%",
        "win_close_views": join(close),
        "win_close_within": join([_points(abs(otsu[v]["iou"] - otsu[v]["paper_iou"])) for v in close]),
        "win_close_ious": join([pct(otsu[v]["iou"]) for v in close]),
        "win_close_papers": join([pct(otsu[v]["paper_iou"]) for v in close]),
        "win_far_views": join(far),
        "win_far_words": join([count_word(v) for v in far]),
        "win_far_ious": _at_views([pct(otsu[v]["iou"]) for v in far], far),
        "win_far_papers": join([pct(otsu[v]["paper_iou"]) for v in far]),
        "win_far_deltas": join([_points(otsu[v]["iou"] - otsu[v]["paper_iou"], signed=True) for v in far]),
        "win_paper_falls": join([f"{100 * (paper.TABLE1[max(paper.TABLE1)]['iou'] - paper.TABLE1[v]['iou']):.0f}"
                                 for v in far if v in paper.TABLE1]),
        "win_most_words": count_word(max(views)),
    }
    out.update(_ground_truth(ground_truth))
    return out


def _ground_truth(path: str | os.PathLike) -> dict[str, str]:
    """The windowed and raw-HU Otsu masks of the held-out trees, from the ground-truth record."""
    path = Path(path)
    if not path.exists():
        return {}
    record = json.loads(path.read_text())
    window = next(k for k in record["windows"] if k.startswith("angiography"))
    raw = next(k for k, v in record["windows"].items() if v is None)
    field = record["resolution"]["size"] ** 3
    win = [r for r in record["rows"] if r["label"] == window]
    heads = [r for r in record["rows"] if r["label"] == raw and r["otsu_voxels"] / field > 0.30]
    return {"win_skull": span([100 * (1 - r["vessel_share"]) for r in win], "{:.0f}".format) + "%",
            "win_trees": str(len({r["case"] for r in win})),
            "win_field": span([100 * r["otsu_voxels"] / field for r in win], "{:.0f}".format) + "%",
            "win_heads": f"{len({r['case'] for r in heads})} of them a head of over 30%"}


def raw_cta(dae: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The paper's own setting, against Otsu of the raw CTA (keys ``cta_*``).

    Returns
    -------
    dict of str to str
        ``cta_never`` (how many runs never beat their first epoch on validation IoU, and
        which did when; ``cta_never_lower`` the same in lower case), ``cta_patience`` (how
        many stopped by patience), ``cta_loss`` (the training loss's first and lowest
        values), ``cta_val_swing`` (the validation IoU's range), ``cta_mae`` (the test MAE's
        range), ``cta_near_views`` (the views within :data:`REPRODUCED_WITHIN` of the paper).
        Empty when no such entry is shipped.
    """
    dae = entries(model="dae") if dae is None else dae
    mine = _by_setting(dae, "cta")
    if not mine:
        return {}
    otsu, _ = _table1(dae, "cta")
    views = sorted(mine, reverse=True)
    train = {v: mine[v][1].record["training"] for v in views}
    never = [v for v in views if train[v]["selected_epoch"] == 0]
    beat = [v for v in views if v not in never]
    total = count_word(len(views))
    by_epoch: dict[int, list[int]] = {}
    for v in beat:
        by_epoch.setdefault(train[v]["selected_epoch"] + 1, []).append(v)
    did = join([f"the {_hyphenated(vs, 'run')} did, at epoch {k}" for k, vs in by_epoch.items()])
    curves = [train[v]["curve"] for v in views]
    vals = [r["val_iou"] for c in curves for r in c if r.get("val_iou") is not None]
    patience = sum(1 for v in views if train[v]["stopped_by_patience"])
    near = [v for v in views if abs(otsu[v]["iou"] - otsu[v]["paper_iou"]) <= REPRODUCED_WITHIN + 1e-12]
    never_text = (f"{count_word(len(never))} of the {total} CTA runs never beat their first epoch on validation "
                  "IoU" + (f" ({did})" if did else ""))
    return {
        "cta_never": never_text[0].upper() + never_text[1:],
        "cta_never_lower": never_text,
        "cta_patience": ("all " + total if patience == len(views) else f"{count_word(patience)} of the {total}"),
        "cta_loss": (span([c[0]["train_loss"] for c in curves], sep="-") + " to "
                     + span([min(r["train_loss"] for r in c) for c in curves], sep="-")),
        "cta_val_swing": f"{min(vals):.2f} and {max(vals):.2f}",
        "cta_mae": span([otsu[v]["mae"] for v in views]),
        "cta_near_views": join(near) if near else "no view count",
    }


def margins(shipped: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The study's models' IoU margin over the paper's autoencoder, and how far each network sees.

    Returns
    -------
    dict of str to str
        ``margin_ious`` ("0.35 IoU (2 views) and 0.32 (3 views)"), ``margin_goal``
        (:data:`angio.study.zoo_tables.IOU_MARGIN_TARGET`), ``margin_met`` ("above" or
        "below"), and for the biplane autoencoder and the default biplane model
        ``reach_dae`` ("22 input voxels (11 mm)") and ``reach_model`` (the same, or "the
        whole field" where it spans the field).
    """
    shipped = entries() if shipped is None else shipped
    rows = zoo_tables.iou_margin(shipped, DEFAULT_MODELS)
    goal = zoo_tables.IOU_MARGIN_TARGET
    out = {"margin_ious": join([f"{r['margin']:.2f}" + (" IoU" if i == 0 else "") + f" ({r['views']} views)"
                                for i, r in enumerate(rows)]),
           "margin_goal": f"{goal:.2f}",
           "margin_met": "above" if rows and all(r["margin"] >= goal for r in rows) else "not all above"}
    for key, name in (("reach_dae", "paper-dae-2v"), ("reach_model", DEFAULT_MODELS.get(2))):
        if name not in shipped:
            continue
        model, entry = load_entry(name)
        reach = model.spatial_divisor + 2 * model.receptive_radius
        out[key] = ("the whole field" if reach >= entry.spec.size else
                    f"{reach} input voxels ({reach * entry.spec.voxel_mm:g} mm)")
    return out


def grid(dae: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The zoo's grid and the paper's, as the prose names them.

    Returns
    -------
    dict of str to str
        ``grid_size`` ("192³"), ``grid_voxel``, ``grid_fov``, ``grid_train_volumes`` and
        ``grid_val_volumes`` (from the autoencoders' records), ``paper_voxel``, ``paper_patients``, ``paper_size``
        (:data:`angio.paper.SETUP`) and ``reproduced_within`` (:data:`REPRODUCED_WITHIN`, in
        points).
    """
    dae = entries(model="dae") if dae is None else dae
    res = {(e.spec.size, e.spec.voxel_mm, e.spec.fov_mm) for e in dae.values()}
    size, voxel, fov = sorted(res)[0]
    return {"grid_size": f"{size}³", "grid_voxel": f"{voxel:g} mm", "grid_fov": f"{fov:g} mm",
            "grid_train_volumes": join(sorted({len(e.record["split"]["train"]) for e in dae.values()})),
            "grid_val_volumes": join(sorted({len(e.record["split"]["val"]) for e in dae.values()})),
            "paper_voxel": f"{paper.SETUP['voxel_mm']:g} mm", "paper_patients": str(paper.SETUP["patients"]),
            "paper_size": f"{paper.SETUP['volume']}³", "reproduced_within": f"{100 * REPRODUCED_WITHIN:.0f}"}
