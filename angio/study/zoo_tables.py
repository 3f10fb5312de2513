"""Tables of the model zoo's records: the paper's Table 1 at the zoo's grid, and margins.

The zoo's records (``angio/_data/zoo/<name>.json``) hold each shipped entry's metrics on its
held-out test trees, measured when the entry was published (:func:`angio.zoo.publish`) and
re-checked on one tree by :func:`angio.zoo.check_entry`. These functions read those rows;
they take the ``{name: ZooEntry}`` mapping of :func:`angio.zoo.entries` (any objects with
``record``, ``spec`` and ``experiment`` will do) and return plain rows for
:func:`angio.figures.table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from angio import paper
from angio.markdown import join_and  # re-exported: the chapters call it as zoo_tables.join_and
from angio.projection import view_angles
from angio.study.tables import mean_table
from angio.train.selection import replay_rule
from angio.zoo import RECIPES, check_entry
from angio.zoo.robustness import read_robustness

__all__ = ["SETTING_LABELS", "setting_of", "views_text", "training_rows", "session_rows", "stopping_rows",
           "record_rows", "model_rows", "check_rows", "short_runs", "table1", "table2", "table1_series", "iou_margin",
           "IOU_MARGIN_TARGET", "rule_summary", "how_runs_ended", "machines", "join_and", "mirror_gain"]

#: The margin in test IoU against the exact mask by which the study's default models should lead
#: the paper's autoencoder at the same views (2 and 3), set when the zoo's U-Nets were first
#: compared with it (chapter 6).
IOU_MARGIN_TARGET = 0.15

#: How the book names the volume presets of the paper's entries.
SETTING_LABELS: dict[str, str] = {"cta": "paper setting: CTA with skull",
                                  "cta-window": "paper setting, windowed Otsu target",
                                  "rotational": "vessels only"}


def setting_of(entry: Any) -> str:
    """The setting key of an entry: its volume preset, ``-window`` added for a windowed target."""
    target = getattr(entry.experiment, "target", "otsu")
    return entry.spec.modality + ("-window" if target == "otsu_window" else "")


_GEOMETRY = {"cone": "cone beam", "cone-rays": "cone beam, back-projected along its rays"}


def views_text(entry: Any) -> str:
    """An entry's views as the book names them, e.g. ``"0°, 90°, cone beam"`` or ``"0°, 90°, ± 5° in training"``."""
    angles = ", ".join(f"{a:g}°" for a in view_angles(entry.experiment.n_views))
    settings = entry.record["recipe"]["settings"]
    extra = [_GEOMETRY[g] for g in [settings.get("geometry")] if g in _GEOMETRY]
    jitter = settings.get("angle_jitter_deg") or 0
    extra += [f"± {jitter:g}° in training"] if jitter else []
    return angles + ("".join(f", {e}" for e in extra))


def training_rows(shipped: Mapping[str, Any]) -> list[dict]:
    """How each shipped entry was trained, one row per entry (from its record).

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Entries (see :func:`angio.zoo.entries`).

    Returns
    -------
    list of dict
        ``entry``, ``model`` (the recipe's label), ``setting`` (see :data:`SETTING_LABELS`),
        ``views``, ``grid`` (e.g. ``"192³ × 0.5 mm"``), ``epochs`` (run), ``selected`` (the
        shipped epoch, counted from 1), ``steps`` (optimizer steps), ``hours`` (training wall
        time), ``hardware`` (the GPU's name, else the CPU's), ``stopped`` (``"patience"`` or
        ``"time"``: the run ended before its patience ran out), ``start`` (the zoo entry whose
        weights the run started from, ``"scratch"`` for a random initialisation) and
        ``sha256`` (first 12 hex digits of the weights file's).
    """
    out = []
    for name, e in shipped.items():
        t = e.record["training"]
        out.append({
            "entry": name,
            "model": e.record["label"],
            "setting": SETTING_LABELS.get(setting_of(e), setting_of(e)),
            "views": e.experiment.n_views,
            "grid": f"{e.spec.size}³ × {e.spec.voxel_mm:g} mm",
            "epochs": t["epochs_run"],
            "selected": t["selected_epoch"] + 1,
            "steps": t["optimizer_steps"],
            "hours": t["wall_time_s"] / 3600,
            "hardware": _kind(t["hardware"]),
            "stopped": "patience" if t["stopped_by_patience"] else "time",
            "start": _start(t),
            "sha256": e.record["sha256"][:12],
        })
    return out


