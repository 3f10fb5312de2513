"""JSON records shipped with the package: where and when they were measured, written and read.

The zoo's robustness records, the ground-truth record and the view-consistency record are
all JSON files that a script measures once and the book reads. They share four things:

- :func:`grid`: the volume grid they were measured on;
- :func:`provenance`: ``wall_s``, ``evaluated_on`` (hardware and library versions),
  ``commit`` and ``made`` (UTC time), stamped on every record;
- :func:`write_record`: the record written atomically (:mod:`angio.atomic`), its folder
  created, so a failed measurement never leaves a half-written file;
- :func:`git_commit`, :func:`hardware` and :func:`sha256`: the provenance stamped on
  every record and on the zoo's weights;
- :func:`read_record`: the record read back with the keys its reader needs, or an
  :class:`~angio.errors.InputError` that names the file and the command that remakes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import angio
from angio.atomic import atomic_write_text
from angio.device import cpu_has_native_bf16
from angio.errors import InputError

__all__ = ["grid", "provenance", "write_record", "read_record", "finish_record", "git_commit", "hardware", "sha256"]

#: The checkout the package runs from (its git commit is stamped on records).
REPO_ROOT = Path(__file__).resolve().parent.parent


def grid(spec: Any) -> dict[str, Any]:
    """The grid a record was measured on: ``size`` (voxels per axis), ``fov_mm``, ``voxel_mm``, ``center``.

    ``spec`` is an :class:`angio.pipeline.VolumeSpec`.
    """
    return {"size": spec.size, "fov_mm": spec.fov_mm, "voxel_mm": spec.voxel_mm, "center": spec.center}


def provenance(started: float) -> dict[str, Any]:
    """``wall_s`` since ``started`` (a :func:`time.perf_counter` value), ``evaluated_on``, ``commit``, ``made``."""
    return {"wall_s": time.perf_counter() - started, "evaluated_on": hardware(), "commit": git_commit(),
            "made": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> Path:
    """Write ``record`` as indented JSON to ``path`` atomically (creating its folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
    return path


def finish_record(path: str | os.PathLike, record: dict[str, Any], started: float, *,
                  log: Callable[[str], None] | None = print) -> Path:
    """Stamp ``record`` with its :func:`provenance`, write it atomically and log one line.

    The tail every recorded measurement shares (ground truth, view consistency, ...):
    ``started`` is the :func:`time.perf_counter` value when the measurement began; the line
    logged names the file, its number of ``rows`` and the wall time. Returns the path.
    """
    record = {**record, **provenance(started)}
    path = write_record(path, record)
    if log is not None:
        log(f"wrote {path} ({len(record.get('rows', []))} rows, {record['wall_s']:.0f} s)")
    return path


def read_record(path: str | os.PathLike, keys: Sequence[str], *, missing: str, remake: str,
                unreadable: str = "unreadable record") -> dict[str, Any]:
    """A JSON record holding ``keys``.

    Parameters
    ----------
    path : path-like
        The record.
    keys : sequence of str
        Top-level keys the caller needs.
    missing : str
        What the error says when the file does not exist (``"no record of ..."``).
    remake : str
        The command that remakes the record, appended to every error.
    unreadable : str
        What the error says when the file is not JSON or lacks a key.

    Raises
    ------
    angio.InputError
        ``"<path>: <missing>; <remake>"`` or ``"<path>: <unreadable> (<cause>); <remake>"``.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: {missing}; {remake}")
    try:
        record = json.loads(path.read_text())
        for key in keys:
            record[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: {unreadable} ({exc!r}); {remake}") from exc
    return record


def git_commit() -> str:
    """The checkout's commit, ``+dirty`` when tracked files have uncommitted changes (``"unknown"`` outside git)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware() -> dict[str, Any]:
    """The machine and libraries: CPU model, torch threads, native bf16, GPU name, torch/numpy/python/angio versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "cpu_bf16": cpu_has_native_bf16(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "angio": angio.__version__}


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
