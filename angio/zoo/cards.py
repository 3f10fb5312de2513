"""Model cards: each shipped zoo entry's record rendered as a Markdown card.

A card (in the manner of MONAI bundles' and Hugging Face's model cards) says what an entry
is for and where it stops, what it was trained and tested on, what goes in and comes out,
how it was trained and at what cost, how well it does (mean ± standard deviation over its
held-out test trees, against every ground truth it was scored on), how it holds up under
acquisition errors when a robustness record ships for it, and how to retrain it.

Every number on a card is read from the entry's record (``angio/_data/zoo/<name>.json``,
written by :func:`angio.zoo.publish`) or from its robustness records
(``angio/_data/zoo/robustness/``); the paper's own cells come from :mod:`angio.paper`.
Nothing is typed by hand, so a republished entry gets a new card.

``angio zoo card NAME`` prints one card (``--out FILE`` writes it);
:func:`model_cards_page` renders every shipped entry's card as one page, which
:func:`angio.study.build_book` writes into the book at build time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from angio import paper
from angio.atomic import atomic_write_text
from angio.errors import InputError
from angio.markdown import join_and, markdown_cell, markdown_table
from angio.metrics import summarize
from angio.projection import view_angles
from angio.zoo.entries import ZOO_DIR, entries
from angio.zoo.recipes import CONE_MODELS, DEFAULT_MODELS, RECIPES, recipe_changes
from angio.zoo.robustness import MIRROR_DIR, read_robustness

__all__ = ["REQUIRED_FIELDS", "model_card", "model_cards_page", "write_model_cards"]

#: The record fields a card cannot do without (dotted paths into the record).
REQUIRED_FIELDS: tuple[str, ...] = (
    "name", "description", "label", "file", "sha256", "commit", "seed",
    "split.train", "split.val", "split.test",
    "resolution.size", "resolution.fov_mm", "resolution.voxel_mm",
    "recipe.experiment.model", "recipe.experiment.n_views", "recipe.experiment.modes",
    "recipe.experiment.loss", "recipe.experiment.target", "recipe.settings.spec.modality",
    "train_config",
    "training.epochs_run", "training.selected_epoch", "training.optimizer_steps", "training.wall_time_s",
    "training.stopped_by_patience", "training.hardware", "training.curve",
    "test.cases", "test.rows",
)

#: The metrics of a test row, in card order.
_METRICS = ("dice", "cldice", "iou", "mse", "mae", "accuracy")
_METRIC_NAMES = {"dice": "Dice", "cldice": "clDice", "iou": "IoU", "mse": "MSE", "mae": "MAE",
                 "accuracy": "accuracy"}
_TARGET_SHORT = {"exact": "exact vessel mask", "otsu": "Otsu's threshold", "otsu_window": "Otsu after the window"}
_LOSSES = {"dice_bce": "Dice + binary cross-entropy", "bce": "binary cross-entropy", "focal": "focal"}
_TARGETS = {
    "exact": "the exact vessel mask",
    "otsu": "Otsu's threshold of the volume (the paper's ground truth)",
    "otsu_window": "Otsu's threshold after the modality's vessel window",
}
_MODALITIES = {
    "rotational": "vessels only: angiography-like volumes of the arteries without bone (as a subtracted "
                  "rotational angiogram shows them)",
    "cta": "the paper's setting: CT angiograms with the skull",
}
_SETTINGS = {"rotational": "vessels only", "cta": "CTA with skull"}
_MODES = {"sum": "sum back-projection (the paper's input)",
          "min": "min back-projection (the tightest volume consistent with every view)"}
_GEOMETRIES = {
    "parallel": "parallel-beam maximum-intensity projections",
    "cone": "cone-beam projections of a clinical C-arm, demagnified to the isocentre",
    "cone-rays": "cone-beam projections of a clinical C-arm, back-projected along the cone's own rays",
}


def _get(record: Mapping[str, Any], path: str) -> Any:
    node: Any = record
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            raise KeyError(path)
        node = node[key]
    return node


def _check(record: Mapping[str, Any]) -> None:
    """Raise :class:`~angio.errors.InputError` naming the entry and every required field it lacks."""
    if not isinstance(record, Mapping):
        raise InputError(f"a zoo record must be a JSON object, got {type(record).__name__}")
    name = record.get("name") or "(a record without a name)"
    missing = []
    for path in REQUIRED_FIELDS:
        try:
            value = _get(record, path)
        except KeyError:
            missing.append(path)
            continue
        if value is None and path not in ("training.selected_epoch",):
            missing.append(path)
    if missing:
        raise InputError(f"zoo entry {name!r}: its record lacks {join_and([repr(m) for m in missing])}, "
                         f"which its model card needs; republish the entry (`angio zoo publish {name}`)")
    if not record["test"]["rows"]:
        raise InputError(f"zoo entry {name!r}: its record holds no test rows; republish the entry "
                         f"(`angio zoo publish {name}`)")


def _fmt(metric: str, value: float) -> str:
    if metric in ("mse", "mae"):
        return f"{value:.3g}"
    if metric == "accuracy":
        return f"{value:.4f}"
    return f"{value:.3f}"


def _pm(metric: str, stats: Mapping[str, float]) -> str:
    return f"{_fmt(metric, stats['mean'])} ± {_fmt(metric, stats['std'])}"


def _deg(angles: Sequence[float]) -> str:
    return join_and([f"{a:g}°" for a in angles])


def _machine(hardware: Mapping[str, Any]) -> str:
    if hardware.get("cuda"):
        return str(hardware["cuda"])
    threads = hardware.get("threads")
    cpu = str(hardware.get("cpu") or "CPU")
    return f"{cpu} ({threads} thread{'s' if threads != 1 else ''})" if threads else cpu


def _sessions(training: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The record's training sessions; a record without them counts as one on its hardware."""
    sessions = training.get("sessions")
    if sessions:
        return [dict(s) for s in sessions]
    return [{"hardware": training["hardware"], "first_epoch": 0, "epochs_after": training["epochs_run"],
             "wall_s": training["wall_time_s"]}]


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 100 else f"{minutes / 60:.2f} h"


