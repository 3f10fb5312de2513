"""Projection contract: analytic MIPs, exact orthogonal views, reference agreement."""

import numpy as np
import pytest
import torch

from angio import projection as P


def blob(n, centre, sigma, amplitude=1.0):
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float64)] * 3, indexing="ij")
    r2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return (amplitude * np.exp(-r2 / (2 * sigma**2))).astype(np.float32)


def analytic_mip(n, centre, sigma, angle):
    """Closed form: a Gaussian's maximum along a line is reached at the foot of the perpendicular."""
    c = (n - 1) / 2
    t = np.deg2rad(angle)
    z = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    d = (centre[2] - c) * np.cos(t) + (centre[1] - c) * np.sin(t) + c - j
    return np.exp(-(d**2 + (z - centre[0]) ** 2) / (2 * sigma**2))


def test_view_angles_match_the_paper_schedules():
    np.testing.assert_array_equal(P.view_angles(2), [0, 90])
    np.testing.assert_array_equal(P.view_angles(3), [0, 45, 90])
    np.testing.assert_array_equal(P.view_angles(5), [0, 22.5, 45, 67.5, 90])
    np.testing.assert_allclose(np.diff(P.view_angles(46)), 2.0)
    assert P.PAPER_VIEW_COUNTS == (90, 46, 24, 10, 5, 3, 2)
    np.testing.assert_array_equal(P.view_angles(1), [0])
    with pytest.raises(ValueError):
        P.view_angles(0)


@pytest.mark.parametrize("n", [16, 17])
def test_orthogonal_views_are_exact_axis_maxima(n):
    v = np.random.default_rng(n).random((n, n, n)).astype(np.float32)
    m = P.mip(v, [0, 90, 180, 270])
    np.testing.assert_array_equal(m[0], v.max(axis=1))
    np.testing.assert_array_equal(m[1], v.max(axis=2))
    np.testing.assert_array_equal(m[2], v.max(axis=1)[:, ::-1])
    np.testing.assert_array_equal(m[3], v.max(axis=2)[:, ::-1])


@pytest.mark.parametrize("angle", [0.0, 13.0, 45.0, 71.5, 90.0, 133.0])
def test_gaussian_blob_matches_closed_form(angle):
    n, centre, sigma = 40, (18.0, 15.0, 23.0), 4.0
    m = P.mip(blob(n, centre, sigma), [angle])[0]
    # Bilinear interpolation misses the curvature by at most h^2/8 |f''| per axis
    # (|f''| <= 1/sigma^2) and unit steps along the ray miss the peak by at most 1/2 voxel:
    # 2 * (1/8) / 16 + (1 - exp(-0.125 / 16)) ~ 0.024.
    np.testing.assert_allclose(m, analytic_mip(n, centre, sigma, angle), atol=0.024)
    if angle % 90:  # off-axis views still put the peak on the right detector column
        assert abs(np.argmax(m.max(axis=0)) - np.argmax(analytic_mip(n, centre, sigma, angle).max(axis=0))) <= 0


def test_fast_mip_matches_rotate_reference():
    n = 32
    v = blob(n, (16, 10, 19), 3.0) + 0.5 * blob(n, (12, 20, 12), 2.0)
    angles = [7.0, 30.0, 62.0, 90.0]
    np.testing.assert_allclose(P.mip(v, angles), P.mip_reference(v, angles), atol=2e-6)


@pytest.mark.parametrize("mode", ["sum", "min"])
def test_fast_backprojection_matches_rotate_reference_inside_the_field_of_view(mode):
    n = 32
    v = blob(n, (16, 10, 19), 3.0)
    angles = P.view_angles(5)
    proj = P.mip(v, angles)
    fast = P.backproject(proj, angles, mode=mode)
    ref = P.backproject_reference(proj, angles, mode=mode)
    c = (n - 1) / 2
    y, x = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    inside = (y - c) ** 2 + (x - c) ** 2 <= (c - 1) ** 2
    np.testing.assert_allclose(fast[:, inside], ref[:, inside], atol=2e-6)


def test_backprojection_geometry_on_a_single_detector_column():
    """A bright detector column u=j0 smears along the ray set x cos t + y sin t = const."""
    n = 21
    proj = np.zeros((1, n, n), np.float32)
    proj[0, :, 4] = 1.0
    b0 = P.backproject(proj, [0.0], normalize=False)
    np.testing.assert_array_equal(b0[:, :, 4], 1.0)
    assert b0.sum() == n * n
    b90 = P.backproject(proj, [90.0], normalize=False)
    np.testing.assert_array_equal(b90[:, 4, :], 1.0)
    assert b90.sum() == n * n


def test_sum_is_linear_and_counts_views_inside_the_cylinder():
    n, angles = 24, P.view_angles(7)
    rng = np.random.default_rng(1)
    a, b = rng.random((2, 7, n, n)).astype(np.float32)
    bp = lambda p: P.backproject(p, angles, normalize=False)  # noqa: E731
    np.testing.assert_allclose(bp(2 * a + 3 * b), 2 * bp(a) + 3 * bp(b), rtol=1e-5, atol=1e-4)
    ones = bp(np.ones((7, n, n), np.float32))
    c = (n - 1) / 2
    assert ones[5, int(c), int(c)] == pytest.approx(7.0)
    assert ones.max() == pytest.approx(7.0)


