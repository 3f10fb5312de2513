"""Tests for :mod:`angio.metrics` on hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from angio.metrics import (
    METRICS,
    THRESHOLD,
    binarize,
    cldice,
    dice,
    evaluate,
    iou,
    mae,
    mse,
    pixel_accuracy,
    skeleton,
    summarize,
)


def _hand_example():
    """A 4x4 case: |L| = 4, |P| = 3, |P & L| = 2, so IoU 2/5 and Dice 4/7.

    ``mask`` is the top-left 2x2 square. Vessel predictions (``>= 0.5``) at (0,0) 0.9,
    (0,1) 0.5 (the boundary counts as vessel) and (3,3) 0.75 (a false positive); misses at
    (1,0) 0.4 and (1,1) 0.0; a sub-threshold background value at (2,2) 0.25.
    """
    mask = np.zeros((4, 4), dtype=bool)
    mask[:2, :2] = True
    prob = np.zeros((4, 4), dtype=np.float64)
    prob[0, 0], prob[0, 1], prob[1, 0], prob[1, 1] = 0.9, 0.5, 0.4, 0.0
    prob[3, 3], prob[2, 2] = 0.75, 0.25
    return prob, mask


def _tube(shape=(40, 17, 17), radius=3.0, z0=4, z1=36):
    """Straight tube along ``z`` through the centre of the (y, x) plane."""
    z, y, x = np.indices(shape)
    cy, cx = (shape[1] - 1) / 2, (shape[2] - 1) / 2
    return ((y - cy) ** 2 + (x - cx) ** 2 <= radius**2) & (z >= z0) & (z < z1)


# ----------------------------------------------------------------------------- hand example


def test_hand_example_overlap_metrics():
    prob, mask = _hand_example()
    assert iou(prob, mask) == pytest.approx(2 / 5)
    assert dice(prob, mask) == pytest.approx(4 / 7)
    # Disagreements at (1,0), (1,1), (3,3).
    assert pixel_accuracy(prob, mask) == pytest.approx(13 / 16)


def test_hand_example_error_metrics():
    prob, mask = _hand_example()
    # |errors| 0.1, 0.5, 0.6, 1.0 (mask) and 0.75, 0.25 (background), zeros elsewhere.
    assert mae(prob, mask) == pytest.approx(3.2 / 16)
    assert mse(prob, mask) == pytest.approx((0.01 + 0.25 + 0.36 + 1.0 + 0.5625 + 0.0625) / 16)


def test_hand_example_evaluate_matches_functions():
    prob, mask = _hand_example()
    result = evaluate(prob, mask)
    assert tuple(result) == METRICS == ("iou", "dice", "mse", "mae", "accuracy", "cldice")
    assert all(type(value) is float for value in result.values())
    assert result["iou"] == pytest.approx(iou(prob, mask))
    assert result["dice"] == pytest.approx(dice(prob, mask))
    assert result["mse"] == pytest.approx(mse(prob, mask))
    assert result["mae"] == pytest.approx(mae(prob, mask))
    assert result["accuracy"] == pytest.approx(pixel_accuracy(prob, mask))
    assert result["cldice"] == pytest.approx(cldice(prob, mask))


def test_float32_and_torch_inputs_agree_with_float64():
    prob, mask = _hand_example()
    reference = evaluate(prob, mask)
    for p, m in [
        (prob.astype(np.float32), mask),
        (torch.from_numpy(prob), torch.from_numpy(mask)),
        (torch.from_numpy(prob).float(), torch.from_numpy(mask).to(torch.uint8)),
        (prob, mask.astype(np.float32)),
    ]:
        result = evaluate(p, m)
        for key in METRICS:
            assert result[key] == pytest.approx(reference[key], abs=1e-6), key
            assert type(result[key]) is float


# ----------------------------------------------------------------------------- threshold


def test_threshold_boundary_is_inclusive():
    assert THRESHOLD == 0.5
    mask = np.array([[True, True]])
    below = np.nextafter(np.float32(0.5), np.float32(0.0))
    prob = np.array([[0.5, below]], dtype=np.float32)
    np.testing.assert_array_equal(binarize(prob), [[True, False]])
    assert iou(prob, mask) == pytest.approx(0.5)
    assert pixel_accuracy(prob, mask) == pytest.approx(0.5)
    assert iou(np.full((2, 2), 0.5), np.ones((2, 2), dtype=bool)) == 1.0


# ----------------------------------------------------------------------------- special cases


def test_identical_is_perfect():
    mask = _tube()
    result = evaluate(mask.astype(np.float32), mask)
    perfect = {"iou": 1.0, "dice": 1.0, "mse": 0.0, "mae": 0.0, "accuracy": 1.0, "cldice": 1.0}
    assert result == perfect


def test_disjoint_gives_zero_overlap():
    mask = np.zeros((6, 6), dtype=bool)
    mask[:2, :2] = True
    prob = np.zeros((6, 6))
    prob[4:, 4:] = 1.0
    result = evaluate(prob, mask)
    assert result["iou"] == 0.0 and result["dice"] == 0.0 and result["cldice"] == 0.0
    assert result["accuracy"] == pytest.approx(1 - 8 / 36)
    assert result["mse"] == pytest.approx(8 / 36) and result["mae"] == pytest.approx(8 / 36)


def test_both_empty_is_perfect_agreement():
    prob = np.full((5, 5, 5), 0.2, dtype=np.float32)
    mask = np.zeros((5, 5, 5), dtype=bool)
    result = evaluate(prob, mask)
    assert result["iou"] == 1.0 and result["dice"] == 1.0 and result["cldice"] == 1.0
    assert result["accuracy"] == 1.0
    assert result["mse"] == pytest.approx(0.04) and result["mae"] == pytest.approx(0.2)


def test_exactly_one_empty_gives_zero():
    mask = np.zeros((5, 5, 5), dtype=bool)
    mask[1:4, 1:4, 1:4] = True
    empty_prob = np.zeros((5, 5, 5), dtype=np.float32)
    for prob, label in [(empty_prob, mask), (mask.astype(np.float32), ~np.ones_like(mask))]:
        assert iou(prob, label) == 0.0
        assert dice(prob, label) == 0.0
        assert cldice(prob, label) == 0.0


# ----------------------------------------------------------------------------- clDice


def test_cldice_tube_against_itself_is_one():
    tube = _tube()
    assert cldice(tube.astype(np.float32), tube) == 1.0


def test_cldice_broken_tube_is_between_zero_and_one():
    tube = _tube()
    broken = tube.copy()
    broken[18:22] = False
    value = cldice(broken.astype(np.float32), tube)
    assert 0.0 < value < 1.0
    # The prediction lies inside the tube (Tprec = 1); the gap costs 4 of the 30
    # centerline voxels (Tsens = 26/30).
    assert value == pytest.approx(2 * (26 / 30) / (1 + 26 / 30))


def test_cldice_forgives_a_thinner_tube_that_iou_punishes():
    tube = _tube(radius=3.0)
    thinner = _tube(radius=2.0)
    assert cldice(thinner.astype(np.float32), tube) == pytest.approx(1.0)
    assert iou(thinner.astype(np.float32), tube) < 0.6


def test_cldice_2d():
    mask = np.zeros((9, 20), dtype=bool)
    mask[3:6, 2:18] = True
    assert cldice(mask.astype(np.float32), mask) == 1.0
    broken = mask.copy()
    broken[:, 9:11] = False
    assert 0.0 < cldice(broken.astype(np.float32), mask) < 1.0


def test_skeleton_keeps_components_that_thinning_erases():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[1:3, 1:3, 1:3] = True  # 2x2x2 cube: Lee's thinning leaves nothing
    mask[5, 5, 5] = True
    skel = skeleton(mask)
    assert skel.dtype == bool and skel.shape == mask.shape
    assert not (skel & ~mask).any()
    assert skel[1:3, 1:3, 1:3].any() and skel[5, 5, 5]
    assert cldice(mask.astype(np.float32), mask) == 1.0


def test_skeleton_of_tube_is_a_thin_centerline():
    skel = skeleton(_tube())
    assert skel.sum() <= 32
    assert set(np.unique(np.argwhere(skel)[:, 1:])) == {8}
    assert not skeleton(np.zeros((4, 4, 4), dtype=bool)).any()


# ----------------------------------------------------------------------------- errors


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 5\)"):
        iou(np.zeros((4, 4)), np.zeros((4, 5), dtype=bool))
    with pytest.raises(ValueError, match="shapes differ"):
        evaluate(torch.zeros(3, 4, 4), torch.zeros(3, 4, 5, dtype=torch.bool))


@pytest.mark.parametrize("bad", [-0.01, 1.01, np.nan, np.inf])
def test_probabilities_outside_unit_interval_or_non_finite_raise(bad):
    prob, mask = _hand_example()
    prob[2, 3] = bad
    for metric in (iou, dice, pixel_accuracy, mse, mae, cldice, evaluate):
        with pytest.raises(ValueError):
            metric(prob, mask)


def test_non_binary_mask_raises():
    prob, _ = _hand_example()
    with pytest.raises(ValueError, match="mask"):
        iou(prob, np.full((4, 4), 0.5))


def test_cldice_needs_2d_or_3d():
    with pytest.raises(ValueError, match="2D or 3D"):
        cldice(np.ones(5), np.ones(5, dtype=bool))


# ----------------------------------------------------------------------------- summarize


def test_summarize_mean_and_std():
    rows = [
        {"iou": 0.2, "dice": 0.5},
        {"iou": 0.4, "dice": 0.7},
        {"iou": 0.6, "dice": 0.9},
    ]
    summary = summarize(rows)
    assert list(summary) == ["iou", "dice"]
    assert summary["iou"]["mean"] == pytest.approx(0.4)
    assert summary["iou"]["std"] == pytest.approx(np.std([0.2, 0.4, 0.6]))
    assert summary["dice"]["n"] == 3
    assert summarize(rows, ddof=1)["dice"]["std"] == pytest.approx(0.2)


def test_summarize_evaluate_rows_and_errors():
    prob, mask = _hand_example()
    summary = summarize([evaluate(prob, mask), evaluate(mask.astype(float), mask)])
    assert set(summary) == set(METRICS)
    assert summary["iou"]["mean"] == pytest.approx((0.4 + 1.0) / 2)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError, match="keys"):
        summarize([{"iou": 1.0}, {"dice": 1.0}])


def test_connectivity_counts_26_connected_pieces():
    from angio.metrics import connectivity

    m = np.zeros((8, 8, 8), bool)
    m[1, 1, 1:5] = True  # a 4-voxel line
    m[2, 2, 5] = True  # touches the line's end only through a corner: the same 26-piece
    m[6, 6, 6] = True  # an isolated voxel
    assert connectivity(m) == {"pieces": 2, "largest": 5 / 6}
    assert connectivity(np.zeros((4, 4, 4), bool)) == {"pieces": 0, "largest": 0.0}
    with pytest.raises(ValueError, match="3D"):
        connectivity(np.zeros((4, 4), bool))
