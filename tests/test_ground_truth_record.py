"""The shipped record of Otsu against the exact mask at 0.5 mm: complete, consistent, re-measurable."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import angio
from angio import study, zoo
from angio.phantom import PRESETS
from angio.pipeline import VolumeCache
from angio.study.ground_truth import (
    PRESET,
    RECORD,
    ROW_FIELDS,
    WINDOW,
    check_ground_truth,
    ground_truth_record_table,
    ground_truth_rows,
    otsu_against_exact,
    read_ground_truth,
)

NUMBERS = ("dice", "iou", "cldice", "ratio", "vessel_share", "otsu_voxels", "exact_voxels")


@pytest.fixture(scope="module")
def record():
    return read_ground_truth()


def test_record_is_at_the_zoos_grid_on_the_held_out_trees_of_its_split(record):
    assert record["resolution"] == {"size": zoo.DEFAULT_SPEC.size, "fov_mm": zoo.DEFAULT_SPEC.fov_mm,
                                    "voxel_mm": zoo.DEFAULT_SPEC.voxel_mm, "center": zoo.DEFAULT_SPEC.center}
    assert record["resolution"]["voxel_mm"] == 0.5
    split = zoo.entries()[record["split_from"]].record["split"]
    assert record["cases"] == {"test": split["test"], "val": split["val"]}
    assert record["presets"] == list(PRESETS)
    assert record["fields"] == ROW_FIELDS
    assert record["commit"] and record["made"] and record["evaluated_on"]
    assert 0 < record["cta_build_s"] < record["wall_s"]


def test_record_has_a_row_per_setting_and_case_with_every_field(record):
    rows = record["rows"]
    assert all(set(r) == set(ROW_FIELDS) for r in rows)
    settings = {(PRESET, p) for p in PRESETS} | {(WINDOW, w) for w in study.CTA_WINDOWS}
    assert {(r["kind"], r["label"]) for r in rows} == settings
    by_setting = record["cases_by_setting"]
    assert set(by_setting) == set(PRESETS) | set(study.CTA_WINDOWS)
    assert sorted((r["label"], r["case"]) for r in rows) == sorted((s, c) for s, cs in by_setting.items() for c in cs)
    held_out = record["cases"]["test"] + record["cases"]["val"]
    assert by_setting["rotational"] == held_out  # the rotational preset is measured on every held-out tree
    assert all(r["split"] == ("test" if r["case"] in record["cases"]["test"] else "val") for r in rows)


def test_record_numbers_are_consistent(record):
    rows = record["rows"]
    for r in rows:
        otsu, exact, iou = r["otsu_voxels"], r["exact_voxels"], r["iou"]
        assert otsu > 0 and exact > 0
        assert r["dice"] == pytest.approx(2 * iou / (1 + iou), abs=1e-12)
        assert r["ratio"] == pytest.approx(otsu / exact, rel=1e-12)
        # one intersection behind IoU, Dice and the vessel share: a whole number of voxels
        inter = r["vessel_share"] * otsu
        assert inter == pytest.approx(round(inter), abs=1e-6)
        assert iou == pytest.approx(round(inter) / (otsu + exact - round(inter)), abs=1e-12)
        assert 0 <= r["cldice"] <= 1
    # the same tree has one exact mask, whatever the preset or window
    for case in {r["case"] for r in rows}:
        assert len({r["exact_voxels"] for r in rows if r["case"] == case}) == 1
    # the CTA preset's ground truth is Otsu of the raw CT: the row of the full HU range
    full = next(w for w, lim in study.CTA_WINDOWS.items() if lim is None)
    raw = {r["case"]: r for r in rows if r["kind"] == PRESET and r["label"] == "cta"}
    for r in rows:
        if r["kind"] == WINDOW and r["label"] == full and r["case"] in raw:
            assert {m: r[m] for m in NUMBERS} == {m: raw[r["case"]][m] for m in NUMBERS}


def test_record_table_averages_each_setting(record):
    table = ground_truth_record_table(record)
    assert [t["setting"] for t in table] == (
        [f"preset: {p}" for p in PRESETS] + [f"CTA window: {w}" for w in study.CTA_WINDOWS])
    for t in table:
        rows = [r for r in record["rows"] if r["label"] == t["label"]]
        assert t["cases"] == len(rows) == len(record["cases_by_setting"][t["label"]])
        for m in ("dice", "iou", "cldice", "ratio", "vessel_share"):
            assert t[m] == pytest.approx(np.mean([r[m] for r in rows]))
            assert t[f"{m}_std"] == pytest.approx(np.std([r[m] for r in rows]))


def test_read_refuses_a_missing_or_foreign_record(tmp_path):
    with pytest.raises(angio.InputError, match="record_ground_truth.py"):
        read_ground_truth(tmp_path / "nope.json")
    data = json.loads(RECORD.read_text())
    other = tmp_path / "other.json"
    other.write_text(json.dumps(dict(data, presets=["rotational"])))
    with pytest.raises(angio.InputError, match="presets"):
        read_ground_truth(other)
    other.write_text(json.dumps(dict(data, windows={"none": None})))
    with pytest.raises(angio.InputError, match="windows"):
        read_ground_truth(other)


def test_otsu_against_exact_counts_voxels():
    exact = np.zeros((4, 4, 4), bool)
    exact[1:3, 1:3, 1] = True  # 4 voxels
    mask = exact.copy()
    mask[1:3, 1:3, 2] = True  # 8 voxels, 4 of them vessel
    got = otsu_against_exact(mask, exact)
    assert (got["otsu_voxels"], got["exact_voxels"]) == (8, 4)
    assert got["ratio"] == 2.0 and got["vessel_share"] == 0.5
    assert got["iou"] == 0.5 and got["dice"] == pytest.approx(2 / 3)


def test_ground_truth_rows_per_case_preset_and_window(tmp_path):
    settings = study.settings("tiny", results_dir=tmp_path)
    case = study.study_split(settings)[2][0]
    rows = ground_truth_rows(settings, [case], splits={case: "test"})
    assert [(r["kind"], r["label"]) for r in rows] == (
        [(PRESET, p) for p in PRESETS] + [(WINDOW, w) for w in study.CTA_WINDOWS])
    assert all(set(r) == set(ROW_FIELDS) and r["case"] == case and r["split"] == "test" for r in rows)


def _cached(record, kind: str, label: str, case: str) -> bool:
    res = record["resolution"]
    modality = label if kind == PRESET else "cta"
    spec = replace(zoo.DEFAULT_SPEC, size=res["size"], fov_mm=res["fov_mm"], center=res["center"],
                   modality=modality)
    return VolumeCache(study.REPO_ROOT / "results" / "cache").path(case, spec, 0, record["seed"]).exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind,label", [(PRESET, "rotational"), (WINDOW, "angiography 100..600 HU")])
def test_record_reproduces_one_row_from_the_volume_cache(record, kind, label):
    case = record["cases_by_setting"][label][0]
    if not _cached(record, kind, label, case):
        pytest.skip(f"no cached {record['resolution']['size']}^3 volume of {case} under results/cache")
    recorded, measured = check_ground_truth(kind, label, case, results_dir=study.REPO_ROOT / "results")
    assert set(measured) == set(recorded)
    for key, value in recorded.items():
        if isinstance(value, str):
            assert measured[key] == value, key
        else:
            assert abs(measured[key] - value) <= 1e-6, (key, value, measured[key])
