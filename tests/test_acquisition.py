"""Miscalibrated acquisitions: exact when nominal, and each deviation does what it says."""

import numpy as np
import pytest

from angio.acquisition import CONDITIONS, Acquisition, acquired_inputs, magnify
from angio.pipeline import VolumeSpec, build_case, network_input


@pytest.fixture(scope="module")
def vols():
    from angio.data import list_cases

    return build_case(list_cases()[0], VolumeSpec(size=32, fov_mm=96.0, center="major"))


def test_nominal_acquisition_is_the_study_input(vols):
    x = acquired_inputs(vols, 2, ("sum", "min"), CONDITIONS["nominal"])
    np.testing.assert_array_equal(x, network_input(vols.unit_intensity(), 2, modes=("sum", "min")))


def test_magnify_moves_a_point_away_from_the_centre():
    img = np.zeros((1, 41, 41), np.float32)
    img[0, 20, 30] = 1.0  # 10 px right of the centre
    out = magnify(img, 1.5)
    z, x = np.unravel_index(np.argmax(out[0]), out[0].shape)
    assert (z, x) == (20, 35)  # 15 px right
    np.testing.assert_allclose(magnify(img, 1.0), img)


def test_angle_error_changes_only_the_later_views(vols):
    a = acquired_inputs(vols, 2, ("sum",), Acquisition(angle_error_deg=5.0))
    b = acquired_inputs(vols, 2, ("sum",), CONDITIONS["nominal"])
    assert not np.allclose(a, b)


def test_doubled_noise_doubles_the_noise_spread():
    from angio.acquisition import more_noise
    from angio.phantom import PRESETS

    flat = np.full((64, 64, 64), 0.5, np.float32)
    sigma = PRESETS["rotational"].noise_sigma
    extra = more_noise(flat, "rotational", 2.0) - flat
    assert extra.std() == pytest.approx(sigma * np.sqrt(3.0), rel=0.02)  # total variance 4 sigma^2
    assert more_noise(flat, "rotational", 1.0) is not None and np.array_equal(more_noise(flat, "rotational", 1.0), flat)


def test_bad_acquisitions_are_refused():
    with pytest.raises(ValueError, match="noise_scale"):
        Acquisition(noise_scale=0.5)
    with pytest.raises(ValueError, match="magnification"):
        Acquisition(magnification=0.0)
    with pytest.raises(ValueError, match="angle"):
        Acquisition(angle_error_deg=float("nan"))
    with pytest.raises(ValueError, match="cone_rays.*cone_beam=True"):
        Acquisition(cone_rays=True)


def test_cone_beam_views_resemble_the_parallel_ones(vols):
    cone = acquired_inputs(vols, 2, ("min",), Acquisition(cone_beam=True))
    parallel = acquired_inputs(vols, 2, ("min",), CONDITIONS["nominal"])
    assert cone.shape == parallel.shape
    assert not np.allclose(cone, parallel)  # rays fan out: not the same views
    assert np.corrcoef(cone.ravel(), parallel.ravel())[0, 1] > 0.8  # but close to them


def test_geometry_is_a_training_and_evaluation_setting(tmp_path):
    from angio.acquisition import GEOMETRIES
    from angio.dataset import VesselDataset
    from angio.pipeline import VolumeCache
    from angio.study import StudySettings, case_inputs

    spec = VolumeSpec(size=32, fov_mm=96.0, center="major")
    cache = VolumeCache(tmp_path / "cache")
    cone = VesselDataset(["BH0002"], spec, 2, modes=("sum", "min"), target="exact", cache=cache, geometry="cone")
    flat = VesselDataset(["BH0002"], spec, 2, modes=("sum", "min"), target="exact", cache=cache)
    vols = cache.get("BH0002", spec, seed=0)
    # the cone-beam items are the inputs of a cone-beam acquisition, computed once per case
    x = cone[0]["input"].numpy()
    np.testing.assert_allclose(x, acquired_inputs(vols, 2, ("sum", "min"), GEOMETRIES["cone"]), atol=1e-6)
    assert len(cone._views) == 1
    np.testing.assert_array_equal(cone[0]["input"].numpy(), x)
    parallel = network_input(vols.unit_intensity(), 2, modes=("sum", "min"))
    np.testing.assert_array_equal(flat[0]["input"].numpy(), parallel)
    assert np.abs(x - flat[0]["input"].numpy()).max() > 0.05  # the fan of rays changes the input
    settings = StudySettings(spec=spec, results_dir=str(tmp_path), geometry="cone")
    np.testing.assert_allclose(case_inputs(vols, 2, ("sum", "min"), settings), x, atol=1e-6)
    with pytest.raises(ValueError, match="geometry"):
        StudySettings(geometry="fan")
    with pytest.raises(ValueError, match="geometry"):
        VesselDataset(["BH0002"], spec, 2, geometry="fan")


