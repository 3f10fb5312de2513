"""The model zoo: recipes train, publish and reload; shipped entries match their records."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import angio
from angio import records, zoo


def test_recipe_trains_publishes_and_reloads(tmp_path, tiny_recipe):
    results, out = tmp_path / "results", tmp_path / "zoo"
    trained = zoo.train_recipe("tiny", results_dir=results, progress=False)
    rows = trained.history["epochs"]
    assert 1 <= len(rows) <= 3
    assert trained.epoch == trained.history["best_epoch"]  # selected by validation Dice
    record_path = zoo.publish("tiny", results_dir=results, out_dir=out, log=lambda s: None)
    record = json.loads(record_path.read_text())
    assert record["sha256"] == zoo.sha256(out / "tiny.pt")
    assert record["split"]["test"] == record["test"]["cases"] and len(record["test"]["cases"]) == 2
    assert not set(record["split"]["test"]) & set(record["split"]["train"] + record["split"]["val"])
    assert record["training"]["selected_epoch"] == trained.epoch
    assert record["training"]["curve"] == json.loads(json.dumps(rows))
    assert record["resolution"] == {"size": 32, "fov_mm": 96.0, "voxel_mm": 3.0}
    assert record["weights_dtype"] == "float16" and record["recipe"]["name"] == "tiny"
    assert {r["target"] for r in record["test"]["rows"]} == {"exact", "otsu"}
    # the shipped (fp16) weights reproduce the recorded test metric
    recorded, measured = zoo.check_entry("tiny", folder=out, results_dir=results)
    for m in ("dice", "iou", "mse", "mae", "accuracy"):
        assert abs(recorded[m] - measured[m]) <= 1e-4
    # every training session is recorded with the machine it ran on
    assert record["training"]["sessions"][0]["epochs_after"] == len(rows)
    assert record["training"]["hardware"] == record["training"]["sessions"][-1]["hardware"]
    # resuming a finished run trains nothing more
    again = zoo.train_recipe("tiny", results_dir=results, progress=False)
    assert len(again.history["epochs"]) == len(rows)
    sessions = json.loads((results / "zoo" / "tiny" / "sessions.json").read_text())
    assert [s["first_epoch"] for s in sessions] == [0, len(rows)]


def test_publish_stamps_the_commit_before_it_replaces_the_weights(tmp_path, tiny_recipe, monkeypatch):
    # republishing a tracked entry modifies it: a stamp read afterwards would always say "+dirty"
    results, out = tmp_path / "results", tmp_path / "zoo"
    zoo.train_recipe("tiny", results_dir=results, progress=False, max_epochs=1)
    monkeypatch.setattr(zoo.runs, "git_commit", lambda: "dirty" if (out / "tiny.pt").exists() else "clean")
    assert json.loads(zoo.publish("tiny", results_dir=results, out_dir=out, log=lambda s: None).read_text())[
        "commit"] == "clean"


def test_resident_batched_recipe_and_time_budget(tmp_path, tiny_recipe, monkeypatch):
    # the GPU recipes' data path, at a tiny size: several samples per case, batches, inputs kept in memory
    settings = replace(tiny_recipe.settings, batch_size=2, samples_per_volume=2, resident=True, epochs=4)
    monkeypatch.setitem(zoo.RECIPES, "tiny", replace(tiny_recipe, settings=settings))
    trained = zoo.train_recipe("tiny", results_dir=tmp_path, progress=False, time_budget_s=1e-3)
    rows = trained.history["epochs"]
    # 2 cases x 2 samples in batches of 2, capped at max_steps_per_epoch=2; one epoch, then the budget
    assert len(rows) == 1 and rows[0]["steps"] == 2 and trained.history["stopped_by_budget"]
    session = json.loads((tmp_path / "zoo" / "tiny" / "sessions.json").read_text())[0]
    assert session["stopped_by_budget"] and session["data_s"] >= 0


def test_a_shipped_entry_reopens_as_a_run_that_training_continues(tmp_path, tiny_recipe, monkeypatch):
    # a machine with the zoo but not the run: the entry becomes a run again, and publish keeps its history
    monkeypatch.setitem(zoo.RECIPES, "tiny", replace(tiny_recipe, patience=5))
    first, out = tmp_path / "first", tmp_path / "zoo"
    zoo.train_recipe("tiny", results_dir=first, progress=False, max_epochs=2)
    shipped = json.loads(zoo.publish("tiny", results_dir=first, out_dir=out, log=lambda s: None).read_text())
    selected = shipped["training"]["selected_epoch"]
    results = tmp_path / "elsewhere"
    last = zoo.reopen_shipped("tiny", results_dir=results, folder=out)
    run = results / "zoo" / "tiny"
    assert last == run / "last.pt" and (run / "best.pt").read_bytes() == (out / "tiny.pt").read_bytes()
    assert json.loads((run / "sessions.json").read_text()) == shipped["training"]["sessions"]
    assert len(json.loads((run / "history.json").read_text())["epochs"]) == selected + 1
    with pytest.raises(FileExistsError, match="holds a run"):
        zoo.reopen_shipped("tiny", results_dir=results, folder=out)
    trained = zoo.train_recipe("tiny", results_dir=results, progress=False, max_epochs=3)
    rows = trained.history["epochs"]
    assert [r["epoch"] for r in rows] == [0, 1, 2]  # continued after the shipped epoch, up to max_epochs
    assert rows[: selected + 1] == shipped["training"]["curve"][: selected + 1]  # the shipped epochs, kept
    record = json.loads(zoo.publish("tiny", results_dir=results, out_dir=out, log=lambda s: None).read_text())
    sessions = record["training"]["sessions"]
    assert sessions[:-1] == shipped["training"]["sessions"] and sessions[-1]["first_epoch"] == selected + 1
    assert any("rebuilt from the shipped zoo entry" in n for n in record["training"]["notes"])
    with pytest.raises(angio.InputError, match="no zoo entry"):
        zoo.reopen_shipped("tiny", results_dir=tmp_path / "none", folder=tmp_path / "empty")
    # continuable_run: a run with last.pt as it is; one with only best.pt reopened; none rebuilt from the zoo
    before = (run / "last.pt").read_bytes()
    assert zoo.continuable_run("tiny", results_dir=results, folder=out) == run / "last.pt"
    assert (run / "last.pt").read_bytes() == before
    (run / "last.pt").unlink()
    assert zoo.continuable_run("tiny", results_dir=results, folder=out).exists()
    # the reopened run's history.json ends at best.pt's epoch, where training goes on from
    reopened = json.loads((run / "history.json").read_text())["epochs"]
    assert len(reopened) == torch.load(run / "best.pt", weights_only=True)["epoch"] + 1
    fresh = zoo.continuable_run("tiny", results_dir=tmp_path / "third", folder=out)
    assert (fresh.parent / "best.pt").read_bytes() == (out / "tiny.pt").read_bytes()


def test_gpu_runs_compare_recipes_at_equal_time_and_steps(tmp_path):
    def run(steps_dice, epochs_first):
        curve = [{"epoch": i, "global_step": st, "val_dice": d} for i, (st, d) in enumerate(steps_dice)]
        return {"best_epoch": 0, "curve": curve, "sessions": [{"epochs_after": epochs_first, "wall_s": 10.0}]}

    record = {"runs": {"unet-biplane": run([(10, 0.2), (20, 0.4), (30, 0.5), (40, 0.7)], 3),
                       "unet-biplane-wide": run([(10, 0.3), (20, 0.45)], 2)}}
    (tmp_path / "a.json").write_text(json.dumps(record))
    rows = zoo.side_by_side(zoo.gpu_runs(tmp_path))
    assert [r["recipe"] for r in rows] == ["unet-biplane", "unet-biplane-wide"]
    narrow, wide = rows
    # first session only (epoch 3 of the narrow run came later)
    assert (narrow["epochs"], narrow["steps"], narrow["best_dice"]) == (3, 30, 0.5)
    assert narrow["equal_steps"] == wide["equal_steps"] == 20
    assert (narrow["dice_at_equal_steps"], wide["dice_at_equal_steps"]) == (0.4, 0.45)
    assert (narrow["channels"], wide["channels"]) == (8, 16)
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(angio.InputError, match="b.json"):
        zoo.gpu_runs(tmp_path)


def test_corrupt_or_missing_entry_is_refused(tmp_path, tiny_recipe):
    results, out = tmp_path / "results", tmp_path / "zoo"
    zoo.train_recipe("tiny", results_dir=results, progress=False)
    zoo.publish("tiny", results_dir=results, out_dir=out, log=lambda s: None)
    with open(out / "tiny.pt", "r+b") as fh:
        fh.seek(100)
        fh.write(b"\0\0\0\0")
    with pytest.raises(angio.InputError, match="sha256"):
        zoo.load_entry("tiny", folder=out)
    with pytest.raises(angio.InputError, match="no zoo entry 'nope'"):
        zoo.load_entry("nope", folder=out)
    with pytest.raises(angio.InputError, match="unknown recipe"):
        zoo.train_recipe("nope", results_dir=results)
    with pytest.raises(angio.InputError, match="no trained run"):
        zoo.publish("unet-3view", results_dir=tmp_path / "empty", out_dir=out)


def test_recipes_are_at_the_study_resolution():
    for recipe in zoo.RECIPES.values():
        assert recipe.settings.spec.voxel_mm <= 0.5
        assert recipe.settings.n_test == 5  # the paper's five held-out patients
        assert recipe.select in ("dice", "iou")  # chosen by the validation split


SHIPPED = sorted(zoo.entries())


def test_the_biplane_model_is_shipped():
    assert zoo.DEFAULT_MODELS[2] in SHIPPED


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_entry_matches_its_record(name, shared_results):
    entry = zoo.entries()[name]
    rec = entry.record
    assert zoo.sha256(entry.checkpoint) == rec["sha256"]
    # the recipe that made it is the one shipped, but for a selection or stopping rule changed since
    # (test_shipped_records_keep_the_rule_they_were_trained_with)
    assert set(zoo.recipe_changes(name, rec)) <= zoo.RULE_FIELDS
    assert rec["training"]["epochs_run"] == len(rec["training"]["curve"]) > 0
    # the shipped epoch is the best validation epoch by the recorded rule's own measure
    key = f"val_{rec['recipe']['select']}"
    start = rec["recipe"].get("select_from", 0)
    curve = [r for r in rec["training"]["curve"] if r.get(key) is not None and r["epoch"] >= start]
    best = (min if key == "val_loss" else max)(r[key] for r in curve)
    assert best == pytest.approx(next(r[key] for r in curve if r["epoch"] == rec["training"]["selected_epoch"]))
    recorded, measured = zoo.check_entry(name, results_dir=shared_results)
    for m in ("dice", "iou", "mse", "mae", "accuracy"):
        assert abs(recorded[m] - measured[m]) <= 1e-4, (m, recorded[m], measured[m])


def _made_before_the_rule(record):
    """Whether a paper entry's weights predate the rule that watches the loss and skips the first epochs."""
    return "select_from" not in record["recipe"]