def _stats(rows: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    return summarize([{m: float(r[m]) for m in metrics} for r in rows])


def _robustness(name: str, sha: str, folder: Path | None) -> dict[str, Any] | None:
    """``{"plain": record, "mirror": record or None}`` of the entry's test robustness records, or a stale marker.

    The records are read by :func:`angio.zoo.robustness.read_robustness` against the weights
    ``sha`` (the card's record's); a stale mirror record is left out.
    """
    if folder is None or not (folder / f"{name}.json").exists():
        return None
    plain = read_robustness(name, robustness_dir=folder, sha256=sha, stale_ok=True)
    if plain.get("stale"):
        return {"stale": True}
    mirror = None
    if (folder / MIRROR_DIR / f"{name}.json").exists():
        mirror = read_robustness(name, robustness_dir=folder, sha256=sha, stale_ok=True, mirror=True)
        if mirror.get("stale"):
            mirror = None
    return {"plain": plain, "mirror": mirror}


def _ended(training: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    """How the run ended: ``"patience"``, or a phrase for the epoch limit or the time budget."""
    if training["stopped_by_patience"]:
        return "patience"
    limit = config.get("epochs")
    if limit is not None and int(training["epochs_run"]) >= int(limit):
        return f"the run used all the {int(limit)} epochs its recipe allows"
    return "the run was stopped by its time budget (or by hand)"


def _order(record: Mapping[str, Any]) -> tuple:
    """Page order: the study's models (the defaults first), then the paper's by setting and views."""
    experiment = record["recipe"]["experiment"]
    setting = record["recipe"]["settings"]["spec"]["modality"] + ("-window" if experiment["target"] == "otsu_window"
                                                                  else "")
    rank = {"rotational": 0, "cta-window": 1, "cta": 2}.get(setting, 3)
    return (experiment["model"] == "dae", record["name"] not in DEFAULT_MODELS.values(), rank,
            -int(experiment["n_views"]) if experiment["model"] == "dae" else int(experiment["n_views"]), record["name"])


def _robustness_lines(name: str, sha: str, folder: Path) -> list[str]:
    """The "Robustness" section's body: the entry's robustness record as a table, or why there is none."""
    out: list[str] = []
    robust = _robustness(name, sha, folder)
    if robust is None:
        out += [f"No robustness record ships for this entry; `angio zoo robustness {name}` measures one "
                "(Dice and IoU against the exact mask under acquisition errors)."]
    elif robust.get("stale"):
        out += [f"The shipped robustness record was measured with other weights (stale); "
                f"`angio zoo robustness {name}` remakes it."]
    else:
        plain, mirror = robust["plain"], robust["mirror"]
        conditions = list(plain.get("conditions", {}))
        has_mirror = mirror is not None and any(r["condition"] in conditions for r in mirror["rows"])
        rescaled = any("dice_rescaled" in r for r in plain["rows"])
        head = ["condition", "trees", "Dice", "IoU"]
        head += ["Dice, mirror averaging"] if has_mirror else []
        head += ["Dice against the rescaled anatomy"] if rescaled else []
        rows = []
        for c in conditions:
            rs = [r for r in plain["rows"] if r["condition"] == c]
            if not rs:
                continue
            st = _stats(rs, ["dice", "iou"])
            cells = [c, len(rs), _pm("dice", st["dice"]), _pm("iou", st["iou"])]
            if has_mirror:
                ms = [r for r in mirror["rows"] if r["condition"] == c]
                cells.append(_pm("dice", _stats(ms, ["dice"])["dice"]) if ms else "—")
            if rescaled:
                rr = [r for r in rs if "dice_rescaled" in r]
                cells.append(_pm("dice", summarize([{"d": float(r["dice_rescaled"])} for r in rr])["d"])
                             if rr else "—")
            rows.append(cells)
        when = str(plain.get("made", ""))[:10]
        out += [f"Measured with the shipped weights on the test trees (`angio zoo robustness {name}`"
                + (f", {when}" if when else "") + "), against the exact mask; mean ± standard deviation over the "
                "trees. Each condition is an acquisition error of the views given to the model:", ""]
        out += markdown_table(head, rows, align="lr" + "r" * (len(head) - 2))
    return out


def _heading(level: int, text: str) -> str:
    return "#" * level + " " + text


def model_card(record: Mapping[str, Any], *, level: int = 1, robustness_dir: str | os.PathLike | None = None,
               robustness: bool = True) -> str:
    """One zoo entry's record as a Markdown model card.

    Parameters
    ----------
    record : mapping
        The entry's record, as :func:`angio.zoo.publish` writes it
        (``angio/_data/zoo/<name>.json``; :attr:`angio.zoo.ZooEntry.record`).
    level : int, optional
        Heading level of the card's title (1 for a card on its own; 2 on a page of cards).
        Its sections are one level below.
    robustness_dir : path-like, optional
        Folder of the robustness records (``<name>.json``, and ``mirror/<name>.json`` with
        mirror test-time augmentation; default: ``robustness/`` in :data:`angio.zoo.ZOO_DIR`).
    robustness : bool, optional
        Include the "Robustness" section (a table of the entry's robustness record, or a
        line saying there is none or that it is stale).

    Returns
    -------
    str
        Markdown, ending with a newline: the title, a summary table, then the sections
        "Intended use and limits", "Data and split", "Input and output", "Training
        procedure and cost", "Metrics", "Robustness" and "How to retrain".

    Raises
    ------
    angio.InputError
        If the record lacks a field of :data:`REQUIRED_FIELDS` (the message names the entry
        and the fields) or holds no test rows, or a current robustness record is unreadable or
        does not hold up (:func:`angio.zoo.robustness.read_robustness`; a stale one is said so).
    """
    _check(record)
    if robustness_dir is None:
        robustness_dir = ZOO_DIR / "robustness"
    h1, h2 = level, level + 1
    name = record["name"]
    recipe, experiment = record["recipe"], record["recipe"]["experiment"]
    settings = recipe.get("settings", {})
    config, training, test, res = record["train_config"], record["training"], record["test"], record["resolution"]
    n_views = int(experiment["n_views"])
    angles = [float(a) for a in view_angles(n_views)]
    modality = settings["spec"]["modality"]
    geometry = settings.get("geometry", "parallel") or "parallel"
    jitter = float(settings.get("angle_jitter_deg") or 0.0)
    target = experiment["target"]
    modes = list(experiment["modes"])
    size, voxel, fov = int(res["size"]), float(res["voxel_mm"]), float(res["fov_mm"])
    kwargs = experiment.get("model_kwargs") or {}
    model = f"`{experiment['model']}`" + (" (" + ", ".join(f"{k} {v}" for k, v in kwargs.items()) + ")"
                                          if kwargs else "")
    start = (training.get("initialised_from") or {}).get("entry")
    split = record["split"]
    description = markdown_cell(record["description"])
    out: list[str] = [_heading(h1, f"Model card: `{name}`"), "", description[:1].upper() + description[1:] + ".", ""]
    made = str(record.get("made", ""))[:10]
    out += markdown_table(["field", "value"], [
        ["model", f"{record['label']}: {model}"],
        ["views", f"{n_views} at {_deg(angles)}, {_GEOMETRIES.get(geometry, geometry)}"],
        ["grid", f"{size}³ voxels of {voxel:g} mm ({fov:g} mm field of view)"],
        ["trained against", _TARGETS.get(target, target)],
        ["weights", f"`{record['file']}` ({record.get('weights_dtype', 'float32')}), sha256 "
                    f"`{record['sha256'][:16]}…`"],
        ["published", (f"{made}, " if made else "") + f"commit `{record['commit'][:12]}`"
                      + (" (uncommitted changes)" if str(record["commit"]).endswith("+dirty") else "")],
    ])

    # -- intended use and limits
    out += ["", _heading(h2, "Intended use and limits"), ""]
    if DEFAULT_MODELS.get(n_views) == name:
        use = (f"`angio reconstruct` uses this entry by default for {n_views} views at {_deg(angles)} "
               "(images with angles typed).")
    elif CONE_MODELS.get(n_views) == name:
        use = (f"`angio reconstruct` uses this entry for {n_views} X-ray angiography (XA) planes, whose C-arm "
               "geometry it reads from their headers.")
    elif experiment["model"] == "dae":
        use = ("A reproduction of Wu et al.'s autoencoder (ISVC 2023, Table 1), kept to compare with the paper "
               "and with the study's U-Nets; not meant to reconstruct user images.")
    else:
        use = (f"A variant kept for comparison (chapter 9); `angio reconstruct --checkpoint` can use it for "
               f"{n_views} views at {_deg(angles)}.")
    out += [f"- **Intended use:** research. From {n_views} views of the head's arteries it returns a 3D "
            f"vessel probability on its {size}³ grid. {use}"]
    out += [f"- **Only its own views:** it was trained on {n_views} views at {_deg(angles)} "
            f"({_GEOMETRIES.get(geometry, geometry)})"
            + (f", the angles jittered by up to {jitter:g}°" if jitter else "")
            + "; other view counts, angles or geometries are outside what it learned (see Robustness)."]
    out += ["- **Synthetic images of real anatomy:** volumes built from healthy adults' arterial trees (BraVa), "
            f"{_MODALITIES.get(modality, modality)}; real angiograms add veins, overlapping bone, motion and "
            "scatter, and show no aneurysms or stenoses (the book's Limitations page)."]
    out += [f"- **Small test set:** {len(test['cases'])} held-out trees; the spread below is over them."]
    ended = _ended(training, config)
    if ended != "patience":
        out += [f"- **Not trained until patience ran out:** {ended}, before the recipe's rule saw the "
                "validation curve level off, so more epochs may help."]
    out += ["- Not a medical device."]

    # -- data and split
    variants = settings.get("variants")
    out += ["", _heading(h2, "Data and split"), ""]
    out += [f"- **Source:** the {len(split['train']) + len(split['val']) + len(split['test'])} bundled BraVa "
            "arterial trees (`angio/_data/brava/`), each voxelized into a volume: "
            f"{_MODALITIES.get(modality, modality)}."]
    out += [f"- **Split** (patient-level, seed {record['seed']}): {len(split['train'])} training, "
            f"{len(split['val'])} validation and {len(split['test'])} test trees."]
    out += [f"- **Validation trees** (epoch selection): {', '.join(split['val'])}."]
    out += [f"- **Test trees** (the metrics below): {', '.join(test['cases'])}."]
    if variants is not None:
        out += ["- **Augmentation:** " + (f"{variants} augmented variants of each training tree besides the "
                                          "original" if variants else "none (as in the paper)")
                + (f"; view angles jittered by up to {jitter:g}°" if jitter else "") + "."]
    out += [f"- **Ground truth:** {_TARGETS.get(target, target)}."]

    # -- input and output
    patch = settings.get("inference_patch")
    out += ["", _heading(h2, "Input and output"), ""]
    out += [f"- **Views:** {n_views} projections at {_deg(angles)} about the volume's `z` axis (the C-arm's "
            f"rotation axis), {_GEOMETRIES.get(geometry, geometry)}."]
    out += [f"- **Input:** a float32 tensor `(1, {len(modes)}, {size}, {size}, {size})` (B, C, Z, Y, X; volumes "
            f"are `V[z, y, x]`), {voxel:g} mm voxels over the central {fov:g} mm, {len(modes)} channel"
            f"{'s' if len(modes) != 1 else ''}: " + join_and([f"{i}: {_MODES.get(m, m)}" for i, m in enumerate(modes)])
            + "."]
    out += [f"- **Output:** `(1, 1, {size}, {size}, {size})`, the probability that each voxel is vessel, on the "
            "input's grid; "
            + (f"predicted over blended {patch}³ windows." if patch else "predicted on the whole volume at once.")]

    # -- training
    sessions = _sessions(training)
    total = sum(float(s["wall_s"]) for s in sessions)
    gpu = [s for s in sessions if s["hardware"].get("cuda")]
    cpu = [s for s in sessions if not s["hardware"].get("cuda")]
    loss = _LOSSES.get(experiment["loss"], experiment["loss"])
    if experiment["loss"] == "focal" and "focal_alpha" in config:
        loss += f" (alpha {config['focal_alpha']:g}, gamma {config['focal_gamma']:g})"
    lr = f"Adam, learning rate {recipe.get('lr', config.get('lr')):g}"
    milestones = recipe.get("lr_milestones", config.get("lr_milestones")) or []
    if milestones:
        lr += (f", × {recipe.get('lr_gamma', config.get('lr_gamma', 0.1)):g} from epoch"
               f"{'s' if len(milestones) > 1 else ''} {join_and([str(int(m) + 1) for m in milestones])}")
    batch = config.get("batch_size")
    patch_size = config.get("patch_size")
    data = (f"batches of {batch} random {patch_size}³ patch{'es' if batch != 1 else ''}" if patch_size
            else f"batches of {batch} whole {size}³ volume{'s' if batch != 1 else ''}")
    rule = f"{training.get('selected_by', 'validation ' + str(config.get('select')))}"
    patience = recipe.get("patience", config.get("patience"))
    watch = recipe.get("patience_watch") or []
    stop = (f"patience {patience} epochs without a new best" + (f" (a new lowest validation {join_and(watch)} "
                                                                 "also counts)" if watch else "")
            if patience else "a fixed number of epochs")
    out += ["", _heading(h2, "Training procedure and cost"), ""]
    out += markdown_table(["setting", "value"], [
        ["loss", loss],
        ["optimizer", lr],
        ["data", data + f", at most {config.get('epochs')} epochs"],
        ["precision", str(config.get("precision", "auto"))],
        ["epoch selection", rule],
        ["stopping", stop],
        ["started from", f"the weights of `{start}`" if start else "a random initialisation"],
    ])
    selected = training["selected_epoch"]
    out += ["", f"It ran {training['epochs_run']} epochs ({training['optimizer_steps']} optimizer steps); epoch "
            f"{'?' if selected is None else int(selected) + 1} ships (counted from 1); "
            + ("patience ended the run." if ended == "patience" else f"{ended}.")]
    rows = []
    for i, s in enumerate(sessions, 1):
        first, after = int(s.get("first_epoch", 0)), int(s.get("epochs_after", training["epochs_run"]))
        rows.append([i, str(s.get("started", ""))[:10] or "—", _machine(s["hardware"]), f"{first + 1}–{after}",
                     f"{float(s['wall_s']) / 60:.1f}"])
    out += [""] + markdown_table(["session", "started", "machine", "epochs", "minutes"], rows, align="lllrr")
    cost = [f"{len(sessions)} session{'s' if len(sessions) != 1 else ''}, {_duration(total)} of wall time in all "
            "(building the data included)"]
    if gpu:
        kinds = sorted({str(s["hardware"]["cuda"]) for s in gpu})
        cost.append(f"{sum(float(s['wall_s']) for s in gpu) / 60:.1f} GPU-minutes on {join_and(kinds)}")
    if cpu:
        hours = sum(float(s["wall_s"]) for s in cpu) / 3600
        threads = sum(float(s["wall_s"]) * int(s["hardware"].get("threads") or 1) for s in cpu) / 3600
        kinds = sorted({_machine(s["hardware"]) for s in cpu})
        cost.append(f"{hours:.2f} CPU-hours on {join_and(kinds)} ({threads:.2f} thread-hours)")
    out += ["", "**Cost:** " + "; ".join(cost) + f". The training loop's own time over the recorded epochs was "
            f"{_duration(float(training['wall_time_s']))}."]
    notes = list(training.get("notes") or []) + [s["note"] for s in sessions if s.get("note")]
    if notes:
        out += ["", "Notes from the record:", ""] + [f"- {markdown_cell(n)}" for n in notes]

    # -- metrics
    cases = list(test["cases"])
    targets = list(dict.fromkeys(["exact", target] + [r["target"] for r in test["rows"]]))
    by_target = {t: [r for r in test["rows"] if r["target"] == t] for t in targets}
    by_target = {t: rs for t, rs in by_target.items() if rs}
    out += ["", _heading(h2, "Metrics"), ""]
    out += [f"On the {len(cases)} held-out test trees, measured with the shipped weights when they were "
            f"published; mean ± standard deviation (population) over the trees:", ""]
    table = []
    for t, rs in by_target.items():
        metrics = [m for m in _METRICS if all(m in r for r in rs)]
        stats = _stats(rs, metrics)
        table.append([_TARGET_SHORT.get(t, t) + (" (training target)" if t == target else ""), len(rs)]
                     + [_pm(m, stats[m]) if m in stats else "—" for m in _METRICS])
    out += markdown_table(["against", "trees", *(_METRIC_NAMES[m] for m in _METRICS)], table, align="lr" + "r" * 6)
    if experiment["model"] == "dae" and n_views in paper.TABLE1:
        own = by_target.get(target) or []
        line = (f"The paper's Table 1 at {n_views} views: IoU {100 * paper.TABLE1[n_views]['iou']:.1f}% (its own "
                "CT angiograms, against Otsu's threshold)")
        if own:
            mean = _stats(own, ["iou"])["iou"]["mean"]
            line += (f"; this entry {100 * mean:.1f}% against its own Otsu target "
                     f"({100 * (mean - paper.TABLE1[n_views]['iou']):+.1f} points)")
        out += ["", line + "."]
    per_case = []
    for case in cases:
        cells: list[Any] = [case]
        for t in by_target:
            row = next((r for r in by_target[t] if r["case"] == case), None)
            cells += [f"{row['dice']:.3f}" if row else "—", f"{row['iou']:.3f}" if row else "—"]
        per_case.append(cells)
    head = ["test tree"] + [f"{m} vs {_TARGET_SHORT.get(t, t)}" for t in by_target for m in ("Dice", "IoU")]
    out += ["", "Per test tree:", ""] + markdown_table(head, per_case, align="l" + "r" * (len(head) - 1))
    if test.get("eval_wall_s") is not None:
        where = _machine(test["evaluated_on"]) if test.get("evaluated_on") else "its machine"
        out += ["", f"Evaluating the {len(cases)} trees took {_duration(float(test['eval_wall_s']))} on {where}."]

    # -- robustness
    if robustness:
        out += ["", _heading(h2, "Robustness"), ""] + _robustness_lines(name, record["sha256"], Path(robustness_dir))

    # -- retraining
    out += ["", _heading(h2, "How to retrain"), ""]
    out += ["```bash",
            f"angio train --recipe {name}                      # train from scratch and publish to the zoo",
            f"angio train --recipe {name} --continue-shipped   # or go on from the shipped weights",
            f"angio zoo check {name}                           # re-measure one test tree against this record",
            "```"]
    if start:
        out += ["", f"The recipe starts from the weights of `{start}`; retrain that entry first "
                "(`angio zoo retrain` orders them)."]
    if name in RECIPES:
        changes = recipe_changes(name, dict(record))
        if changes:
            out += ["", "The recipe of this version differs from the one recorded with these weights, so a retrain "
                    "would follow the new one: " + "; ".join(f"`{k}` {json.dumps(a)} → {json.dumps(b)}"
                                                               for k, (a, b) in changes.items()) + "."]
    else:
        out += ["", f"This version has no recipe named `{name}`; the record's `recipe` field says how it was made."]
    return "\n".join(out) + "\n"


def model_cards_page(folder: str | os.PathLike | None = None, *,
                     robustness_dir: str | os.PathLike | None = None) -> str:
    """Every shipped entry's model card, as one Markdown page (the book's "Model cards").

    Parameters
    ----------
    folder : path-like, optional
        Zoo folder (default :data:`angio.zoo.ZOO_DIR`).
    robustness_dir : path-like, optional
        As for :func:`model_card` (default: ``robustness/`` in ``folder``).

    Returns
    -------
    str
        Markdown: a title, an index table of the entries (views, setting, test Dice against
        the exact mask) and one card per entry, its title at level 2.

    Raises
    ------
    angio.InputError
        If no entry is shipped or an entry's record lacks a required field.
    """
    zoo_folder = Path(folder) if folder is not None else ZOO_DIR
    if robustness_dir is None:
        robustness_dir = zoo_folder / "robustness"
    found = entries(zoo_folder)
    if not found:
        raise InputError(f"{zoo_folder}: no zoo entry ships there")
    for entry in found.values():
        _check(entry.record)
    shipped = {name: found[name] for name in sorted(found, key=lambda n: _order(found[n].record))}
    lines = ["# Model cards", "",
             "One card per model the zoo ships (`angio zoo list`), written from the entry's record when this "
             "book was built: what the model is for and where it stops, its data, input and output, how it "
             "was trained and at what cost, its test metrics with their spread over the held-out trees, its "
             "robustness where measured, and how to retrain it. `angio zoo card NAME` prints one.", ""]
    index = []
    for name, entry in shipped.items():
        rec = entry.record
        exact = [r for r in rec["test"]["rows"] if r["target"] == "exact"]
        dice = _pm("dice", _stats(exact, ["dice"])["dice"]) if exact else "—"
        experiment, settings = rec["recipe"]["experiment"], rec["recipe"]["settings"]
        geometry = settings.get("geometry", "parallel") or "parallel"
        views = str(experiment["n_views"]) + ("" if geometry == "parallel" else f" ({geometry})")
        volumes = _SETTINGS.get(settings["spec"]["modality"], settings["spec"]["modality"])
        index.append([f"`{name}`", views, rec["label"], volumes, _TARGET_SHORT.get(experiment["target"],
                                                                                  experiment["target"]),
                      len(exact), dice])
    lines += markdown_table(["entry", "views", "model", "volumes", "trained against", "test trees",
                             "Dice vs exact mask"], index, align="lrlllrr")
    for entry in shipped.values():
        lines += ["", model_card(entry.record, level=2, robustness_dir=robustness_dir).rstrip("\n")]
    return "\n".join(lines) + "\n"


def write_model_cards(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> Path:
    """Write every shipped entry's model card to one Markdown file, atomically.

    Parameters
    ----------
    path : path-like
        The page to write (its folder is created).
    folder : path-like, optional
        Zoo folder (default :data:`angio.zoo.ZOO_DIR`).

    Returns
    -------
    pathlib.Path
        ``path``, holding :func:`model_cards_page`.
    """
    path = Path(path)
    atomic_write_text(path, model_cards_page(folder))
    return path
