"""Parameter profiles of the study, and the one-line setup every notebook starts with.

Profiles (:data:`PROFILES`) fix the experiment settings (:class:`angio.study.StudySettings`)
and the view counts (:data:`VIEW_COUNTS`):

``cpu`` (default)
    The whole study on a 2-core CPU within half an hour: 64^3 volumes over the central
    96 mm (1.5 mm voxels, the major arteries and circle of Willis), 6 short epochs (12
    steps each) of augmented training per live model; the converged models at 0.5 mm come
    from the model zoo (chapter 9). On a CPU without native bf16 (AVX2 only) a step takes
    about 0.5 s for the autoencoder and 1.4 s for the small U-Net at 64^3, in fp32.
``full``
    The paper's setting for a GPU: 384^3 over 180 mm (0.47 mm voxels, the whole tree), the
    paper's hyper-parameters (no augmentation), sliding-window inference.
``tiny``
    A smoke test of every notebook in a few minutes (used by the tests with nbval).

All profiles start the output layer at a vessel prior of 0.5% (``output_prior``; the paper
does not specify its initialization): without it, the autoencoder spends its first ten or so
epochs learning that almost every voxel is background.
"""

from __future__ import annotations

import os
from dataclasses import asdict

from angio.device import resolve_device, resolve_precision
from angio.experiment import StudySettings
from angio.pipeline import VolumeSpec
from angio.projection import PAPER_VIEW_COUNTS
from angio.zoo import DEFAULT_SPEC

__all__ = ["PROFILES", "VIEW_COUNTS", "settings", "view_counts", "setup", "zoo_setup", "describe"]

PROFILES: dict[str, StudySettings] = {
    "cpu": StudySettings(spec=VolumeSpec(size=64, fov_mm=96.0, center="major"), epochs=6,
                         max_steps_per_epoch=12, variants=3, n_test=5, n_val=3, output_prior=0.005),
    "full": StudySettings(spec=VolumeSpec(size=384, fov_mm=180.0, center="bbox"), epochs=50,
                          variants=0, n_test=5, n_val=3, inference_patch=128, output_prior=0.005),
    "tiny": StudySettings(spec=VolumeSpec(size=32, fov_mm=96.0, center="major"), epochs=1,
                          variants=1, n_test=2, n_val=1, max_train_cases=3, max_steps_per_epoch=3,
                          output_prior=0.005),
}

VIEW_COUNTS: dict[str, tuple[int, ...]] = {
    "cpu": PAPER_VIEW_COUNTS, "full": PAPER_VIEW_COUNTS, "tiny": (10, 2),
}


def _check(profile: str) -> None:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from {sorted(PROFILES)}")


def settings(profile: str = "cpu", *, results_dir: str | os.PathLike = "results", **overrides) -> StudySettings:
    """The :class:`StudySettings` of a profile, with ``results_dir`` and any field overridden.

    Overrides whose value is ``None`` are ignored, so notebook parameters can default to
    ``None`` ("use the profile's value"). Fields of :class:`~angio.pipeline.VolumeSpec`
    (``size``, ``modality``, ...) override the profile's volume spec.
    """
    _check(profile)
    changes = {k: v for k, v in overrides.items() if v is not None}
    base = asdict(PROFILES[profile])
    spec = {**base.pop("spec"), **{k: changes.pop(k) for k in list(changes) if k in VolumeSpec.__dataclass_fields__}}
    return StudySettings.from_dict({**base, **changes, "spec": spec, "results_dir": str(results_dir)})


def view_counts(profile: str = "cpu") -> tuple[int, ...]:
    """Numbers of views studied by a profile (the paper's seven for ``cpu`` and ``full``)."""
    return VIEW_COUNTS[profile]


def describe(s: StudySettings) -> str:
    """One line: the volume spec, the voxel size, and the device and precision runs use."""
    device = resolve_device(s.device)
    return (f"{s.spec}, voxel {s.spec.voxel_mm:.2f} mm, "
            f"device {device}, precision {resolve_precision(s.precision, device)}")


def setup(profile: str = "cpu", results_dir: str | os.PathLike = "results", *, log=print,
          **overrides) -> StudySettings:
    """A notebook's configuration: the profile's settings, announced in one line (:func:`describe`).

    Parameters
    ----------
    profile : str
        A key of :data:`PROFILES` (the notebook's ``profile`` parameter).
    results_dir : path-like
        Results root (the notebook's ``results_dir`` parameter).
    log : callable
        Receives the summary line (``print`` by default).
    **overrides
        As for :func:`settings`.
    """
    s = settings(profile, results_dir=results_dir, **overrides)
    log(describe(s))
    return s


def zoo_setup(profile: str = "cpu", results_dir: str | os.PathLike = "results", *, log=print,
              **overrides) -> StudySettings:
    """:func:`setup` on the model zoo's grid (:data:`angio.zoo.DEFAULT_SPEC`, 0.5 mm).

    For the chapters that read and measure the zoo's entries rather than train: their
    volumes, baselines and tables are on the grid the study stands behind, whatever the
    profile (which still decides how much a chapter measures again).
    """
    grid = {"size": DEFAULT_SPEC.size, "fov_mm": DEFAULT_SPEC.fov_mm, "center": DEFAULT_SPEC.center}
    return setup(profile, results_dir, log=log, **{**grid, **overrides})