def _curriculum_before_the_rule(record):
    """Whether a curriculum entry's weights predate the rule that counts its validation loss too."""
    return record["recipe"]["init_from"] is not None and not record["recipe"].get("patience_watch")


def test_shipped_records_keep_the_rule_they_were_trained_with():
    from angio.train.selection import replay_rule

    for name, entry in zoo.entries().items():
        rec, recipe = entry.record, zoo.RECIPES[name]
        changes = zoo.recipe_changes(name, rec)
        if name.startswith("paper-") and recipe.init_from is None and _made_before_the_rule(rec):
            # the paper's recipes now count a falling validation loss as progress and never ship their
            # first epochs; the weights made before that keep, in their records, the rule they had
            assert changes == {"patience_watch": ([], ["loss"]), "select_from": (0, recipe.select_from)}
            assert "patience_watch" not in rec["recipe"] and "select_from" not in rec["recipe"]
        elif name.startswith("paper-") and _curriculum_before_the_rule(rec):
            # the curriculum's patience of 5 on the IoU alone became 10, counting the loss too
            assert changes == {"patience": (5, recipe.patience), "patience_watch": ([], ["loss"])}
        else:
            assert changes == {}
        # replaying the recorded rule over the recorded curve gives the recorded selection and stop
        t, r = rec["training"], rec["recipe"]
        replay = replay_rule(t["curve"], select=r["select"], patience=r["patience"],
                             watch=r.get("patience_watch", ()), select_from=r.get("select_from", 0))
        assert replay["best_epoch"] == t["selected_epoch"], name
        assert (replay["stopped_after"] is not None) == t["stopped_by_patience"], name
        if t["stopped_by_patience"]:
            assert replay["stopped_after"] == t["curve"][-1]["epoch"], name


