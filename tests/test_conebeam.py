"""Cone-beam geometry against analytic truth, the parallel-beam contract and a slow reference."""

import math

import numpy as np
import pytest

from angio.conebeam import CArmGeometry, cone_backproject, cone_mip, cone_mip_reference
from angio.projection import backproject, mip


def blobs(n, centres_mm, sigma_mm, h):
    c = (n - 1) / 2
    ax = (np.arange(n) - c) * h
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    v = np.zeros((n, n, n))
    for cx, cy, cz in centres_mm:
        v += np.exp(-((x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2) / (2 * sigma_mm**2))
    return (v / v.max()).astype(np.float32)


def sphere(n, centre_mm, radius_mm, h):
    c = (n - 1) / 2
    ax = (np.arange(n) - c) * h
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    d = np.sqrt((x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (z - centre_mm[2]) ** 2)
    return np.clip(radius_mm - d + 0.5, 0, 1).astype(np.float32)


@pytest.mark.parametrize("angle", [0.0, 90.0, 30.0])
def test_parallel_limit_is_the_parallel_contract(angle):
    n, h = 24, 1.0
    v = blobs(n, [(3, -4, 2), (-5, 2, -3)], 2.5, h)
    expected = np.asarray(mip(v, [angle]))
    parallel = cone_mip(v, [CArmGeometry.parallel(n, h, angle)], spacing_mm=h, step=0.25)
    # the contract samples each ray once per voxel, this module four times: maxima differ a little
    np.testing.assert_allclose(parallel, expected, atol=0.04)
    # a cone whose source is very far away converges to the parallel rays
    far = CArmGeometry(1e7, 1e7, (n, n), (h, h), angle)
    np.testing.assert_allclose(cone_mip(v, [far], spacing_mm=h, step=0.25), parallel, atol=1e-3)
    bp = cone_backproject(expected, [CArmGeometry.parallel(n, h, angle)], n, spacing_mm=h)
    np.testing.assert_allclose(bp, np.asarray(backproject(expected, [angle], mode="sum")), atol=1e-4)


@pytest.mark.parametrize("angle, tilt", [(0.0, 0.0), (30.0, 0.0), (120.0, 10.0)])
def test_small_sphere_projects_by_similar_triangles(angle, tilt):
    n, h, radius = 64, 1.0, 3.0
    centre = np.array([10.0, -12.0, 8.0])
    g = CArmGeometry.typical(96, h, angle, tilt_deg=tilt)
    img = cone_mip(sphere(n, centre, radius, h), [g], spacing_mm=h, step=0.25)[0]
    r, e_u, e_v = g.frame()
    m = g.source_detector_mm / (g.source_isocenter_mm + centre @ r)
    row = m * (centre @ e_v) / g.pixel_mm[0] + (96 - 1) / 2
    col = m * (centre @ e_u) / g.pixel_mm[1] + (96 - 1) / 2
    assert np.allclose(g.project(centre), (row, col))
    w = np.clip(img, 0, None)
    rr, cc = np.indices(img.shape)
    assert (w * rr).sum() / w.sum() == pytest.approx(row, abs=0.3)
    assert (w * cc).sum() / w.sum() == pytest.approx(col, abs=0.3)
    # the disk's size: radius * local magnification, in detector pixels
    area = (img > 0.5).sum()
    assert math.sqrt(area / math.pi) == pytest.approx(radius * m / g.pixel_mm[1], rel=0.12)


def test_typical_geometry_magnifies_about_one_and_a_half():
    g = CArmGeometry.typical(64, 0.5)
    assert g.magnification == pytest.approx(1100 / 750)
    near, far = np.array([0, -40.0, 0]), np.array([0, 40.0, 0])  # t = 0: rays travel along +y
    ones = np.array([[10.0, 0, 0]])
    assert g.project(near + ones)[1] - g.project(near)[1] > g.project(far + ones)[1] - g.project(far)[1]


def test_fast_mip_matches_the_slow_reference():
    n, h = 16, 1.0
    v = blobs(n, [(2, -3, 1), (-3, 3, -2)], 1.8, h)
    g = CArmGeometry(60.0, 90.0, (12, 12), (1.6, 1.6), angle_deg=25.0, tilt_deg=5.0)
    fast = cone_mip(v, [g], spacing_mm=h, step=0.25)[0]
    slow = cone_mip_reference(v, g, spacing_mm=h, step=0.25)
    np.testing.assert_allclose(fast, slow, atol=0.02)


def test_min_backprojection_of_mips_bounds_the_volume():
    n, h = 32, 1.0
    v = blobs(n, [(4, -5, 3), (-6, 4, -2)], 3.0, h)
    views = [CArmGeometry.typical(96, h / 2, a) for a in (0.0, 60.0, 120.0)]  # 0.73 mm pixels
    hull = cone_backproject(cone_mip(v, views, spacing_mm=h, step=0.25), views, n, spacing_mm=h,
                            mode="min", normalize=False)
    # every voxel lies below the hull, up to interpolation error (the contract's own caveat)
    assert (hull >= v - 0.04).all()
    assert hull.mean() < 0.5 * v.max()  # and it is far from trivial


def test_require_all_views_keeps_the_common_field_of_view():
    n, h = 32, 1.0
    v = blobs(n, [(4, -5, 3)], 3.0, h)
    # a short cone whose detector covers the volume at the isocentre only: near the source
    # each view misses the volume's edges
    views = [CArmGeometry(60.0, 90.0, (n, n), (1.5 * h, 1.5 * h), a) for a in (0.0, 90.0)]
    images = cone_mip(v, views, spacing_mm=h, step=0.5)
    count = cone_backproject(np.ones_like(images), views, n, spacing_mm=h, normalize=False)
    common = count > 1.5
    assert 0.05 < 1 - common.mean() < 0.9  # some voxels are seen by one view only
    for mode in ("sum", "min"):
        every = cone_backproject(images, views, n, spacing_mm=h, mode=mode, normalize=False)
        kept = cone_backproject(images, views, n, spacing_mm=h, mode=mode, normalize=False,
                                require_all_views=True)
        np.testing.assert_array_equal(kept[common], every[common])
        assert (kept[~common] == 0).all() and (every[~common] > 0).any()


def test_bad_geometry_is_refused():
    with pytest.raises(ValueError, match="beyond the isocentre"):
        CArmGeometry(800, 700, (8, 8), (1, 1))
    with pytest.raises(ValueError, match="positive"):
        CArmGeometry(-1, 700, (8, 8), (1, 1))
    with pytest.raises(ValueError, match="pixel_mm"):
        CArmGeometry(700, 1000, (8, 8), (0, 1))
    with pytest.raises(ValueError, match="tilt"):
        CArmGeometry(700, 1000, (8, 8), (1, 1), tilt_deg=95)
    g = CArmGeometry.from_dicom(30.0, 10.0, source_detector_mm=1100, source_patient_mm=750, pixel_mm=(0.3, 0.3),
                                detector_shape=(10, 10))
    r, _, _ = g.frame()
    # LAO 30, cranial 10: the beam travels towards the patient's left-anterior and the head
    assert r[0] > 0 and r[1] < 0 and r[2] > 0


def test_isocentre_view_undoes_the_magnification():
    from angio.conebeam import isocentre_view, parallel_equivalent

    n, h = 48, 1.0
    v = blobs(n, [(0, 0, 0)], 3.0, h)  # a blob at the isocentre: magnified by exactly D_sd / D_so
    g = CArmGeometry.typical(64, h, 0.0)
    back = isocentre_view(cone_mip(v, [g], spacing_mm=h, step=0.25)[0], g, n, n * h)
    np.testing.assert_allclose(back, np.asarray(mip(v, [0.0]))[0], atol=0.03)
    assert parallel_equivalent(270.0) == (90.0, True) and parallel_equivalent(-90.0) == (90.0, True)
    assert parallel_equivalent(90.0) == (90.0, False) and parallel_equivalent(180.0) == (0.0, True)
    # a view from the opposite side is the mirror image
    a = cone_mip(v, [CArmGeometry.parallel(n, h, 30.0)], spacing_mm=h, step=0.25)[0]
    b = cone_mip(v, [CArmGeometry.parallel(n, h, 210.0)], spacing_mm=h, step=0.25)[0]
    np.testing.assert_allclose(a, b[:, ::-1], atol=1e-4)


def backproject_slow(images, geometries, n, h, mode):
    """Independent NumPy/SciPy back-projection of the whole volume at once (float64, no chunks)."""
    from scipy import ndimage

    c = (n - 1) / 2
    ax = (np.arange(n) - c) * h
    z, y, x = np.meshgrid(ax, ax, ax, indexing="ij")
    pts = np.stack([x, y, z], axis=-1)
    acc = np.full((n, n, n), 0.0 if mode == "sum" else np.inf)
    seen = np.zeros((n, n, n), dtype=bool)
    for img, g in zip(images, geometries):
        row, col = g.project(pts)
        rows, cols = g.detector_shape
        inside = (row >= -1e-6) & (row <= rows - 1 + 1e-6) & (col >= -1e-6) & (col <= cols - 1 + 1e-6)
        value = ndimage.map_coordinates(img.astype(np.float64), [row, col], order=1, mode="nearest")
        acc = acc + np.where(inside, value, 0.0) if mode == "sum" else np.where(inside, np.minimum(acc, value), acc)
        seen |= inside
    return np.where(seen, acc, 0.0) if mode == "min" else acc


@pytest.mark.parametrize("mode", ["sum", "min"])
def test_chunked_backprojection_equals_the_unchunked_volume(monkeypatch, mode):
    import angio.conebeam as cb

    n, h = 12, 1.0
    rng = np.random.default_rng(3)
    views = [CArmGeometry(50.0, 80.0, (10, 14), (1.3, 1.1), a, t) for a, t in ((0, 0), (35, 10), (90, -15), (200, 5),
                                                                           (270, 0))]
    images = rng.random((len(views), 10, 14)).astype(np.float32)
    whole = cone_backproject(images, views, n, spacing_mm=h, mode=mode, normalize=False)
    slow = backproject_slow(images, views, n, h, mode)
    assert np.isfinite(whole).all() and (whole > 0).mean() > 0.5
    np.testing.assert_allclose(whole, slow, atol=1e-5)
    common = cone_backproject(images, views, n, spacing_mm=h, mode=mode, require_all_views=True)
    # working sets of 150 pairs (all 5 views, 30 voxels a chunk), 2 pairs (groups of 2 views,
    # one voxel a chunk) and none (one view and one voxel at a time)
    for budget in (150 * cb._BP_BYTES_PER_PAIR, 2 * cb._BP_BYTES_PER_PAIR, 1):
        monkeypatch.setattr(cb, "_CHUNK_BYTES", budget)
        np.testing.assert_allclose(cone_backproject(images, views, n, spacing_mm=h, mode=mode, normalize=False),
                                   whole, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(cone_backproject(images, views, n, spacing_mm=h, mode=mode, require_all_views=True),
                                   common, atol=1e-6)


def test_working_set_is_bounded_by_the_chunk_size(monkeypatch):
    import torch

    import angio.conebeam as cb

    n, h = 16, 1.0
    views = [CArmGeometry.typical(20, h, a, tilt_deg=8.0) for a in (0.0, 45.0, 90.0)]
    v = blobs(n, [(2, -3, 1)], 2.0, h)
    expected_mip = cone_mip(v, views, spacing_mm=h)
    images = np.clip(expected_mip, 0, 1)
    expected_bp = cone_backproject(images, views, n, spacing_mm=h, mode="min", normalize=False)
    sizes = []  # points per grid_sample call
    sample = torch.nn.functional.grid_sample

    def counting(inp, grid, **kw):
        sizes.append(grid.numel() // grid.shape[-1])
        return sample(inp, grid, **kw)

    monkeypatch.setattr(torch.nn.functional, "grid_sample", counting)
    monkeypatch.setattr(cb, "_CHUNK_BYTES", 64 * 2**10)
    np.testing.assert_allclose(cone_mip(v, views, spacing_mm=h), expected_mip, atol=1e-6)
    # whole detector rows of full-length rays: at most the rows that fit, but never a whole image
    assert len(sizes) > len(views) and max(sizes) * cb._MIP_BYTES_PER_SAMPLE <= cb._CHUNK_BYTES
    sizes.clear()
    np.testing.assert_allclose(cone_backproject(images, views, n, spacing_mm=h, mode="min", normalize=False),
                               expected_bp, atol=1e-6)
    assert len(sizes) > 1 and max(sizes) * cb._BP_BYTES_PER_PAIR <= cb._CHUNK_BYTES
    assert sum(sizes) == len(views) * n**3  # every (view, voxel) pair exactly once
