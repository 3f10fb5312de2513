"""Timings of the study: the projection timings shared by ``benchmarks/`` and the book.

``benchmarks/bench_projection.py`` records full benchmarks (``make bench``) as JSON under
``benchmarks/results/``; :func:`recorded_benchmarks` reads them back for the performance
chapter, and :func:`projection_timings` (also used by that script) measures the fused
projector live at a notebook's size.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from angio.projection import backproject, mip, view_angles
from angio.study.runner import REPO_ROOT

__all__ = ["BENCHMARK_RESULTS", "best_of", "projection_timings", "recorded_benchmarks"]

#: Where ``make bench`` writes its JSON files.
BENCHMARK_RESULTS = REPO_ROOT / "benchmarks" / "results"


def best_of(fn: Callable[[], object], repeat: int = 1) -> float:
    """Best wall time in seconds of ``repeat`` calls of ``fn``, after one warm-up call (which also compiles)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def projection_timings(volume: np.ndarray, n_views: int = 90, *, repeat: int = 1) -> dict[str, float]:
    """Seconds (:func:`best_of`) of the fused projector on a ``(N, N, N)`` volume, views over 0-90 degrees.

    Returns
    -------
    dict
        ``mip_s`` (:func:`angio.projection.mip` of all views), ``bp_sum_s`` and ``bp_min_s``
        (:func:`angio.projection.backproject` of those MIPs, ``sum`` and ``min``), the
        columns of the projection benchmark.
    """
    angles = view_angles(n_views)
    proj = mip(volume, angles)
    return {"mip_s": best_of(lambda: mip(volume, angles), repeat),
            "bp_sum_s": best_of(lambda: backproject(proj, angles), repeat),
            "bp_min_s": best_of(lambda: backproject(proj, angles, mode="min"), repeat)}


def recorded_benchmarks(folder: str | os.PathLike | None = None) -> list[dict]:
    """The benchmark results recorded in ``folder`` (default :data:`BENCHMARK_RESULTS`), by file name.

    Returns
    -------
    list of dict
        Per JSON file: ``name`` (file name), ``info`` (machine, torch, date, ...),
        ``tables`` (``[(part, rows)]`` for each non-empty part among ``rows``, ``inference``
        and ``voxelize``) and ``targets`` (lines of text). Empty when nothing is recorded.
    """
    folder = Path(folder) if folder is not None else BENCHMARK_RESULTS
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        tables = [(part, data[part]) for part in ("rows", "inference", "voxelize") if data.get(part)]
        out.append({"name": path.name, "info": data.get("info", {}), "tables": tables,
                    "targets": list(data.get("targets", []))})
    return out