def _kind(hardware: Mapping[str, Any]) -> str:
    """The kind of machine a run used: the GPU's name, else the CPU's."""
    return str(hardware.get("cuda") or hardware.get("cpu", "CPU"))


def _machine(hardware: Mapping[str, Any]) -> str:
    """A session's machine as the book names it: :func:`_kind`, with the thread count on a CPU."""
    threads = hardware.get("threads")
    return f"{_kind(hardware)}, {threads} threads" if threads and not hardware.get("cuda") else _kind(hardware)


def session_rows(shipped: Mapping[str, Any], *, continued_only: bool = False) -> list[dict]:
    """Each training session of each shipped entry: where it ran, how long, how far it got.

    A run interrupted by a time budget and resumed (on the same machine, or continued from
    its shipped weights on another with ``angio train --recipe NAME --continue-shipped``)
    records one session per start (``training.sessions``). Records written before sessions
    were recorded count as one session on the record's hardware.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Entries (see :func:`angio.zoo.entries`).
    continued_only : bool, optional
        Keep only entries whose sessions ran on more than one kind of machine (e.g. a GPU
        run continued on the CPU).

    Returns
    -------
    list of dict
        One row per (entry, session), epochs counted from 1: ``entry``, ``views``,
        ``session`` (from 1), ``machine`` (the GPU's name, else the CPU's and its thread
        count), ``epochs`` (``"first–last"`` trained in the session), ``n_epochs``,
        ``minutes`` (the session's wall time, data building included), ``val_iou_end`` (the
        validation IoU after the session's last recorded epoch) and ``val_iou_best`` (the
        best in the session; ``None`` where the curve has no validation there). Epochs a
        session trained after the shipped one are not in the next session's starting point
        (it restarts from the shipped weights), and a record's curve keeps only the epochs
        that led to the shipped weights.
    """
    out = []
    for name, e in shipped.items():
        t = e.record["training"]
        sessions = t.get("sessions") or [{"hardware": t["hardware"], "first_epoch": 0,
                                          "epochs_after": t["epochs_run"], "wall_s": t["wall_time_s"]}]
        if continued_only and len({_kind(s["hardware"]) for s in sessions}) < 2:
            continue
        curve = {r["epoch"]: r for r in t["curve"]}
        for i, s in enumerate(sessions):
            first, after = int(s["first_epoch"]), int(s["epochs_after"])
            ious = [curve[k]["val_iou"] for k in range(first, after) if curve.get(k, {}).get("val_iou") is not None]
            last = curve.get(after - 1, {}).get("val_iou")
            out.append({
                "entry": name,
                "views": e.experiment.n_views,
                "session": i + 1,
                "machine": _machine(s["hardware"]),
                "epochs": f"{first + 1}–{after}",
                "n_epochs": after - first,
                "minutes": float(s["wall_s"]) / 60,
                "val_iou_end": last,
                "val_iou_best": max(ious) if ious else None,
            })
    return out


def machines(shipped: Mapping[str, Any]) -> dict[str, list]:
    """The machines the entries' training sessions ran on: ``{"gpu": [names], "cpu_threads": [counts]}``.

    From each session's recorded hardware (the record's, for records without sessions);
    both lists sorted, without repeats.
    """
    gpus, threads = set(), set()
    for e in shipped.values():
        t = e.record["training"]
        for s in t.get("sessions") or [{"hardware": t["hardware"]}]:
            hw = s["hardware"]
            if hw.get("cuda"):
                gpus.add(str(hw["cuda"]))
            elif hw.get("threads"):
                threads.add(int(hw["threads"]))
    return {"gpu": sorted(gpus), "cpu_threads": sorted(threads)}


def _rule(recipe: Any) -> dict[str, Any]:
    """The selection and stopping rule of a recipe (a record's dict, or an object with the fields)."""
    get = recipe.get if isinstance(recipe, Mapping) else lambda k, d=None: getattr(recipe, k, d)
    return {"select": get("select"), "patience": get("patience"), "watch": tuple(get("patience_watch", ()) or ()),
            "select_from": int(get("select_from", 0) or 0)}


