"""The vessels-only autoencoders that start from the weights of more views, in the prose.

:func:`curriculum` tells how they were trained and what they score, from their records, and
their earlier attempts from the records they replaced (:mod:`angio.study.prose.history`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from angio.study import zoo_tables
from angio.study.prose.history import before, read_superseded
from angio.study.prose.records import REPRODUCED_WITHIN, _by_setting, _epoch_minutes, _sessions, _table1
from angio.study.prose.words import _many, _minutes, _points, count_word, join, lr_text, ordinal, pct, span
from angio.zoo import RECIPES, entries

__all__ = ["LEFT_BACKGROUND", "curriculum"]

#: Validation IoU above which a vessels-only run has left the all-background state that the
#: focal loss starts it in.
LEFT_BACKGROUND = 0.10


def curriculum(dae: Mapping[str, Any] | None = None,
               superseded: Mapping[str, Mapping[str, Any]] | None = None,
               recipes: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The vessels-only autoencoders that start from the weights of more views (keys ``curr_*``).

    Returns
    -------
    dict of str to str
        ``curr_count`` and ``curr_threads`` (in words), ``curr_volumes`` (training volumes per
        epoch), ``curr_views`` ("3 and 2"), ``curr_starts`` (which weights each starts from) and
        ``curr_inits`` (the same, with their IoU against Otsu), ``curr_epochs``,
        ``curr_minutes`` (their sessions), ``curr_epoch_minutes`` (median of an epoch),
        ``curr_ious`` ("33.8% (3 views) and 18.5% (2 views)"), ``curr_papers``, ``curr_offsets``
        (to the paper's cells, in points), ``curr_within`` (whether every vessels-only cell lies
        within :data:`REPRODUCED_WITHIN` of the paper's), ``curr_result`` (chapter 6's sentence
        on what ships and scores), ``curr_first`` (their validation after the first epoch),
        ``curr_swing`` (the validation IoU's range after it, before any drop of the learning
        rate), ``curr_old_patience`` and ``curr_patience`` (the recorded and the current rule),
        ``curr_old_rule`` (the entries made under an earlier rule); from the replaced records,
        ``curr_scratch`` (what the runs from scratch reached), ``curr_scratch_epochs`` and
        ``curr_history`` (the earlier attempts); from the continued entries' curves,
        ``curr_left`` (the epochs at which they left the all-background state); and for the run
        with the fewest views, ``curr_last_*`` (``views``, ``best``, ``lr``, ``epochs``,
        ``ships``, ``vs_paper``). Empty when none is shipped.
    """
    dae = entries(model="dae") if dae is None else dae
    superseded = read_superseded() if superseded is None else superseded
    recipes = RECIPES if recipes is None else recipes
    rot = _by_setting(dae, "rotational")
    mine = sorted((v for v, (_, e) in rot.items() if e.record["training"].get("initialised_from")), reverse=True)
    if not mine:
        return {}
    otsu, exact = _table1(dae, "rotational")
    names = {v: rot[v][0] for v in mine}
    train = {v: rot[v][1].record["training"] for v in mine}
    entry_views = {n: e.experiment.n_views for n, e in dae.items()}

    def parent(v: int) -> str:
        init = train[v]["initialised_from"]
        return f"the {entry_views.get(init['entry'], '?')}-view entry"

    def parent_iou(v: int) -> str:
        n = entry_views.get(train[v]["initialised_from"]["entry"])
        return f" ({pct(otsu[n]['iou'])} against Otsu)" if n in otsu else ""

    stops = {r["entry"]: r for r in zoo_tables.stopping_rows({names[v]: rot[v][1] for v in mine}, recipes)}
    offsets = {v: otsu[v]["iou"] - otsu[v]["paper_iou"] for v in mine}
    within_all = all(abs(r["iou"] - r["paper_iou"]) <= REPRODUCED_WITHIN + 1e-12 for r in otsu.values()
                     if r.get("paper_iou") is not None)
    n = len(mine)
    ended = join([f"the {v}-view run epoch {train[v]['selected_epoch'] + 1} of {train[v]['epochs_run']} (ended by "
                  f"{'patience' if train[v]['stopped_by_patience'] else 'the time budget'})" for v in mine])
    ended = ended[0].upper() + ended[1:].replace(" epoch ", " ships epoch ", 1)
    land = [v for v in mine if abs(offsets[v]) <= REPRODUCED_WITHIN + 1e-12]
    lands = ("both rows land" if n == 2 and len(land) == 2 else "every row lands" if len(land) == n and n > 2
             else "the row lands" if n == 1 and land else
             f"the {join(land)}-view {_many(len(land), 'row lands', 'rows land')}" if land else "no row lands")
    threads = sorted({int(x["hardware"].get("threads") or 0) for v in mine for x in _sessions(train[v])})
    out = {
        "curr_count": count_word(len(mine)),
        "curr_threads": join([count_word(x) for x in threads if x]),
        "curr_volumes": join(sorted({len(rot[v][1].record["split"]["train"]) for v in mine})),
        "curr_views": join(mine),
        "curr_inits": join([f"the {v}-view one from {parent(v)}{parent_iou(v)}" for v in mine]),
        "curr_starts": join([f"the {v}-view one from {parent(v)}" for v in mine]),
        "curr_epochs": join([train[v]["epochs_run"] for v in mine]),
        "curr_minutes": join([_minutes(sum(float(s["wall_s"]) for s in _sessions(train[v])))
                              + (" minutes" if i == 0 else "")
                              + (f" in {count_word(len(_sessions(train[v])))} sessions"
                                 if len(_sessions(train[v])) > 1 else "") for i, v in enumerate(mine)]),
        "curr_epoch_minutes": span([_epoch_minutes(train[v]["curve"]) for v in mine], "{:.1f}".format),
        "curr_ious": join([f"{pct(otsu[v]['iou'])} ({v} views)" for v in mine]),
        "curr_papers": join([pct(otsu[v]["paper_iou"]) for v in mine]),
        "curr_offsets": join([f"the {v}-view " + ("cell " if i == 0 else "one ") + _points(abs(offsets[v]))
                              + (" points " if i == 0 else " ") + ("above" if offsets[v] >= 0 else "below")
                              + (" the paper's" if i == 0 else "") for i, v in enumerate(mine)]),
        "curr_within": ("so every vessels-only cell now lies within "
                        f"{100 * REPRODUCED_WITHIN:.0f} points of the paper's" if within_all else
                        f"so not every vessels-only cell lies within {100 * REPRODUCED_WITHIN:.0f} points of the "
                        "paper's yet"),
        "curr_result": (f"{ended}; against Otsu {_many(n, 'it reaches', 'they reach')} "
                        f"{join([pct(otsu[v]['iou']) for v in mine])} IoU on the test trees, where the paper reports "
                        f"{join([pct(otsu[v]['paper_iou']) for v in mine])} (quoted): {lands} within "
                        f"{100 * REPRODUCED_WITHIN:.0f} points of the paper's cells ("
                        + join([f"{_points(abs(offsets[v]))} {'above' if offsets[v] >= 0 else 'below'}"
                                for v in mine]) + ")."),
    }
    first = [train[v]["curve"][0].get("val_iou") for v in mine]
    second = [train[v]["curve"][1].get("val_iou") for v in mine if len(train[v]["curve"]) > 1]
    if all(x is not None for x in first) and len(second) == n:
        recovered = all(b is not None and b > a for a, b in zip(first, second))
        out["curr_first"] = (f"{_many(n, 'The run', 'Both runs' if n == 2 else 'Every run')} scored "
                             f"{span(first)} on validation after {_many(n, 'its', 'their')} first epoch"
                             + (" and recovered in the next" if recovered else ""))
    swings = []
    for v in sorted(mine):
        curve = train[v]["curve"]
        vals = [r["val_iou"] for r in curve[1:] if r.get("val_iou") is not None and r["lr"] == curve[0]["lr"]]
        if vals:
            swings.append(f"{span(vals)} at {v}" + ("" if swings else " views"))
    out["curr_swing"] = join(swings)
    old = [v for v in mine if stops[names[v]]["rule_changed"]]
    out["curr_old_rule"] = (f"The {join(old)}-view {_many(len(old), 'entry was', 'entries were')} made under the old "
                            "rule" if old else "Every one of them was made under the current rule")
    out["curr_old_patience"] = join(sorted({rot[v][1].record["recipe"]["patience"] for v in old})) or "-"
    out["curr_patience"] = join(sorted({recipes[names[v]].patience for v in mine if names[v] in recipes}))
    # the fewest views: the run continued under the current rule, with a late drop of the learning rate
    last = mine[-1]
    t, rec = train[last], rot[last][1].record
    best = t["curve"][t["selected_epoch"]].get("val_iou")
    drop = [(k, r["lr"]) for k, r in enumerate(t["curve"]) if r["lr"] != t["curve"][0]["lr"]]
    out["curr_last_views"] = str(last)
    out["curr_last_best"] = f"validation IoU {best:.3f} at epoch {t['selected_epoch'] + 1}" if best is not None else ""
    out["curr_last_lr"] = (f"a learning rate of {lr_text(drop[0][1])} from epoch {drop[0][0] + 1} (the paper states a "
                           f"constant {lr_text(rec['recipe']['lr'])})" if drop else
                           f"the paper's constant learning rate of {lr_text(rec['recipe']['lr'])}")
    gap = otsu[last]["paper_iou"] - otsu[last]["iou"]
    out["curr_last_vs_paper"] = (f"{pct(otsu[last]['iou'])}, {_points(abs(gap))} points "
                                 f"{'below' if gap > 0 else 'above'} the paper's cell")
    out["curr_last_epochs"] = str(t["epochs_run"])
    prev = before(rot[last][1], superseded) if t.get("notes") else None
    out["curr_last_ships"] = (f"Epoch {t['selected_epoch'] + 1} ships: {pct(otsu[last]['iou'])} against Otsu and "
                              f"{pct(exact[last]['iou'])} against the exact mask"
                              + (f", from {pct(prev['iou_otsu'])} and {pct(prev['iou_exact'])}" if prev else ""))
    # the runs from scratch on the GPU that these replaced
    scratch = [s for s in superseded.values() if s["entry"] in names.values() and s["on_gpu"]
               and not s["initialised_from"]]
    if scratch:
        epochs = join([count_word(e) for e in sorted({s["epochs_run"] for s in scratch})])
        out["curr_scratch"] = (f"at {join(sorted({entry_views[s['entry']] for s in scratch}))} views never got above "
                               f"a validation IoU of {max(s['best_val_iou'] for s in scratch):.2f} in the {epochs} "
                               "epochs it was given")
        out["curr_scratch_epochs"] = epochs
    # when the runs from scratch with more views left the all-background state
    cont = [v for v, (_, e) in rot.items() if not e.record["training"].get("initialised_from")]
    left = [next((k + 1 for k, r in enumerate(rot[v][1].record["training"]["curve"])
                  if (r.get("val_iou") or 0) > LEFT_BACKGROUND), None) for v in cont]
    if cont and all(k is not None for k in left):
        out["curr_left"] = (f"the runs at {min(cont)} views and more left that state only from about their "
                            f"{span(left, ordinal)} epoch (a validation IoU above {LEFT_BACKGROUND:g})")
    out["curr_history"] = _curriculum_history(dae, superseded, names, otsu)
    return out


