"""Tests for :mod:`angio.segment` (Otsu ground-truth masks)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from angio.segment import otsu_mask, otsu_threshold


def _cube_volume(shape=(24, 20, 16), noise=0.05, seed=0):
    """Background 0 and a cube of 1, plus small Gaussian noise; returns (volume, cube)."""
    rng = np.random.default_rng(seed)
    cube = np.zeros(shape, dtype=bool)
    cube[6:14, 5:13, 4:12] = True
    volume = cube.astype(np.float32) + rng.normal(0.0, noise, shape).astype(np.float32)
    return volume, cube


def test_two_level_volume_gives_exactly_the_cube():
    volume, cube = _cube_volume()
    mask = otsu_mask(volume)
    assert mask.dtype == bool
    assert mask.shape == volume.shape
    np.testing.assert_array_equal(mask, cube)
    # Between the two levels (Otsu leans towards the larger, background class).
    assert 0.0 < otsu_threshold(volume) < 1.0


def test_bimodal_mixture_threshold_lies_between_modes():
    rng = np.random.default_rng(1)
    low = rng.normal(100.0, 10.0, 30_000)
    high = rng.normal(300.0, 15.0, 10_000)
    volume = rng.permutation(np.concatenate([low, high])).reshape(40, 25, 40)
    threshold = otsu_threshold(volume)
    assert isinstance(threshold, float)
    # Between the modes; Otsu leans towards the mode of the larger class.
    assert 100.0 < threshold < 300.0
    mask = otsu_mask(volume)
    assert abs(int(mask.sum()) - 10_000) < 100


@pytest.mark.parametrize("value", [0.0, 3.5, -7.0])
def test_constant_volume_gives_all_false(value):
    volume = np.full((5, 6, 7), value, dtype=np.float32)
    mask = otsu_mask(volume)
    assert mask.dtype == bool and mask.shape == (5, 6, 7)
    assert not mask.any()
    assert otsu_threshold(volume) == value


@pytest.mark.parametrize(("scale", "offset"), [(2.5, 10.0), (0.01, -3.0), (1000.0, 0.0)])
def test_mask_invariant_to_positive_affine_change(scale, offset):
    rng = np.random.default_rng(2)
    volume = np.concatenate(
        [rng.normal(0.0, 1.0, 6000), rng.normal(5.0, 1.5, 2000)]
    ).reshape(20, 20, 20)
    np.testing.assert_array_equal(otsu_mask(volume), otsu_mask(scale * volume + offset))
    assert otsu_threshold(scale * volume + offset) == pytest.approx(
        scale * otsu_threshold(volume) + offset, rel=1e-9, abs=1e-9
    )


def test_torch_tensor_input_returns_numpy_bool():
    volume, cube = _cube_volume()
    mask = otsu_mask(torch.from_numpy(volume))
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    np.testing.assert_array_equal(mask, cube)
    assert otsu_threshold(torch.from_numpy(volume)) == pytest.approx(otsu_threshold(volume))


def test_integer_volume_accepted():
    _, cube = _cube_volume()
    volume = np.where(cube, 900, 20).astype(np.int16)
    np.testing.assert_array_equal(otsu_mask(volume), cube)


def test_last_axis_of_three_is_not_taken_for_rgb():
    volume, cube = _cube_volume(shape=(16, 16, 3))
    cube[:] = False
    cube[4:10, 4:10, :] = True
    volume = cube.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(otsu_mask(volume), cube)


@pytest.mark.parametrize("shape", [(8, 8), (4, 4, 4, 4), (10,)])
def test_non_3d_raises(shape):
    with pytest.raises(ValueError, match="3D"):
        otsu_mask(np.zeros(shape))
    with pytest.raises(ValueError, match="3D"):
        otsu_threshold(np.zeros(shape))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_raises(bad):
    volume, _ = _cube_volume()
    volume[0, 0, 0] = bad
    with pytest.raises(ValueError, match="non-finite"):
        otsu_mask(volume)
    with pytest.raises(ValueError, match="non-finite"):
        otsu_threshold(volume)


def test_bad_nbins_raises():
    volume, _ = _cube_volume()
    with pytest.raises(ValueError, match="nbins"):
        otsu_mask(volume, nbins=1)