def test_min_backprojection_bounds_the_volume():
    n = 20
    v = np.random.default_rng(3).random((n, n, n)).astype(np.float32)
    biplane = P.view_angles(2)
    hull = P.backproject(P.mip(v, biplane), biplane, mode="min", normalize=False)
    assert np.all(hull >= v)  # exact at 0 and 90 degrees
    np.testing.assert_array_equal(hull.max(axis=1), v.max(axis=1))  # and consistent with the MIPs
    smooth = blob(32, (16, 12, 18), 4.0)
    angles = P.view_angles(10)
    hull = P.backproject(P.mip(smooth, angles), angles, mode="min", normalize=False)
    # up to interpolation error at oblique angles: the MIP's (<= 0.024, see the closed-form
    # test) plus the detector lerp's (h^2/8 |f''| <= 1/128)
    assert np.all(hull >= smooth - 0.032)
    assert hull.sum() < P.backproject(P.mip(smooth, angles), angles, normalize=False).sum()


def test_normalization_and_types():
    n = 16
    v = blob(n, (8, 8, 8), 2.0)
    proj = P.mip(torch.from_numpy(v), [0.0, 45.0])
    assert isinstance(proj, torch.Tensor) and proj.shape == (2, n, n)
    b = P.backproject(proj, [0.0, 45.0])
    assert isinstance(b, torch.Tensor) and b.dtype == torch.float32
    assert float(b.min()) == 0.0 and float(b.max()) == pytest.approx(1.0)
    assert np.all(P.backproject(np.zeros((2, n, n)), [0, 90]) == 0)
    assert P.mip(v.astype(np.float64), [0]).dtype == np.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: P.mip(np.zeros((4, 4, 5)), [0]), "cube"),
        (lambda: P.mip(np.full((4, 4, 4), np.nan), [0]), "NaN"),
        (lambda: P.mip(np.zeros((4, 4, 4)), []), "angles"),
        (lambda: P.backproject(np.zeros((3, 4, 4)), [0, 90]), "3 projections but 2 angles"),
        (lambda: P.backproject(np.zeros((2, 4, 4)), [0, 90], mode="max"), "mode"),
        (lambda: P.backproject(np.zeros((2, 4, 5)), [0, 90]), "shape"),
    ],
)
def test_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_eager_chunking_matches_single_chunk(monkeypatch):
    n = 24
    v = np.random.default_rng(5).random((n, n, n)).astype(np.float32)
    angles = P.view_angles(5)
    whole = P.mip(v, angles)
    back = P.backproject(whole, angles, mode="min")
    monkeypatch.setattr(P, "_CHUNK_BYTES", 4 * 8 * n * n * 3)  # 3 z-slices, 1 view per call
    np.testing.assert_array_equal(P.mip(v, angles), whole)
    np.testing.assert_array_equal(P.backproject(whole, angles, mode="min"), back)


@pytest.mark.compiled
@pytest.mark.slow
def test_compiled_kernels_match_eager():
    n = 40
    v = blob(n, (20, 14, 25), 3.0) + np.random.default_rng(0).random((n, n, n)).astype(np.float32) * 0.1
    angles = P.view_angles(24)
    fast = P.mip(v, angles)
    sums = P.backproject(fast, angles)
    mins = P.backproject(fast, angles, mode="min")
    P.set_backend("eager")
    np.testing.assert_allclose(fast, P.mip(v, angles), atol=1e-6)
    np.testing.assert_allclose(sums, P.backproject(fast, angles), atol=1e-5)
    np.testing.assert_allclose(mins, P.backproject(fast, angles, mode="min"), atol=1e-6)


@pytest.mark.parametrize(
    ("angles", "expected"),
    [([0, 90], True), ([0, 45, 90], False), ([0, 60, 120], True), ([30, 150], True), ([10], False),
     ([0], True), ([0, 180], True), ([0, 45, 90, 135], True), ([0, 90.5], False), ([float("nan"), 0], False),
     ([], False)],
)
def test_mirror_symmetric_views(angles, expected):
    assert P.mirror_symmetric(angles) is expected


@pytest.mark.parametrize(("angles", "symmetric"), [([0.0, 90.0], True), ([0.0, 60.0, 120.0], True),
                                                   ([0.0, 45.0, 90.0], False)])
def test_mirrored_backprojection_is_the_backprojection_of_the_mirrored_volume(angles, symmetric):
    # the claim behind mirror test-time augmentation: for mirror-symmetric views, mirroring the
    # back-projection along x gives the back-projection of the mirrored anatomy, same views
    rng = np.random.default_rng(3)
    n = 33
    v = np.zeros((n, n, n), np.float32)
    idx = rng.integers(6, n - 6, size=(40, 3))
    v[idx[:, 0], idx[:, 1], idx[:, 2]] = rng.uniform(0.5, 1.0, 40)
    for mode in ("sum", "min"):
        direct = P.backproject(P.mip(v[..., ::-1].copy(), angles), angles, mode=mode)
        mirrored = P.backproject(P.mip(v, angles), angles, mode=mode)[..., ::-1]
        err = float(np.abs(direct - mirrored).max())
        assert (err < 1e-4) if symmetric else (err > 0.05), (mode, err)