def _curriculum_history(dae: Mapping[str, Any], superseded: Mapping[str, Mapping[str, Any]],
                        names: Mapping[int, str], otsu: Mapping[int, Mapping[str, Any]]) -> str:
    """The earlier attempts of the two curriculum runs with the most views, from the replaced records.

    ``""`` where the records do not hold them: the attempts from the GPU's weights of the entry
    they start from, from its continued weights, and (the fewer views) from the other's weights.
    """
    if len(names) < 2 or not superseded:
        return ""
    hi, lo = sorted(names, reverse=True)[:2]
    start = (dae[names[hi]].record["training"].get("initialised_from") or {}).get("entry")
    gpu_start = before(dae[start], superseded) if start in dae else None
    if gpu_start is None:
        return ""
    n_start = dae[start].experiment.n_views

    def attempts(v: int, init_sha: str) -> list[dict[str, Any]]:
        record = dae[names[v]].record
        init = record["training"].get("initialised_from") or {}
        current = {"iou_otsu": otsu[v]["iou"], "epochs_run": record["training"]["epochs_run"],
                   "best_val_iou": max((r["val_iou"] for r in record["training"]["curve"]
                                        if r.get("val_iou") is not None), default=None),
                   "initialised_from": {"entry": init.get("entry"), "sha256": str(init.get("sha256", ""))[:12]}}
        mine = [s for s in superseded.values() if s["entry"] == names[v]] + [current]
        return [s for s in mine if (s.get("initialised_from") or {}).get("sha256") == init_sha]

    a = {v: attempts(v, gpu_start["sha256"]) for v in (hi, lo)}
    b = {v: attempts(v, dae[start].record["sha256"][:12]) for v in (hi, lo)}
    if not all(a.values()) or not all(b.values()):
        return ""

    def gain(v: int) -> str:
        d = b[v][-1]["iou_otsu"] - a[v][0]["iou_otsu"]
        return "none" if abs(d) < 0.005 else f"{'gains' if d > 0 else 'loses'} {_points(abs(d))} points"

    best = b[lo][-1].get("best_val_iou")
    text = (f"Started from the {n_start}-view weights as the GPU left them ({gpu_start['epochs_run']} epochs, "
            f"{pct(gpu_start['iou_otsu'])} against Otsu) the two had reached {pct(a[hi][0]['iou_otsu'])} and "
            f"{pct(a[lo][0]['iou_otsu'])}; from the CPU-continued {n_start}-view weights ({pct(otsu[n_start]['iou'])}) "
            f"the {hi}-view run {gain(hi)}, the {lo}-view run {gain(lo)} ({pct(b[lo][-1]['iou_otsu'])}"
            + (f", best validation IoU {best:.3f}" if best is not None else "") + ")")
    from_hi = [s for s in superseded.values() if s["entry"] == names[lo]
               and (s.get("initialised_from") or {}).get("entry") == names[hi]]
    if from_hi:
        s = from_hi[0]
        text += (f", and from the {hi}-view weights the {lo}-view run reached a best validation IoU of "
                 f"{s['best_val_iou']:.3f} in {s['epochs_run']} epochs ({pct(s['iou_otsu'])} on the test trees)")
    return text + "."
