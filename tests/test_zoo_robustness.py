"""Recorded robustness evaluations: measured with the shipped weights, refused when stale, re-checkable."""

from __future__ import annotations

import json

import pytest

import angio
from angio import zoo
from angio.acquisition import CONDITIONS
from angio.zoo.robustness import check_robustness, read_robustness, record_robustness, recorded_rows

TWO = ["nominal", "views off by +5 deg"]


def test_record_read_and_recheck_round_trip(tmp_path, tiny_recipe):
    results, out = tmp_path / "results", tmp_path / "zoo"
    zoo.train_recipe("tiny", results_dir=results, progress=False)
    zoo.publish("tiny", results_dir=results, out_dir=out, log=lambda s: None)
    case = json.loads((out / "tiny.json").read_text())["test"]["cases"][0]
    path = record_robustness("tiny", [case], conditions=TWO, results_dir=results, folder=out, log=lambda s: None)
    assert path == out / "robustness" / "tiny.json"
    assert not zoo.entries(out).keys() - {"tiny"}  # the record is not mistaken for an entry
    record = read_robustness("tiny", folder=out)
    assert list(record["conditions"]) == TWO and record["cases"] == [case]
    assert [(r["condition"], r["case"], r["target"]) for r in record["rows"]] == [(c, case, "exact") for c in TWO]
    assert all(0.0 <= r["dice"] <= 1.0 and r["iou"] <= r["dice"] + 1e-12 for r in record["rows"])
    # the nominal row is the entry's own recorded test metric on that case
    test_row = next(r for r in json.loads((out / "tiny.json").read_text())["test"]["rows"]
                    if r["case"] == case and r["target"] == "exact")
    assert record["rows"][0]["dice"] == pytest.approx(test_row["dice"], abs=1e-6)
    recorded, measured = check_robustness("tiny", "views off by +5 deg", results_dir=results, folder=out)
    assert abs(recorded["dice"] - measured["dice"]) <= 1e-4 and abs(recorded["iou"] - measured["iou"]) <= 1e-4
    assert [r["model"] for r in recorded_rows(["tiny"], folder=out)] == ["tiny", "tiny"]

    # with mirror test-time augmentation: a record of its own, in its own folder, said so
    mpath = record_robustness("tiny", [case], conditions=["nominal"], results_dir=results, folder=out,
                              log=lambda s: None, mirror=True)
    assert mpath == out / "robustness" / "mirror" / "tiny.json"
    mirrored = read_robustness("tiny", folder=out, mirror=True)
    assert mirrored["mirror"] is True and "mirror" not in read_robustness("tiny", folder=out)
    rows, _ = zoo.evaluate_entry("tiny", [case], results_dir=results, folder=out, targets=("exact",),
                                 overlap_only=True, mirror=True)
    assert mirrored["rows"][0]["dice"] == pytest.approx(rows[0]["dice"], abs=1e-6)
    recorded, measured = check_robustness("tiny", "nominal", results_dir=results, folder=out, mirror=True)
    assert abs(recorded["dice"] - measured["dice"]) <= 1e-4
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    (swapped / "tiny.json").write_text(mpath.read_text())
    with pytest.raises(angio.InputError, match="measured with mirror test-time augmentation"):
        read_robustness("tiny", folder=out, robustness_dir=swapped)

    # a condition measured later into the record keeps the rows already there
    before = read_robustness("tiny", folder=out)
    record_robustness("tiny", conditions=["doubled noise"], results_dir=results, folder=out, log=lambda s: None,
                      add=True)
    record = read_robustness("tiny", folder=out)
    assert list(record["conditions"]) == [*TWO, "doubled noise"] and record["cases"] == [case]
    assert record["rows"][:2] == before["rows"] and record["rows"][2]["condition"] == "doubled noise"
    assert [a["conditions"] for a in record["added"]] == [["doubled noise"]]
    with pytest.raises(angio.InputError, match="--add needs the conditions"):
        record_robustness("tiny", results_dir=results, folder=out, add=True)
    # an Acquisition field added since (here: every field but the angle) takes its default
    older = json.loads(path.read_text())
    older["conditions"]["views off by +5 deg"] = {"angle_error_deg": 5.0}
    path.write_text(json.dumps(older))
    assert list(read_robustness("tiny", folder=out)["conditions"]) == [*TWO, "doubled noise"]
    path.write_text(json.dumps(before | {"added": []}))

    # stale weights, a redefined condition, an empty or unreadable record: refused, naming the file
    good = path.read_text()
    path.write_text(good.replace(record["entry_sha256"], "0" * 64))
    with pytest.raises(angio.InputError, match=r"tiny\.json: stale.*angio zoo robustness tiny"):
        read_robustness("tiny", folder=out)
    stale = read_robustness("tiny", folder=out, stale_ok=True)  # as a model card reads it: marked, not refused
    assert stale["stale"] is True and stale["entry_sha256"] == "0" * 64
    assert "stale" not in read_robustness("tiny", folder=out, sha256="0" * 64)  # checked against given weights
    changed = json.loads(good)
    changed["conditions"]["views off by +5 deg"]["angle_error_deg"] = 4.0
    path.write_text(json.dumps(changed))
    with pytest.raises(angio.InputError, match="condition 'views off by \\+5 deg'"):
        read_robustness("tiny", folder=out)
    path.write_text("{not json")
    with pytest.raises(angio.InputError, match="unreadable robustness record"):
        read_robustness("tiny", folder=out)
    path.unlink()
    with pytest.raises(angio.InputError, match="no robustness record"):
        read_robustness("tiny", folder=out)


