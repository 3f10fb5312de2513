"""Model cards (angio.zoo.cards): rendered from the records, every number the record's own."""

import copy
import json

import numpy as np
import pytest

from angio import zoo
from angio.errors import InputError
from angio.zoo.cards import model_card, model_cards_page


def _record(name: str) -> dict:
    return json.loads((zoo.ZOO_DIR / f"{name}.json").read_text())


def test_card_of_a_shipped_entry_states_its_name_split_and_test_dice():
    record = _record("unet-biplane")
    card = model_card(record)
    assert card.startswith("# Model card: `unet-biplane`")
    split = {part: len(record["split"][part]) for part in ("train", "val", "test")}
    assert f"{split['train']} training, {split['val']} validation and {split['test']} test trees" in card
    exact = [r["dice"] for r in record["test"]["rows"] if r["target"] == "exact"]
    assert len(exact) == len(record["test"]["cases"])
    assert f"{np.mean(exact):.3f} ± {np.std(exact):.3f}" in card
    for case in record["test"]["cases"]:
        assert case in card
    assert "angio train --recipe unet-biplane" in card
    minutes = sum(s["wall_s"] for s in record["training"]["sessions"]) / 60
    assert f"{minutes:.1f} min of wall time in all" in card
    for section in ("Intended use and limits", "Data and split", "Input and output", "Training procedure and cost",
                    "Metrics", "Robustness", "How to retrain"):
        assert f"\n## {section}\n" in card


def test_card_of_the_papers_autoencoder_sets_its_iou_beside_the_papers_cell():
    from angio import paper

    record = _record("paper-dae-2v")
    otsu = np.mean([r["iou"] for r in record["test"]["rows"] if r["target"] == "otsu"])
    card = model_card(record)
    assert f"IoU {100 * paper.TABLE1[2]['iou']:.1f}%" in card and f"this entry {100 * otsu:.1f}%" in card
    assert "No robustness record ships" in card and "the weights of `paper-dae-3v`" in card
    assert "## Robustness" not in model_card(record, robustness=False)


@pytest.mark.parametrize("path", ["training.epochs_run", "split.test", "test"])
def test_a_record_missing_a_required_field_names_the_entry_and_the_field(path):
    record = copy.deepcopy(_record("unet-biplane"))
    *parents, key = path.split(".")
    node = record
    for p in parents:
        node = node[p]
    del node[key]
    with pytest.raises(InputError, match=rf"'unet-biplane'.*'{path}[.'].*angio zoo publish unet-biplane"):
        model_card(record)


def test_a_stale_robustness_record_is_not_quoted(tmp_path):
    record = _record("unet-biplane")
    (tmp_path / "unet-biplane.json").write_text(json.dumps({"entry_sha256": "0" * 64, "rows": []}))
    card = model_card(record, robustness_dir=tmp_path)
    assert "stale" in card and "angio zoo robustness unet-biplane" in card
    assert "No robustness record ships" in model_card(record, robustness_dir=tmp_path / "none")


def test_markdown_helpers_escape_cells_and_join_lists():
    from angio.markdown import join_and, markdown_table

    assert markdown_table(["a", "b"], [["x|y", "two\nlines"], [1, 2.5]], align="lr") == [
        "| a | b |", "|---|---:|", "| x\\|y | two lines |", "| 1 | 2.5 |"]
    assert markdown_table(["a"], [])[1] == "|---|"
    assert [join_and(x) for x in ([], ["a"], ["a", "b"], [1, 2, 3])] == ["", "a", "a and b", "1, 2 and 3"]


def test_the_cards_page_holds_every_shipped_entry(tmp_path):
    shipped = zoo.entries()
    page = model_cards_page()
    assert page.startswith("# Model cards\n")
    for name in shipped:
        assert f"\n## Model card: `{name}`\n" in page
    assert "\n# " not in page  # one title; every card's headings sit below it


def test_angio_zoo_card_prints_or_writes_the_card(tmp_path, capsys):
    from angio import cli

    assert cli.main(["zoo", "card", "unet-3view"]) == 0
    assert capsys.readouterr().out == model_card(_record("unet-3view"))
    out = tmp_path / "card.md"
    assert cli.main(["zoo", "card", "unet-3view", "--out", str(out)]) == 0
    assert out.read_text() == model_card(_record("unet-3view"))
    assert cli.main(["zoo", "card", "no-such-entry"]) == 2
    assert "no zoo entry 'no-such-entry'" in capsys.readouterr().err
