"""Seeded tree augmentation: proper rotations, mirror, scale."""

import numpy as np
import pytest

from angio.augment import RandomTreeTransform, TreeTransform, rotation_matrix
from angio.data import load_tree


def edge_lengths(tree):
    child, par = tree.segments
    return np.linalg.norm(tree.points[child] - tree.points[par], axis=1)


def test_rotation_matrix_is_proper_and_turns_x_towards_y_about_z():
    for angles in [(0, 0, 0), (30, -20, 75), (180, 10, -10)]:
        r = rotation_matrix(angles)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)
    # (z, y, x) order: a quarter turn about z sends +x to +y.
    np.testing.assert_allclose(rotation_matrix((90, 0, 0)) @ [0, 0, 1], [0, 1, 0], atol=1e-12)


def test_identity_flip_and_scale():
    tree = load_tree("BG001")
    same = TreeTransform()(tree)
    np.testing.assert_allclose(same.points, tree.points)
    flipped = TreeTransform(flip=True)(tree)
    lo, hi = tree.bounds()
    np.testing.assert_allclose(flipped.points[:, 2], lo[2] + hi[2] - tree.points[:, 2])
    np.testing.assert_allclose(flipped.points[:, :2], tree.points[:, :2])
    scaled = TreeTransform(rotation_deg=(12, -5, 7), flip=True, scale=1.1)(tree)
    np.testing.assert_allclose(edge_lengths(scaled), 1.1 * edge_lengths(tree), rtol=1e-9)
    np.testing.assert_allclose(scaled.radius, 1.1 * tree.radius)
    assert scaled.frame == "zyx" and len(scaled) == len(tree)
    with pytest.raises(ValueError, match="scale"):
        TreeTransform(scale=0.0)


def test_sampling_is_seeded_and_within_ranges():
    sampler = RandomTreeTransform()
    a, b, c = sampler.sample(7), sampler.sample(7), sampler.sample(8)
    assert a == b and a != c
    rng = np.random.default_rng(0)
    draws = [sampler.sample(rng) for _ in range(200)]
    angles = np.array([d.rotation_deg for d in draws])
    assert np.all(np.abs(angles) <= np.array(sampler.max_rotation_deg))
    scales = np.array([d.scale for d in draws])
    assert scales.min() >= 0.9 and scales.max() <= 1.1
    flips = np.mean([d.flip for d in draws])
    assert 0.35 < flips < 0.65
    assert len({d for d in draws}) == 200  # every draw is a distinct volume


def test_requires_volume_frame():
    from angio.swc import Tree

    with pytest.raises(ValueError, match="volume frame"):
        TreeTransform()(Tree(np.zeros((1, 3)), np.ones(1), np.array([-1])))
