"""Tests for angio.inference: BatchNorm folding and exact sliding-window prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from angio.inference import _exact_windows, fold_batchnorm, is_local, predict_volume, receptive_margin
from angio.models import DenoisingAutoencoder3D, UNet3D


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics and affine parameters in every BatchNorm3d."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.3, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.3, 0.3, generator=g)
    return model


# ----------------------------------------------------------------------------- folding
@pytest.mark.parametrize(
    "model",
    [
        DenoisingAutoencoder3D(),
        UNet3D(base_channels=8, depth=2),
        UNet3D(in_channels=2, base_channels=4, depth=3, residual=False),
        nn.Sequential(nn.ConvTranspose3d(4, 6, 2, stride=2, groups=2), nn.BatchNorm3d(6), nn.ReLU()),
        nn.Sequential(nn.Conv3d(4, 6, 3, padding=1, groups=2, bias=False), nn.BatchNorm3d(6)),
    ],
    ids=["dae", "unet", "unet-plain-2ch", "convT-groups", "conv-groups-nobias"],
)
def test_fold_batchnorm_matches_the_eval_model(model):
    model = _randomize_bn(model).train()
    cin = model.in_channels if hasattr(model, "in_channels") else 4
    x = torch.rand(2, cin, 16, 16, 16)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm3d) for m in folded.modules())
    assert model.training and any(isinstance(m, nn.BatchNorm3d) for m in model.modules())  # untouched
    with torch.no_grad():
        ref = model.eval()(x)
        out = folded(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("n", [16, 40, 64, 96, 104, 384])  # padded sizes: multiples of 8
@pytest.mark.parametrize(("p", "m"), [(24, 8), (32, 8), (40, 16), (200, 8), (112, 48)])  # p - 2 m >= 8: valid
def test_exact_windows_partition_the_axis(n, p, m):
    wins = _exact_windows(n, p, m)
    assert wins[0][2] == 0 and wins[-1][3] == n
    for (s, e, lo, hi), nxt in zip(wins, wins[1:] + [None]):
        assert s % 8 == 0 and e - s == min(p, n) and 0 <= s < e <= n
        assert lo == 0 or lo >= s + m  # inner sides discard the margin
        assert hi == n or hi <= e - m
        if nxt is not None:
            assert nxt[2] == hi  # contiguous, non-overlapping


def test_receptive_margins():
    assert receptive_margin(DenoisingAutoencoder3D()) == 8
    assert receptive_margin(UNet3D()) == 48
    assert receptive_margin(UNet3D(depth=2)) == 24


def test_sliding_window_equals_whole_volume_for_the_dae():
    model = _randomize_bn(DenoisingAutoencoder3D())
    vol = np.random.default_rng(0).random((48, 48, 48), dtype=np.float32)
    whole = predict_volume(model, vol)
    tiled = predict_volume(model, vol, patch_size=32, batch_size=2)
    assert whole.shape == vol.shape and whole.dtype == np.float32
    assert np.abs(tiled - whole).max() <= 1e-4
    assert 0.0 <= whole.min() and whole.max() <= 1.0


def test_sliding_window_pads_odd_shapes_and_accepts_tensors():
    model = _randomize_bn(DenoisingAutoencoder3D())
    vol = torch.rand(1, 20, 40, 36)
    whole = predict_volume(model, vol)
    tiled = predict_volume(model, vol, patch_size=(24, 24, 32))
    assert whole.shape == (20, 40, 36)
    assert np.abs(tiled - whole).max() <= 1e-4


def test_sliding_window_equals_whole_volume_for_the_unet():
    model = _randomize_bn(UNet3D(in_channels=2, base_channels=4, depth=2))
    vol = np.random.default_rng(1).random((2, 64, 64, 64), dtype=np.float32)
    whole = predict_volume(model, vol)
    tiled = predict_volume(model, vol, patch_size=56)  # margin 24: windows at 0 and 8 per axis
    assert whole.shape == (64, 64, 64)
    assert np.abs(tiled - whole).max() <= 1e-4


def test_gaussian_blending_is_close_but_not_exact():
    model = _randomize_bn(DenoisingAutoencoder3D())
    vol = np.random.default_rng(2).random((48, 48, 48), dtype=np.float32)
    whole = predict_volume(model, vol)
    blended = predict_volume(model, vol, patch_size=32, mode="gaussian", overlap=0.5)
    diff = np.abs(blended - whole).max()
    assert 1e-6 < diff < 0.2


def test_bf16_prediction_is_close_to_fp32():
    model = _randomize_bn(DenoisingAutoencoder3D())
    vol = np.random.default_rng(3).random((32, 32, 32), dtype=np.float32)
    ref = predict_volume(model, vol)
    out = predict_volume(model, vol, precision="bf16", patch_size=24, progress=False)
    assert np.abs(out - ref).max() < 0.05


def test_exact_mode_refuses_non_local_normalisation():
    model = UNet3D(base_channels=4, depth=2, norm="instance")
    vol = np.zeros((64, 64, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="mode='gaussian'"):
        predict_volume(model, vol, patch_size=56, mode="exact")
    blended = predict_volume(model, vol, patch_size=56, mode="gaussian")
    assert blended.shape == vol.shape
    # the default ("auto") blends windows for such a model and tiles exactly for a local one
    assert not is_local(model) and is_local(UNet3D(base_channels=4, depth=2))
    np.testing.assert_array_equal(predict_volume(model, vol, patch_size=56), blended)


def test_predict_volume_rejects_bad_input():
    model = DenoisingAutoencoder3D()
    with pytest.raises(ValueError, match="in_channels=1"):
        predict_volume(model, np.zeros((2, 16, 16, 16), dtype=np.float32))
    with pytest.raises(ValueError, match="patch_size"):
        predict_volume(model, np.zeros((32, 32, 32), dtype=np.float32), patch_size=20)
    with pytest.raises(ValueError, match="too small"):
        predict_volume(model, np.zeros((64, 64, 64), dtype=np.float32), patch_size=16)
    with pytest.raises(ValueError, match="precision"):
        predict_volume(model, np.zeros((16, 16, 16), dtype=np.float32), precision="fp16")


def test_mirror_averages_the_mirrored_prediction_and_is_mirror_equivariant():
    torch.manual_seed(0)
    model = UNet3D(in_channels=2, base_channels=4, depth=2, norm="instance").eval()
    x = np.random.default_rng(0).random((2, 16, 16, 24)).astype(np.float32)
    plain = predict_volume(model, x)
    flipped = predict_volume(model, np.ascontiguousarray(x[..., ::-1]))
    both = predict_volume(model, x, mirror=True)
    assert both.dtype == np.float32 and both.shape == (16, 16, 24)
    np.testing.assert_allclose(both, 0.5 * (plain + flipped[..., ::-1]), atol=1e-6)
    assert np.abs(plain - flipped[..., ::-1]).max() > 1e-3  # the network itself is not equivariant...
    np.testing.assert_allclose(  # ...its mirror-averaged prediction is, exactly
        predict_volume(model, np.ascontiguousarray(x[..., ::-1]), mirror=True)[..., ::-1], both, atol=1e-6)
    windowed = predict_volume(model, torch.from_numpy(x), patch_size=8, mirror=True)  # tensors, windows too
    np.testing.assert_allclose(windowed[..., ::-1], predict_volume(
        model, np.ascontiguousarray(x[..., ::-1]), patch_size=8, mirror=True), atol=1e-6)
