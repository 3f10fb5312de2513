"""The continuity prior: hysteresis and small-piece removal on analytic volumes."""

import numpy as np
import pytest

from angio.continuity import Setting, best_setting, drop_small, grid, hysteresis, refine, sweep
from angio.metrics import binarize


def _tube_and_ghost() -> tuple[np.ndarray, np.ndarray]:
    """A confident tube along z with a weak tail, and a weak isolated blob (a ghost)."""
    prob = np.zeros((20, 20, 20), np.float32)
    truth = np.zeros(prob.shape, bool)
    prob[2:14, 5, 5] = 0.9          # the confident part of a vessel
    prob[14:18, 5, 5] = 0.35        # its faint tail, connected
    truth[2:18, 5, 5] = True
    prob[10:12, 14:16, 14:16] = 0.6  # an isolated ghost of 8 voxels
    return prob, truth


def test_low_equal_high_is_the_plain_threshold():
    rng = np.random.default_rng(0)
    prob = rng.random((12, 12, 12)).astype(np.float32)
    assert np.array_equal(refine(prob), binarize(prob))
    assert np.array_equal(hysteresis(prob, 0.3, 0.3), prob >= 0.3)


def test_hysteresis_keeps_a_faint_tail_connected_to_confident_vessel():
    prob, truth = _tube_and_ghost()
    kept = hysteresis(prob, high=0.8, low=0.3)
    assert kept[2:18, 5, 5].all()          # the tail is kept through its connection
    assert not kept[10:12, 14:16, 14:16].any()  # the ghost never reaches 0.8
    assert not (prob >= 0.5)[14:18, 5, 5].any()  # the plain threshold loses the tail


def test_hysteresis_connects_through_diagonal_neighbours():
    prob = np.zeros((5, 5, 5), np.float32)
    prob[1, 1, 1], prob[2, 2, 2] = 0.9, 0.4
    assert hysteresis(prob, 0.8, 0.3)[2, 2, 2]


def test_drop_small_removes_pieces_below_the_size_and_keeps_the_rest():
    prob, _ = _tube_and_ghost()
    mask = prob >= 0.3
    out = drop_small(mask, 9)
    assert out[2:18, 5, 5].all() and not out[10:12, 14:16, 14:16].any()
    assert np.array_equal(drop_small(mask, 8), mask) and np.array_equal(drop_small(mask, 0), mask)
    assert not drop_small(np.zeros((4, 4, 4), bool), 5).any()


def test_refined_mask_is_a_subset_of_the_low_threshold():
    rng = np.random.default_rng(1)
    prob = rng.random((16, 16, 16)).astype(np.float32) ** 3
    for s in grid((0.5, 0.8), (0.2, 0.5), (0, 10)):
        assert not (refine(prob, s) & ~(prob >= s.low)).any()


def test_the_sweep_chooses_the_setting_that_removes_the_ghost():
    prob, truth = _tube_and_ghost()
    rows = sweep({"a": prob}, {"a": truth}, grid((0.5, 0.8), (0.3, 0.5), (0, 9)))
    best, score = best_setting(rows)
    assert best == Setting(0.8, 0.3, 0) or best == Setting(0.5, 0.3, 9)
    assert score == pytest.approx(1.0)
    plain = [r["dice"] for r in rows if (r["high"], r["low"], r["min_voxels"]) == (0.5, 0.5, 0)]
    assert plain[0] < 1.0


def test_bad_settings_and_inputs_are_refused():
    with pytest.raises(ValueError, match="low <= high"):
        Setting(high=0.3, low=0.5)
    with pytest.raises(ValueError, match="min_voxels"):
        Setting(min_voxels=-1)
    with pytest.raises(ValueError, match="3D"):
        refine(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="both a prediction and a mask"):
        sweep({"a": np.zeros((2, 2, 2))}, {"b": np.zeros((2, 2, 2), bool)}, [Setting()])
    assert [s.label for s in (Setting(), Setting(0.7, 0.3, 125))] == [
        "threshold 0.5", "high 0.7, low 0.3, pieces >= 125 voxels"]


def test_the_shipped_record_chose_its_best_validation_setting():
    """The record's choice replays from its own validation rows, over the whole grid and every tree."""
    from angio.zoo.continuity import HIGHS, LOWS, MIN_VOXELS, continuity_table, read_continuity

    record = read_continuity()
    n_grid = len(grid(HIGHS, LOWS, MIN_VOXELS))
    for model in record["models"]:
        rows = [r for r in record["rows"] if r["model"] == model]
        assert all(r["split"] == "val" for r in rows)
        assert len(rows) == n_grid * len(record["cases"][model]["val"])
        best, score = best_setting(rows)
        assert best == Setting(**record["chosen"][model])
        table = {r["refinement"]: r for r in continuity_table(record) if r["model"] == model}
        assert table[best.label]["val_dice"] == pytest.approx(score)
        assert table[best.label]["val_gain"] >= 0.0 and table["threshold 0.5"]["val_gain"] == 0.0


@pytest.mark.slow
def test_record_continuity_end_to_end_on_a_tiny_entry(tmp_path, tiny_recipe):
    """Train and publish a tiny entry, record it, and read back a choice that its rows justify."""
    import json

    from angio import zoo
    from angio.zoo.continuity import chosen_setting, read_continuity, record_continuity

    results, out = tmp_path / "results", tmp_path / "zoo"
    zoo.train_recipe("tiny", results_dir=results, progress=False, max_epochs=1)
    zoo.publish("tiny", results_dir=results, out_dir=out, log=lambda s: None)
    path = record_continuity(["tiny"], splits=("val", "test"), results_dir=results, folder=out,
                             path=tmp_path / "continuity.json", log=lambda s: None)
    record = read_continuity(path)
    assert set(record["cases"]["tiny"]) == {"val", "test"}
    assert chosen_setting("tiny", record) == best_setting(record["rows"])[0]
    cached = sorted(p.stem for p in (results / "predictions" / "tiny").glob("*.npy"))
    assert cached == sorted(record["cases"]["tiny"]["val"] + record["cases"]["tiny"]["test"])
    before = path.read_bytes()
    with pytest.raises(ValueError, match="splits"):
        record_continuity(["tiny"], splits=("test",), results_dir=results, folder=out, path=path)
    assert path.read_bytes() == before  # a refused call leaves the record as it was
    json.loads(before)