def _start(training: Mapping[str, Any]) -> str:
    """The zoo entry a recorded run started from, ``"scratch"`` for a random initialisation."""
    return (training.get("initialised_from") or {}).get("entry", "scratch")


def _from1(epoch: int | None) -> int | None:
    return None if epoch is None else epoch + 1


def stopping_rows(shipped: Mapping[str, Any], recipes: Mapping[str, Any] | None = None) -> list[dict]:
    """How each entry's training ended under its recorded rule, and what a recipe's rule makes of it.

    Everything comes from the records' validation curves (``training.curve``): the recorded
    rule (the record's recipe: ``select``, ``patience``, and ``patience_watch`` and
    ``select_from`` where present, else their defaults) and, with ``recipes``, the current
    recipe's rule replayed over the same epochs (:func:`angio.train.selection.replay_rule`; a
    stopping or selection rule never changes what an epoch computes, so the replay is exact
    over the recorded epochs, and says nothing about epochs that were not run).

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Entries (see :func:`angio.zoo.entries`).
    recipes : mapping of str to Recipe, optional
        Current recipes by entry name (e.g. :data:`angio.zoo.RECIPES`); entries without one
        get their recorded rule in the ``now_*`` columns.

    Returns
    -------
    list of dict
        One row per entry, epochs counted from 1: ``entry``, ``views``, ``start`` (as
        :func:`training_rows`), ``epochs`` (run),
        ``select`` (the selection quantity), ``selected`` (the shipped epoch) and
        ``selected_value`` (its validation value of ``select``), ``stopped`` (``"patience"``
        or ``"time"``, as :func:`training_rows`), ``first_val_loss`` and ``final_val_loss``
        (first and last validated epochs), ``best_loss_epoch``, ``loss_improving`` (whether
        the lowest validation loss came within the last ``patience`` validations of the
        recorded rule, so that patience counted on the loss would not yet have stopped the
        run), ``rule_changed`` (whether the recipe's rule
        differs from the recorded one), ``now_selected`` (the epoch the current rule picks
        among the recorded ones; ``None`` if none is eligible) and ``now_stopped_after`` (the
        last epoch the current rule would have run; ``None``: it would still be training).
    """
    out = []
    for name, e in shipped.items():
        t = e.record["training"]
        validated = [r for r in t["curve"] if r.get("val_loss") is not None]
        then = _rule(e.record["recipe"])
        now = _rule(recipes[name]) if recipes is not None and name in recipes else then
        replay = replay_rule(t["curve"], select=now["select"], patience=now["patience"], watch=now["watch"],
                             select_from=now["select_from"])
        key = "val_loss" if then["select"] == "loss" else f"val_{then['select']}"
        chosen = next((r for r in t["curve"] if r["epoch"] == t["selected_epoch"]), {})
        losses = [r["val_loss"] for r in validated]
        best_loss = min(range(len(losses)), key=losses.__getitem__) if losses else None
        window = then["patience"] or len(losses)
        out.append({
            "entry": name,
            "views": e.experiment.n_views,
            "start": _start(t),
            "epochs": t["epochs_run"],
            "select": then["select"],
            "selected": _from1(t["selected_epoch"]),
            "selected_value": chosen.get(key),
            "stopped": "patience" if t["stopped_by_patience"] else "time",
            "first_val_loss": losses[0] if losses else None,
            "final_val_loss": losses[-1] if losses else None,
            "best_loss_epoch": None if best_loss is None else _from1(validated[best_loss]["epoch"]),
            "loss_improving": best_loss is not None and best_loss >= len(losses) - window,
            "rule_changed": now != then,
            "now_selected": _from1(replay["best_epoch"]),
            "now_stopped_after": _from1(replay["stopped_after"]),
        })
    return out


def record_rows(shipped: Mapping[str, Any], *, named: bool = False) -> list[dict]:
    """Every recorded test row of ``shipped``, with the entry's ``setting`` and ``entry`` name.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Entries (see :func:`angio.zoo.entries`).
    named : bool
        Name each row's ``method`` ``"<label>: <entry>"`` (e.g. ``"DAE (sum): paper-dae-2v"``)
        instead of the recorded label alone, so that entries of one network stay apart.

    Returns
    -------
    list of dict
        One row per (entry, test case, target): the metrics of :func:`angio.metrics.evaluate`
        plus ``entry``, ``views``, ``target``, ``case``, ``setting`` (:func:`setting_of`:
        ``"cta"``, ``"cta-window"`` or ``"rotational"``) and ``trained_for`` (the entry's
        training target).
    """
    rows = []
    for name, entry in shipped.items():
        for r in entry.record["test"]["rows"]:
            rows.append(dict(r, entry=name, views=entry.experiment.n_views, setting=setting_of(entry),
                             trained_for=getattr(entry.experiment, "target", "otsu")))
            if named:
                rows[-1]["method"] = f"{entry.record['label']}: {name}"
    return rows