def test_paper_recipes_watch_the_loss_and_skip_the_first_epochs_and_the_others_keep_the_classic_rule(tmp_path):
    for name, recipe in zoo.RECIPES.items():
        config = zoo.runs._config(recipe, recipe.run_settings(tmp_path), tmp_path / name)
        assert (config.select, config.patience) == (recipe.select, recipe.patience)
        if name.startswith("paper-") and recipe.init_from is None:
            assert config.patience_watch == ("loss",) and config.select_from == recipe.select_from > 0
            assert recipe.to_dict()["select_from"] == recipe.select_from
        elif name.startswith("paper-"):
            # the curriculum starts from trained weights, so every epoch may ship; its validation
            # IoU is as noisy as the runs' from scratch, so a falling loss counts as progress too
            assert config.patience_watch == ("loss",) and config.select_from == 0
            assert recipe.to_dict()["patience_watch"] == ["loss"] and "select_from" not in recipe.to_dict()
        else:
            assert config.patience_watch == () and config.select_from == 0
            assert not {"patience_watch", "select_from"} & set(recipe.to_dict())  # as their records


def test_three_view_autoencoder_starts_from_five_views_and_two_view_from_three():
    # the paper's settings otherwise; every epoch may ship, as the weights it starts from are trained
    five = zoo.RECIPES["paper-dae-5v"]
    for n, parent in zip(zoo.PAPER_CURRICULUM, ("paper-dae-5v", "paper-dae-3v"), strict=True):
        r = zoo.RECIPES[f"paper-dae-{n}v"]
        assert r.init_from == parent and r.experiment.n_views == n and parent in r.description
        assert (r.lr, r.select, r.select_from, r.experiment.target) == (five.lr, "iou", 0, "otsu")
        assert r.settings.spec == five.settings.spec and r.settings.variants == 0
    # a retrain makes each entry before the one that starts from it, in whatever order it is asked
    assert zoo.retrain_order(["paper-dae-2v", "paper-dae-3v", "paper-dae-5v"]) == [
        "paper-dae-5v", "paper-dae-3v", "paper-dae-2v"]
    assert zoo.RECIPES["paper-cta-dae-2v"].init_from is None  # the paper setting trains from scratch


