"""Study orchestration: profiles, experiment identity, tables, notebook hygiene."""

import json

import nbformat
import pytest
from weights import assert_same_state

from angio import experiments, study
from angio.experiments import Experiment, StudySettings


def test_profiles_and_overrides(tmp_path):
    s = study.settings("cpu", results_dir=tmp_path)
    assert s.spec.size == 64 and s.results == tmp_path
    t = study.settings("cpu", results_dir=tmp_path, size=32, epochs=2, modality="cta", device=None)
    assert t.spec.size == 32 and t.spec.modality == "cta" and t.epochs == 2 and t.device == "auto"
    assert study.view_counts("cpu") == (90, 46, 24, 10, 5, 3, 2)
    assert study.settings("full").spec.size == 384
    with pytest.raises(ValueError, match="profile"):
        study.settings("huge")


def test_split_has_no_leak_and_run_keys_track_what_matters(tmp_path):
    s = study.settings("cpu", results_dir=tmp_path)
    train, val, test = experiments.study_split(s)
    assert len(test) == 5 and len(val) == 3 and len(train) == 42
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    key = experiments._run_key
    exp = Experiment("dae", 2)
    assert key(exp, s) == key(Experiment("dae", 2), study.settings("cpu", results_dir="/elsewhere"))
    assert key(exp, s) != key(Experiment("dae", 3), s)
    assert key(exp, s) != key(exp, study.settings("cpu", results_dir=tmp_path, epochs=3))
    assert exp.name == "dae-sum-2v-focal-otsu" and exp.label == "DAE (sum)"
    assert Experiment("unet", 2, ("sum", "min")).label == "U-Net (sum + min)"
    with pytest.raises(ValueError, match="target"):
        Experiment(target="manual")


def test_tables_roundtrip_and_means(tmp_path):
    s = StudySettings(results_dir=str(tmp_path))
    rows = [{"method": "m", "views": 2, "target": "otsu", "case": c, "iou": v, "dice": v, "mse": 0.1,
             "mae": 0.2, "accuracy": 0.9, "cldice": v} for c, v in (("a", 0.2), ("b", 0.4))]
    path = experiments.save_table(rows, "demo", s)
    assert json.loads(path.read_text())["rows"] == rows
    assert path.with_suffix(".csv").read_text().splitlines()[0].startswith("method,views")
    assert experiments.load_table("demo", s) == rows
    (mean,) = experiments.mean_table(rows)
    assert mean["iou"] == pytest.approx(0.3) and mean["iou_std"] == pytest.approx(0.1) and mean["cases"] == 2


def test_notebooks_are_parameterized_and_committed_without_outputs():
    books = study.notebooks()
    assert [b.name[:2] for b in books] == [f"{k:02d}" for k in range(1, len(books) + 1)]
    for path in books:
        nb = nbformat.read(path, as_version=4)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, path.name
        assert "profile" in params[0].source and "results_dir" in params[0].source
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name


def test_book_refuses_missing_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="make study"):
        study.build_book(results_dir=tmp_path, out_dir=tmp_path / "_build")


def test_html_table_formats_numbers_and_leaves_text_alone():
    from angio.figures import table

    html = table([{"name": "DAE", "iou": 0.25, "n": 3, "none": None, "flag": True}],
                 {"name": "Name", "iou": "IoU", "n": "n", "none": "x", "flag": "f"},
                 formats={"name": ".3g", "iou": ".1%", "n": ".3g", "flag": ".3g"}, caption="A <b>").data
    assert "<td>DAE</td>" in html and "<td>25.0%</td>" in html and "<td>3</td>" in html
    assert "<td>—</td>" in html and "<td>True</td>" in html and "A &lt;b&gt;" in html


@pytest.mark.slow
def test_run_experiment_evaluates_the_epoch_with_the_lowest_validation_loss(tmp_path):
    import torch

    s = study.settings("tiny", results_dir=tmp_path, epochs=3)
    trained = experiments.run_experiment(Experiment("dae", 2), s, progress=False)
    history = trained.history
    losses = [e["val_loss"] for e in history["epochs"]]
    assert len(losses) == 3 and trained.epoch == history["best_epoch"] == losses.index(min(losses))
    assert trained.checkpoint == trained.run_dir / "best.pt"
    best = torch.load(trained.checkpoint, weights_only=True)["model"]
    assert_same_state(trained.model.state_dict(), best)
    again = experiments.run_experiment(Experiment("dae", 2), s, progress=False)
    assert again.reused and again.epoch == trained.epoch
    assert_same_state(again.model.state_dict(), best)
    # no validation cases: nothing to select with, the last epoch is evaluated
    last = experiments.run_experiment(Experiment("dae", 2), study.settings("tiny", results_dir=tmp_path, n_val=0),
                                      progress=False)
    assert last.checkpoint == last.run_dir / "last.pt" and last.epoch == 0
