"""Run the study: parameter profiles, papermill over the notebooks, and the HTML book.

``python -m angio.study run --profile cpu`` executes every notebook of ``notebooks/`` with
papermill, injecting the profile's name and the results folder, into
``results/notebooks/`` (trained models, cached volumes and metric tables also go under
``results/``, so a second run reuses finished work). ``python -m angio.study book`` then
builds the Jupyter Book (1.x) from those executed notebooks and the prose pages of
``book/`` into ``_build/html``.

Profiles (:data:`PROFILES`) fix the experiment settings (:class:`angio.experiments.StudySettings`)
and the view counts:

``cpu`` (default)
    The whole study on a 2-core CPU in about half an hour: 64^3 volumes over the central
    96 mm (1.5 mm voxels, the major arteries and circle of Willis), 8 epochs of augmented
    training per model.
``full``
    The paper's setting for a GPU: 384^3 over 180 mm (0.47 mm voxels, the whole tree), the
    paper's hyper-parameters (no augmentation), sliding-window inference.

All profiles start the output layer at a vessel prior of 0.5% (``output_prior``; the paper
does not specify its initialization): without it, the autoencoder spends its first ten or so
epochs learning that almost every voxel is background.
``tiny``
    A smoke test of every notebook in a few minutes (used by the tests with nbval).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

from angio.experiments import StudySettings
from angio.pipeline import VolumeSpec
from angio.projection import PAPER_VIEW_COUNTS

__all__ = ["PROFILES", "VIEW_COUNTS", "settings", "view_counts", "notebooks", "run", "build_book",
           "REPO_ROOT"]

REPO_ROOT = Path(__file__).resolve().parent.parent

PROFILES: dict[str, StudySettings] = {
    "cpu": StudySettings(spec=VolumeSpec(size=64, fov_mm=96.0, center="major"), epochs=8,
                         variants=3, n_test=5, n_val=3, output_prior=0.005),
    "full": StudySettings(spec=VolumeSpec(size=384, fov_mm=180.0, center="bbox"), epochs=50,
                          variants=0, n_test=5, n_val=3, inference_patch=128, output_prior=0.005),
    "tiny": StudySettings(spec=VolumeSpec(size=32, fov_mm=96.0, center="major"), epochs=1,
                          variants=1, n_test=2, n_val=1, max_train_cases=3, max_steps_per_epoch=3,
                          output_prior=0.005),
}

VIEW_COUNTS: dict[str, tuple[int, ...]] = {
    "cpu": PAPER_VIEW_COUNTS, "full": PAPER_VIEW_COUNTS, "tiny": (10, 2),
}


def settings(profile: str = "cpu", *, results_dir: str | os.PathLike = "results", **overrides) -> StudySettings:
    """The :class:`StudySettings` of a profile, with ``results_dir`` and any field overridden.

    Overrides whose value is ``None`` are ignored, so notebook parameters can default to
    ``None`` ("use the profile's value").
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    base = asdict(PROFILES[profile])
    spec = {**base.pop("spec"), **{k: changes.pop(k) for k in list(changes) if k in VolumeSpec.__dataclass_fields__}}
    return StudySettings.from_dict({**base, **changes, "spec": spec, "results_dir": str(results_dir)})


def view_counts(profile: str = "cpu") -> tuple[int, ...]:
    """Numbers of views studied by a profile (the paper's seven for ``cpu`` and ``full``)."""
    return VIEW_COUNTS[profile]


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


def build_book(*, results_dir: str | os.PathLike = "results", out_dir: str | os.PathLike = "_build",
               warnings_as_errors: bool = True) -> Path:
    """Build the HTML book from ``book/`` and the executed notebooks; returns ``index.html``.

    The book's sources are staged in ``out_dir/src`` (``_config.yml``, ``_toc.yml``,
    ``book/`` and ``results/notebooks/``), so any results folder can be published, and
    Jupyter Book (1.x, offline, no execution) writes ``out_dir/html``.
    """
    results = Path(results_dir).resolve()
    executed = results / "notebooks"
    missing = [nb.name for nb in notebooks() if not (executed / nb.name).exists()]
    if missing:
        raise FileNotFoundError(f"{executed}: executed notebooks missing ({', '.join(missing)}); "
                                "run `python -m angio.study run` (or `make study`) first")
    out = Path(out_dir).resolve()
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "results").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "book", src / "book")
    shutil.copytree(executed, src / "results" / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(src),
           "--path-output", str(src), "--builder", "html"]
    if warnings_as_errors:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    shutil.move(str(src / "_build" / "html"), str(html))
    return html / "index.html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m angio.study", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute the notebooks with papermill")
    r.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    r.add_argument("--results", default="results")
    r.add_argument("--only", nargs="*", help="substrings of notebook names to run")
    r.add_argument("--force", action="store_true", help="retrain models even if finished runs exist")
    b = sub.add_parser("book", help="build the HTML book from the executed notebooks")
    b.add_argument("--results", default="results")
    b.add_argument("--out", default="_build")
    b.add_argument("--allow-warnings", action="store_true")
    args = ap.parse_args(argv)
    if args.command == "run":
        t0 = time.perf_counter()
        run(args.profile, results_dir=args.results, only=args.only, force=args.force)
        print(f"[study] all notebooks done in {(time.perf_counter() - t0) / 60:.1f} min")
    else:
        index = build_book(results_dir=args.results, out_dir=args.out,
                           warnings_as_errors=not args.allow_warnings)
        print(f"[study] book: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
