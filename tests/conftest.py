"""Shared test set-up: small, deterministic, eager projection kernels unless a test opts in."""

import os

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")

import pytest


@pytest.fixture(autouse=True)
def _eager_projection(request):
    """Use the eager projection kernels (no compile time) unless marked ``compiled``."""
    from angio import projection

    backend = "auto" if request.node.get_closest_marker("compiled") else "eager"
    old = projection._backend
    projection.set_backend(backend)
    yield
    projection.set_backend(old)


@pytest.fixture()
def tiny_recipe(monkeypatch):
    """A zoo recipe small enough to train, publish and evaluate in seconds (registered as "tiny")."""
    from dataclasses import replace

    from angio import zoo
    from angio.pipeline import VolumeSpec
    from angio.study import Experiment, StudySettings

    settings = StudySettings(spec=VolumeSpec(size=32, fov_mm=96.0, center="major"), epochs=3, variants=1,
                             n_test=2, n_val=1, max_train_cases=2, max_steps_per_epoch=2, output_prior=0.005)
    recipe = zoo.Recipe("tiny", "tiny test recipe", Experiment("unet", 2, ("sum", "min"), loss="dice_bce",
                        target="exact", model_kwargs=(("base_channels", 4), ("depth", 2), ("norm", "instance"))),
                        replace(settings, inference_patch=16), patience=1, val_every=1)
    monkeypatch.setitem(zoo.RECIPES, "tiny", recipe)
    return recipe


@pytest.fixture(scope="session")
def shared_results(tmp_path_factory):
    """One results folder for the tests that re-measure shipped records: cases are built once.

    The volume cache is keyed by case, grid, modality and seed and written atomically, so the
    entries that share a test tree and grid share its volumes.
    """
    return tmp_path_factory.mktemp("shared_results")