def model_rows(shipped: Mapping[str, Any], names: Sequence[str] | None = None, *,
               target: str = "exact", others: Sequence[Mapping[str, Any]] = (), others_input: str = "") -> list[dict]:
    """Each entry's recorded test metrics against ``target``, mean and sd over its test trees.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Entries (see :func:`angio.zoo.entries`).
    names : sequence of str, optional
        The entries, in this order (default: all of ``shipped``).
    target : {"exact", "otsu"}
        Ground truth of the recorded rows.
    others : sequence of mapping
        Metric rows of methods that are not zoo entries (e.g. the classical baselines of
        :func:`angio.study.evaluate_baselines`, measured live), one per (method, case,
        target); those against ``target`` are averaged per ``method`` and follow the entries.
    others_input : str
        Their ``input`` column.

    Returns
    -------
    list of dict
        One row per entry: ``entry``, ``method`` (``"<label>: <entry>"``, e.g.
        ``"U-Net (sum + min): unet-biplane"``), ``input`` (:func:`views_text`), ``views``,
        ``cases`` and the mean and population sd (``<m>_std``) of every metric; then one row
        per method of ``others`` (``entry`` ``None``).

    Raises
    ------
    KeyError
        If an entry of ``names`` is not shipped.
    ValueError
        If an entry's record has no test row against ``target``.
    """
    names = list(shipped) if names is None else list(names)
    out = []
    for name in names:
        if name not in shipped:
            raise KeyError(f"no shipped entry {name!r}; shipped: {sorted(shipped)}")
        entry = shipped[name]
        rows = [r for r in entry.record["test"]["rows"] if r["target"] == target]
        if not rows:
            raise ValueError(f"the record of {name} has no test rows against {target!r}")
        mean = mean_table(rows, by=("target",))[0]
        out.append({**mean, "entry": name, "method": f"{entry.record['label']}: {name}", "input": views_text(entry),
                    "views": entry.experiment.n_views})
    for mean in mean_table([r for r in others if r["target"] == target], by=("method",)):
        out.append({**mean, "entry": None, "input": others_input})
    return out


def check_rows(names: Sequence[str], *, results_dir: Any = None, folder: Any = None) -> list[dict]:
    """Each entry measured again on its first test tree against the exact mask, beside its record.

    A live check of the records at the price of one prediction per entry
    (:func:`angio.zoo.check_entry`); the test suite requires agreement to 1e-4.

    Returns
    -------
    list of dict
        One row per entry: ``entry``, ``case``, ``recorded`` and ``measured`` (IoU) and
        ``diff``, the largest absolute difference over IoU, Dice and clDice.
    """
    out = []
    for name in names:
        recorded, measured = check_entry(name, results_dir=results_dir, folder=folder)
        out.append({"entry": name, "case": measured["case"], "recorded": recorded["iou"], "measured": measured["iou"],
                    "diff": max(abs(measured[m] - recorded[m]) for m in ("iou", "dice", "cldice"))})
    return out


#: What makes a run as long as its recipe: the grid and how much of it an epoch trains on
#: (settings), and the network, inputs, loss and target (experiment).
_RUN_SIZE = ("spec", "variants", "max_train_cases", "max_steps_per_epoch", "patch_size", "batch_size",
             "samples_per_volume", "n_test", "n_val")


