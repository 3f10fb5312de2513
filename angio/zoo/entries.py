"""The shipped entries: records read, weights loaded and their checksums verified.

Each entry is ``angio/_data/zoo/<name>.pt`` (the slim checkpoint) beside ``<name>.json`` (its
record: recipe, split, training curve and sessions, test metrics, commit and sha256).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from angio.errors import InputError
from angio.experiment import Experiment, StudySettings
from angio.pipeline import VolumeSpec
from angio.records import sha256
from angio.train import load_checkpoint
from angio.zoo.recipes import CONE_MODELS, DEFAULT_MODELS

__all__ = ["ZOO_DIR", "ZooEntry", "entries", "load_entry", "verified_entry", "default_model"]

#: Where the shipped weights and records live.
ZOO_DIR = Path(__file__).resolve().parent.parent / "_data" / "zoo"


@dataclass
class ZooEntry:
    """A shipped model: its record and the paths of its files."""

    name: str
    record: dict[str, Any]
    checkpoint: Path
    spec: VolumeSpec = field(default_factory=VolumeSpec)

    @property
    def experiment(self) -> Experiment:
        """The :class:`~angio.study.Experiment` of the entry's recipe."""
        e = dict(self.record["recipe"]["experiment"])
        e["model_kwargs"] = tuple(sorted(e.get("model_kwargs", {}).items()))
        return Experiment(**e)

    @property
    def settings(self) -> StudySettings:
        """The :class:`~angio.study.StudySettings` of the entry's recipe."""
        s = dict(self.record["recipe"]["settings"])
        return StudySettings.from_dict(s)

    def settings_in(self, results_dir: str | os.PathLike) -> StudySettings:
        """The entry's study settings with its volume cache and tables under ``results_dir``."""
        return replace(self.settings, results_dir=str(results_dir))

    def test_row(self, case: str, target: str = "exact") -> dict[str, Any]:
        """The recorded test metrics of ``case`` against ``target`` (the record's ``test.rows``)."""
        for r in self.record["test"]["rows"]:
            if r["case"] == case and r["target"] == target:
                return r
        raise InputError(f"the record of {self.name} has no test row for {case!r} against {target!r}")

    def volumes(self, case: str, results_dir: str | os.PathLike = "results"):
        """The :class:`~angio.pipeline.CaseVolumes` of ``case`` on the entry's grid (cached)."""
        settings = self.settings_in(results_dir)
        return settings.cache().get(case, self.spec, seed=settings.seed)


def entries(folder: str | os.PathLike | None = None, *, model: str | None = None) -> dict[str, ZooEntry]:
    """The shipped zoo entries ``{name: ZooEntry}`` (records read, weights not loaded).

    Parameters
    ----------
    folder : path-like, optional
        Zoo folder (default :data:`ZOO_DIR`).
    model : str, optional
        Only the entries of this network (``"unet"``: the study's own models; ``"dae"``: the
        paper's autoencoder, ``paper-*`` entries).
    """
    folder = Path(folder) if folder is not None else ZOO_DIR
    out = {}
    for rec in sorted(folder.glob("*.json")):
        try:
            record = json.loads(rec.read_text())
        except ValueError as exc:
            raise InputError(f"{rec}: unreadable zoo record ({exc})") from exc
        if model is not None and record["recipe"]["experiment"]["model"] != model:
            continue
        spec = VolumeSpec(**record["recipe"]["settings"]["spec"])
        out[record["name"]] = ZooEntry(record["name"], record, folder / record["file"], spec)
    return out


def load_entry(name: str, *, folder: str | os.PathLike | None = None, verify: bool = True):
    """``(model, entry)`` of a shipped entry; with ``verify`` the file's sha256 is checked first.

    The weights are converted to float32 for inference.
    """
    entry = verified_entry(name, folder, verify)
    model, _, _ = load_checkpoint(entry.checkpoint)
    return model.float(), entry


def verified_entry(name: str, folder: str | os.PathLike | None, verify: bool = True) -> ZooEntry:
    """The shipped entry ``name``; with ``verify`` its file's sha256 is checked against its record."""
    found = entries(folder)
    if name not in found:
        raise InputError(f"no zoo entry {name!r}; shipped: {', '.join(sorted(found)) or 'none'}")
    entry = found[name]
    if verify:
        digest = sha256(entry.checkpoint)
        if digest != entry.record["sha256"]:
            raise InputError(f"{entry.checkpoint}: sha256 {digest[:12]}... does not match its record "
                             f"({entry.record['sha256'][:12]}...); the file is corrupt or was replaced")
    return entry


def default_model(n_views: int, geometry: str = "parallel", shipped: dict | None = None) -> str | None:
    """The zoo entry for ``n_views`` views acquired with ``geometry`` (``None`` when none is shipped).

    Cone-beam views get the cone-beam entry when it is shipped, else the parallel-beam one.
    """
    shipped = entries() if shipped is None else shipped
    for table in ((CONE_MODELS, DEFAULT_MODELS) if geometry == "cone" else (DEFAULT_MODELS,)):
        if table.get(n_views) in shipped:
            return table[n_views]
    return None