def test_unknown_condition_or_entry_is_refused(tmp_path):
    with pytest.raises(angio.InputError, match="unknown acquisition condition.*'tilted'"):
        record_robustness("unet-biplane", conditions=["tilted"], results_dir=tmp_path, out_dir=tmp_path)
    with pytest.raises(angio.InputError, match="no zoo entry 'nope'"):
        record_robustness("nope", results_dir=tmp_path, out_dir=tmp_path)
    assert not list(tmp_path.glob("*.json"))  # nothing written
    with pytest.raises(angio.InputError, match="mirror-symmetric views; unet-3view takes 3 views"):
        record_robustness("unet-3view", conditions=["nominal"], results_dir=tmp_path, out_dir=tmp_path, mirror=True)
    assert not list(tmp_path.rglob("*.json"))


CONE = ["cone beam (750/1100 mm)", "cone beam, cone-ray back-projection"]
#: every entry trained on cone-beam views, besides the parallel-beam biplane and 3-view models
CONE_TRAINED = sorted(n for n, e in zoo.entries().items() if e.settings.geometry != "parallel")
ANGLES = [c for c in CONDITIONS if c.startswith("views off")]
#: entries trained on miscalibrated angles: recorded under the angle errors
JITTERED = sorted(n for n, e in zoo.entries().items() if e.settings.angle_jitter_deg)
SHIPPED = {zoo.DEFAULT_MODELS[2]: list(CONDITIONS), **{n: ["nominal", *CONE] for n in CONE_TRAINED},
           zoo.DEFAULT_MODELS[3]: ["nominal", *CONE], **{n: ["nominal", *ANGLES] for n in JITTERED}}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_records_describe_the_shipped_weights(name):
    record = read_robustness(name)  # raises when stale
    entry = zoo.entries()[name]
    assert record["cases"] == entry.record["test"]["cases"]  # every held-out test tree
    assert list(record["conditions"]) == SHIPPED[name]
    assert len(record["rows"]) == len(record["cases"]) * len(record["conditions"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_record_reproduces_one_row(name, shared_results):
    recorded, measured = check_robustness(name, results_dir=shared_results)
    for m in ("dice", "iou"):
        assert abs(recorded[m] - measured[m]) <= 1e-4, (m, recorded[m], measured[m])


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_validation_records_chose_the_cone_beam_input(name):
    """The XA input (cone-ray back-projection) was chosen on the validation trees, and is recorded there.

    The entries trained on miscalibrated angles are recorded there under the angle errors instead.
    """
    from angio.study import mean_table
    from angio.zoo.robustness import ROBUSTNESS_DIR

    record = read_robustness(name, robustness_dir=ROBUSTNESS_DIR / "validation")
    assert record["cases"] == zoo.entries()[name].record["split"]["val"]
    assert list(record["conditions"]) == (["nominal", *ANGLES] if name in JITTERED else ["nominal", *CONE])
    dice = {s["condition"]: s["dice"] for s in mean_table(record["rows"], by=("condition",), metrics=("dice",))}
    if name not in JITTERED:
        assert dice[CONE[1]] > dice[CONE[0]]


def test_the_xa_model_is_the_best_on_the_validation_trees_cone_ray_input():
    """``zoo.CONE_MODELS[2]`` (``reconstruct_xa``'s model for two planes) was chosen on validation trees."""
    from angio.study import mean_table
    from angio.zoo.robustness import ROBUSTNESS_DIR

    dice = {}
    for name in [zoo.DEFAULT_MODELS[2], *CONE_TRAINED]:
        rows = [r for r in read_robustness(name, robustness_dir=ROBUSTNESS_DIR / "validation")["rows"]
                if r["condition"] == CONE[1]]
        dice[name] = mean_table(rows, by=("condition",), metrics=("dice",))[0]["dice"]
    assert max(dice, key=dice.get) == zoo.CONE_MODELS[2], dice


@pytest.mark.parametrize("name", sorted(zoo.MIRROR_MODELS))
def test_mirror_models_were_chosen_on_the_validation_trees(name):
    """``zoo.MIRROR_MODELS`` (mirror test-time augmentation in ``reconstruct``): better on every validation record."""
    from angio.projection import mirror_symmetric, view_angles
    from angio.study import zoo_tables
    from angio.zoo.robustness import ROBUSTNESS_DIR

    entry = zoo.entries()[name]
    assert mirror_symmetric(view_angles(entry.experiment.n_views))
    assert read_robustness(name, robustness_dir=ROBUSTNESS_DIR / "validation", mirror=True)["cases"] == \
        entry.record["split"]["val"]
    gains = zoo_tables.mirror_gain([name], {"validation": ROBUSTNESS_DIR / "validation"})
    assert gains and all(g["gain"] > 0 for g in gains), gains
    test = read_robustness(name, mirror=True)  # raises when stale; every held-out test tree
    assert test["cases"] == entry.record["test"]["cases"]
    own = CONE[1] if name in zoo.CONE_MODELS.values() else "nominal"  # the input reconstruct gives it
    assert own in test["conditions"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(zoo.MIRROR_MODELS))
def test_mirror_record_reproduces_one_row(name, shared_results):
    recorded, measured = check_robustness(name, results_dir=shared_results, mirror=True)
    assert abs(recorded["dice"] - measured["dice"]) <= 1e-4, (recorded["dice"], measured["dice"])
