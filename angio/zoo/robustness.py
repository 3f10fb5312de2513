"""Recorded robustness evaluations of zoo entries: acquisition errors, measured once, re-checked.

How a shipped model holds up when the C-arm is miscalibrated (:mod:`angio.acquisition`) costs
one 192³ prediction per test tree and acquisition condition: nine conditions on five trees
are 45 predictions, three quarters of an hour on two CPU cores. Like the entries' test
metrics, these are measured once, with the shipped weights, by code
(:func:`record_robustness`, command line ``angio zoo robustness NAME``), and written beside
the entry as ``angio/_data/zoo/robustness/<name>.json``:

- ``entry`` and ``entry_sha256``: the entry and the sha256 of the weights that were measured
  (a record whose weights have since changed is refused as stale);
- ``conditions``: each condition's label and its :class:`~angio.acquisition.Acquisition`;
- ``cases`` and ``rows``: per (condition, case) Dice and IoU against the exact mask;
- ``mirror`` (only when true): the predictions averaged with their left-right mirror
  (mirror test-time augmentation, :func:`angio.inference.predict_volume`); such records are
  kept in their own folder (:data:`MIRROR_DIR`), and reading one asks for it;
- ``wall_s``, ``evaluated_on`` (hardware and library versions), ``commit`` and ``made``;
- ``added`` (when conditions were measured later into an existing record with ``add=True``):
  per addition its conditions, ``wall_s``, ``evaluated_on``, ``commit`` and ``made``.

A condition added to :data:`angio.acquisition.CONDITIONS` later, or a field added to
:class:`~angio.acquisition.Acquisition` whose default keeps the old acquisition, leaves older
records valid; ``angio zoo robustness NAME --add --conditions LABEL`` measures the new row
into the record without re-measuring the others.

:func:`check_robustness` re-measures one row live, so a reader (and the slow test) can see
that the record still describes the shipped weights.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from angio.acquisition import CONDITIONS, Acquisition
from angio.atomic import atomic_write_text
from angio.errors import InputError
from angio.records import provenance, read_record
from angio.zoo.entries import ZOO_DIR, entries
from angio.zoo.evaluation import evaluate_entry

__all__ = ["ROBUSTNESS_DIR", "MIRROR_DIR", "robustness_table", "record_robustness", "read_robustness",
           "check_robustness", "recorded_rows"]

#: Folder of the recorded evaluations (beside the entries' records; not an entry itself).
ROBUSTNESS_DIR = ZOO_DIR / "robustness"
#: Subfolder (of a records folder) for evaluations with mirror test-time augmentation.
MIRROR_DIR = "mirror"


def robustness_table(name: str, cases: list[str] | None = None, *, conditions=None,
                     results_dir: str | os.PathLike = "results", folder: str | os.PathLike | None = None,
                     log: Callable[[str], None] | None = None, mirror: bool = False) -> list[dict]:
    """Per-case Dice and IoU (exact mask) of an entry under each acquisition condition.

    ``conditions`` defaults to :data:`angio.acquisition.CONDITIONS`; each row gets a
    ``condition`` label. ``folder`` is the zoo folder holding the entry; ``log``, when
    given, receives one line per condition as it is measured; ``mirror`` as for
    :func:`evaluate_entry`.
    """
    rows = []
    for label, acq in (conditions or CONDITIONS).items():
        part, _ = evaluate_entry(name, cases, results_dir=results_dir, acquisition=acq, targets=("exact",),
                                 overlap_only=True, folder=folder, mirror=mirror)
        rows += [dict(r, condition=label) for r in part]
        if log is not None:
            log(f"[robustness] {name} {label}: Dice " + ", ".join(f"{r['dice']:.3f}" for r in part))
    return rows


def _folders(folder, out_dir) -> tuple[Path | None, Path]:
    zoo_folder = Path(folder) if folder is not None else None
    if out_dir is not None:
        return zoo_folder, Path(out_dir)
    return zoo_folder, (zoo_folder or ZOO_DIR) / "robustness"


def _conditions(labels: Sequence[str] | None) -> dict[str, Acquisition]:
    if labels is None:
        return dict(CONDITIONS)
    unknown = [c for c in labels if c not in CONDITIONS]
    if unknown:
        raise InputError(f"unknown acquisition condition(s) {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(map(repr, CONDITIONS))}")
    if not labels:
        raise InputError("no acquisition condition given")
    return {c: CONDITIONS[c] for c in labels}


def record_robustness(name: str, cases: Sequence[str] | None = None, *, conditions: Sequence[str] | None = None,
                      results_dir: str | os.PathLike = "results", folder: str | os.PathLike | None = None,
                      out_dir: str | os.PathLike | None = None, log: Callable[[str], None] = print,
                      add: bool = False, mirror: bool = False) -> Path:
    """Measure a shipped entry under acquisition conditions and write the record.

    Parameters
    ----------
    name : str
        Zoo entry.
    cases : sequence of str, optional
        Case ids (default: the entry's test cases).
    conditions : sequence of str, optional
        Labels of :data:`angio.acquisition.CONDITIONS` (default: all of them, in that order).
    results_dir : path-like
        Volume cache root.
    folder : path-like, optional
        Zoo folder holding the entry (default :data:`angio.zoo.ZOO_DIR`).
    out_dir : path-like, optional
        Where the record goes (default: ``robustness/`` in the zoo folder).
    log : callable
        Progress messages.
    add : bool
        Measure only ``conditions`` (which must be given) into the existing, valid record
        of the entry, replacing their rows if it has them and keeping the others (in the
        order of :data:`angio.acquisition.CONDITIONS`); the cases are the record's.
    mirror : bool
        Predict with mirror test-time augmentation (:func:`angio.zoo.evaluate_entry`); the
        record says so and goes to the :data:`MIRROR_DIR` subfolder of ``out_dir``.

    Returns
    -------
    pathlib.Path
        The record ``<out_dir>/<name>.json`` (written atomically once every row is measured).
    """
    zoo_folder, out = _folders(folder, out_dir)
    out = out / MIRROR_DIR if mirror else out
    chosen = _conditions(conditions)
    found = entries(zoo_folder)
    if name not in found:
        raise InputError(f"no zoo entry {name!r}; shipped: {', '.join(sorted(found)) or 'none'}")
    entry = found[name]
    old = None
    if add:
        if conditions is None:
            raise InputError("--add needs the conditions to measure (--conditions LABEL ...)")
        old = read_robustness(name, folder=zoo_folder, robustness_dir=out.parent if mirror else out, mirror=mirror)
        if cases is not None and list(cases) != old["cases"]:
            raise InputError(f"{out / (name + '.json')}: the record is on cases {old['cases']}, not {list(cases)}")
        cases = old["cases"]
    cases = list(cases) if cases is not None else list(entry.record["test"]["cases"])
    t0 = time.perf_counter()
    rows = robustness_table(name, cases, conditions=chosen, results_dir=results_dir, folder=zoo_folder, log=log,
                            mirror=mirror)
    # where, when and how long this measurement ran: the record's or, with add, its addition's
    stamp = provenance(t0)
    if old is not None:
        addition = {"conditions": list(chosen), **stamp}
        # the record's conditions and rows stay in the order of CONDITIONS
        conds = {k: v for k, v in old["conditions"].items() if k not in chosen}
        conds.update({label: asdict(acq) for label, acq in chosen.items()})
        order = {label: i for i, label in enumerate(CONDITIONS)}
        conds = dict(sorted(conds.items(), key=lambda kv: order[kv[0]]))
        merged = sorted([r for r in old["rows"] if r["condition"] not in chosen] + rows,
                        key=lambda r: order[r["condition"]])
        record = dict(old, rows=merged, wall_s=old["wall_s"] + addition["wall_s"], conditions=conds,
                      added=old.get("added", []) + [addition])
        return _write(out, name, record)
    record = {
        "entry": name,
        "entry_sha256": entry.record["sha256"],
        "conditions": {label: asdict(acq) for label, acq in chosen.items()},
        "cases": cases,
        "target": "exact",
        **({"mirror": True} if mirror else {}),
        "rows": rows,
        **stamp,
    }
    return _write(out, name, record)


def _write(out: Path, name: str, record: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    atomic_write_text(path, json.dumps(record, indent=1, default=float))
    return path


def read_robustness(name: str, *, folder: str | os.PathLike | None = None,
                    robustness_dir: str | os.PathLike | None = None, mirror: bool = False,
                    stale_ok: bool = False, sha256: str | None = None) -> dict[str, Any]:
    """The robustness record of a shipped entry, checked against the entry and the conditions.

    Parameters
    ----------
    name : str
        Zoo entry.
    folder : path-like, optional
        Zoo folder holding the entry (default :data:`angio.zoo.ZOO_DIR`).
    robustness_dir : path-like, optional
        Folder of the records (default: ``robustness/`` in the zoo folder).
    mirror : bool
        Read the record measured with mirror test-time augmentation (in the
        :data:`MIRROR_DIR` subfolder of ``robustness_dir``).
    stale_ok : bool
        Return a stale record (one measured with other weights) as it is, with
        ``"stale": True`` added, instead of raising; nothing else of it is checked. A current
        record is returned without a ``"stale"`` key.
    sha256 : str, optional
        The sha256 of the weights the record must have measured (what a model card's record
        says); default: the shipped entry's in ``folder``, which must then hold the entry.

    Raises
    ------
    angio.InputError
        If the record is missing or unreadable, was measured with other weights than the
        entry's (stale; unless ``stale_ok``), or a condition's acquisition differs from
        :data:`angio.acquisition.CONDITIONS` of this version; the message names the file and
        the command that remakes it.
    """
    zoo_folder, out = _folders(folder, robustness_dir)
    path = (out / MIRROR_DIR if mirror else out) / f"{name}.json"
    remake = f"`angio zoo robustness {name}{' --mirror' if mirror else ''}` remakes it"
    record = read_record(path, ("entry_sha256",), missing=f"no robustness record of zoo entry {name!r}",
                         remake=remake, unreadable="unreadable robustness record")
    digest = record["entry_sha256"]
    if sha256 is None:
        found = entries(zoo_folder)
        if name not in found:
            raise InputError(f"{path}: zoo entry {name!r} is not shipped")
        sha256 = found[name].record["sha256"]
    if digest != sha256:
        if stale_ok:
            return dict(record, stale=True)
        raise InputError(f"{path}: stale, measured with weights {str(digest)[:12]}... but {name} ships "
                         f"{sha256[:12]}...; {remake}")
    for key in ("rows", "conditions"):  # what a current record needs (a stale one may predate them)
        if key not in record:
            raise InputError(f"{path}: unreadable robustness record ({KeyError(key)!r}); {remake}")
    rows, conds = record["rows"], record["conditions"]
    for label, params in conds.items():
        if label not in CONDITIONS or _acquisition(params) != CONDITIONS[label]:
            raise InputError(f"{path}: condition {label!r} is not the acquisition this version calls by that "
                             f"name; {remake}")
    if bool(record.get("mirror", False)) != mirror:
        raise InputError(f"{path}: measured {'with' if record.get('mirror') else 'without'} mirror test-time "
                         f"augmentation, but read as a record {'with' if mirror else 'without'} it; {remake}")
    if not rows:
        raise InputError(f"{path}: the record holds no rows; {remake}")
    return record


def _acquisition(params: Any) -> Acquisition | None:
    """The recorded acquisition (fields added since take their defaults), or None if unreadable."""
    try:
        return Acquisition(**params)
    except (TypeError, ValueError):
        return None


def recorded_rows(names: Sequence[str] | Mapping[str, Any], **kwargs) -> list[dict]:
    """The recorded rows of several entries, each with ``model`` (the entry's name).

    ``kwargs`` go to :func:`read_robustness`.
    """
    out = []
    for name in names:
        out += [dict(r, model=name) for r in read_robustness(name, **kwargs)["rows"]]
    return out


def check_robustness(name: str, condition: str | None = None, case: str | None = None, *,
                     results_dir: str | os.PathLike = "results", folder: str | os.PathLike | None = None,
                     robustness_dir: str | os.PathLike | None = None, mirror: bool = False) -> tuple[dict, dict]:
    """Re-measure one recorded row live: ``(recorded_row, measured_row)``.

    Parameters
    ----------
    name : str
        Zoo entry.
    condition, case : str, optional
        The row (default: the record's last condition and first case).
    results_dir : path-like
        Volume cache root.
    folder, robustness_dir, mirror
        As for :func:`read_robustness`.
    """
    record = read_robustness(name, folder=folder, robustness_dir=robustness_dir, mirror=mirror)
    condition = condition if condition is not None else list(record["conditions"])[-1]
    case = case if case is not None else record["cases"][0]
    matches = [r for r in record["rows"] if r["condition"] == condition and r["case"] == case]
    if not matches:
        raise InputError(f"the robustness record of {name} has no row for condition {condition!r} on {case!r}")
    acq = Acquisition(**record["conditions"][condition])
    measured, _ = evaluate_entry(name, [case], results_dir=results_dir, acquisition=acq, targets=("exact",),
                                 overlap_only=True, folder=folder, mirror=mirror)
    return matches[0], dict(measured[0], condition=condition)
