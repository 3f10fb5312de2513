"""Run the study: papermill over the notebooks of ``notebooks/``.

``angio study run --profile cpu`` (or ``python -m angio.study run``) executes every notebook
with papermill, injecting the profile's name, the results folder and the parameters a
notebook declares among ``force`` and ``progress``, into ``results/notebooks/`` (trained
models, cached volumes and metric tables also go under ``results/``, so a second run reuses
finished work). :mod:`angio.study.book` then builds the book from them.

:func:`prepare` writes the same parameterised notebooks without running them, for another
executor: the tests run them once under nbval (``tests/test_notebooks.py``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from angio.study.profiles import PROFILES

__all__ = ["REPO_ROOT", "notebooks", "parameters", "prepare", "run"]

#: The repository (``notebooks/``, ``book/``, ``benchmarks/``, the book's configuration).
REPO_ROOT = Path(__file__).resolve().parents[2]


def notebooks(folder: str | os.PathLike | None = None) -> list[Path]:
    """The study notebooks, in order (``NN_name.ipynb``)."""
    folder = Path(folder) if folder else REPO_ROOT / "notebooks"
    return sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb"))


def parameters(notebook: str | os.PathLike, profile: str = "cpu", *, results_dir: str | os.PathLike = "results",
               force: bool = False) -> dict:
    """The parameters :func:`run` injects into ``notebook``.

    Those the notebook declares of ``profile``, ``results_dir`` (made absolute), ``force`` and
    ``progress`` (off: the book shows no progress bars).
    """
    import papermill as pm

    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    params = {"profile": profile, "results_dir": str(Path(results_dir).resolve()), "force": force, "progress": False}
    declared = pm.inspect_notebook(str(notebook))
    return {k: v for k, v in params.items() if k in declared}


def _selected(only: list[str] | None) -> list[Path]:
    return [nb for nb in notebooks() if not only or any(o in nb.name for o in only)]


def prepare(profile: str = "cpu", *, results_dir: str | os.PathLike = "results", only: list[str] | None = None,
            force: bool = False) -> list[Path]:
    """Write the notebooks into ``results_dir/notebooks`` with :func:`run`'s parameters injected, not executed.

    Parameters are as for :func:`run`. Returns the written notebooks, in order: the files
    :func:`run` would have executed in place, for another executor (e.g. nbval, whose cwd is
    then ``results_dir/notebooks`` rather than ``notebooks/``; the notebooks use no relative path
    but their ``results_dir`` default).
    """
    import papermill as pm

    out_dir = Path(results_dir).resolve() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in _selected(only):
        target = out_dir / nb.name
        pm.execute_notebook(str(nb), str(target), parameters=parameters(nb, profile, results_dir=results_dir,
                                                                         force=force), prepare_only=True)
        done.append(target)
    return done


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
    out_dir = Path(results_dir).resolve() / "notebooks"
    out_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for nb in _selected(only):
        params = parameters(nb, profile, results_dir=results_dir, force=force)
        target = out_dir / nb.name
        t0 = time.perf_counter()
        log(f"[study] {nb.name} (profile {profile}) ...")
        pm.execute_notebook(str(nb), str(target), parameters=params, kernel_name=kernel,
                            cwd=str(nb.parent), progress_bar=False, log_output=False)
        log(f"[study] {nb.name} done in {time.perf_counter() - t0:.0f} s -> {target}")
        done.append(target)
    return done
