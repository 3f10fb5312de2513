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
