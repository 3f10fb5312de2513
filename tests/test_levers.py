"""Quality per CPU-hour and the levers tried for the biplane gap: rows from the records (angio.study.levers)."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from angio import zoo
from angio.errors import InputError
from angio.study import levers, prose, zoo_tables
from angio.study import view_consistency as vc
from angio.zoo.continuity import continuity_table, read_continuity
from angio.zoo.robustness import ROBUSTNESS_DIR


def _hw(threads: int, cuda: str | None = None) -> dict:
    return {"cpu": "test CPU", "threads": threads, "cuda": cuda}


def _training() -> dict:
    """Two GPU epochs, then a one-thread CPU session (two epochs) and a two-thread one (two epochs)."""
    dice = [0.50, 0.60, 0.62, 0.65, 0.64, 0.66]
    lr = [1e-3, 1e-3, 1e-4, 1e-4, 1e-4, 1e-4]
    curve = [{"epoch": k, "global_step": 10 * (k + 1), "steps": 10, "train_loss": 1 - d, "val_dice": d, "lr": lr[k],
              "time_s": 60.0 if k < 2 else 1800.0} for k, d in enumerate(dice)]
    sessions = [
        {"hardware": _hw(16, "Test GPU"), "first_epoch": 0, "epochs_after": 2, "wall_s": 120.0},
        {"hardware": _hw(1), "first_epoch": 2, "epochs_after": 4, "wall_s": 3600.0 + 360.0, "data_s": 360.0},
        {"hardware": _hw(2), "first_epoch": 4, "epochs_after": 6, "wall_s": 3600.0},
    ]
    return {"curve": curve, "sessions": sessions, "epochs_run": 6, "selected_epoch": 5}


def test_sessions_cost_wall_time_times_threads_and_gain_from_the_best_weights_so_far():
    rows = levers.session_table(_training())
    gpu, one, two = rows
    assert gpu["gpu"] and gpu["cpu_hours"] is None and gpu["start"] is None and gpu["machine"] == "GPU: Test GPU"
    assert gpu["best"] == 0.60 and gpu["epochs"] == "1–2" and gpu["lr"] == "1e-3"
    assert one["machine"] == "CPU, 1 thread" and one["cpu_hours"] == pytest.approx(1.1)
    assert one["start"] == 0.60 and one["last"] == 0.65 and one["best"] == 0.65
    assert one["gain"] == pytest.approx(0.05) and one["gain_per_cpu_hour"] == pytest.approx(0.05 / 1.1)
    # the second CPU session starts from the best weights so far (0.65), not from its last epoch
    assert two["cpu_hours"] == pytest.approx(2.0) and two["cpu_hours_total"] == pytest.approx(3.1)
    assert two["start"] == 0.65 and two["best"] == 0.66 and two["gain"] == pytest.approx(0.01)
    assert two["lr"] == "1e-4" and two["machine"] == "CPU, 2 threads"


def test_the_cpu_hours_curve_starts_each_session_where_the_last_left_off():
    rows = levers.cpu_hours_curve(_training())
    assert [r["epoch"] for r in rows] == [None, 2, 3, None, 4, 5]  # GPU epochs are not on the CPU axis
    start, e2, e3, start2, e4, e5 = rows
    assert start["cpu_hours"] == 0 and start["val_dice"] == 0.60
    assert e2["cpu_hours"] == pytest.approx((360 + 1800) / 3600)  # the data build comes first
    assert e3["cpu_hours"] == pytest.approx(1.1) and start2["cpu_hours"] == pytest.approx(1.1)
    assert start2["val_dice"] == 0.65 and e4["cpu_hours"] == pytest.approx(1.1 + 1.0)
    assert e5["cpu_hours"] == pytest.approx(3.1) and e5["threads"] == 2


def test_training_lever_is_after_minus_before_and_follows_a_changed_record():
    t = _training()
    row = levers.training_lever(t)
    assert row["before"] == 0.60 and row["after"] == 0.66 and row["gain"] == pytest.approx(row["after"] - row["before"])
    assert row["cpu_hours"] == pytest.approx(3.1) and row["gain_per_cpu_hour"] == pytest.approx(0.06 / 3.1)
    assert row["kind"] == "training" and "1e-4" in row["what"] and "one" not in row["what"]
    # one more session (more CPU epochs) changes the row
    more = copy.deepcopy(t)
    more["curve"].append(dict(more["curve"][-1], epoch=6, val_dice=0.70))
    more["sessions"].append({"hardware": _hw(2), "first_epoch": 6, "epochs_after": 7, "wall_s": 1800.0})
    changed = levers.training_lever(more)
    assert changed["after"] == 0.70 and changed["cpu_hours"] == pytest.approx(3.1 + 1.0)  # 1800 s on two threads
    assert changed["gain"] == pytest.approx(0.10)
    # a record without a CPU session after a first one has no such lever
    assert levers.training_lever({**t, "sessions": t["sessions"][:1]}) is None


def test_test_time_levers_read_their_records():
    rows = [{"model": "unet-biplane", "trees": "validation (3)", "condition": "nominal", "plain": 0.6, "mirror": 0.63,
             "gain": 0.03},
            {"model": "unet-biplane", "trees": "test (5)", "condition": "nominal", "plain": 0.7, "mirror": 0.9,
             "gain": 0.2}]
    mirror = levers.mirror_lever(rows, {"wall_s": 1800, "evaluated_on": {"threads": 2}})
    assert (mirror["before"], mirror["after"]) == (0.6, 0.63) and mirror["gain"] == pytest.approx(0.03)
    assert mirror["cpu_hours"] == pytest.approx(1.0) and mirror["gain_per_cpu_hour"] is None
    assert levers.mirror_lever(rows[1:]) is None  # validation rows only

    def score(model, case, split, refinement, d):
        return {"model": model, "case": case, "split": split, "refinement": refinement, "dice": d, "iou": d / 2,
                "cldice": d}

    continuity = {"models": ["unet-biplane"], "chosen": {"unet-biplane": {"high": 0.8, "low": 0.3, "min_voxels": 27}},
                  "rows": [], "wall_s": 3600, "evaluated_on": {"threads": 1},
                  "scores": [score("unet-biplane", c, "val", r, d) for c, r, d in
                             (("a", "threshold 0.5", 0.5), ("b", "threshold 0.5", 0.7),
                              ("a", "chosen", 0.55), ("b", "chosen", 0.71))]}
    row = levers.continuity_lever(continuity)
    assert row["before"] == pytest.approx(0.6) and row["after"] == pytest.approx(0.63)
    assert row["gain"] == pytest.approx(0.03) and row["cpu_hours"] == pytest.approx(1.0)
    assert "high 0.8, low 0.3, pieces >= 27 voxels" in row["what"] and "small pieces removed" in row["what"]
    assert levers.continuity_lever(continuity, model="unet-3view") is None

    def vrow(variant, low, d, split="val", silhouettes="views"):
        return {"model": "unet-biplane", "views": 2, "case": "a", "split": split, "silhouettes": silhouettes,
                "variant": variant, "low": low, "dice": d, "iou": d, "cldice": d}

    consistency = {"models": ["unet-biplane"], "wall_s": 7200, "evaluated_on": {"threads": 1},
                   "rows": [vrow(v, lo, d, s, sil) for s in ("val", "test")
                            for v, lo, d, sil in (("as predicted", None, 0.6, "views"), ("carve", None, 0.59, "views"),
                                                  ("carve + fill", 0.1, 0.62, "views"),
                                                  ("carve + fill", 0.2, 0.61, "views"),
                                                  ("carve + fill", 0.1, 0.7, "truth"))]}
    row = levers.consistency_lever(consistency)
    assert (row["before"], row["after"]) == (0.6, 0.62) and row["cpu_hours"] == pytest.approx(2.0)
    assert row["what"].startswith("carve + fill (low 0.1)")  # the chosen threshold, not the true silhouettes


def test_levers_come_from_the_shipped_records():
    shipped = zoo.entries()
    rows = {r["lever"]: r for r in levers.levers()}
    training = levers.training_lever(shipped[levers.CPU_ENTRY].record["training"])
    assert rows["continued training"] == training
    cpu = [r for r in levers.session_table(shipped[levers.CPU_ENTRY].record["training"]) if not r["gpu"]]
    assert training["before"] == cpu[0]["start"] and training["after"] == cpu[-1]["best"]
    (mirror,) = [r for r in zoo_tables.mirror_gain(["unet-biplane"], {"validation": ROBUSTNESS_DIR / "validation"})
                 if r["condition"] == "nominal"]
    assert rows["mirror test-time augmentation"]["gain"] == pytest.approx(mirror["gain"])
    table = [r for r in vc.view_consistency_table(vc.read_view_consistency()) if r["model"] == "unet-biplane"]
    assert rows["view consistency"]["before"] == table[0]["val_dice"]
    assert rows["view consistency"]["after"] == table[2]["val_dice"]
    try:
        record = read_continuity()
    except InputError:
        assert "continuity prior" not in rows  # the record is not written yet: its row is left out
        return
    plain, chosen = [r for r in continuity_table(record) if r["model"] == "unet-biplane"]
    assert rows["continuity prior"]["gain"] == pytest.approx(chosen["val_gain"])
    for r in rows.values():
        assert r["gain"] == pytest.approx(r["after"] - r["before"])


def test_best_entry_and_its_gap_to_the_target():
    shipped = zoo.entries(model="unet")
    best = levers.best_entry(shipped)
    means = {n: sum(r["dice"] for r in e.record["test"]["rows"] if r["target"] == "exact")
             / sum(r["target"] == "exact" for r in e.record["test"]["rows"])
             for n, e in shipped.items() if e.experiment.n_views == 2 and e.settings.geometry == "parallel"}
    assert best["entry"] == max(means, key=means.get) and best["dice"] == pytest.approx(means[best["entry"]])
    assert best["short_dice"] == pytest.approx(zoo.QUALITY_TARGETS[2]["dice"] - best["dice"])
    with pytest.raises(KeyError, match="no shipped entry of 7 views"):
        levers.best_entry(shipped, views=7)


def _edited(entry, edit):
    record = copy.deepcopy(entry.record)
    edit(record)
    return replace(entry, record=record)


def test_the_cpu_hour_and_gap_fragments_follow_the_records():
    shipped = zoo.entries()
    out = prose.cpu_hours(shipped)
    cpu = [r for r in levers.session_table(shipped[levers.CPU_ENTRY].record["training"])
           if not r["gpu"] and r["start"] is not None]
    for r in cpu:
        assert f"{r['gain']:+.3f} in {r['cpu_hours']:.1f} CPU-hours" in out["cpuh_sessions"]
    assert out["cpuh_gpu_dice"] == f"{cpu[0]['start']:.3f}"

    def one_more(record):  # a republished record: one more two-thread CPU session, one better epoch
        t = record["training"]
        last = t["curve"][-1]
        t["curve"].append(dict(last, epoch=last["epoch"] + 1, val_dice=0.75, time_s=3600.0))
        t["sessions"].append({"hardware": _hw(2), "first_epoch": last["epoch"] + 1, "epochs_after": last["epoch"] + 2,
                              "wall_s": 3600.0})

    more = dict(shipped, **{levers.CPU_ENTRY: _edited(shipped[levers.CPU_ENTRY], one_more)})
    changed = prose.cpu_hours(more)
    hours = sum(r["cpu_hours"] for r in cpu) + 2.0  # one more hour on two threads
    assert f"to 0.750) in {hours:.1f} CPU-hours" in changed["cpuh_total"]
    assert changed["cpuh_sessions"].startswith(out["cpuh_sessions"] + "; session ")
    gap = prose.lever_gap(shipped, rows=levers.levers())
    best = levers.best_entry(shipped)
    assert best["entry"] in gap["lev_gap"] and f"{best['short_dice']:.3f}" in gap["lev_gap"]
    assert all(u in gap["lev_untried"] for u in levers.UNTRIED) and not any(c.isdigit() for c in gap["lev_untried"]
                                                                             .replace("2D", ""))


def test_robustness_reading_is_the_records():
    from statistics import mean

    from angio.zoo.robustness import read_robustness

    rows = read_robustness("unet-biplane")["rows"]

    def dice(*conditions):
        return mean(r["dice"] for r in rows if r["condition"] in conditions)

    out = prose.robustness_reading()
    assert out["rob_noise"] == f"{dice('nominal'):.3f} to {dice('doubled noise'):.3f}"
    assert out["rob_small_dice"] == f"{dice('views off by +2 deg', 'views off by -2 deg'):.2f}"
    assert out["rob_large_dice"] == f"{dice('views off by +5 deg', 'views off by -5 deg'):.2f}"
    assert prose.conditions()["acq_angles"] == "±2° or ±5°" and prose.conditions()["acq_predictions"] == str(len(rows))
    jitter = prose.jitter_reading()
    assert jitter["jit_max"] == f"{zoo.entries()['unet-biplane-jitter'].settings.angle_jitter_deg:g}°"


def test_the_cpu_hours_figure_draws_every_cpu_epoch_and_the_start():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from angio import figures

    rows = levers.cpu_hours_curve(_training())
    fig = figures.cpu_hours_curve(rows, start_label="after the GPU")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert "session 2 (1 thread)" in labels and "session 3 (2 threads)" in labels
    assert "after the GPU" in labels and "best (epoch 6)" in labels
    xs = sorted(x for line in ax.get_lines() if line.get_label().startswith("session") for x in line.get_xdata())
    assert xs[-1] == pytest.approx(3.1) and "CPU-hours" in ax.get_xlabel()
    plt.close(fig)