def test_recipe_changes_name_each_changed_field_with_its_recorded_and_current_value(tiny_recipe, monkeypatch):
    record = {"recipe": json.loads(json.dumps(tiny_recipe.to_dict()))}
    assert zoo.recipe_changes("tiny", record) == {}
    monkeypatch.setitem(zoo.RECIPES, "tiny", replace(tiny_recipe, patience=4, select_from=3))
    assert zoo.recipe_changes("tiny", record) == {"patience": (1, 4), "select_from": (0, 3)}
    monkeypatch.setitem(zoo.RECIPES, "tiny", replace(tiny_recipe, lr=0.5))
    assert zoo.recipe_changes("tiny", record) == {"lr": (tiny_recipe.lr, 0.5)}
    assert "lr" not in zoo.RULE_FIELDS  # a change of the training itself, not of its rule


def test_stopping_rows_read_the_recorded_rule_and_replay_the_current_one():
    from types import SimpleNamespace

    from angio.study import zoo_tables

    iou = [0.012] + [0.0] * 10
    loss = [0.2 * 0.7**e for e in range(11)]
    curve = [{"epoch": e, "val_iou": i, "val_loss": v} for e, (i, v) in enumerate(zip(iou, loss))]
    entry = SimpleNamespace(record={"recipe": {"select": "iou", "patience": 10}, "training": {
        "curve": curve, "epochs_run": 11, "selected_epoch": 0, "stopped_by_patience": True}},
        experiment=SimpleNamespace(n_views=2))
    now = SimpleNamespace(select="iou", patience=10, patience_watch=("loss",), select_from=10)
    (row,) = zoo_tables.stopping_rows({"x": entry}, {"x": now})
    assert (row["epochs"], row["selected"], row["selected_value"], row["stopped"]) == (11, 1, 0.012, "patience")
    assert row["first_val_loss"] == loss[0] and row["final_val_loss"] == loss[-1]
    assert row["best_loss_epoch"] == 11 and row["loss_improving"] and row["rule_changed"]
    assert (row["now_selected"], row["now_stopped_after"]) == (11, None)  # it would still be training
    (same,) = zoo_tables.stopping_rows({"x": entry})  # without recipes: the recorded rule, replayed
    assert not same["rule_changed"] and (same["now_selected"], same["now_stopped_after"]) == (1, 11)
    # from the shipped records
    shipped = zoo.entries()
    rows = {r["entry"]: r for r in zoo_tables.stopping_rows(shipped, zoo.RECIPES)}
    for name, r in rows.items():
        t = shipped[name].record["training"]
        assert r["selected"] == t["selected_epoch"] + 1 and r["epochs"] == t["epochs_run"]
        assert r["final_val_loss"] == t["curve"][-1]["val_loss"]
        assert r["start"] == (zoo.RECIPES[name].init_from or "scratch")
        rec = shipped[name].record
        assert r["rule_changed"] == (name.startswith("paper-") and (
            (zoo.RECIPES[name].init_from is None and _made_before_the_rule(rec)) or _curriculum_before_the_rule(rec)))
    # the windowed-CTA entries were made under the current rule
    assert not any(r["rule_changed"] for n, r in rows.items() if n.startswith("paper-cta-win-"))


