"""Tube model voxelization against analytic volumes and the mask definition."""

import math

import numpy as np
import pytest

from angio.swc import Tree
from angio.voxelize import Grid, voxelize_tree


def rod(length=40.0, r0=3.0, r1=3.0, axis=2, offset=(0.0, 0.0, 0.0)):
    a = np.array(offset, dtype=float)
    b = a.copy()
    b[axis] += length
    return Tree(points=np.stack([a, b]), radius=np.array([r0, r1]), parent=np.array([-1, 0]),
                frame="zyx", name="rod")


@pytest.mark.parametrize("n, fov", [(48, 60.0), (64, 60.0), (96, 60.0)])
def test_total_volume_matches_capsule(n, fov):
    tree = rod(offset=(0.3, -0.2, -20.0))
    vox = voxelize_tree(tree, Grid(n, fov))
    measured = vox.fraction.sum(dtype=np.float64) * vox.grid.voxel_mm**3
    expected = math.pi * 3.0**2 * 40.0 + 4 / 3 * math.pi * 3.0**3
    assert measured == pytest.approx(expected, rel=0.02)
    assert vox.fraction.min() >= 0 and vox.fraction.max() <= 1
    np.testing.assert_array_equal(vox.mask, vox.fraction >= 0.5)


def test_tapered_cone_volume():
    tree = rod(length=40.0, r0=4.0, r1=2.0, offset=(0.0, 0.0, -20.0))
    vox = voxelize_tree(tree, Grid(96, 60.0))
    measured = vox.fraction.sum(dtype=np.float64) * vox.grid.voxel_mm**3
    frustum = math.pi * 40.0 * (16 + 8 + 4) / 3
    caps = 2 / 3 * math.pi * (4.0**3 + 2.0**3)  # half-spheres at both ends (approximately)
    assert measured == pytest.approx(frustum + caps, rel=0.04)


def test_mask_is_voxel_centre_inside_tube_without_supersampling():
    tree = rod(length=20.0, r0=2.5, r1=2.5, offset=(0.1, 0.2, -10.0))
    grid = Grid(40, 40.0)
    vox = voxelize_tree(tree, grid, supersample=1)
    k = np.arange(grid.n)
    centres = grid.center_mm[0] + (k - (grid.n - 1) / 2) * grid.voxel_mm
    z, y, x = np.meshgrid(centres, centres, centres, indexing="ij")
    xc = np.clip(x, -10.0, 10.0)
    dist = np.sqrt((z - 0.1) ** 2 + (y - 0.2) ** 2 + (x - xc) ** 2)
    inside = dist <= 2.5
    near_surface = np.abs(dist - 2.5) < 1e-3
    np.testing.assert_array_equal(vox.mask[~near_surface], inside[~near_surface])


def test_volume_is_conserved_across_resolutions_on_a_real_tree():
    from angio.data import load_tree

    tree = load_tree("BG001")
    volumes = []
    for n in (64, 128):
        vox = voxelize_tree(tree, n)
        volumes.append(vox.fraction.sum(dtype=np.float64) * vox.grid.voxel_mm**3)
        assert vox.fraction.shape == (n, n, n) and vox.fraction.dtype == np.float32
    assert volumes[0] == pytest.approx(volumes[1], rel=0.02)
    assert 3000 < volumes[1] < 20000  # mm^3: a few to ten millilitres of arterial lumen


def test_zero_radius_gets_the_floor_and_isolated_points_count():
    tree = Tree(points=np.array([[0.0, 0.0, 0.0]]), radius=np.zeros(1), parent=np.array([-1]),
                frame="zyx")
    vox = voxelize_tree(tree, Grid(32, 8.0), min_radius_mm=1.0)
    measured = vox.fraction.sum(dtype=np.float64) * vox.grid.voxel_mm**3
    assert measured == pytest.approx(4 / 3 * math.pi, rel=0.03)


def test_grid_geometry_and_errors():
    g = Grid(5, 10.0, (1.0, 2.0, 3.0))
    np.testing.assert_allclose(g.to_index([1.0, 2.0, 3.0]), [2, 2, 2])
    np.testing.assert_allclose(g.to_index([3.0, 2.0, 3.0]), [3, 2, 2])
    assert g.spacing == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="volume frame"):
        voxelize_tree(Tree(np.zeros((1, 3)), np.ones(1), np.array([-1])), 8)
    with pytest.raises(ValueError, match="n must be"):
        Grid(1)
    tree = rod()
    assert Grid.around(tree, 8).center_mm == pytest.approx((0.0, 0.0, 20.0))
    with pytest.raises(ValueError, match="center"):
        Grid.around(tree, 8, center="nose")
