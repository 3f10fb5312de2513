"""Tests of :mod:`angio.train`: learning, determinism, resume, atomic checkpoints, NaN stop, memory, DDP."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import angio.memory
from angio.errors import InputError
from angio.train import (
    NonFiniteLossError,
    PatchDataset,
    RandomCrop,
    TrainConfig,
    fit,
    load_checkpoint,
)

sys.path.insert(0, str(Path(__file__).parent))
from ddp_worker import BlobDataset, tiny_config
from weights import assert_same_state

TIMING_KEYS = {"time_s", "wall_time_s", "voxels_per_s"}


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: stable timings on a shared 2-core machine (weights are per thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _strip_timing(history: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in history["epochs"]]


# ----------------------------------------------------------------------------- config
def test_config_round_trip_and_validation():
    config = TrainConfig(model="unet", model_kwargs={"depth": 2}, patch_size=(16, 16, 32), metrics=["iou"],
                         data={"n_views": 2, "modes": ["sum", "min"]})
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config
    assert config.lr == 1e-3 and config.batch_size == 1 and config.loss == "focal"
    assert (config.focal_alpha, config.focal_gamma) == (0.5, 0.2)
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({**data, "learning_rate": 1})
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="metrics"):
        TrainConfig(metrics=("hausdorff",))
    with pytest.raises(ValueError, match="model_kwargs"):
        TrainConfig(model_kwargs={"in_channels": 2})
    with pytest.raises(ValueError, match="JSON"):
        TrainConfig(data={"spec": object()})


# ----------------------------------------------------------------------------- learning + logs
def test_loss_decreases_and_logs(tmp_path):
    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    config = tiny_config(str(tmp_path), epochs=4, lr=1e-2)
    history = fit(config, train, val, progress=False)
    losses = [row["train_loss"] for row in history["epochs"]]
    assert losses[-1] < 0.8 * losses[0], losses
    assert history["epochs"][-1]["val_loss"] < history["epochs"][0]["val_loss"]
    assert train.epochs == [0, 1, 2, 3]  # set_epoch called every epoch
    row = history["epochs"][-1]
    assert row["epoch"] == 3 and row["global_step"] == 16 and row["steps"] == 4 and row["lr"] == 1e-2
    for key in ("val_iou", "val_dice", "val_mse", "val_mae", "val_accuracy"):
        assert 0.0 <= row[key] <= 1.0
    assert "val_cldice" not in row
    assert json.loads((tmp_path / "history.json").read_text()) == json.loads(json.dumps(history))
    with open(tmp_path / "log.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert math.isclose(float(rows[-1]["train_loss"]), losses[-1])
    assert {"last.pt", "best.pt", "history.json", "log.csv"} <= {p.name for p in tmp_path.iterdir()}
    assert not list(tmp_path.glob(".*.tmp"))
    assert history["best_epoch"] == int(np.argmin([r["val_loss"] for r in history["epochs"]]))

    model, loaded, info = load_checkpoint(tmp_path / "last.pt")
    assert loaded == config and info["epoch"] == 3 and info["global_step"] == 16
    assert not model.training
    assert_same_state(model.state_dict(), _weights(tmp_path / "last.pt"))
    assert info["version"] == __import__("angio").__version__
    assert set(info["rng"]) == {"torch", "cuda", "numpy", "python"}


def test_refuses_to_overwrite_a_run(tmp_path):
    config = tiny_config(str(tmp_path), epochs=1, max_steps_per_epoch=1)
    fit(config, BlobDataset(2), progress=False)
    with pytest.raises(FileExistsError, match="resume=True"):
        fit(config, BlobDataset(2), progress=False)


# ----------------------------------------------------------------------------- determinism, resume
def test_same_seed_same_weights_and_history(tmp_path):
    runs = []
    for name in ("a", "b"):
        config = tiny_config(str(tmp_path / name), epochs=2)
        runs.append(fit(config, BlobDataset(3), BlobDataset(1, seed=1), progress=False))
    assert _strip_timing(runs[0]) == _strip_timing(runs[1])
    assert_same_state(_weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt"))
    other = fit(tiny_config(str(tmp_path / "c"), epochs=2, seed=4), BlobDataset(3), progress=False)
    assert other["epochs"][-1]["train_loss"] != runs[0]["epochs"][-1]["train_loss"]


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_resume_is_bit_identical(tmp_path, precision):
    # patches + a dataset with set_epoch exercise every seeded source of randomness
    changes = dict(patch_size=8, vessel_prob=0.7, precision=precision, model_kwargs={"base_channels": 4, "depth": 1})
    straight = fit(tiny_config(str(tmp_path / "straight"), epochs=3, **changes), BlobDataset(3), BlobDataset(1, seed=1),
                   progress=False)
    first = fit(tiny_config(str(tmp_path / "resumed"), epochs=1, **changes), BlobDataset(3), BlobDataset(1, seed=1),
                progress=False)
    assert len(first["epochs"]) == 1
    resumed_set = BlobDataset(3)
    resumed = fit(tiny_config(str(tmp_path / "resumed"), epochs=3, **changes), resumed_set, BlobDataset(1, seed=1),
                  resume=True, progress=False)
    assert resumed_set.epochs == [1, 2]
    assert _strip_timing(resumed) == _strip_timing(straight)
    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert_same_state(a["model"], b["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for key in sa:
            assert torch.equal(sa[key], sb[key])
    assert a["global_step"] == b["global_step"] == 9
    # resuming a finished run does nothing
    again = fit(tiny_config(str(tmp_path / "resumed"), epochs=3, **changes), BlobDataset(3), resume=True,
                progress=False)
    assert _strip_timing(again) == _strip_timing(straight)


def test_resume_refuses_a_changed_config(tmp_path):
    fit(tiny_config(str(tmp_path), epochs=1, max_steps_per_epoch=1), BlobDataset(2), progress=False)
    # an InputError (the command line prints it without a traceback) naming the file, the field and the way out
    with pytest.raises(angio.InputError, match=r"last\.pt.*lr: [0-9.e-]+ -> 0\.1.*delete .* to start over"):
        fit(tiny_config(str(tmp_path), epochs=2, max_steps_per_epoch=1, lr=0.1), BlobDataset(2), resume=True,
            progress=False)


# ----------------------------------------------------------------------------- atomic checkpoints
def test_failed_checkpoint_write_keeps_previous(tmp_path, monkeypatch):
    config = tiny_config(str(tmp_path), epochs=1, max_steps_per_epoch=1)
    fit(config, BlobDataset(2), progress=False)
    before = (tmp_path / "last.pt").read_bytes()
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, f)
        f.write(b"garbage")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        fit(tiny_config(str(tmp_path), epochs=2, max_steps_per_epoch=1), BlobDataset(2), resume=True, progress=False)
    monkeypatch.undo()
    assert (tmp_path / "last.pt").read_bytes() == before
    _model, _config, info = load_checkpoint(tmp_path / "last.pt")
    assert info["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json", "last.pt", "log.csv"]


def test_load_checkpoint_errors_name_the_file(tmp_path):
    fit(tiny_config(str(tmp_path), epochs=1, max_steps_per_epoch=1), BlobDataset(2), progress=False)
    data = (tmp_path / "last.pt").read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated.pt.*truncated or corrupt"):
        load_checkpoint(truncated)
    with pytest.raises(InputError, match="missing.pt.*not found"):
        load_checkpoint(tmp_path / "missing.pt")
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(InputError, match="other.pt.*not an angio training checkpoint"):
        load_checkpoint(other)
    (tmp_path / "last.pt").write_bytes(data[:100])
    with pytest.raises(InputError, match="last.pt"):
        fit(tiny_config(str(tmp_path), epochs=2), BlobDataset(2), resume=True, progress=False)


# ----------------------------------------------------------------------------- NaN
class NaNAt(BlobDataset):
    """Returns a NaN input for the ``k``-th item fetched in epoch ``epoch``."""

    def __init__(self, *args, epoch: int, k: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bad_epoch, self.k, self.fetched, self.current = epoch, k, 0, -1

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.current, self.fetched = epoch, 0

    def __getitem__(self, index: int) -> dict:
        item = super().__getitem__(index)
        if self.current == self.bad_epoch:
            if self.fetched == self.k:
                item["input"][0, 3, 3, 3] = float("nan")
            self.fetched += 1
        return item


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    config = tiny_config(str(tmp_path), epochs=3)
    with pytest.raises(FloatingPointError, match=r"epoch 1, global step 6\b") as excinfo:
        fit(config, NaNAt(4, epoch=1, k=2), progress=False)
    err = excinfo.value
    assert isinstance(err, NonFiniteLossError) and (err.epoch, err.step) == (1, 6)
    assert "last.pt" in str(err)
    _model, _config, info = load_checkpoint(tmp_path / "last.pt")
    assert info["epoch"] == 0 and info["global_step"] == 4
    assert len(json.loads((tmp_path / "history.json").read_text())["epochs"]) == 1


# ----------------------------------------------------------------------------- memory
def test_memory_refusal_reaches_the_user_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(angio.memory, "available_memory", lambda device="cpu": 1 << 14)
    raised = []
    real_check = angio.memory.check_fits

    def spy(*args, **kwargs):
        try:
            return real_check(*args, **kwargs)
        except MemoryError as exc:
            raised.append((args, kwargs, exc))
            raise

    monkeypatch.setattr(angio.memory, "check_fits", spy)
    # bf16 + checkpointing: no cheaper alternative to probe, so the check stays fast
    config = tiny_config(str(tmp_path / "run"), epochs=1, check_memory=True, precision="bf16", checkpointing=True)
    with pytest.raises(MemoryError) as excinfo:
        fit(config, BlobDataset(2), progress=False)
    (args, kwargs, original), = raised
    assert excinfo.value is original  # not wrapped, message unchanged
    assert tuple(args[1]) == (16, 16, 16) and kwargs["precision"] == "bf16" and kwargs["checkpointing"] is True
    assert "needs an estimated" in str(excinfo.value) and "UNet3D training at 16^3" in str(excinfo.value)
    assert excinfo.value.available == 1 << 14 and excinfo.value.required > excinfo.value.available
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_memory_check_covers_patches_and_whole_volume_validation(tmp_path, monkeypatch):
    calls = []
    real_check = angio.memory.check_fits

    def spy(model, size, device, **kwargs):
        calls.append((tuple(size), kwargs.get("training", True)))
        return real_check(model, size, device, **kwargs)

    monkeypatch.setattr(angio.memory, "check_fits", spy)
    config = tiny_config(str(tmp_path), epochs=1, max_steps_per_epoch=1, check_memory=True, patch_size=8)
    fit(config.to_dict(), BlobDataset(2), BlobDataset(1, size=12), progress=False)  # a dict config works too
    assert calls == [((8, 8, 8), True), ((12, 12, 12), False)]


# ----------------------------------------------------------------------------- patches
def test_random_crop_shapes_padding_and_vessel_bias():
    volume = torch.rand(2, 40, 32, 24)
    target = torch.zeros(1, 40, 32, 24)
    target[0, 35:38, 2:4, 20:22] = 1  # a small vessel in a corner
    crop = RandomCrop((16, 8, 8), vessel_prob=0.7)
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        x, y = crop(volume, target, rng)
        assert x.shape == (2, 16, 8, 8) and y.shape == (1, 16, 8, 8)
        hits += bool(y.any())
    assert 0.6 < hits / 400 < 0.85  # ~0.7 + the few uniform crops that hit the vessel
    uniform = RandomCrop((16, 8, 8), vessel_prob=0.0)
    assert sum(bool(uniform(volume, target, rng)[1].any()) for _ in range(200)) < 40
    always = RandomCrop(8, vessel_prob=1.0)
    assert all(always(volume, target, rng)[1].any() for _ in range(50))
    # crop contents are the volume's, and a small volume is zero-padded
    z0, y0, x0 = RandomCrop(8).starts(target, np.random.default_rng(1))
    x, _ = RandomCrop(8)(volume, target, np.random.default_rng(1))
    assert torch.equal(x, volume[:, z0 : z0 + 8, y0 : y0 + 8, x0 : x0 + 8])
    small_x, small_y = RandomCrop(16)(torch.ones(1, 8, 16, 16), torch.ones(1, 8, 16, 16), rng)
    assert small_x.shape == (1, 16, 16, 16) and small_x[:, 8:].abs().sum() == 0 and small_y[:, :8].all()


def test_patch_dataset_is_seeded_by_epoch_and_index():
    base = BlobDataset(3, size=16)
    patches = PatchDataset(base, 8, seed=5)
    a = patches[1]["input"]
    assert a.shape == (1, 8, 8, 8) and torch.equal(a, PatchDataset(base, 8, seed=5)[1]["input"])
    patches.set_epoch(1)
    assert base.epochs == [1]
    assert not torch.equal(a, patches[1]["input"]) or not torch.equal(a, patches[2]["input"])


def test_whole_volumes_not_multiple_of_divisor_are_padded(tmp_path):
    class Odd(BlobDataset):
        def __getitem__(self, index):
            item = super().__getitem__(index)
            return {k: (v[:, :14, :15, :13] if torch.is_tensor(v) else v) for k, v in item.items()}

    history = fit(tiny_config(str(tmp_path), epochs=1), Odd(2), Odd(1), progress=False)
    assert math.isfinite(history["epochs"][0]["val_loss"])


def test_cli_main(tmp_path):
    from angio.train import main

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(tiny_config(str(tmp_path / "run"), epochs=1, max_steps_per_epoch=2).to_dict()))
    history = main(["--config", str(cfg), "--data", "ddp_worker:make_datasets", "--no-progress"])
    assert history["epochs"][0]["steps"] == 2 and history["epochs"][0]["val_loss"] is not None


# ----------------------------------------------------------------------------- DDP
@pytest.mark.slow
def test_ddp_two_cpu_processes_end_with_identical_weights(tmp_path):
    root = str(Path(__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).parent / "ddp_worker.py"), str(tmp_path)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    init = [torch.load(tmp_path / f"rank{r}_init.pt", weights_only=True) for r in (0, 1)]
    final = [torch.load(tmp_path / f"rank{r}_final.pt", weights_only=True) for r in (0, 1)]
    assert_same_state(init[0], init[1])
    assert_same_state(final[0], final[1])
    assert any(not torch.equal(init[0][k], final[0][k]) for k in init[0] if init[0][k].is_floating_point())
    assert_same_state(final[0], _weights(tmp_path / "run" / "last.pt"))
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["steps"] for row in history["epochs"]] == [3, 3]  # 5 items over 2 ranks, padded to 6
    assert history["epochs"][-1]["val_loss"] is not None
    assert not list((tmp_path / "run").glob("rank*"))  # only rank 0 wrote the run folder


# ----------------------------------------------------------------------------- selection + patience
def test_select_by_dice_and_patience_stop(tmp_path):
    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    config = tiny_config(str(tmp_path), epochs=30, lr=1e-2, select="dice", patience=2,
                         metrics=("iou", "dice"))
    history = fit(config, train, val, progress=False)
    rows = history["epochs"]
    dice = [r["val_dice"] for r in rows]
    best = history["best_epoch"]
    # best.pt is the first epoch with the highest validation Dice ...
    assert best == int(np.argmax(dice))
    # ... and training stops once `patience` validations bring no improvement (or at the end)
    assert len(rows) == 30 or len(rows) - 1 - best == 2
    _, _, info = load_checkpoint(tmp_path / "best.pt")
    assert info["epoch"] == best


def _curve(iou, loss, validated=None):
    """History rows of a synthetic run: validation IoU and loss per epoch (``None``: not validated)."""
    validated = validated or [True] * len(iou)
    return [{"epoch": e, "val_iou": i if v else None, "val_loss": v_loss if v else None}
            for e, (i, v_loss, v) in enumerate(zip(iou, loss, validated))]


def test_patience_on_iou_alone_stops_a_run_whose_loss_still_falls_and_watching_the_loss_does_not():
    from angio.train.selection import replay_rule

    # the focal-loss autoencoder's early epochs: the loss falls every epoch, IoU at 0.5 is flat
    rows = _curve(iou=[0.012] + [0.0] * 19, loss=[0.2 * 0.8**e for e in range(20)])
    classic = replay_rule(rows, select="iou", patience=10)
    assert classic == {"best_epoch": 0, "stopped_after": 10}  # ships the untrained first epoch
    watched = replay_rule(rows, select="iou", patience=10, watch=("loss",))
    assert watched == {"best_epoch": 0, "stopped_after": None}  # still training while the loss falls
    # the selection is still by IoU: the loss only keeps the run going
    rows[15]["val_iou"] = 0.3
    assert replay_rule(rows, select="iou", patience=10, watch=("loss",))["best_epoch"] == 15


def test_patience_stops_after_patience_validations_once_every_watched_quantity_plateaus():
    from angio.train.selection import replay_rule

    iou = [0.1, 0.2, 0.3, 0.4] + [0.35] * 10
    loss = [0.5, 0.4, 0.3, 0.2, 0.1] + [0.15] * 9  # the loss's last new best is one epoch later
    rows = _curve(iou, loss)
    assert replay_rule(rows, select="iou", patience=3) == {"best_epoch": 3, "stopped_after": 6}
    assert replay_rule(rows, select="iou", patience=3, watch=("loss",)) == {"best_epoch": 3, "stopped_after": 7}
    # epochs without validation count for nothing, in either direction
    gaps = _curve(iou, loss, validated=[True] * 5 + [False, True] * 4 + [True])
    assert replay_rule(gaps, select="iou", patience=3, watch=("loss",))["stopped_after"] == 10
    # a watched metric with its own direction: a falling MAE is progress, a rising one is not
    rows = _curve([0.5] * 8, [0.1] * 8)
    for r, mae in zip(rows, [0.30, 0.29, 0.28, 0.27, 0.30, 0.31, 0.32, 0.33]):
        r["val_mae"] = mae
    assert replay_rule(rows, select="iou", patience=3, watch=("mae",))["stopped_after"] == 6


def test_select_from_keeps_early_epochs_from_being_selected_or_counted():
    from angio.train.selection import patience_exhausted, replay_rule

    # a near-constant output overlaps a large target: a high IoU at epoch 0 that training never beats
    rows = _curve(iou=[0.27, 0.05, 0.1, 0.12, 0.15, 0.2, 0.18, 0.17, 0.16, 0.15, 0.14, 0.13],
                  loss=[0.3] * 12)
    assert replay_rule(rows, select="iou", patience=3) == {"best_epoch": 0, "stopped_after": 3}
    late = replay_rule(rows, select="iou", patience=3, select_from=2)
    assert late == {"best_epoch": 5, "stopped_after": 8}
    # no run stops before select_from + patience, even when nothing ever improves
    flat = _curve([0.0] * 12, [0.1] * 12)
    assert replay_rule(flat, select="iou", patience=3, select_from=4) == {"best_epoch": 4, "stopped_after": 7}
    assert replay_rule(flat[:4], select="iou", patience=1, select_from=4)["best_epoch"] is None
    assert not patience_exhausted(1, {"epochs": flat[:4], "best_epoch": None})


def test_the_default_rule_is_patience_after_the_first_best_epoch():
    from angio.train.selection import replay_rule

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, patience = int(rng.integers(1, 30)), int(rng.integers(1, 6))
        dice = np.round(rng.random(n), 1).tolist()  # rounded: ties happen
        rows = [{"epoch": e, "val_dice": d, "val_loss": 1.0} for e, d in enumerate(dice)]
        expected_stop = None
        for last in range(n):  # reference: stop once `patience` epochs follow the first maximum so far
            best = int(np.argmax(dice[: last + 1]))
            if last - best >= patience:
                expected_stop = last
                break
        end = n - 1 if expected_stop is None else expected_stop
        got = replay_rule(rows, select="dice", patience=patience)
        assert got == {"best_epoch": int(np.argmax(dice[: end + 1])), "stopped_after": expected_stop}


def test_fit_never_writes_best_before_select_from_and_resumes_under_a_new_stopping_rule(tmp_path):
    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    seen = []

    def check(epoch, model, row):
        seen.append((epoch, (tmp_path / "best.pt").exists()))

    config = tiny_config(str(tmp_path), epochs=3, lr=1e-2, select="iou", metrics=("iou",), select_from=2,
                         patience=1, patience_watch=("loss",))
    history = fit(config, train, val, progress=False, on_epoch_end=check)
    assert seen == [(0, False), (1, False), (2, True)]
    assert history["best_epoch"] == 2 and load_checkpoint(tmp_path / "best.pt")[2]["epoch"] == 2
    assert json.loads((tmp_path / "history.json").read_text())["best_epoch"] == 2
    # the stopping rule may change on resume; the selection rule may not (best.pt was chosen by it)
    resumed = fit(tiny_config(str(tmp_path), epochs=4, lr=1e-2, select="iou", metrics=("iou",), select_from=2,
                              patience=None), train, val, resume=True, progress=False)
    assert len(resumed["epochs"]) == 4
    # select_from may change only where the recorded epochs give the same best epoch under it
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    best = payload["history"]["best_epoch"]
    assert best >= 2
    for early, refused in ((1.0, True), (-1.0, False)):  # an early epoch that beats best.pt, or none does
        payload["history"]["epochs"][0]["val_iou"], payload["history"]["epochs"][1]["val_iou"] = early, -1.0
        torch.save(payload, tmp_path / "last.pt")
        again = tiny_config(str(tmp_path), epochs=5, lr=1e-2, select="iou", metrics=("iou",))  # select_from 0
        if refused:
            with pytest.raises(InputError, match="select_from: 2 -> 0"):
                fit(again, train, val, resume=True, progress=False)
        else:
            history = fit(again, train, val, resume=True, progress=False)
            assert len(history["epochs"]) == 5 and history["best_epoch"] >= best


def test_a_checkpoint_older_than_the_stopping_fields_resumes(tmp_path):
    train, val = BlobDataset(2), BlobDataset(1, seed=1)
    fit(tiny_config(str(tmp_path), epochs=1, max_steps_per_epoch=1), train, val, progress=False)
    payload = torch.load(tmp_path / "last.pt", weights_only=True)
    for key in ("patience_watch", "select_from"):
        del payload["config"][key]  # as written before these fields existed
    torch.save(payload, tmp_path / "last.pt")
    history = fit(tiny_config(str(tmp_path), epochs=2, max_steps_per_epoch=1), train, val, resume=True,
                  progress=False)
    assert [r["epoch"] for r in history["epochs"]] == [0, 1] and history["best_epoch"] is not None
    # ... and one that differs from the defaults it was trained with is still refused (it would
    # not select the epoch in best.pt)
    with pytest.raises(InputError, match="select_from"):
        fit(tiny_config(str(tmp_path), epochs=3, max_steps_per_epoch=1, select_from=history["best_epoch"] + 1),
            train, val, resume=True, progress=False)


def test_select_needs_its_metric():
    with pytest.raises(ValueError, match="select"):
        TrainConfig(select="dice", metrics=("iou",))
    with pytest.raises(ValueError, match="patience"):
        TrainConfig(patience=0)
    with pytest.raises(ValueError, match="patience_watch"):
        TrainConfig(patience_watch=("dice",), metrics=("iou",))
    with pytest.raises(ValueError, match="select_from"):
        TrainConfig(select_from=-1)
    config = TrainConfig(select="iou", patience=10, patience_watch=["loss", "mae"], select_from=10)
    assert config.patience_watch == ("loss", "mae")
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_auto_precision_is_fp32_without_native_bf16(monkeypatch):
    import angio.device
    import angio.train as tr

    monkeypatch.setattr(angio.device, "cpu_has_native_bf16", lambda: False)
    assert tr.resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(angio.device, "cpu_has_native_bf16", lambda: True)
    assert tr.resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert tr.resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_lr_milestones_step_the_rate_and_may_change_on_resume(tmp_path):
    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    history = fit(tiny_config(str(tmp_path / "a"), epochs=4, lr=1e-2, lr_milestones=(2,), lr_gamma=0.5),
                  train, val, progress=False)
    assert [r["lr"] for r in history["epochs"]] == [1e-2, 1e-2, 5e-3, 5e-3]
    # a run resumed with a schedule whose milestones lie ahead is the run trained with it throughout
    fit(tiny_config(str(tmp_path / "b"), epochs=2, lr=1e-2), train, val, progress=False)
    resumed = fit(tiny_config(str(tmp_path / "b"), epochs=4, lr=1e-2, lr_milestones=(2,), lr_gamma=0.5),
                  train, val, resume=True, progress=False)
    assert [r["lr"] for r in resumed["epochs"]] == [r["lr"] for r in history["epochs"]]
    assert resumed["epochs"][-1]["train_loss"] == pytest.approx(history["epochs"][-1]["train_loss"], rel=1e-6)
    with pytest.raises(ValueError, match="lr_gamma"):
        TrainConfig(lr_gamma=0.0)


def test_batchnorm_at_batch_one_trains_as_instance_norm_and_its_weights_start_an_instance_run(tmp_path):
    from angio.models import UNet3D
    from angio.train.checkpoint import init_weights

    torch.manual_seed(0)
    bn = UNet3D(base_channels=4, depth=2)
    fit(tiny_config(str(tmp_path / "bn"), epochs=1), BlobDataset(2, seed=0), progress=False)
    inst = UNet3D(base_channels=4, depth=2, norm="instance")
    init_weights(inst, tmp_path / "bn" / "last.pt")
    bn, _, _ = load_checkpoint(tmp_path / "bn" / "last.pt")
    x = BlobDataset(1, seed=5)[0]["input"][None]
    # in training mode (batch statistics) a batch of one is normalised per channel over space,
    # exactly as instance normalisation does: same outputs, so the same gradients and run
    bn.train()
    inst.train()
    torch.testing.assert_close(bn(x), inst(x), rtol=1e-5, atol=1e-5)
    # a checkpoint of another network is refused, naming the file
    fit(tiny_config(str(tmp_path / "wide"), epochs=1, model_kwargs={"base_channels": 8, "depth": 2}),
        BlobDataset(2, seed=0), progress=False)
    with pytest.raises(InputError, match="wide.*do not fit"):
        init_weights(inst, tmp_path / "wide" / "last.pt")


def test_init_from_starts_a_new_run_and_windowed_validation_matches_predict_volume(tmp_path):
    from angio.inference import predict_volume
    from angio.metrics import dice

    train, val = BlobDataset(4, seed=0, size=32), BlobDataset(2, seed=1, size=32)
    fit(tiny_config(str(tmp_path / "a"), epochs=1), train, progress=False)
    config = tiny_config(str(tmp_path / "b"), epochs=1, lr=1e-9, init_from=str(tmp_path / "a" / "last.pt"),
                         model_kwargs={"base_channels": 4, "depth": 2, "norm": "instance"}, val_patch=16,
                         metrics=("dice",))
    history = fit(config, train, val, progress=False)
    start, tuned = _weights(tmp_path / "a" / "last.pt"), _weights(tmp_path / "b" / "last.pt")
    for k, v in tuned.items():  # lr 1e-9: the run started from the given weights
        torch.testing.assert_close(v, start[k], rtol=0, atol=1e-6)
    # the validation Dice is the one of the model applied over blended 16^3 windows
    model, _, _ = load_checkpoint(tmp_path / "b" / "last.pt")
    expected = np.mean([dice(predict_volume(model, val[i]["input"], patch_size=16, mode="gaussian"),
                             val[i]["target"][0].numpy() > 0.5) for i in range(len(val))])
    assert history["epochs"][-1]["val_dice"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="val_patch"):
        TrainConfig(val_patch=0)


def test_time_budget_stops_between_epochs_and_the_run_resumes(tmp_path):
    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    config = tiny_config(str(tmp_path), epochs=5, lr=1e-2)
    # a budget shorter than one epoch: the first epoch runs, no second one is started
    history = fit(config, train, val, progress=False, time_budget_s=1e-3)
    assert len(history["epochs"]) == 1 and history["stopped_by_budget"]
    assert json.loads((tmp_path / "history.json").read_text())["stopped_by_budget"]
    history = fit(config, train, val, resume=True, progress=False, time_budget_s=1e6)
    assert [r["epoch"] for r in history["epochs"]] == [0, 1, 2, 3, 4] and not history["stopped_by_budget"]
    with pytest.raises(ValueError, match="time_budget_s"):
        fit(config, train, val, resume=True, progress=False, time_budget_s=0)


def test_compact_items_are_computed_in_float32(tmp_path):
    class Compact(torch.utils.data.Dataset):
        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            item = dict(self.base[i])
            return {**item, "input": item["input"].half(), "target": item["target"].to(torch.uint8)}

    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    history = fit(tiny_config(str(tmp_path), epochs=2, lr=1e-2), Compact(train), Compact(val), progress=False)
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["val_loss"]) for r in history["epochs"])


def test_an_exported_checkpoint_becomes_a_resumable_run_with_its_history_and_a_note(tmp_path):
    from angio.train.checkpoint import export_checkpoint, load_checkpoint, resumable_from_export

    train, val = BlobDataset(4, seed=0), BlobDataset(2, seed=1)
    run = tmp_path / "run"
    fit(tiny_config(str(run), epochs=2, lr=1e-2), train, val, progress=False)
    slim = export_checkpoint(run / "last.pt", tmp_path / "slim.pt", half=True)  # as the zoo ships weights
    assert torch.load(slim, weights_only=True)["weights_dtype"] == "float16"
    (run / "last.pt").unlink()
    resumable_from_export(slim, run / "last.pt", notes=["trained elsewhere"])
    with pytest.raises(FileExistsError):
        resumable_from_export(slim, run / "last.pt")
    model, _, info = load_checkpoint(run / "last.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert info["epoch"] == 1 and not info["optimizer"]["state"]  # Adam restarts from zero moments
    history = fit(tiny_config(str(run), epochs=4, lr=1e-2, lr_milestones=(2,), lr_gamma=0.5), train, val,
                  resume=True, progress=False)
    assert [r["epoch"] for r in history["epochs"]] == [0, 1, 2, 3]
    assert [r["lr"] for r in history["epochs"]][2:] == [5e-3, 5e-3]
    assert history["notes"][0] == "trained elsewhere" and "Adam moments restarted" in history["notes"][1]
    assert json.loads((run / "history.json").read_text())["notes"] == history["notes"]


def test_read_history_reads_what_write_logs_wrote_and_tolerates_a_missing_or_broken_file(tmp_path):
    from angio.train.checkpoint import read_history, write_logs

    assert read_history(tmp_path) == {"epochs": []}  # no run yet
    history = {"epochs": [{"epoch": 0, "global_step": 3, "train_loss": 0.5}], "best_epoch": 0}
    write_logs(tmp_path, history)
    assert read_history(tmp_path) == history
    (tmp_path / "history.json").write_text('{"epochs": "not a list"}')
    assert read_history(tmp_path) == {"epochs": []}
    (tmp_path / "history.json").write_text("{truncated")
    assert read_history(tmp_path) == {"epochs": []}