def test_retrain_starts_fine_tuned_recipes_from_the_retrained_parent(tmp_path, tiny_recipe, monkeypatch):
    child = replace(tiny_recipe, name="tiny-3", experiment=replace(tiny_recipe.experiment, n_views=3),
                    lr=1e-4, init_from="tiny")
    monkeypatch.setitem(zoo.RECIPES, "tiny-3", child)
    assert zoo.retrain_order(["tiny-3", "tiny"]) == ["tiny", "tiny-3"]
    results, out = tmp_path / "results", tmp_path / "zoo"
    stale = results / "zoo" / "tiny" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("an earlier run")
    paths = zoo.retrain(["tiny-3", "tiny"], results_dir=results, out_dir=out, progress=False, log=lambda s: None)
    assert [p.name for p in paths] == ["tiny.json", "tiny-3.json"] and not stale.exists()
    record = json.loads(paths[1].read_text())
    assert record["training"]["initialised_from"]["entry"] == "tiny"
    assert record["training"]["initialised_from"]["sha256"] == zoo.sha256(out / "tiny.pt")
    assert record["recipe"]["init_from"] == "tiny" and record["train_config"]["lr"] == 1e-4
    # by default the entries shipped in the folder are retrained, not every recipe there is
    again = zoo.retrain(results_dir=results, out_dir=out, progress=False, log=lambda s: None)
    assert [p.name for p in again] == ["tiny.json", "tiny-3.json"]
    monkeypatch.setitem(zoo.RECIPES, "tiny", replace(tiny_recipe, init_from="tiny-3"))
    with pytest.raises(angio.InputError, match="cycle"):
        zoo.retrain_order()


def test_default_model_prefers_the_geometry_of_the_views():
    shipped = {"unet-biplane": None, "unet-3view": None, zoo.CONE_MODELS[2]: None}
    assert zoo.default_model(2, "parallel", shipped) == "unet-biplane"
    assert zoo.default_model(2, "cone", shipped) == zoo.CONE_MODELS[2] != "unet-biplane"
    assert zoo.default_model(3, "cone", shipped) == "unet-3view"  # no cone-beam 3-view model: the parallel one
    assert zoo.default_model(2, "cone", {"unet-biplane": None}) == "unet-biplane"
    assert zoo.default_model(5, "parallel", shipped) is None


def _fake_entry(n_views, modality, rows, target="otsu"):
    from types import SimpleNamespace

    return SimpleNamespace(record={"test": {"rows": rows}}, spec=SimpleNamespace(modality=modality, voxel_mm=0.5),
                           experiment=SimpleNamespace(n_views=n_views, target=target))


def _rows(target, ious, cases=("a", "b")):
    return [{"case": c, "target": target, "iou": v, "dice": 2 * v / (1 + v), "mse": 0.01, "mae": 0.02,
             "accuracy": 0.99, "cldice": v} for c, v in zip(cases, ious)]


