"""Tests for angio.memory: the memory estimate, available memory and the fit check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from angio.device import cpu_has_native_bf16
from angio.memory import (
    InsufficientMemoryError,
    MemoryEstimate,
    _fit,
    _probe_training,
    available_memory,
    check_fits,
    estimate_memory,
)
from angio.models import DenoisingAutoencoder3D, UNet3D

GiB = 1024**3


@pytest.fixture(scope="module")
def dae():
    return DenoisingAutoencoder3D()


@pytest.fixture(scope="module")
def unet():
    return UNet3D(base_channels=8, depth=2)


def _step_bytes(e: MemoryEstimate) -> int:
    return e.inputs + e.activations + e.workspace


def test_exact_parts_and_fields(dae):
    e = estimate_memory(dae, 64)
    n_params = 360_481
    buffers = sum(b.numel() * b.element_size() for b in dae.buffers())
    assert e.parameters == 4 * n_params + buffers
    assert e.gradients == 4 * n_params
    assert e.optimizer_state == 8 * n_params
    assert e.inputs == 2 * 4 * 64**3
    assert e.peak_total == e.parameters + e.gradients + e.optimizer_state + e.inputs + e.activations + e.workspace
    assert "MiB" in str(e) and "training at 64^3" in str(e)  # small sizes print in MiB
    assert "0.00" not in str(e)
    sgd = estimate_memory(dae, 64, optimizer="sgd")
    assert sgd.optimizer_state == 0


def test_activations_scale_linearly_in_voxels(dae):
    fit = _fit(dae, in_channels=1, precision="fp32", checkpointing=False, training=True, loss="focal", method="trace")
    probe = _probe_training(DenoisingAutoencoder3D(), 24, 1, 1, "fp32", "focal", "trace")
    n = 24**3
    assert probe.activations == pytest.approx(fit.act_const + fit.act_per_voxel * n, rel=0.03)
    assert probe.activations + probe.workspace == pytest.approx(
        fit.act_const + fit.ws_const + (fit.act_per_voxel + fit.ws_per_voxel) * n, rel=0.03
    )
    e1, e2, e3 = (estimate_memory(dae, s) for s in (96, 192, (96, 192, 384)))
    ratio = (_step_bytes(e2) - e2.inputs) / (_step_bytes(e1) - e1.inputs)
    assert ratio == pytest.approx(8.0, rel=0.02)
    assert _step_bytes(e3) == pytest.approx(_step_bytes(e2), rel=1e-6)  # same voxel count
    assert 350 < e1.bytes_per_voxel < 500  # fp32 DAE: ~390 bytes per voxel


@pytest.mark.parametrize("name", ["dae", "unet"])
def test_bf16_and_checkpointing_reduce_activations(name, dae, unet):
    model = dae if name == "dae" else unet
    fp32 = estimate_memory(model, 128)
    bf16 = estimate_memory(model, 128, precision="bf16")
    ckpt = estimate_memory(model, 128, checkpointing=True)
    assert bf16.peak_total < fp32.peak_total
    assert bf16.activations < 0.7 * fp32.activations
    assert ckpt.activations < 0.6 * fp32.activations
    assert ckpt.checkpointing and not fp32.checkpointing
    assert not model.checkpointing  # the model itself is left alone


def test_inference_needs_less_than_training(dae):
    train = estimate_memory(dae, 128)
    infer = estimate_memory(dae, 128, training=False)
    assert infer.gradients == infer.optimizer_state == infer.workspace == 0
    assert infer.peak_total < 0.7 * train.peak_total


def test_saved_method_runs_and_is_not_larger(dae):
    saved = estimate_memory(dae, 64, method="saved")
    trace = estimate_memory(dae, 64)
    assert 0 < saved.peak_total <= trace.peak_total


def test_estimate_rejects_bad_options(dae):
    with pytest.raises(ValueError, match="precision"):
        estimate_memory(dae, 64, precision="fp8")
    with pytest.raises(ValueError, match="size"):
        estimate_memory(dae, (64, 64))
    with pytest.raises(ValueError, match="method"):
        estimate_memory(dae, 64, method="guess")


def test_available_memory_cpu():
    avail = available_memory("cpu")
    assert isinstance(avail, int) and avail > 0


def test_check_fits_returns_the_estimate_when_it_fits(dae):
    e = check_fits(dae, 32, "cpu", available=64 * GiB)
    assert e == estimate_memory(dae, 32)  # the estimate itself, for the default options
    assert e.size == (32, 32, 32) and e.training and e.batch == 1
    assert 0 < e.peak_total <= 0.9 * 64 * GiB  # within the budget left by the 10% headroom


def test_check_fits_with_a_tiny_budget_explains_itself(dae):
    with pytest.raises(MemoryError) as info:
        check_fits(dae, 384, "cpu", available=1024**2)
    err = info.value
    assert isinstance(err, InsufficientMemoryError)
    msg = str(err)
    assert "needs an estimated" in msg and "GiB" in msg and "available" in msg
    assert "None of the alternatives fits" in msg and "bf16" in msg
    assert err.required > err.available


def test_check_fits_names_the_option_that_fits(dae):
    fp32 = estimate_memory(dae, 384)
    bf16 = estimate_memory(dae, 384, precision="bf16")
    budget = int((bf16.peak_total + fp32.peak_total) / 2 / 0.9)  # bf16 fits, fp32 does not
    with pytest.raises(InsufficientMemoryError) as info:
        check_fits(dae, 384, "cpu", available=budget)
    msg = str(info.value)
    assert f"bf16 needs {bf16.peak_total / GiB:.1f} GiB" in msg
    assert "Options that fit" in msg and "patch training at" in msg
    fitting = [label for label, _, fits in info.value.alternatives if fits]
    assert "bf16" in fitting


def test_check_fits_inference_suggests_sliding_windows(dae):
    whole = estimate_memory(dae, 384, training=False)
    with pytest.raises(InsufficientMemoryError, match="sliding-window inference with patches at"):
        check_fits(dae, 384, "cpu", available=whole.peak_total // 4, training=False)


_RSS_SCRIPT = textwrap.dedent(
    """
    import json, sys, torch
    from angio.models import DenoisingAutoencoder3D, FocalLoss
    n, precision = int(sys.argv[1]), sys.argv[2]
    def status(field):
        for line in open("/proc/self/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    model = DenoisingAutoencoder3D()
    opt = torch.optim.Adam(model.parameters())
    def step(x):
        opt.zero_grad(set_to_none=False)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = FocalLoss()(model(x), (x > 0.9).float())
        loss.backward()
        opt.step()
    step(torch.rand(1, 1, 16, 16, 16))
    x = torch.rand(1, 1, n, n, n)
    open("/proc/self/clear_refs", "w").write("5")
    base = status("VmRSS")
    step(x)
    print(json.dumps(status("VmHWM") - base + 4 * n**3))  # + the input, allocated before the baseline
    """
)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
@pytest.mark.parametrize("precision", [
    "fp32",
    # the estimate models oneDNN's native bf16 kernels; AVX2-only CPUs emulate bf16 with other buffers
    pytest.param("bf16", marks=pytest.mark.skipif(not cpu_has_native_bf16(),
                                                  reason="this CPU has no native bf16 (AVX-512 BF16/AMX)")),
])
def test_estimate_within_30_percent_of_measured_peak_rss(precision, dae):
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    for n in (80, 112):
        out = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, str(n), precision], capture_output=True, text=True, env=env, check=True
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        e = estimate_memory(dae, n, precision=precision)
        assert _step_bytes(e) == pytest.approx(measured, rel=0.3), (n, measured, _step_bytes(e))
