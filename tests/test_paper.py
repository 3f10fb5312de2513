"""The paper's published tables: complete, internally consistent, and set beside ours correctly."""

import numpy as np
import pytest

from angio import paper
from angio.projection import PAPER_VIEW_COUNTS, view_angles


def test_table1_has_every_view_count_and_metric():
    assert tuple(paper.TABLE1) == tuple(PAPER_VIEW_COUNTS) == paper.SETUP["views"]
    for row in paper.TABLE1.values():
        assert set(row) == {"iou", "mse", "mae"} and all(0 < v < 1 for v in row.values())
    # the paper's shape: flat from 90 to 24 views, then falling to the biplane case
    iou = [paper.TABLE1[n]["iou"] for n in PAPER_VIEW_COUNTS]
    assert max(iou[:3]) - min(iou[:3]) < 0.01 and iou[3] > iou[4] > iou[5] > iou[6]
    assert paper.TABLE1_IOU[90] == pytest.approx(56.81) and paper.TABLE1_IOU[2] == pytest.approx(26.83)


def test_table2_autoencoder_row_is_table1_biplane():
    dae = paper.TABLE2["3D denoising autoencoder"]
    assert dae["iou"] == pytest.approx(paper.TABLE1[2]["iou"])
    assert set(paper.TABLE2_QUOTED_BY_PAPER) < set(paper.TABLE2)
    # the abstract's claim: +15.51 IoU points over the best cGAN
    best_gan = max(paper.TABLE2[name]["iou"] for name in paper.TABLE2_QUOTED_BY_PAPER)
    assert dae["iou"] - best_gan == pytest.approx(0.1551, abs=1e-4)


def test_beside_gives_differences_and_none_for_missing_cells():
    row = paper.beside({"iou": 0.5, "mse": 0.002, "mae": 0.01}, paper.TABLE2["L1 + conditional GAN"])
    assert row["paper_iou"] == 0.1132 and row["diff_iou"] == pytest.approx(0.5 - 0.1132)
    assert row["paper_mse"] is None and row["diff_mse"] is None and row["mse"] == 0.002


def test_table2_quotes_every_published_row_and_sets_ours_beside_the_autoencoder():
    ours = {"a": {"accuracy": 0.9, "iou": 0.3, "mse": 0.01, "mae": 0.05}, "b": {"iou": 0.1}}
    rows = paper.table2(ours)
    assert [r["method"] for r in rows] == [*paper.TABLE2, "a", "b"]
    published = {r["method"]: r for r in rows[: len(paper.TABLE2)]}
    for name, cells in paper.TABLE2.items():
        row = published[name]
        assert row["source"] == ("quoted by the paper" if name in paper.TABLE2_QUOTED_BY_PAPER else "paper")
        for m in paper.TABLE2_METRICS:
            # the paper's rows: its cells as published, nothing of ours
            assert row[f"paper_{m}"] == cells[m] and row[m] is None and row[f"diff_{m}"] is None
    reference = paper.TABLE2[paper.TABLE2_AUTOENCODER]
    for row in rows[len(paper.TABLE2):]:
        assert row["source"] == "ours"
        for m in paper.TABLE2_METRICS:
            mine = ours[row["method"]].get(m)
            assert row[m] == mine and row[f"paper_{m}"] == reference[m]
            if mine is None:
                assert row[f"diff_{m}"] is None
            else:
                assert row[f"diff_{m}"] == pytest.approx(mine - reference[m])
    with pytest.raises(KeyError, match="Table 2"):
        paper.table2(ours, against="no such row")


def test_view_schedule_keeps_the_first_and_last_projection_and_samples_evenly_between():
    assert paper.PROJECTIONS == tuple(range(90))
    for n in [*paper.SETUP["views"], 7, 89]:
        angles = paper.view_schedule(n)
        assert angles.shape == (n,) and angles.dtype == np.float64
        assert angles[0] == 0 and angles[-1] == 89  # the paper's first and last projections
        assert set(angles.astype(int)) <= set(paper.PROJECTIONS) and np.all(angles == np.round(angles))
        assert np.all(np.diff(angles) > 0)  # n distinct projections
        ideal = 89 * np.arange(n) / (n - 1)
        assert np.all(np.abs(angles - ideal) <= 0.5)  # the nearest projection to even spacing
    assert paper.view_schedule(90).tolist() == list(range(90))
    # exact halves round up: 44.5 -> 45
    assert paper.view_schedule(3).tolist() == [0, 45, 89]
    assert paper.view_schedule(5).tolist() == [0, 22, 45, 67, 89]
    assert set(np.diff(paper.view_schedule(46))) == {1.0, 2.0}
    with pytest.raises(ValueError, match="2 to 90"):
        paper.view_schedule(1)
    with pytest.raises(ValueError, match="2 to 90"):
        paper.view_schedule(91)
    with pytest.raises(ValueError, match="2 to 90"):
        paper.view_schedule(2.0)


def test_view_schedule_ends_one_degree_short_of_the_studys_orthogonal_schedule():
    assert view_angles(2).tolist() == [0, 90] and paper.view_schedule(2).tolist() == [0, 89]
    for n in paper.SETUP["views"]:
        gap = view_angles(n) - paper.view_schedule(n)
        # 90 k / (n - 1) against the nearest whole degree to 89 k / (n - 1)
        assert gap[0] == 0 and gap[-1] == 1 and np.all(np.abs(gap) <= 1.5)