def test_table1_puts_the_mean_of_the_records_beside_every_paper_cell():
    from angio import paper
    from angio.study import zoo_tables

    shipped = {"paper-cta-dae-2v": _fake_entry(2, "cta", _rows("otsu", [0.2, 0.4]) + _rows("exact", [0.0, 0.0])),
               "paper-cta-dae-90v": _fake_entry(90, "cta", _rows("otsu", [0.5, 0.7])),
               "paper-dae-2v": _fake_entry(2, "rotational", _rows("otsu", [0.1, 0.1]))}
    t = zoo_tables.table1(shipped)
    assert [(r["setting"], r["views"]) for r in t] == [("cta", 90), ("cta", 2), ("rotational", 2)]
    assert t[0]["iou"] == pytest.approx(0.6) and t[0]["iou_std"] == pytest.approx(0.1)
    assert t[1]["paper_iou"] == paper.TABLE1[2]["iou"]
    assert t[1]["diff_iou"] == pytest.approx(0.3 - paper.TABLE1[2]["iou"])
    assert t[0]["diff_mse"] == pytest.approx(0.01 - paper.TABLE1[90]["mse"])
    assert t[2]["label"] == zoo_tables.SETTING_LABELS["rotational"]
    exact = zoo_tables.table1(shipped, target="exact")
    assert [(r["views"], r["iou"]) for r in exact] == [(2, 0.0)]
    # an entry trained for the windowed Otsu mask is its own setting, scored against that mask
    shipped["paper-cta-win-dae-2v"] = _fake_entry(
        2, "cta", _rows("otsu", [0.9, 0.9]) + _rows("otsu_window", [0.3, 0.5]), target="otsu_window")
    t = zoo_tables.table1(shipped)
    assert [(r["setting"], r["views"]) for r in t] == [("cta", 90), ("cta", 2), ("cta-window", 2),
                                                       ("rotational", 2)]
    assert t[2]["iou"] == pytest.approx(0.4) and t[2]["label"] == zoo_tables.SETTING_LABELS["cta-window"]
    with pytest.raises(ValueError, match="target"):
        zoo_tables.table1(shipped, target="vessels")


def test_table2_sets_each_biplane_entry_beside_the_papers_autoencoder():
    from angio import paper
    from angio.study import zoo_tables

    shipped = {"paper-dae-2v": _fake_entry(2, "rotational", _rows("otsu", [0.1, 0.3]) + _rows("exact", [0.0, 0.0])),
               "paper-cta-win-dae-2v": _fake_entry(2, "cta", _rows("otsu", [0.9, 0.9])
                                                   + _rows("otsu_window", [0.2, 0.4]), target="otsu_window"),
               "paper-dae-3v": _fake_entry(3, "rotational", _rows("otsu", [0.5, 0.5]))}
    rows = zoo_tables.table2(shipped, ("paper-dae-2v", "paper-cta-win-dae-2v"), before={"this run": {"iou": 0.05}})
    quoted = [r for r in rows if r["source"] == "quoted by the paper"]
    assert [r["method"] for r in quoted] == list(paper.TABLE2_QUOTED_BY_PAPER)
    assert all(r[m] is None for r in quoted for m in paper.TABLE2_METRICS)  # nothing of ours beside a cGAN
    ours = [r for r in rows if r["source"] == "ours"]
    assert ours[0]["method"] == "this run" and ours[1]["method"].startswith("paper-dae-2v (vessels only, 0.5 mm")
    # scored against each entry's own Otsu target, as the paper scored its own
    assert ours[1]["iou"] == pytest.approx(0.2) and ours[2]["iou"] == pytest.approx(0.3)
    reference = paper.TABLE2[paper.TABLE2_AUTOENCODER]
    for row in ours[1:]:
        for m in paper.TABLE2_METRICS:
            assert row[f"paper_{m}"] == reference[m]
            assert row[f"diff_{m}"] == pytest.approx(row[m] - reference[m])
    with pytest.raises(KeyError, match="no shipped entry"):
        zoo_tables.table2(shipped, ("paper-dae-7v",))
    with pytest.raises(ValueError, match="views"):
        zoo_tables.table2(shipped, ("paper-dae-3v",))


