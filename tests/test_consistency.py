"""View consistency: silhouettes, hull, carve and fill on analytic volumes; the shipped record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from angio import zoo
from angio.consistency import (
    enforce_views,
    missed_rays,
    ray_volume,
    silhouette_hull,
    view_agreement,
    view_silhouettes,
)
from angio.errors import InputError
from angio.metrics import dice
from angio.projection import mip
from angio.study.view_consistency import (
    LOWS,
    RECORD,
    ROW_FIELDS,
    check_view_consistency,
    chosen_low,
    consistency_rows,
    diagnostics_table,
    read_view_consistency,
    view_consistency_table,
)

N = 24
BIPLANE = (0.0, 90.0)


def _rod() -> np.ndarray:
    """A straight vessel along x at (z, y) = (12, 8), from x = 4 to 19."""
    v = np.zeros((N, N, N), dtype=bool)
    v[12, 8, 4:20] = True
    return v


def _silhouettes(mask: np.ndarray, angles=BIPLANE) -> np.ndarray:
    return np.asarray(mip(mask.astype(np.float32), angles)) > 0.5


def test_silhouettes_of_a_noise_free_view_are_its_bright_pixels_and_a_flat_view_has_none():
    views = np.zeros((2, N, N), dtype=np.float32)
    views[0, 5:9, 10:14] = 1.0
    sil = view_silhouettes(views)
    assert sil.shape == (2, N, N) and sil.dtype == bool
    assert np.array_equal(sil[0], views[0] > 0) and not sil[1].any()
    with pytest.raises(ValueError, match=r"\(n_views, N, N\)"):
        view_silhouettes(np.zeros((N, N)))


@pytest.mark.parametrize("angles,level", [(BIPLANE, 0.5), ((0.0, 45.0, 90.0), 0.25)])
def test_a_masks_hull_contains_it_and_its_own_views_are_consistent(angles, level):
    # an oblique ray samples a lone voxel by interpolation (a peak below 1/2 is possible),
    # so an oblique view's silhouette of it is taken at a lower level
    rng = np.random.default_rng(0)
    mask = np.zeros((N, N, N), dtype=bool)
    mask[4:20, 4:20, 4:20] = rng.random((16, 16, 16)) > 0.995
    mask |= _rod()
    sil = np.asarray(mip(mask.astype(np.float32), angles)) > level
    hull = silhouette_hull(sil, angles)
    assert hull[mask].all()
    agree = view_agreement(mask, sil, angles)
    assert agree["outside_hull"] == 0.0 and agree["hull_ratio"] >= 1.0
    if level == 0.5:
        assert agree["covered"] == 1.0
        assert not missed_rays(mask.astype(np.float32), sil, angles).any()
    # a consistent prediction is a fixed point of the refinement
    assert np.array_equal(enforce_views(mask.astype(np.float32), sil, angles), mask)


def test_two_views_of_two_vessels_leave_two_ghosts_in_the_hull():
    mask = np.zeros((N, N, N), dtype=bool)
    mask[10, 5, 7] = mask[10, 15, 17] = True
    hull = silhouette_hull(_silhouettes(mask), BIPLANE)
    ghosts = np.zeros_like(mask)
    ghosts[10, 5, 17] = ghosts[10, 15, 7] = True
    assert np.array_equal(hull, mask | ghosts)


def test_ray_volume_is_the_line_behind_a_pixel():
    sil = np.zeros((N, N), dtype=bool)
    sil[3, 7] = True
    rays = ray_volume(sil, 0.0)
    assert rays.sum() == N and rays[3].any() and not rays[:3].any() and not rays[4:].any()
    line = np.asarray(mip(rays.astype(np.float32), [0.0]))[0] > 0.5
    assert np.array_equal(line, sil)


def test_carve_removes_what_no_view_supports():
    truth = _rod()
    prob = truth.astype(np.float32)
    prob[3, 20, 20] = 0.9  # lit in no view's silhouette
    sil = _silhouettes(truth)
    out = enforce_views(prob, sil, BIPLANE, fill=False)
    assert np.array_equal(out, truth)
    assert np.array_equal(enforce_views(prob, sil, BIPLANE, carve=False, fill=False), prob >= 0.5)


def test_fill_restores_a_dropped_segment_above_low_and_only_inside_the_hull():
    truth = _rod()
    prob = truth.astype(np.float32)
    prob[12, 8, 10:14] = 0.3  # the network doubted four voxels the views show
    prob[12, 2, 12] = 0.3  # a doubtful voxel on one of those rays but outside the hull
    sil = _silhouettes(truth)
    assert missed_rays(prob, sil, BIPLANE).sum() == 4  # the frontal view's four pixels
    assert np.array_equal(enforce_views(prob, sil, BIPLANE, low=0.2), truth)
    assert np.array_equal(enforce_views(prob, sil, BIPLANE, low=0.4), prob >= 0.5)
    assert dice(enforce_views(prob, sil, BIPLANE, low=0.2).astype(np.float32), truth) == 1.0


@pytest.mark.parametrize("kwargs,match", [({"low": 0.5}, "low must be"), ({"low": -0.1}, "low must be")])
def test_refinement_refuses_bad_thresholds(kwargs, match):
    sil = _silhouettes(_rod())
    with pytest.raises(ValueError, match=match):
        enforce_views(_rod().astype(np.float32), sil, BIPLANE, **kwargs)


def test_refinement_refuses_mismatched_shapes():
    sil = _silhouettes(_rod())
    with pytest.raises(ValueError, match="2 views but 3 angles"):
        enforce_views(_rod().astype(np.float32), sil, (0.0, 45.0, 90.0))
    with pytest.raises(ValueError, match="to match the views"):
        enforce_views(np.zeros((N, N, N - 1), dtype=np.float32), sil, BIPLANE)


def test_consistency_rows_cover_every_variant_for_both_silhouettes():
    truth = _rod()
    prob = truth.astype(np.float32) * 0.9
    prob[12, 8, 10:14] = 0.3
    views = np.asarray(mip(truth.astype(np.float32), BIPLANE))
    rows, diag = consistency_rows(prob, views, BIPLANE, truth, lows=(0.1, 0.4))
    assert [(r["silhouettes"], r["variant"], r["low"]) for r in rows] == [
        (s, v, lo) for s in ("views", "truth")
        for v, lo in (("as predicted", None), ("carve", None), ("carve + fill", 0.1), ("carve + fill", 0.4))]
    by = {(r["silhouettes"], r["low"]): r["dice"] for r in rows if r["variant"] == "carve + fill"}
    assert by[("views", 0.1)] == by[("truth", 0.1)] == 1.0 and by[("views", 0.4)] < 1.0
    assert rows[0]["dice"] == pytest.approx(dice(prob, truth))
    assert diag["silhouette_dice"] == 1.0 and diag["covered"] < 1.0 and diag["hull_ratio"] >= 1.0


# ----------------------------------------------------------------------------- the record
@pytest.fixture(scope="module")
def record():
    return read_view_consistency()


def test_record_holds_every_default_model_on_its_validation_and_test_trees(record):
    assert record["models"] == list(zoo.DEFAULT_MODELS.values())
    assert record["resolution"]["voxel_mm"] == 0.5 and record["lows"] == list(LOWS)
    shipped = zoo.entries()
    per_case = 2 * (2 + len(LOWS))
    for m in record["models"]:
        split = shipped[m].record["split"]
        assert record["cases"][m] == {"val": split["val"], "test": split["test"]}
        rows = [r for r in record["rows"] if r["model"] == m]
        assert len(rows) == per_case * (len(split["val"]) + len(split["test"]))
    assert all(set(r) == set(ROW_FIELDS) for r in record["rows"])


def test_record_as_predicted_matches_each_entrys_recorded_test_metrics(record):
    shipped = zoo.entries()
    for r in record["rows"]:
        if r["split"] == "test" and r["variant"] == "as predicted":
            recorded = shipped[r["model"]].test_row(r["case"], "exact")
            assert r["dice"] == pytest.approx(recorded["dice"], abs=1e-4), (r["model"], r["case"])


def test_table_chooses_the_fill_threshold_on_validation_trees(record):
    table = view_consistency_table(record)
    assert len(table) == 4 * len(record["models"])
    for row in table:
        if row["refinement"].startswith("carve + fill") and "true" not in row["refinement"]:
            assert row["low"] == chosen_low(record, row["model"])
    # make the test trees prefer another threshold: the choice must not follow them
    fake = json.loads(json.dumps(record))
    model = fake["models"][0]
    low = chosen_low(fake, model)
    other = next(lo for lo in fake["lows"] if lo != low)
    for r in fake["rows"]:
        if r["model"] == model and r["split"] == "test" and r["low"] == other:
            r["dice"] = 1.0
    assert chosen_low(fake, model) == low
    assert [d["model"] for d in diagnostics_table(record)] == record["models"]


def test_a_missing_or_broken_record_names_the_file_and_the_remedy(tmp_path):
    with pytest.raises(InputError, match="scripts/record_view_consistency.py"):
        read_view_consistency(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: unreadable"):
        read_view_consistency(bad)
    half = json.loads(RECORD.read_text())
    half["rows"] = [r for r in half["rows"] if r["split"] != "test"]
    path = tmp_path / "half.json"
    path.write_text(json.dumps(half))
    with pytest.raises(InputError, match="no test rows"):
        read_view_consistency(path)


@pytest.mark.slow
def test_record_reproduces_one_validation_tree(record, shared_results):
    model = record["models"][0]
    case = record["cases"][model]["val"][0]
    recorded, measured = check_view_consistency(model, case, results_dir=shared_results)
    assert [(r["silhouettes"], r["variant"], r["low"]) for r in measured] == [
        (r["silhouettes"], r["variant"], r["low"]) for r in recorded]
    for a, b in zip(recorded, measured):
        for m in ("dice", "iou", "cldice"):
            assert abs(a[m] - b[m]) <= 1e-4, (a, b)