def test_cone_rays_back_project_the_cone_views_along_their_own_rays(vols):
    from angio.conebeam import CArmGeometry, cone_backproject, cone_mip
    from angio.projection import view_angles

    n, h = vols.spec.size, vols.spec.voxel_mm
    views = [CArmGeometry.typical(n, h, t) for t in view_angles(2)]
    images = cone_mip(vols.unit_intensity(), views, spacing_mm=h)
    x = acquired_inputs(vols, 2, ("sum", "min"), CONDITIONS["cone beam, cone-ray back-projection"])
    for channel, mode in zip(x, ("sum", "min")):
        np.testing.assert_allclose(channel, cone_backproject(images, views, n, spacing_mm=h, mode=mode,
                                                             require_all_views=True), atol=1e-6)
    # only the voxels both views see carry a value: the cone misses the edges near its source
    seen = cone_backproject(np.ones_like(images), views, n, spacing_mm=h, normalize=False)
    assert (x[:, seen < 1.5] == 0).all() and (seen < 1.5).any()
    # the back-projection keeps the nominal geometry when the C-arm's angle is off
    off = acquired_inputs(vols, 2, ("sum",), Acquisition(cone_beam=True, cone_rays=True, angle_error_deg=5.0))
    assert not np.allclose(off, x[:1])


def test_magnified_views_are_the_views_of_the_magnified_object():
    from angio.acquisition import magnified_truth
    from angio.projection import mip, view_angles

    n = 48
    c = (n - 1) / 2
    z, y, x = np.ogrid[:n, :n, :n]
    ball = lambda centre, r: ((z - c - centre[0]) ** 2 + (y - c - centre[1]) ** 2  # noqa: E731
                              + (x - c - centre[2]) ** 2) <= r ** 2
    truth = ball((4, -6, 8), 5.0)
    scaled = magnified_truth(truth, 1.25)
    # the ball of the scaled object: 1.25 times as far from the isocentre, 1.25 times as large
    expected = ball((5, -7.5, 10), 6.25)
    assert (scaled != expected).sum() <= 0.1 * expected.sum()
    np.testing.assert_array_equal(magnified_truth(truth, 1.0), truth)
    # and its MIPs are the magnified MIPs of the mask, up to the interpolation
    angles = view_angles(2)
    views = magnify(np.asarray(mip(truth.astype(np.float32), angles)), 1.25) >= 0.5
    of_scaled = np.asarray(mip(scaled.astype(np.float32), angles)) >= 0.5
    assert (views != of_scaled).sum() <= 0.1 * of_scaled.sum()


def test_angle_jitter_trains_on_miscalibrated_variants(tmp_path):
    from angio.dataset import VesselDataset
    from angio.pipeline import VolumeCache
    from angio.study import StudySettings

    spec = VolumeSpec(size=32, fov_mm=96.0, center="major")
    cache = VolumeCache(tmp_path / "cache")
    kwargs = dict(modes=("sum", "min"), target="exact", cache=cache, variants=3)
    jitter = VesselDataset(["BH0002", "BG001"], spec, 2, angle_jitter_deg=5.0, **kwargs)
    errors = [jitter.angle_error(c, v) for c in ("BH0002", "BG001") for v in (1, 2, 3)]
    assert all(0 < abs(e) <= 5.0 for e in errors) and len(set(errors)) == len(errors)
    assert jitter.angle_error("BH0002", 0) == 0.0  # the case as scanned stays nominal
    assert errors == [VesselDataset(["BH0002", "BG001"], spec, 2, angle_jitter_deg=5.0, **kwargs).angle_error(c, v)
                      for c in ("BH0002", "BG001") for v in (1, 2, 3)]  # reproducible
    # an item is its variant acquired with that angle error and back-projected at the nominal angles
    item = jitter[0]
    vols = cache.get(item["case"], spec, variant=item["variant"], seed=0)
    error = jitter.angle_error(item["case"], item["variant"])
    expected = acquired_inputs(vols, 2, ("sum", "min"), Acquisition(angle_error_deg=error))
    np.testing.assert_allclose(item["input"].numpy(), expected, atol=1e-6)
    assert not np.allclose(expected, network_input(vols.unit_intensity(), 2, modes=("sum", "min")))
    with pytest.raises(ValueError, match="angle_jitter_deg"):
        VesselDataset(["BH0002"], spec, 2, angle_jitter_deg=float("nan"))
    with pytest.raises(ValueError, match="angle_jitter_deg"):
        StudySettings(angle_jitter_deg=-1.0)
