"""Intensity model: partial-volume mixing, head geometry, blur and noise."""

import numpy as np
import pytest

from angio.phantom import PRESETS, Modality, angiography_volume, head_masks, to_unit_range
from angio.voxelize import Grid


def test_rotational_without_blur_or_noise_is_the_fraction():
    grid = Grid(16, 16.0)
    frac = np.random.default_rng(0).random((16, 16, 16)).astype(np.float32)
    clean = Modality("clean", vessel=1.0, tissue=0.0, air=0.0, psf_sigma_mm=0.0)
    np.testing.assert_allclose(angiography_volume(frac, grid, modality=clean), frac, atol=1e-7)


def test_cta_levels_in_hounsfield_units():
    grid = Grid(64, 128.0)
    frac = np.zeros((64, 64, 64), np.float32)
    frac[32, 32, 32] = 1.0
    sharp = Modality("cta-sharp", vessel=400.0, tissue=35.0, air=-1000.0, bone=1200.0,
                     skull_mm=6.0, psf_sigma_mm=0.0)
    bounds = (np.full(3, -40.0), np.full(3, 40.0))
    img = angiography_volume(frac, grid, modality=sharp, tree_bounds=bounds)
    assert img[32, 32, 32] == pytest.approx(400.0)
    assert img[32, 32, 40] == pytest.approx(35.0)  # brain
    assert img[0, 0, 0] == pytest.approx(-1000.0)  # air in the corner
    brain, skull = head_masks(grid, *bounds, margin_mm=5.0, skull_mm=6.0)
    assert not (brain & skull).any() and skull.any()
    np.testing.assert_allclose(img[skull], 1200.0)
    # the skull is a 6 mm shell: along the x axis through the centre it is 3 voxels thick
    assert skull[32, 32].sum() == pytest.approx(2 * 3, abs=2)


def test_noise_is_seeded_and_has_the_preset_sigma():
    grid = Grid(32, 64.0)
    frac = np.zeros((32, 32, 32), np.float32)
    a = angiography_volume(frac, grid, rng=1)
    b = angiography_volume(frac, grid, rng=1)
    c = angiography_volume(frac, grid, rng=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.std() == pytest.approx(PRESETS["rotational"].noise_sigma, rel=0.05)


def test_blur_preserves_total_vessel_signal():
    grid = Grid(32, 16.0)  # 0.5 mm voxels, so sigma is under a voxel
    frac = np.zeros((32, 32, 32), np.float32)
    frac[10:20, 12:16, 12:16] = 1.0
    m = Modality("blur", vessel=1.0, tissue=0.0, air=0.0, psf_sigma_mm=0.4)
    img = angiography_volume(frac, grid, modality=m)
    assert img.sum() == pytest.approx(frac.sum(), rel=1e-4)
    assert img.max() < 1.0


def test_to_unit_range_and_shape_check():
    v = np.array([[[-2.0, 0.0], [2.0, 6.0]]] * 2)
    u = to_unit_range(v)
    assert u.min() == 0.0 and u.max() == 1.0 and u.dtype == np.float32
    np.testing.assert_allclose(to_unit_range(v, low=0.0, high=2.0)[0, 1], [1.0, 1.0])
    np.testing.assert_array_equal(to_unit_range(np.ones((2, 2, 2))), 0.0)
    with pytest.raises(ValueError, match="shape"):
        angiography_volume(np.zeros((4, 4, 4)), Grid(8))