def test_table2_reads_the_shipped_biplane_records():
    import json

    from angio.study import zoo_tables

    names = ("paper-dae-2v", "paper-cta-dae-2v")
    ours = [r for r in zoo_tables.table2(zoo.entries(model="dae"), names) if r["source"] == "ours"]
    assert [r["method"].split(" ")[0] for r in ours] == list(names)
    for name, row in zip(names, ours):
        record = json.loads((zoo.ZOO_DIR / f"{name}.json").read_text())
        otsu = [r for r in record["test"]["rows"] if r["target"] == "otsu"]
        assert len(otsu) == len(record["test"]["cases"]) == 5
        for m in ("accuracy", "iou", "mse", "mae"):
            assert row[m] == pytest.approx(sum(r[m] for r in otsu) / len(otsu))
            assert row[f"diff_{m}"] == pytest.approx(row[m] - row[f"paper_{m}"])


def test_iou_margin_compares_on_the_same_trees():
    from angio.study import zoo_tables

    shipped = {"unet-biplane": _fake_entry(2, "rotational", _rows("exact", [0.5, 0.7])),
               "paper-dae-2v": _fake_entry(2, "rotational", _rows("exact", [0.1, 0.2])),
               "unet-3view": _fake_entry(3, "rotational", _rows("exact", [0.6, 0.6]))}  # no 3-view baseline
    (row,) = zoo_tables.iou_margin(shipped, {2: "unet-biplane", 3: "unet-3view"})
    assert row["views"] == 2 and row["margin"] == pytest.approx(0.6 - 0.15)
    shipped["paper-dae-2v"] = _fake_entry(2, "rotational", _rows("exact", [0.1, 0.2], cases=("a", "z")))
    with pytest.raises(ValueError, match="different trees"):
        zoo_tables.iou_margin(shipped, {2: "unet-biplane"})


def test_entries_filter_by_network():
    unets, daes = zoo.entries(model="unet"), zoo.entries(model="dae")
    assert zoo.DEFAULT_MODELS[2] in unets and not set(unets) & set(daes)
    assert set(unets) | set(daes) == set(zoo.entries())
    assert all(name.startswith("paper-") for name in daes)


def test_session_rows_follow_each_records_sessions():
    from angio.study import zoo_tables

    shipped = zoo.entries()
    rows = zoo_tables.session_rows(shipped)
    assert {r["entry"] for r in rows} == set(shipped)
    for name, e in shipped.items():
        t = e.record["training"]
        mine = [r for r in rows if r["entry"] == name]
        assert [r["session"] for r in mine] == list(range(1, len(mine) + 1))
        assert sum(r["minutes"] for r in mine) == pytest.approx(
            sum(s["wall_s"] for s in t.get("sessions") or [{"wall_s": t["wall_time_s"]}]) / 60)
        assert mine[-1]["epochs"].endswith(f"–{t['epochs_run']}")
        for before, after in zip(mine, mine[1:]):  # each session starts at or before where the last one ended
            assert int(after["epochs"].split("–")[0]) - 1 <= int(before["epochs"].split("–")[1])
        curve = {c["epoch"]: c["val_iou"] for c in t["curve"]}
        assert mine[-1]["val_iou_end"] == curve[t["epochs_run"] - 1]
        assert all(r["val_iou_best"] is None or r["val_iou_best"] >= (r["val_iou_end"] or 0) for r in mine)
    continued = {r["entry"] for r in zoo_tables.session_rows(shipped, continued_only=True)}
    assert "paper-dae-90v" in continued  # GPU sessions, then two CPU threads
    for name in continued:
        machines = {r["machine"] for r in rows if r["entry"] == name}
        assert any(", " in m and "threads" in m for m in machines) and any("threads" not in m for m in machines)


