"""The prose's figures come from the records: angio.study.prose, and the pages that read it."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from dataclasses import replace

import pytest

from angio import zoo
from angio.study import REPO_ROOT, prose, zoo_tables
from angio.study.book import with_substitutions


@pytest.fixture(scope="module")
def dae():
    return zoo.entries(model="dae")


@pytest.fixture(scope="module")
def superseded():
    return prose.read_superseded()


def _continued_views(dae) -> list[int]:
    names = {r["entry"] for r in zoo_tables.session_rows(dae, continued_only=True)}
    return sorted((dae[n].experiment.n_views for n in names if zoo_tables.setting_of(dae[n]) == "rotational"),
                  reverse=True)


def _edited(entry, edit):
    """A copy of a zoo entry whose record ``edit`` changed (the shipped one is left alone)."""
    record = copy.deepcopy(entry.record)
    edit(record)
    return replace(entry, record=record)


def test_wording_helpers():
    assert [prose.count_word(n) for n in (2, 11, 46, 90)] == ["two", "eleven", "forty-six", "ninety"]
    assert prose.count_word(5, capital=True) == "Five" and prose.count_word(120) == "120"
    assert [prose.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 32)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "32nd"]
    assert prose.span([0.30, 0.151, 0.2]) == "0.15 to 0.30" and prose.span([0.301, 0.299]) == "0.30"
    assert prose.span([1, 3], "{:.0f}".format, sep="-") == "1-3"
    assert [prose.lr_text(x) for x in (1e-3, 1e-4, 5e-4, 3.3e-4)] == ["1e-3", "1e-4", "5e-4", "0.00033"]
    assert prose.pct(0.5243) == "52.4%"


def test_continued_quotes_every_entry_from_its_record(dae, superseded):
    out = prose.continued(dae, superseded)
    views = _continued_views(dae)
    assert views, "no vessels-only entry continued on another machine: nothing to test"
    otsu = {r["views"]: r for r in zoo_tables.table1(dae, target="otsu", settings=("rotational",))}
    exact = {r["views"]: r for r in zoo_tables.table1(dae, target="exact", settings=("rotational",))}
    assert out["cont_views"] == zoo_tables.join_and(views)
    # every entry's IoU (both masks) and the paper's cell, in the order of the views
    for key, values in (("cont_ious_otsu", [otsu[v]["iou"] for v in views]),
                        ("cont_ious_exact", [exact[v]["iou"] for v in views]),
                        ("cont_papers", [otsu[v]["paper_iou"] for v in views])):
        assert out[key] == zoo_tables.join_and([prose.pct(x) for x in values])
    for v in views:
        for text in ("cont_result", "cont_reach"):
            assert prose.pct(otsu[v]["iou"]) in out[text] and prose.pct(exact[v]["iou"]) in out[text]
    # the CPU session of each: its epochs and minutes, and the epoch that ships
    names = {dae[n].experiment.n_views: n for n in dae}
    epochs, minutes = [], []
    for v in views:
        t = dae[names[v]].record["training"]
        (cpu,) = [s for s in t["sessions"] if not s["hardware"].get("cuda")]
        epochs.append(str(t["epochs_run"] - cpu["first_epoch"]))
        minutes.append(f"{cpu['wall_s'] / 60:.0f}")
        assert f"{t['selected_epoch'] + 1} of {t['epochs_run']}" in out["cont_ships"]
    assert out["cont_epochs"] == zoo_tables.join_and(epochs) and out["cont_minutes"] == zoo_tables.join_and(minutes)
    assert f"({out['cont_minutes']} minutes" in out["cont_result"]
    # the IoU before the CPU comes from the record each run was rebuilt from
    for v in views:
        before = prose.before(dae[names[v]], superseded)
        assert before is not None and before["entry"] == names[v] and before["on_gpu"]
        assert f"from {prose.pct(before['iou_otsu'])} to {prose.pct(otsu[v]['iou'])}" in out["cont_result"]
        assert f"from {prose.pct(before['iou_exact'])} to {prose.pct(exact[v]['iou'])}" in out["cont_result"]


def test_one_continued_entry_reads_in_the_singular(dae, superseded):
    views = _continued_views(dae)
    name = next(n for n, e in dae.items() if e.experiment.n_views == views[0]
                and zoo_tables.setting_of(e) == "rotational")
    one = prose.continued({name: dae[name]}, superseded)
    many = prose.continued(dae, superseded)
    v = views[0]
    assert one["cont_at"] == f"the vessels-only entry at {v} views"
    assert (one["cont_were"], one["cont_their"], one["cont_reach_verb"]) == ("was", "its", "reaches")
    assert one["cont_label"] == f"{v}-view one" and one["cont_then"].startswith(f"The {v}-view run was then")
    assert one["cont_ships"].startswith("epoch ") and one["cont_ships"].endswith(" ships")
    assert "It now lies within" in one["cont_result"] and "All " not in one["cont_result"]
    assert not one["cont_ended"].startswith("each ")
    if len(views) > 1:
        assert (many["cont_were"], many["cont_their"]) == ("were", "their") and many["cont_ships"].endswith(" ship")
        assert f"All {prose.count_word(len(views))} now lie within" in many["cont_result"]
    assert one["cont_epoch_minutes"].startswith(f"the {v}-view run took") and "others" not in one["cont_epoch_minutes"]


def test_fragments_follow_a_changed_record(dae, superseded):
    views = _continued_views(dae)
    name = next(n for n, e in dae.items() if e.experiment.n_views == views[0]
                and zoo_tables.setting_of(e) == "rotational")

    def better(record):  # the test trees score 0.9 against every mask, the CPU session takes an hour more
        for r in record["test"]["rows"]:
            r["iou"] = 0.9
        cpu = [s for s in record["training"]["sessions"] if not s["hardware"].get("cuda")][-1]
        cpu["wall_s"] += 3600.0

    shipped = prose.continued({name: dae[name]}, superseded)
    changed = prose.continued({name: _edited(dae[name], better)}, superseded)
    assert "90.0%" in changed["cont_ious_otsu"] and "90.0%" not in shipped["cont_ious_otsu"]
    assert int(changed["cont_minutes"]) == int(shipped["cont_minutes"]) + 60
    assert changed["cont_result"] != shipped["cont_result"]
    # without the replaced records the sentence still says where the runs went, not where from
    bare = prose.continued({name: dae[name]}, {})
    assert "from " not in bare["cont_took"] and prose.pct(0.9) not in bare["cont_took"]
    assert "reached" in bare["cont_took"] and "went to" in bare["cont_result"]


def test_windowed_rows_and_the_reproduction_target(dae):
    out = prose.windowed(dae)
    otsu = {r["views"]: r for r in zoo_tables.table1(dae, target="otsu", settings=("cta-window",))}
    assert out and otsu
    views = sorted(otsu, reverse=True)
    for v in views:
        assert f"{prose.pct(otsu[v]['iou'])}" in out["win_ious"] and f" at {v}" in out["win_ious"]
        assert f"{100 * (otsu[v]['iou'] - otsu[v]['paper_iou']):+.1f}" in out["win_deltas"]
    close = [v for v in views if abs(otsu[v]["iou"] - otsu[v]["paper_iou"]) <= prose.REPRODUCED_WITHIN + 1e-12]
    far = [v for v in views if v not in close]
    assert out["win_close_views"] == zoo_tables.join_and(close) and out["win_far_views"] == zoo_tables.join_and(far)
    assert all(f"{100 * abs(otsu[v]['iou'] - otsu[v]['paper_iou']):.1f}" in out["win_close_within"] for v in close)
    train = {v: e.record["training"] for e in dae.values() if zoo_tables.setting_of(e) == "cta-window"
             for v in [e.experiment.n_views]}
    assert out["win_minutes"] == zoo_tables.join_and([f"{train[v]['wall_time_s'] / 60:.0f}" for v in views])
    assert out["win_ships"].startswith(f"epoch {train[views[0]]['selected_epoch'] + 1} of ")


def test_windowed_split_moves_with_the_records(dae):
    # a far row brought to the paper's cell joins the close ones
    otsu = {r["views"]: r for r in zoo_tables.table1(dae, target="otsu", settings=("cta-window",))}
    far = [v for v, r in otsu.items() if abs(r["iou"] - r["paper_iou"]) > prose.REPRODUCED_WITHIN]
    if not far:
        pytest.skip("every windowed row is within the target already")
    v = far[0]
    name = next(n for n, e in dae.items() if zoo_tables.setting_of(e) == "cta-window" and e.experiment.n_views == v)

    def at_paper(record):
        for r in record["test"]["rows"]:
            if r["target"] == "otsu_window":
                r["iou"] = otsu[v]["paper_iou"]

    moved = prose.windowed({**dae, name: _edited(dae[name], at_paper)})
    assert str(v) in re.split(r", | and ", moved["win_close_views"])
    assert str(v) not in re.split(r", | and ", moved["win_far_views"])


def test_curriculum_and_history_come_from_the_records(dae, superseded):
    out = prose.curriculum(dae, superseded)
    assert out, "no vessels-only entry starts from another's weights"
    otsu = {r["views"]: r for r in zoo_tables.table1(dae, target="otsu", settings=("rotational",))}
    mine = sorted((e.experiment.n_views for e in dae.values() if zoo_tables.setting_of(e) == "rotational"
                   and e.record["training"].get("initialised_from")), reverse=True)
    assert out["curr_views"] == zoo_tables.join_and(mine)
    for v in mine:
        assert prose.pct(otsu[v]["iou"]) in out["curr_result"] and prose.pct(otsu[v]["paper_iou"]) in out["curr_result"]
    # the runs from scratch that these replaced: their epochs and their best validation IoU
    scratch = [s for s in superseded.values() if s["on_gpu"] and not s["initialised_from"]
               and s["entry"] in {n for n, e in dae.items() if e.experiment.n_views in mine
                                  and zoo_tables.setting_of(e) == "rotational"}]
    if scratch:
        assert prose.count_word(scratch[0]["epochs_run"]) in out["curr_scratch"]
        assert f"{max(s['best_val_iou'] for s in scratch):.2f}" in out["curr_scratch"]
    assert prose.curriculum(dae, {}).get("curr_history", "") == ""  # nothing replaced, nothing told


def test_superseded_records_are_those_of_the_history(superseded):
    """The shipped summaries of replaced records match the repository's history (where git has it)."""
    try:
        shallow = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--is-shallow-repository"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("no git repository")
    if shallow != "false":
        pytest.skip("a shallow clone lacks the records' history")
    assert superseded, f"{prose.SUPERSEDED} is missing: run angio.study.prose.write_superseded()"
    again = prose.superseded_from_history(prose.SUPERSEDED_ENTRIES)
    assert json.loads(json.dumps(again)) == superseded, (
        "a zoo record was replaced since angio/_data/zoo/superseded/records.json was written: "
        "run `python -c 'from angio.study import prose; prose.write_superseded()'`")


