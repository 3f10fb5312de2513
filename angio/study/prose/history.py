"""What later records replaced: summaries of shipped zoo records that are no longer in the zoo.

A record keeps its sessions, not the metrics it replaced. :func:`superseded_from_history`
reads the replaced records from the repository's git history, :func:`write_superseded` ships
their summaries as :data:`SUPERSEDED`, :func:`read_superseded` reads them back, and
:func:`before` finds the one an entry's run went on from.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from angio.atomic import atomic_write_text
from angio.study.tables import mean_table
from angio.zoo import ZOO_DIR

__all__ = ["SUPERSEDED", "SUPERSEDED_ENTRIES", "superseded_from_history", "write_superseded", "read_superseded",
           "before"]

#: Summaries of shipped records that later records replaced (:func:`superseded_from_history`).
SUPERSEDED = ZOO_DIR / "superseded" / "records.json"


def _test_means(rows: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for target, metric in (("otsu", "iou"), ("exact", "iou"), ("exact", "dice"), ("exact", "cldice")):
        part = [r for r in rows if r["target"] == target and metric in r]
        out[f"{metric}_{target}"] = mean_table(part, by=("target",), metrics=(metric,))[0][metric] if part else None
    return out


def _summary(record: Mapping[str, Any], commit: str) -> dict[str, Any]:
    """What the prose needs of a replaced record: its training, and its test metrics' means."""
    t = record["training"]
    val = {m: [r[f"val_{m}"] for r in t["curve"] if r.get(f"val_{m}") is not None] for m in ("iou", "dice")}
    init = t.get("initialised_from") or {}
    sessions = t.get("sessions") or [{"hardware": t["hardware"]}]
    return {"entry": record["name"], "commit": commit, "made": record.get("made"),
            "epochs_run": t["epochs_run"], "selected_epoch": t["selected_epoch"],
            "optimizer_steps": t["optimizer_steps"], "stopped_by_patience": t["stopped_by_patience"],
            "best_val_iou": max(val["iou"]) if val["iou"] else None,
            "best_val_dice": max(val["dice"]) if val["dice"] else None,
            "initialised_from": ({"entry": init["entry"], "sha256": init["sha256"][:12]} if init else None),
            "on_gpu": all(bool(s["hardware"].get("cuda")) for s in sessions),
            **_test_means(record["test"]["rows"])}


def superseded_from_history(names: Iterable[str], *, repo: str | os.PathLike | None = None,
                            folder: str | os.PathLike = ZOO_DIR) -> dict[str, dict[str, Any]]:
    """Summaries of the shipped records of ``names`` that later records replaced, from git.

    Every version of ``<folder>/<name>.json`` in the repository's history whose weights
    (``sha256``) differ from the current record's, once per weights file, at the first commit
    that shipped it.

    Parameters
    ----------
    names : iterable of str
        Zoo entries.
    repo : path-like, optional
        The git repository (default: the one holding ``folder``).
    folder : path-like
        The zoo folder.

    Returns
    -------
    dict of str to dict
        ``{first 12 hex digits of the replaced weights' sha256: summary}``, each summary with
        ``entry``, ``commit``, ``made``, ``epochs_run``, ``selected_epoch`` (from 0),
        ``optimizer_steps``, ``stopped_by_patience``, ``best_val_iou``, ``best_val_dice``,
        ``initialised_from`` (``{"entry", "sha256"}`` or ``None``), ``on_gpu`` (every session
        on a GPU) and the means over the test trees ``iou_otsu``, ``iou_exact``,
        ``dice_exact`` and ``cldice_exact``; in the order the records were shipped.

    Raises
    ------
    subprocess.CalledProcessError
        If git fails (no repository, or a shallow one without the history).
    """
    folder = Path(folder).resolve()
    repo = Path(repo) if repo is not None else folder

    def git(where: Path, *args: str) -> str:
        return subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, check=True).stdout

    top = Path(git(repo, "rev-parse", "--show-toplevel").strip())  # paths below are relative to it
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        path = (folder / f"{name}.json").relative_to(top).as_posix()
        current = json.loads((folder / f"{name}.json").read_text())["sha256"][:12]
        for commit in reversed(git(top, "log", "--format=%h", "--", path).split()):
            try:
                record = json.loads(git(top, "show", f"{commit}:{path}"))
            except (subprocess.CalledProcessError, ValueError):
                continue  # the file was deleted at that commit, or unreadable
            sha = record["sha256"][:12]
            if sha != current and sha not in out:
                out[sha] = _summary(record, commit)
    return dict(sorted(out.items(), key=lambda kv: kv[1]["made"] or ""))


#: The entries whose replaced records the prose quotes.
SUPERSEDED_ENTRIES = ("paper-dae-90v", "paper-dae-46v", "paper-dae-24v", "paper-dae-10v", "paper-dae-5v",
                      "paper-dae-3v", "paper-dae-2v", "unet-biplane", "unet-3view")


def write_superseded(path: str | os.PathLike = SUPERSEDED, names: Iterable[str] = SUPERSEDED_ENTRIES) -> Path:
    """Write :func:`superseded_from_history` of ``names`` to ``path`` (JSON) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"what": "Summaries of shipped zoo records that later records replaced (a record keeps its "
                      "sessions, not the metrics it replaced), keyed by the first 12 hex digits of the "
                      "replaced weights' sha256",
              "made_by": "angio.study.prose.write_superseded (from the repository's git history)",
              "records": superseded_from_history(names)}
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def read_superseded(path: str | os.PathLike = SUPERSEDED) -> dict[str, dict[str, Any]]:
    """The summaries written by :func:`write_superseded` (``{}`` when there is no such file)."""
    path = Path(path)
    return json.loads(path.read_text())["records"] if path.exists() else {}


def before(entry: Any, superseded: Mapping[str, Mapping[str, Any]]) -> dict[str, Any] | None:
    """The replaced record an entry's run went on from, or ``None``.

    The record that the entry's notes name (``"run rebuilt from the shipped zoo entry (sha256
    ...)"``), else the last replaced record of the same entry.
    """
    t = entry.record["training"]
    for note in t.get("notes") or []:
        m = re.search(r"shipped zoo entry \(sha256 ([0-9a-f]{12})\)", note)
        if m and m.group(1) in superseded:
            return dict(superseded[m.group(1)], sha256=m.group(1))
    same = [(k, s) for k, s in superseded.items() if s["entry"] == entry.record["name"]]
    return dict(same[-1][1], sha256=same[-1][0]) if same else None