def short_runs(shipped: Mapping[str, Any], names: Sequence[str] | None = None,
               recipes: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The entries whose weights do not come from a run of their recipe, and why.

    A table the book presents as the study's result must come from the zoo's records (or
    their weights measured again), each made by its recipe: at the recipe's grid, on its
    training set with epochs of its size, with its network, inputs, loss and target, for at
    least one whole epoch, and tested on every test tree. A live run of a profile (minutes
    at a coarser grid, a few steps per epoch) is shorter than its recipe and is never one.
    A recipe's selection and stopping rule (:data:`angio.zoo.RULE_FIELDS`) may have changed
    since an entry was trained: its record says which rule made it (chapter 6 replays the
    current one), so that is not a shorter run.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Entries (see :func:`angio.zoo.entries`).
    names : sequence of str, optional
        The entries to check (default: all of ``shipped``); a name that is not shipped is
        reported.
    recipes : mapping of str to Recipe, optional
        Default :data:`angio.zoo.RECIPES`.

    Returns
    -------
    dict of str to str
        ``{entry: reason}``; empty when every entry is a run of its recipe.
    """
    from dataclasses import asdict

    recipes = RECIPES if recipes is None else recipes
    out = {}
    for name in (list(shipped) if names is None else list(names)):
        if name not in shipped:
            out[name] = "not a shipped zoo entry (a live run, or an entry that is not in the zoo)"
            continue
        if name not in recipes:
            out[name] = "no recipe"
            continue
        record, recipe = shipped[name].record, recipes[name]
        then, now = record["recipe"]["settings"], asdict(recipe.settings)
        now["spec"] = asdict(recipe.settings.spec)
        differ = [k for k in _RUN_SIZE if then.get(k, now[k]) != now[k]]
        experiment = dict(record["recipe"]["experiment"])
        current = asdict(recipe.experiment)
        current["modes"], current["model_kwargs"] = list(current["modes"]), dict(recipe.experiment.model_kwargs)
        differ += [f"experiment.{k}" for k in current if experiment.get(k) != current[k]]
        training = record["training"]
        cases = set(record["test"]["cases"])
        if differ:
            out[name] = "trained with other " + ", ".join(differ) + " than its recipe"
        elif training["epochs_run"] < 1 or training["optimizer_steps"] < 1:
            out[name] = "no whole epoch trained"
        elif {r["case"] for r in record["test"]["rows"]} != cases or not cases:
            out[name] = "not tested on every test tree"
    return out


def table1(shipped: Mapping[str, Any], *, target: str = "otsu",
           settings: Sequence[str] = ("cta", "cta-window", "rotational")) -> list[dict]:
    """The paper's Table 1 re-run: mean test metrics per setting and view count, beside the paper.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        The paper's autoencoder entries (``angio.zoo.entries(model="dae")``).
    target : {"otsu", "exact"}
        Ground truth the recorded metrics were computed against: ``"otsu"`` is each entry's
        own Otsu target (the windowed one for an entry trained on ``"otsu_window"``), as the
        paper scores against the ground truth it trained for; ``"exact"`` the vessel mask.
    settings : sequence of str
        Settings (:func:`setting_of`) to include, in this order; those without shipped
        entries are left out.

    Returns
    -------
    list of dict
        One row per (setting, views), views in decreasing order: ``setting``, ``label``,
        ``views``, ``cases``, the mean and population sd of every metric, and for IoU, MSE
        and MAE the paper's cell ``paper_<m>`` and ``diff_<m>`` (ours - paper; ``None``
        where the paper has no such cell).
    """
    if target not in ("otsu", "exact"):
        raise ValueError(f"target must be 'otsu' or 'exact', got {target!r}")
    def own(r: dict) -> str:
        return r["trained_for"] if target == "otsu" and r["trained_for"].startswith("otsu") else target

    rows = [r for r in record_rows(shipped) if r["target"] == own(r)]
    out = []
    for s in mean_table(rows, by=("setting", "views")):
        if s["setting"] not in settings:
            continue
        cells = paper.beside(s, paper.TABLE1.get(s["views"], {}))
        out.append(dict(s, label=SETTING_LABELS.get(s["setting"], s["setting"]), **cells))
    order = {m: i for i, m in enumerate(settings)}
    return sorted(out, key=lambda r: (order[r["setting"]], -r["views"]))


def table2(shipped: Mapping[str, Any], names: Sequence[str] = ("paper-dae-2v", "paper-cta-dae-2v"), *,
           before: Mapping[str, Mapping[str, float]] | None = None) -> list[dict]:
    """The paper's Table 2 with the zoo's biplane autoencoders beside the paper's, cell by cell.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        Shipped entries (``angio.zoo.entries(model="dae")``).
    names : sequence of str
        The 2-view entries to add, in this order. Each is scored as the paper scored its own:
        the mean over the recorded test trees against the entry's own Otsu target (the
        windowed one for an entry trained on ``"otsu_window"``).
    before : mapping of str to mapping of str to float, optional
        Other rows of ours (``{label: metrics}``, e.g. this run's autoencoder) to put before
        the zoo's.

    Returns
    -------
    list of dict
        The rows of :func:`angio.paper.table2`: the paper's rows as published (``source``
        ``"paper"`` or ``"quoted by the paper"``, no value of ours), then ``before``, then one
        row per entry labelled ``"<name> (<setting>, <voxel> mm, <n> test trees)"``; ours
        carry ``<m>``, ``paper_<m>`` (the paper's autoencoder) and ``diff_<m>`` (ours - paper)
        for pixel accuracy, IoU, MSE and MAE.

    Raises
    ------
    KeyError
        If an entry of ``names`` is not in ``shipped``.
    ValueError
        If an entry is not a 2-view model or its record has no test rows against its target.
    """
    ours = dict(before or {})
    for name in names:
        if name not in shipped:
            raise KeyError(f"no shipped entry {name!r}; shipped: {sorted(shipped)}")
        entry = shipped[name]
        if entry.experiment.n_views != 2:
            raise ValueError(f"{name} has {entry.experiment.n_views} views; the paper's Table 2 is biplane")
        target = getattr(entry.experiment, "target", "otsu")
        rows = [r for r in entry.record["test"]["rows"] if r["target"] == target]
        if not rows:
            raise ValueError(f"the record of {name} has no test rows against its target {target!r}")
        mean = mean_table(rows, by=("target",), metrics=paper.TABLE2_METRICS)[0]
        setting = SETTING_LABELS.get(setting_of(entry), setting_of(entry))
        label = f"{name} ({setting}, {entry.spec.voxel_mm:g} mm, {len(rows)} test trees)"
        ours[label] = {m: mean[m] for m in paper.TABLE2_METRICS}
    return paper.table2(ours)


def table1_series(otsu: Sequence[Mapping[str, Any]], exact: Sequence[Mapping[str, Any]]) -> dict[str, dict[int, float]]:
    """IoU (%) per view count of :func:`table1`'s rows, for :func:`angio.figures.metric_vs_views`.

    One series per setting and ground truth (``"<setting label> vs Otsu"``, ``"... vs
    vessels"``), then the paper's cells (``"paper (quoted)"``).
    """
    series: dict[str, dict[int, float]] = {}
    for name, rows in (("Otsu", otsu), ("vessels", exact)):
        for r in rows:
            series.setdefault(f"{SETTING_LABELS.get(r['setting'], r['setting'])} vs {name}", {})[r["views"]] = \
                100 * r["iou"]
    series["paper (quoted)"] = {n: v for n, v in paper.TABLE1_IOU.items() if v is not None}
    return series


def rule_summary(stops: Sequence[Mapping[str, Any]], shipped: Mapping[str, Any],
                 recipes: Mapping[str, Any]) -> list[str]:
    """Sentences on :func:`stopping_rows`: the recipes' current rules, and which runs they leave short.

    Returns
    -------
    list of str
        One sentence per distinct current rule of the entries' recipes, then which entries
        were trained under an earlier rule, which ship their first (untrained) epoch, and
        which were stopped by patience on the IoU while the validation loss still improved.
    """
    rules = {(r.select, r.select_from, r.patience, tuple(r.patience_watch))
             for n, r in recipes.items() if n in shipped}
    out = []
    for select, start, patience, watch in sorted(rules):
        also = " or ".join([select, *watch])
        out.append(f"current rule: ship the best validation {select} from epoch {start + 1} on; "
                   f"stop after {patience} validations without a new best of {also}")
    old = [r["entry"] for r in stops if r["rule_changed"]]
    first = [r["entry"] for r in stops if r["selected"] == 1 and r["epochs"] > 1 and r["start"] == "scratch"]
    early = [r["entry"] for r in stops if r["stopped"] == "patience" and r["loss_improving"]]
    out.append(f"trained under an earlier rule: {', '.join(old) or 'none'}")
    out.append(f"ship their first epoch, an untrained network: {', '.join(first) or 'none'}")
    out.append("stopped by patience on the IoU, where patience counted on the validation loss had not yet run "
               f"out: {', '.join(early) or 'none'}")
    return out


def how_runs_ended(stops: Sequence[Mapping[str, Any]]) -> list[str]:
    """One sentence per :func:`stopping_rows` row: the shipped epoch, what stopped the run, its loss."""
    out = []
    for r in stops:
        untrained = r["selected"] == 1 and r["epochs"] > 1 and r["start"] == "scratch"
        note = " (its first: an untrained network)" if untrained else ""
        if r["start"] != "scratch":
            note += f", started from the {r['start']} weights"
        rule = " under the earlier stopping rule" if r["rule_changed"] else ""
        first, last = r["first_val_loss"], r["final_val_loss"]
        losses = ("" if first is None else f"; validation loss {first:.3f} at epoch 1, {last:.3f} at the last, "
                  f"lowest at epoch {r['best_loss_epoch']}")
        out.append(f"{r['entry']}: ships epoch {r['selected']} of {r['epochs']}{note}, stopped by "
                   f"{r['stopped']}{rule}{losses}")
    return out


def iou_margin(shipped: Mapping[str, Any], best: Mapping[int, str], *, baseline: str = "paper-dae-{n}v",
               target: str = "exact") -> list[dict]:
    """Mean test IoU of the best model at each view count minus the paper's autoencoder's.

    Parameters
    ----------
    shipped : mapping of str to ZooEntry
        All shipped entries.
    best : mapping of int to str
        ``{views: entry}`` of the models to compare (e.g. :data:`angio.zoo.DEFAULT_MODELS`).
    baseline : str
        Name pattern of the paper's autoencoder entry at ``n`` views.
    target : {"exact", "otsu"}
        Ground truth of the compared metrics.

    Returns
    -------
    list of dict
        One row per view count where both entries are shipped: ``views``, ``model``,
        ``baseline``, ``model_iou``, ``baseline_iou`` and ``margin`` (their difference),
        means over the same test trees.

    Raises
    ------
    ValueError
        If the two entries were tested on different trees.
    """
    out = []
    for n, name in sorted(best.items()):
        base = baseline.format(n=n)
        if name not in shipped or base not in shipped:
            continue
        means = {}
        for key in (name, base):
            rows = [r for r in shipped[key].record["test"]["rows"] if r["target"] == target]
            means[key] = (sorted(r["case"] for r in rows), mean_table(rows, by=("target",))[0]["iou"])
        if means[name][0] != means[base][0]:
            raise ValueError(f"{name} and {base} were tested on different trees")
        out.append({"views": n, "model": name, "baseline": base, "model_iou": means[name][1],
                    "baseline_iou": means[base][1], "margin": means[name][1] - means[base][1]})
    return out


def mirror_gain(names: Sequence[str], folders: Mapping[str, Any]) -> list[dict]:
    """Mean Dice of entries without and with mirror test-time augmentation, per condition.

    Reads, for each entry and each records folder, the record measured with mirror
    test-time augmentation and the plain one (:func:`angio.zoo.robustness.read_robustness`),
    and compares them on the conditions the mirrored record holds.

    Parameters
    ----------
    names : sequence of str
        Zoo entries.
    folders : mapping of str to path-like
        ``{label: robustness records folder}``, e.g. ``{"validation": ..., "test": ...}``.

    Returns
    -------
    list of dict
        One row per (entry, folder, condition): ``model``, ``trees`` (the label and the
        number of trees), ``condition``, ``plain`` and ``mirror`` (mean Dice against the
        exact mask) and ``gain`` (``mirror - plain``).
    """
    out = []
    for name in names:
        for label, folder in folders.items():
            plain = read_robustness(name, robustness_dir=folder)
            mirrored = read_robustness(name, robustness_dir=folder, mirror=True)
            for condition in mirrored["conditions"]:
                means = []
                for record in (plain, mirrored):
                    dice = [r["dice"] for r in record["rows"]
                            if r["condition"] == condition and r["case"] in mirrored["cases"]]
                    if len(dice) != len(mirrored["cases"]):
                        raise ValueError(f"{name}: the plain {label} record lacks {condition!r} on some "
                                         f"of the cases {mirrored['cases']}")
                    means.append(sum(dice) / len(dice))
                out.append({"model": name, "trees": f"{label} ({len(mirrored['cases'])})",
                            "condition": condition, "plain": means[0], "mirror": means[1],
                            "gain": means[1] - means[0]})
    return out
