"""The ``angio`` command line: prepare, train, evaluate, reconstruct, zoo, study.

Each sub-command only parses arguments and calls the package (:mod:`angio.prepare`,
:mod:`angio.study`, :mod:`angio.reconstruct`, :mod:`angio.zoo`); errors from bad input
(:class:`angio.InputError`) are printed as one line and exit with status 2.
``angio study run|book`` runs the notebooks and builds the book (``python -m angio.study``
is the same command). Ctrl-C prints one line and exits with status 130.

Imports of the package sit inside each sub-command: they are heavy (torch, and for the study
the notebook and book toolchain) and each command needs only its own, so ``angio --help``
and a bad argument answer at once, and ``angio reconstruct`` never loads the book's layer.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _settings(args):
    from angio import study
    from angio.device import resolve_device
    from angio.errors import InputError

    device = getattr(args, "device", None)
    if device is not None:
        try:
            resolve_device(device)
        except (ValueError, RuntimeError) as exc:
            raise InputError(f"--device {device!r}: {exc}") from None
    for name in ("size", "epochs"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise InputError(f"--{name} must be a positive integer, got {value}")
    return study.settings(args.profile, results_dir=args.results, epochs=getattr(args, "epochs", None),
                          size=getattr(args, "size", None), modality=getattr(args, "modality", None),
                          device=getattr(args, "device", None))


def _experiment(args):
    from angio.study import Experiment

    return Experiment(model=args.model, n_views=args.views, modes=tuple(args.modes), loss=args.loss,
                      target=args.target)


def cmd_prepare(args) -> int:
    from angio.prepare import prepare_dataset

    manifest = prepare_dataset(args.out, _settings(args), view_counts=args.views, modes=tuple(args.modes),
                               split=args.split, variants=args.variants, cases=args.cases, overwrite=args.overwrite)
    print(f"wrote {len(manifest['entries'])} cases to {args.out} (manifest.json)")
    return 0


def cmd_train(args) -> int:
    if args.recipe:
        return _train_recipe(args)
    from angio.study import run_experiment

    trained = run_experiment(_experiment(args), _settings(args), force=args.force)
    last = trained.history["epochs"][-1] if trained.history["epochs"] else {}
    print(json.dumps({"run_dir": str(trained.run_dir), "reused": trained.reused,
                      "epochs": len(trained.history["epochs"]), "last": last,
                      "selected": {"checkpoint": str(trained.checkpoint), "epoch": trained.epoch}},
                     indent=1, default=str))
    return 0


def _train_recipe(args) -> int:
    from angio import zoo
    from angio.errors import InputError

    if args.max_epochs is not None and args.max_epochs < 1:
        raise InputError(f"--max-epochs must be a positive number of epochs, got {args.max_epochs}")
    if args.time_budget is not None and not (math.isfinite(args.time_budget) and args.time_budget > 0):
        raise InputError(f"--time-budget must be a positive number of seconds, got {args.time_budget}")
    if args.continue_shipped:
        print(f"continuing {zoo.continuable_run(args.recipe, results_dir=args.results)}")
    trained = zoo.train_recipe(args.recipe, results_dir=args.results, progress=True,
                               max_epochs=args.max_epochs, time_budget_s=args.time_budget)
    print(f"trained {args.recipe}: selected epoch {trained.epoch} ({trained.checkpoint})")
    if not args.no_publish:
        record = zoo.publish(args.recipe, results_dir=args.results)
        print(f"published {record.with_suffix('.pt')} and {record}")
    return 0


def cmd_zoo(args) -> int:
    from angio import zoo
    from angio.errors import InputError

    if args.action == "list":
        for name, entry in zoo.entries().items():
            rec = entry.record
            exact = [r for r in rec["test"]["rows"] if r["target"] == "exact"]
            dice = sum(r["dice"] for r in exact) / max(len(exact), 1)
            print(f"{name}: {rec['label']}, {rec['resolution']['size']}^3 at {rec['resolution']['voxel_mm']:g} mm, "
                  f"epoch {rec['training']['selected_epoch']} of {rec['training']['epochs_run']}, "
                  f"test Dice (exact) {dice:.3f}, sha256 {rec['sha256'][:12]}")
        for name in sorted(set(zoo.RECIPES) - set(zoo.entries())):
            print(f"{name}: recipe only (not shipped): angio train --recipe {name}")
        return 0
    if args.action == "card":
        from angio.zoo.cards import model_card

        if not args.name:
            raise InputError("angio zoo card needs the entry's name (see `angio zoo list`)")
        shipped = zoo.entries()
        if args.name not in shipped:
            raise InputError(f"no zoo entry {args.name!r}; shipped: {', '.join(sorted(shipped)) or 'none'}")
        card = model_card(shipped[args.name].record)
        if args.out:
            from angio.atomic import atomic_write_text

            atomic_write_text(args.out, card)
            print(f"wrote {args.out}")
        else:
            print(card, end="")
        return 0
    if args.action == "robustness":
        from angio.zoo.robustness import record_robustness

        path = record_robustness(args.name or zoo.DEFAULT_MODELS[2], args.cases, conditions=args.conditions,
                                 results_dir=args.results, add=args.add, mirror=args.mirror)
        print(f"recorded {path}")
        return 0
    if args.action == "publish":
        if not args.name:
            raise InputError("angio zoo publish needs the recipe's name (see `angio zoo list`)")
        record = zoo.publish(args.name, results_dir=args.results)
        print(f"published {record.with_suffix('.pt')} and {record}")
        return 0
    if args.action == "retrain":
        names = [args.name] if args.name else None
        for path in zoo.retrain(names, results_dir=args.results):
            print(f"published {path.with_suffix('.pt')} and {path}")
        return 0
    recorded, measured = zoo.check_entry(args.name or zoo.DEFAULT_MODELS[2], args.case, results_dir=args.results)
    diff = max(abs(recorded[m] - measured[m]) for m in ("dice", "iou", "mse", "mae"))
    print(json.dumps({"case": measured["case"], "recorded_dice": recorded["dice"],
                      "measured_dice": measured["dice"], "max_abs_difference": diff}))
    return 0 if diff <= 1e-4 else 1


def cmd_evaluate(args) -> int:
    from angio.pipeline import check_cases
    from angio.study import Trained, evaluate_model, mean_table, run_experiment, save_table, study_split
    from angio.train.checkpoint import load_checkpoint

    settings = _settings(args)
    exp = _experiment(args)
    if args.cases:
        check_cases(args.cases)  # before any training or loading
    if args.checkpoint:
        model, _, info = load_checkpoint(args.checkpoint)
        trained = Trained(exp, model, info["history"], Path(args.checkpoint).parent, reused=True,
                          checkpoint=Path(args.checkpoint), epoch=info.get("epoch"))
    else:
        trained = run_experiment(exp, settings)
    _, _, test = study_split(settings)
    rows, _ = evaluate_model(trained, settings, args.cases or test)
    path = save_table(rows, args.name or f"evaluate-{exp.name}", settings)
    for row in mean_table(rows):
        print(json.dumps(row))
    print(f"per-case metrics: {path} and {path.with_suffix('.csv')}")
    return 0


def cmd_study(args) -> int:
    from angio import study

    if args.action == "run":
        t0 = time.perf_counter()
        study.run(args.profile, results_dir=args.results, only=args.only, force=args.force)
        print(f"[study] all notebooks done in {(time.perf_counter() - t0) / 60:.1f} min")
    else:
        index = study.build_book(results_dir=args.results, out_dir=args.out,
                                 warnings_as_errors=not args.allow_warnings)
        print(f"[study] book: {index}")
    return 0


def cmd_reconstruct(args) -> int:
    from angio.errors import InputError
    from angio.reconstruct import is_xa, read_images, reconstruct, reconstruct_xa, write_outputs

    if not (0.0 < args.level < 1.0):
        raise InputError(f"--level must be a probability in (0, 1), got {args.level}")
    if args.patch is not None and args.patch < 1:
        raise InputError(f"--patch must be a positive number of voxels, got {args.patch}")
    xa = [is_xa(p) for p in args.images]
    if all(xa):
        geometry = {"source_detector_mm": args.sdd, "source_patient_mm": args.spd, "pixel_mm": args.pixel_spacing,
                    "secondary_deg": args.secondary}
        result = reconstruct_xa(args.images, args.checkpoint, angles=args.angles, frame=args.frame,
                                subtract=args.subtract, vessels=args.vessels or "auto", device=args.device,
                                patch_size=args.patch, allow_other_views=args.allow_other_views,
                                mirror=args.mirror, **geometry)
    else:
        if any(xa):
            raise InputError("give either X-ray angiography (XA) files only, or images only: "
                             f"{', '.join(p for p, x in zip(args.images, xa) if x)} are XA")
        if args.angles is None:
            raise InputError("--angles is required for PNG/TIFF/plain DICOM images (one angle per image)")
        images = read_images(args.images, normalize=True)
        result = reconstruct(images, args.angles, args.checkpoint, vessels=args.vessels or "bright",
                             device=args.device, patch_size=args.patch, allow_other_views=args.allow_other_views,
                             names=args.images, mirror=args.mirror)
    out = write_outputs(result, args.out, overwrite=args.overwrite, level=args.level)
    voxels = int((result.probability >= args.level).sum())
    files = ("probability.npz, dicom/, surface.stl, surface.vtp" if voxels
             else "probability.npz, dicom/ (no surface: empty)")
    print(f"model: {result.model}" + (", averaged with its prediction of the mirrored views" if result.mirror
                                      else ""))
    for w in result.warnings:
        print(f"warning: {w}")
    print(f"wrote {out}: {files} ({voxels} voxels >= {args.level})")
    return 0


def _profiles() -> list[str]:
    from angio.study import PROFILES

    return sorted(PROFILES)


def _common(p: argparse.ArgumentParser, *, model: bool = True) -> None:
    p.add_argument("--profile", default="cpu", choices=_profiles(), help="parameter profile (default cpu)")
    p.add_argument("--results", default="results", help="results folder (runs, cache, metrics)")
    p.add_argument("--size", type=int, help="override the profile's volume size N")
    p.add_argument("--modality", help="override the modality preset (rotational, cta)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: auto)")
    if model:
        p.add_argument("--model", default="dae", choices=["dae", "unet"])
        p.add_argument("--views", type=int, default=2, help="number of views over 0-90 degrees")
        p.add_argument("--modes", nargs="+", default=["sum"], choices=["sum", "min"], help="input channels")
        p.add_argument("--loss", default="focal", choices=["focal", "dice_bce", "bce"])
        p.add_argument("--target", default="otsu", choices=["otsu", "exact", "otsu_window"],
                       help="ground truth: the paper's Otsu mask, the exact vessel mask, or Otsu after the "
                       "modality's vessel window (CTA: 100..600 HU)")
        p.add_argument("--epochs", type=int, help="override the profile's epochs")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="angio", description="3D cerebral vessels from a few 2D angiograms.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="build volumes, projections, back-projections and masks to .npz")
    _common(p, model=False)
    p.add_argument("--out", required=True, help="output folder (manifest.json + one .npz per case)")
    p.add_argument("--views", type=int, nargs="+", default=[2], help="view counts")
    p.add_argument("--modes", nargs="+", default=["sum", "min"], choices=["sum", "min"])
    p.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    p.add_argument("--variants", type=int, default=0, help="augmented variants per case (besides the original)")
    p.add_argument("--cases", nargs="*", help="explicit case ids (instead of --split)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("train", help="train a model (reuses a finished run with the same settings)")
    _common(p)
    p.add_argument("--force", action="store_true", help="retrain even if a finished run exists")
    p.add_argument("--recipe", help="train (or resume) a model-zoo recipe and publish it to the zoo "
                   "(the other model options are then taken from the recipe)")
    p.add_argument("--max-epochs", type=int, help="with --recipe: stop after this many epochs in total")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="with --recipe: start no epoch that would end after this many seconds (building the "
                   "data included); the run stays resumable")
    p.add_argument("--continue-shipped", action="store_true",
                   help="with --recipe: continue the shipped entry when no run of it is under --results (the run "
                   "is rebuilt from the zoo's weights and record; Adam moments restart)")
    p.add_argument("--no-publish", action="store_true", help="with --recipe: train only")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("zoo", help="the shipped models: list them, re-check one against its record, print its "
                       "model card, "
                       "record its accuracy under acquisition errors, publish a trained run (e.g. one trained on a "
                       "GPU) as it stands, or retrain them from scratch with their recipes")
    p.add_argument("action", choices=["list", "check", "card", "robustness", "publish", "retrain"])
    p.add_argument("name", nargs="?", help="entry to check or to measure under acquisition errors (default: the "
                   "biplane model), recipe to publish, or recipe to retrain (default: every shipped entry)")
    p.add_argument("--case", help="test case to re-evaluate (default: the first of the record)")
    p.add_argument("--out", help="with card: write the model card (Markdown) to this file instead of printing it")
    p.add_argument("--cases", nargs="+", help="with robustness: case ids (default: the entry's test cases)")
    p.add_argument("--conditions", nargs="+", help="with robustness: acquisition conditions, by their labels in "
                   "angio.acquisition.CONDITIONS (default: all)")
    p.add_argument("--add", action="store_true", help="with robustness: measure only --conditions into the "
                   "entry's existing record, keeping its other rows")
    p.add_argument("--mirror", action="store_true", help="with robustness: predict with mirror test-time "
                   "augmentation (the entry must take mirror-symmetric views, e.g. the biplane 0/90)")
    p.add_argument("--results", default="results", help="volume cache folder")
    p.set_defaults(func=cmd_zoo)

    p = sub.add_parser("evaluate", help="metrics per test case and their mean, as JSON and CSV")
    _common(p)
    p.add_argument("--checkpoint", help="a checkpoint (default: the run of these settings)")
    p.add_argument("--cases", nargs="*", help="case ids (default: the test split)")
    p.add_argument("--name", help="table name under results/metrics/")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("study", help="the study: run the notebooks (papermill), build the HTML book")
    actions = p.add_subparsers(dest="action", required=True)
    r = actions.add_parser("run", help="execute the notebooks with papermill into RESULTS/notebooks")
    r.add_argument("--profile", default="cpu", choices=_profiles(), help="parameter profile (default cpu)")
    r.add_argument("--results", default="results", help="results folder (default results)")
    r.add_argument("--only", nargs="*", help="substrings of notebook names to run")
    r.add_argument("--force", action="store_true", help="retrain models even if finished runs exist")
    b = actions.add_parser("book", help="build the HTML book from the executed notebooks")
    b.add_argument("--results", default="results", help="results folder holding notebooks/")
    b.add_argument("--out", default="_build", help="build folder (the book goes to OUT/html)")
    b.add_argument("--allow-warnings", action="store_true", help="do not turn Sphinx warnings into errors")
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("reconstruct", help="2D angiograms + angles -> 3D probability volume and mesh")
    p.add_argument("images", nargs="+", help="PNG/TIFF/DICOM images or XA DICOM files, one per view (plane)")
    p.add_argument("--angles", type=float, nargs="+",
                   help="view angles in degrees, one per image (XA files: taken from their headers)")
    p.add_argument("--frame", type=int, help="XA runs: the frame to use (default: peak arterial filling)")
    p.add_argument("--subtract", action=argparse.BooleanOptionalAction, default=None,
                   help="XA runs: log-subtract the first frame (default: on for multi-frame runs)")
    p.add_argument("--secondary", type=float, help="XA: secondary (cranial/caudal) angle in degrees if missing")
    p.add_argument("--sdd", type=float, help="XA: source-to-detector distance in mm if missing")
    p.add_argument("--spd", type=float, help="XA: source-to-patient (isocentre) distance in mm if missing")
    p.add_argument("--pixel-spacing", type=float, nargs=2, help="XA: detector pixel spacing (row, column) mm")
    p.add_argument("--checkpoint", help="trained checkpoint (default: the zoo's model for this many views)")
    p.add_argument("--allow-other-views", action="store_true",
                   help="use the model even for views it was not trained for (warned in README.json)")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=None,
                   help="mirror test-time augmentation: average with the prediction of the left-right mirrored "
                   "views (twice the time; needs mirror-symmetric views such as 0 and 90 deg). Default: on for "
                   "the zoo models chosen for it on validation trees (angio.zoo.MIRROR_MODELS)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--vessels", choices=["bright", "dark"],
                   help="contrast in the images (default: bright; XA: bright when subtracted, else dark)")
    p.add_argument("--level", type=float, default=0.5, help="probability of the surface")
    p.add_argument("--device")
    p.add_argument("--patch", type=int, help="sliding-window size for large volumes")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_reconstruct)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Run the ``angio`` command line; returns the exit status.

    Returns
    -------
    int
        0: done; 2: bad input (one line on stderr); 3: out of memory; 130: interrupted
        (Ctrl-C: ``angio: interrupted`` on stderr, no traceback; outputs are written atomically,
        so none is left half-written).
    """
    try:
        return _run(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        print("angio: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    """Call the sub-command; bad input and a lack of memory become one line on stderr and a status."""
    from angio.errors import InputError

    try:
        return args.func(args)
    except InputError as exc:
        print(f"angio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:
        print(f"angio {args.command}: not enough memory: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
