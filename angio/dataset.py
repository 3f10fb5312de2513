"""Training and evaluation pairs: a case's network input and its vessel mask, per variant.

:class:`VesselDataset` turns case ids into ``(input, target)`` pairs for the training loop:
it draws an augmented variant per item and epoch, acquires the views as the settings'
geometry would (:mod:`angio.acquisition`), back-projects them, and can keep every pair in
memory (``resident``). Patch sampling is not its job (:mod:`angio.train.sampling`).
"""

from __future__ import annotations

import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import torch

from angio.acquisition import GEOMETRIES, acquired_inputs, acquired_projections
from angio.device import resolve_device
from angio.pipeline import (
    GEOMETRY_NAMES,
    TRAINING_TARGETS,
    CaseVolumes,
    VolumeCache,
    VolumeSpec,
    inputs_from_projections,
    network_input,
)
from angio.projection import view_angles

__all__ = ["VesselDataset"]


class VesselDataset(torch.utils.data.Dataset):
    """Training/evaluation pairs: back-projected inputs and a vessel mask, per case.

    Item ``i`` of epoch ``e`` is case ``cases[i]``; with ``variants > 0`` it is one of that
    case's augmented variants ``1..variants`` (drawn from ``(seed, e, i)``, so epochs differ
    and a resumed run sees the same sequence), else the case itself.

    Parameters
    ----------
    cases : sequence of str
        Case ids.
    spec : VolumeSpec
        Volume geometry and modality.
    n_views : int
        Views over ``[0, 90]`` degrees.
    modes : tuple of str
        Input channels (``"sum"``, ``"min"``).
    target : {"otsu", "exact"}
        Ground truth to learn.
    variants : int
        Augmented variants per case (0: no augmentation). They are cached, so the volume
        cost is paid once per variant.
    cache : VolumeCache, optional
        Where volumes come from (default: in memory, no disk).
    seed : int
        Seed of augmentation, noise and variant choice.
    geometry : {"parallel", "cone", "cone-rays"}
        How the views are acquired (:data:`angio.acquisition.GEOMETRIES`): parallel rays, or
        a clinical cone-beam C-arm, demagnified to the isocentre (``"cone"``; its views are
        computed once per case and variant and kept in memory: a few hundred kB each) or
        back-projected along its own rays (``"cone-rays"``; best with ``resident``, since
        each input costs a cone-beam MIP and back-projection).

    samples_per_volume : int
        Items per case and epoch (``len = len(cases) * samples_per_volume``); item ``i``
        is case ``cases[i % len(cases)]``, each with its own variant draw (and, through
        :class:`~angio.train.sampling.PatchDataset`, its own crop).
    resident : bool
        Keep every computed ``(input, target)`` pair in memory (inputs as float16, at most
        ``2**-11`` relative rounding; targets as uint8) so it is computed once per case and
        variant; :meth:`preload` fills the store in parallel before training (DataLoader
        workers then share it). Costs about ``C * N**3 * 2 + N**3`` bytes per pair. Its
        items stay compact (input float16, target uint8; :func:`angio.train.fit` computes
        in float32), so a crop copies a few MB, not the whole volume.

    angle_jitter_deg : float
        Miscalibrated training views: each augmented variant (``variant > 0``) acquires its
        views after the first ``e`` degrees off nominal, ``e`` uniform in
        ``[-angle_jitter_deg, angle_jitter_deg]`` and fixed per ``(seed, case, variant)``,
        and back-projects them at the nominal angles (:func:`angio.acquisition.acquired_inputs`),
        so a model learns inputs whose smears do not cross where it expects. Variant 0 (the
        case as scanned, used for validation) stays nominal.

    Items are dicts ``{"input": (C, N, N, N) float32, "target": (1, N, N, N) float32,
    "case": str, "variant": int}`` (float16 and uint8 when ``resident``).
    """

    def __init__(self, cases, spec: VolumeSpec, n_views: int, *, modes: tuple[str, ...] = ("sum",),
                 target: str = "otsu", variants: int = 0, cache: VolumeCache | None = None,
                 seed: int = 0, geometry: str = "parallel", samples_per_volume: int = 1,
                 resident: bool = False, angle_jitter_deg: float = 0.0) -> None:
        if target not in TRAINING_TARGETS:
            raise ValueError(f"target must be one of {TRAINING_TARGETS}, got {target!r}")
        if geometry not in GEOMETRY_NAMES:
            raise ValueError(f"geometry must be one of {GEOMETRY_NAMES}, got {geometry!r}")
        self.geometry = geometry
        if not (np.isfinite(angle_jitter_deg) and 0.0 <= angle_jitter_deg < 45.0):
            raise ValueError(f"angle_jitter_deg must be in [0, 45) degrees, got {angle_jitter_deg!r}")
        self.angle_jitter_deg = float(angle_jitter_deg)
        self._views: dict[tuple[str, int], np.ndarray] = {}
        if not cases:
            raise ValueError("VesselDataset needs at least one case")
        self.cases = list(cases)
        self.spec, self.n_views, self.modes = spec, int(n_views), tuple(modes)
        self.target, self.variants, self.seed = target, int(variants), int(seed)
        self.cache = cache or VolumeCache(None)
        self.epoch = 0
        if isinstance(samples_per_volume, bool) or not isinstance(samples_per_volume, int) or samples_per_volume < 1:
            raise ValueError(f"samples_per_volume must be a positive int, got {samples_per_volume!r}")
        self.samples_per_volume = samples_per_volume
        self.resident = bool(resident)
        self._store: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.cases) * self.samples_per_volume

    def pairs(self) -> list[tuple[str, int]]:
        """Every ``(case, variant)`` an epoch can draw."""
        variants = range(1, self.variants + 1) if self.variants else (0,)
        return [(case, v) for case in self.cases for v in variants]

    def preload(self, *, device: str | torch.device = "auto", threads: int | None = None) -> None:
        """Compute every pair of :meth:`pairs` once and keep it in memory (``resident`` only).

        Volumes come from the cache (built when missing) in a thread pool, at most
        ``2 * threads`` at a time, so memory holds the compact pairs and a few volumes; the
        inputs are computed on ``device`` (``"auto"``: CUDA when available), which is where a GPU run
        saves most of its data time.

        Parameters
        ----------
        device : str or torch.device
            Where the projections and back-projections are computed.
        threads : int, optional
            Threads that load or build volumes (default: CPU count, at most 16).
        """
        if not self.resident:
            raise ValueError("preload() needs a resident VesselDataset (resident=True)")
        device = resolve_device(device)
        todo = [p for p in self.pairs() if p not in self._store]
        threads = threads or min(16, os.cpu_count() or 1)
        load = lambda p: self.cache.get(p[0], self.spec, variant=p[1], seed=self.seed)  # noqa: E731
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # a few volumes ahead of the input computation, not all of them: Executor.map would
            # load every volume at once (3 float32 volumes each, 13 GB for the GPU recipes)
            for start in range(0, len(todo), 2 * threads):
                for vols in pool.map(load, todo[start:start + 2 * threads]):
                    self._remember(vols, self._input(vols, device))

    def _input(self, vols: CaseVolumes, device: str | torch.device | None = None) -> np.ndarray:
        """The ``(C, N, N, N)`` network input of ``vols`` in this data set's geometry."""
        error = self.angle_error(vols.case, vols.variant)
        if self.geometry == "parallel" and not error:
            return network_input(vols.unit_intensity(), self.n_views, modes=self.modes, device=device)
        acquisition = replace(GEOMETRIES[self.geometry], angle_error_deg=error)
        if error or acquisition.cone_rays:
            # built whole from the volumes; the remaining geometries keep their views for reuse
            return acquired_inputs(vols, self.n_views, self.modes, acquisition, seed=self.seed, device=device)

        key = (vols.case, vols.variant)
        if key not in self._views:
            self._views[key] = acquired_projections(vols, self.n_views, GEOMETRIES[self.geometry], seed=self.seed)
        return inputs_from_projections(self._views[key], view_angles(self.n_views), modes=self.modes)

    def angle_error(self, case: str, variant: int) -> float:
        """The angle error (degrees) of the views after the first of ``(case, variant)``; 0 without jitter."""
        if not self.angle_jitter_deg or variant == 0:
            return 0.0
        # its own stream, apart from the variant's augmentation and noise (case_seed)
        rng = np.random.default_rng([self.seed, zlib.crc32(case.encode()), variant, 7919])
        return float(rng.uniform(-self.angle_jitter_deg, self.angle_jitter_deg))

    def _remember(self, vols: CaseVolumes, x) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (and return) the compact pair of ``vols`` (resident data sets only call it)."""
        pair = (torch.as_tensor(np.asarray(x)).to(torch.float16),
                torch.from_numpy(np.ascontiguousarray(vols.target(self.target), dtype=np.uint8)))
        self._store[(vols.case, vols.variant)] = pair
        return pair

    def set_epoch(self, epoch: int) -> None:
        """Select the augmented variants of ``epoch`` (called by :func:`angio.train.fit`)."""
        self.epoch = int(epoch)

    def variant_of(self, index: int) -> int:
        """Variant of item ``index`` in the current epoch."""
        if self.variants == 0:
            return 0
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return int(rng.integers(1, self.variants + 1))

    def volumes(self, index: int) -> CaseVolumes:
        """The :class:`CaseVolumes` of item ``index`` in the current epoch."""
        return self.cache.get(self.cases[index % len(self.cases)], self.spec, variant=self.variant_of(index),
                              seed=self.seed)

    def __getitem__(self, index: int) -> dict:
        case, variant = self.cases[index % len(self.cases)], self.variant_of(index)
        if self.resident:
            pair = self._store.get((case, variant))
            x, y = pair if pair is not None else self._remember(vols := self.volumes(index), self._input(vols))
            return {"input": x, "target": y[None], "case": case, "variant": variant}
        vols = self.volumes(index)
        x = self._input(vols)
        y = vols.target(self.target)[None].astype(np.float32)
        return {"input": torch.from_numpy(x), "target": torch.from_numpy(y),
                "case": vols.case, "variant": vols.variant}