def test_every_page_and_cell_reads_defined_figures():
    """The book's pages read only substitutions that exist, the chapters only values they glue."""
    values = prose.substitutions()
    assert all(isinstance(v, str) and v for v in values.values())
    for page in ("zoo", "limitations", "gpu"):
        keys = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", (REPO_ROOT / "book" / f"{page}.md").read_text()))
        assert keys and keys <= set(values), (page, sorted(keys - set(values)))
    fragments = [m for m in prose.__all__ if callable(getattr(prose, m)) and m not in (
        "substitutions", "pct", "count_word", "ordinal", "span", "lr_text", "read_superseded",
        "superseded_from_history", "write_superseded", "before")]
    for nb in ("06_view_sweep", "09_model_zoo", "10_discussion"):
        cells = json.loads((REPO_ROOT / "notebooks" / f"{nb}.ipynb").read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        used = {k for c in cells if c["cell_type"] == "markdown"
                for k in re.findall(r"\{glue:text\}`(\w+)`", "".join(c["source"]))}
        glued = {k for k in used if re.search(rf"\b{k}\s*=", code)}
        called = [m for m in fragments if f"prose.{m}(" in code]
        from_prose = set().union(*(getattr(prose, m)() for m in called)) if called else set()
        assert used <= glued | from_prose, (nb, sorted(used - glued - from_prose))


def test_no_typed_result_figures_on_the_pages():
    """No percentage or three-digit metric is typed into the pages that quote the records."""
    def typed(text: str) -> list[str]:
        text = re.sub(r"\{\{[^}]*\}\}|\{glue:text\}`[^`]*`|```.*?```|`[^`]*`", " ", text, flags=re.S)
        return re.findall(r"\d+(?:\.\d+)?\s?%|\b0\.\d{2,}\b", text)

    for page in ("zoo", "limitations", "gpu"):
        assert typed((REPO_ROOT / "book" / f"{page}.md").read_text()) == [], page
    for nb, ids in (("06_view_sweep", ("2e250dcd", "f9aae61f")), ("09_model_zoo", None), ("10_discussion", ("10-04",))):
        cells = json.loads((REPO_ROOT / "notebooks" / f"{nb}.ipynb").read_text())["cells"]
        for c in cells:
            if (ids is None and c["cell_type"] == "markdown") or c["id"] in (ids or ()):
                assert typed("".join(c["source"])) == [], (nb, c["id"])


def test_config_gains_the_substitutions():
    import yaml

    config = (REPO_ROOT / "_config.yml").read_text()
    staged = yaml.safe_load(with_substitutions(config, {"a_key": "50.0%", "other": "x: y"}))
    original = yaml.safe_load(config)
    assert staged["parse"]["myst_substitutions"] == {"a_key": "50.0%", "other": "x: y"}
    assert staged["parse"]["myst_enable_extensions"] == original["parse"]["myst_enable_extensions"]
    assert "substitution" in staged["parse"]["myst_enable_extensions"]
    assert {k: v for k, v in staged.items() if k != "parse"} == {k: v for k, v in original.items() if k != "parse"}


def test_robustness_consistency_and_mirror_fragments_are_the_records():
    from statistics import mean

    from angio.study.view_consistency import read_view_consistency, view_consistency_table
    from angio.zoo.robustness import ROBUSTNESS_DIR, read_robustness

    shipped = zoo.entries()
    cone = prose.cone_beam(shipped)
    for line in cone["cone_table"].splitlines()[2:]:
        name = line.split("`")[1]
        rows = read_robustness(name)["rows"]
        nominal = mean(r["dice"] for r in rows if r["condition"] == "nominal")
        assert line.split("|")[2].strip() == f"{nominal:.3f}", name
    mirror = prose.mirror(shipped)
    for r in zoo_tables.mirror_gain(["unet-biplane"], {"test": ROBUSTNESS_DIR}):
        if r["condition"] == "nominal":
            assert f"{r['plain']:.3f} → **{r['mirror']:.3f}**" in mirror["mirror_test"]
    record = read_view_consistency()
    table = view_consistency_table(record)
    fragments = prose.consistency()
    for model in record["models"]:
        rows = [r for r in table if r["model"] == model]  # as predicted, carve, carve + fill, true silhouettes
        assert f"`{model}` {rows[0]['dice']:.3f} → {rows[2]['dice']:.3f}" in fragments["consist_test"]
        assert f"{rows[3]['dice']:.3f}" in fragments["consist_truth"]


def test_unet_gain_on_the_cpu_is_told_from_the_replaced_records(superseded):
    shipped = zoo.entries()
    out = prose.unets(shipped, superseded)
    for name in prose.UNETS:
        prev = prose.before(shipped[name], superseded)
        assert prev is not None and prev["entry"] == name and prev["on_gpu"]
        rows = [r for r in shipped[name].record["test"]["rows"] if r["target"] == "exact"]
        now = sum(r["dice"] for r in rows) / len(rows)
        assert f"from {prev['dice_exact']:.3f} to {now:.3f}" in out["unet_cpu_gain"]
    assert "unet_cpu_gain" not in prose.unets(shipped, {})  # nothing replaced, no "before"


def test_otsu_two_grids_reads_the_live_rows_and_the_record():
    """Chapter 4's figures follow the rows they are given; the record's same-tree mean only counts shared trees."""
    from angio.pipeline import VolumeSpec

    rest = {"mse": 0.1, "mae": 0.1, "accuracy": 0.9}
    live = [{"modality": "rotational", "case": c, "dice": d, "iou": d / 2, "cldice": 0.5, "otsu_voxels": 300,
             "exact_voxels": 100, **rest} for c, d in (("a", 0.5), ("b", 0.7))]
    live += [{"modality": "cta", "case": "a", "dice": 0.01, "iou": 0.0, "cldice": 0.0, "otsu_voxels": 9000,
              "exact_voxels": 100, **rest}]
    windows = [{"window": "w", "case": "a", "dice": 0.02}]
    rot, cta = {"kind": "preset", "label": "rotational"}, {"kind": "preset", "label": "cta"}
    record = {"rows": [dict(rot, case="a", dice=0.9, cldice=0.95, ratio=1.2),
                       dict(rot, case="z", dice=0.8, cldice=0.97, ratio=1.4),
                       dict(cta, case="a", dice=0.03, cldice=0.0, ratio=3.74),
                       dict(cta, case="z", dice=0.05, cldice=0.0, ratio=216.2)]}
    out = prose.otsu_two_grids(live, windows, record, VolumeSpec(size=64, fov_mm=96.0))
    assert tuple(out) == prose.otsu_two_grids.keys  # what the chapter test reads without the rows
    assert out["gt_grid"] == "64³ voxels of 1.5 mm" and out["gt_cases"] == "two"
    assert (out["gt_dice"], out["gt_ratio"], out["gt_cldice"]) == ("60%", "3.0", "50%")
    assert (out["gt_rec_dice"], out["gt_rec_ratio"], out["gt_rec_cldice"]) == ("85%", "1.30", "96%")
    assert out["gt_rec_same"] == "90% on the same tree"
    assert out["gt_cta_best"] == "4.0%" and out["gt_raw_span"] == "3.7 to 216"