def test_session_rows_of_a_synthetic_record():
    from types import SimpleNamespace

    from angio.study import zoo_tables

    gpu = {"cuda": "GPU X", "cpu": "host", "threads": 16}
    cpu = {"cuda": None, "cpu": "CPU Y", "threads": 2}
    curve = [{"epoch": k, "val_iou": v} for k, v in enumerate([0.1, 0.3, 0.2, 0.4, 0.5])]

    def entry(training):
        return SimpleNamespace(record={"training": training}, experiment=SimpleNamespace(n_views=5))

    both = entry({"epochs_run": 5, "wall_time_s": 600.0, "hardware": cpu, "curve": curve, "sessions": [
        {"hardware": gpu, "first_epoch": 0, "epochs_after": 3, "wall_s": 120.0},
        {"hardware": cpu, "first_epoch": 2, "epochs_after": 5, "wall_s": 480.0}]})
    old = entry({"epochs_run": 5, "wall_time_s": 300.0, "hardware": gpu, "curve": curve})
    rows = zoo_tables.session_rows({"both": both, "old": old})
    assert [(r["entry"], r["machine"], r["epochs"], r["n_epochs"]) for r in rows] == [
        ("both", "GPU X", "1–3", 3), ("both", "CPU Y, 2 threads", "3–5", 3), ("old", "GPU X", "1–5", 5)]
    assert [r["minutes"] for r in rows] == [2.0, 8.0, 5.0]
    assert [(r["val_iou_end"], r["val_iou_best"]) for r in rows] == [(0.2, 0.3), (0.5, 0.5), (0.5, 0.5)]
    assert [r["entry"] for r in zoo_tables.session_rows({"both": both, "old": old}, continued_only=True)] == [
        "both", "both"]


def test_training_rows_read_each_record():
    from angio.study import zoo_tables

    shipped = zoo.entries()
    rows = {r["entry"]: r for r in zoo_tables.training_rows(shipped)}
    assert set(rows) == set(shipped)
    for name, row in rows.items():
        t = shipped[name].record["training"]
        assert row["selected"] == t["selected_epoch"] + 1 <= row["epochs"] == t["epochs_run"]
        assert row["hours"] == pytest.approx(t["wall_time_s"] / 3600)
        assert row["stopped"] == ("patience" if t["stopped_by_patience"] else "time")
        assert shipped[name].record["sha256"].startswith(row["sha256"]) and len(row["sha256"]) == 12
        assert row["start"] == (t.get("initialised_from") or {}).get("entry", "scratch")
        assert row["start"] == "scratch" or row["start"] in shipped  # it started from a shipped entry
    assert rows["unet-biplane"]["start"] == "scratch" and rows["unet-biplane-jitter"]["start"] == "unet-biplane"
    assert rows["unet-biplane"]["grid"] == "192³ × 0.5 mm" and rows["unet-biplane"]["views"] == 2
    assert rows["paper-cta-dae-90v"]["setting"] == zoo_tables.SETTING_LABELS["cta"]


def test_recipes_write_newer_settings_only_when_set():
    from angio.study import StudySettings

    plain, jitter = zoo.RECIPES["unet-biplane"], zoo.RECIPES["unet-biplane-jitter"]
    assert "angle_jitter_deg" not in plain.to_dict()["settings"]  # as the shipped records were written
    assert jitter.to_dict()["settings"]["angle_jitter_deg"] == 5.0
    for recipe in (plain, jitter):
        back = StudySettings.from_dict(recipe.to_dict()["settings"])
        assert back == recipe.run_settings(back.results_dir)


def test_hardware_says_which_precision_the_cpu_trains_in():
    """A session's machine records whether its CPU runs bf16 natively.

    It is why the same epoch takes about three times longer on one CPU than on another
    (``"auto"`` precision falls back to fp32 without it).
    """
    import torch

    from angio.device import resolve_precision

    hw = records.hardware()
    assert isinstance(hw["cpu_bf16"], bool)
    assert resolve_precision("auto", torch.device("cpu")) == ("bf16" if hw["cpu_bf16"] else "fp32")


def test_a_session_stopped_by_hand_is_recorded_up_to_its_last_epoch(tmp_path, tiny_recipe, monkeypatch):
    """Ctrl-C during training: last.pt keeps the finished epochs, sessions.json names the session."""
    import angio.zoo.runs as runs

    results = tmp_path / "results"
    zoo.train_recipe("tiny", results_dir=results, progress=False, max_epochs=1)
    real_fit = runs.fit

    def interrupted_fit(*args, **kwargs):
        def stop(epoch, model, row):
            raise KeyboardInterrupt

        return real_fit(*args, **{**kwargs, "on_epoch_end": stop})

    monkeypatch.setattr(runs, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        zoo.train_recipe("tiny", results_dir=results, progress=False, max_epochs=3)
    sessions = json.loads((results / "zoo" / "tiny" / "sessions.json").read_text())
    assert [s.get("interrupted", False) for s in sessions] == [False, True]
    assert sessions[1]["first_epoch"] == 1 and sessions[1]["epochs_after"] >= 1 and sessions[1]["wall_s"] > 0
