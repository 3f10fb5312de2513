"""Run the study: papermill over the notebooks of ``notebooks/``.

``angio study run --profile cpu`` (or ``python -m angio.study run``) executes every notebook
with papermill, injecting the profile's name, the results folder and the parameters a
notebook declares among ``force`` and ``progress``, into ``results/notebooks/`` (trained
models, cached volumes and metric tables also go under ``results/``, so a second run reuses
finished work). :mod:`angio.study.book` then builds the book from them.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from angio.study.profiles import PROFILES

__all__ = ["REPO_ROOT", "notebooks", "run"]

#: The repository (``notebooks/``, ``book/``, ``benchmarks/``, the book's configuration).
REPO_ROOT = Path(__file__).resolve().parents[2]


def notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The study notebooks, in order (``NN_name.ipynb``)."""
    folder = Path(folder) if folder else REPO_ROOT / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def run(profile: str = "cpu", *, results_dir: str | os.PathLike = "results", only: list[str] | None = None,
        force: bool = False, kernel: str = "python3", log=print) -> list[Path]:
    """Execute the notebooks with papermill into ``results_dir/notebooks``.

    Parameters
    ----------
    profile : str
        A key of :data:`PROFILES`, passed to each notebook as the ``profile`` parameter.
    results_dir : path-like
        Results root, passed as the (absolute) ``results_dir`` parameter.
    only : list of str, optional
        Run only notebooks whose name contains one of these strings.
    force : bool
        Passed as ``force``: retrain models even when a finished run exists.
    kernel : str
        Jupyter kernel name.

    Returns
    -------
    list of Path
        The executed notebooks. A failing notebook raises papermill's execution error
        (its partial output is kept next to the others for inspection).
    """
    import papermill as pm

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    results = Path(results_dir).resolve()
    out_dir = results / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in notebooks():
        if only and not any(o in nb.name for o in only):
            continue
        params = {"profile": profile, "results_dir": str(results), "force": force, "progress": False}
        declared = pm.inspect_notebook(str(nb))
        params = {k: v for k, v in params.items() if k in declared}
        target = out_dir / nb.name
        t0 = time.perf_counter()
        log(f"[study] {nb.name} (profile {profile}) ...")
        pm.execute_notebook(str(nb), str(target), parameters=params, kernel_name=kernel,
                            cwd=str(nb.parent), progress_bar=False, log_output=False)
        log(f"[study] {nb.name} done in {time.perf_counter() - t0:.0f} s -> {target}")
        done.append(target)
    return done
