"""Tests for angio.models: the paper's DAE, the U-Net, the shared blocks and the losses."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from angio.models import (
    DenoisingAutoencoder3D,
    DiceBCELoss,
    FocalLoss,
    ReLUMaxPool3d,
    SafeConv3d,
    UNet3D,
    build_loss,
    build_model,
    count_parameters,
    focal_loss,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


# ----------------------------------------------------------------------------- DAE
def test_dae_has_the_papers_parameter_count():
    assert count_parameters(DenoisingAutoencoder3D()) == 360_481
    assert count_parameters(build_model("dae")) == 360_481
    assert count_parameters(DenoisingAutoencoder3D(fused_relu_pool=False)) == 360_481


def test_dae_layer_list():
    m = DenoisingAutoencoder3D()
    convs = [(c.in_channels, c.out_channels) for c in m.modules() if isinstance(c, nn.Conv3d)]
    ups = [(c.in_channels, c.out_channels) for c in m.modules() if isinstance(c, nn.ConvTranspose3d)]
    assert convs == [(1, 32), (32, 64), (64, 128)]
    assert ups == [(128, 64), (64, 32), (32, 1)]
    assert sum(isinstance(c, nn.BatchNorm3d) for c in m.modules()) == 5


@pytest.mark.parametrize("n", [16, 24, 32])
def test_dae_output_shape_equals_input_shape(n):
    x = torch.rand(2, 1, n, n, n)
    assert DenoisingAutoencoder3D()(x).shape == x.shape


def test_dae_non_cubic_and_two_channels():
    x = torch.rand(1, 2, 16, 24, 32)
    assert DenoisingAutoencoder3D(in_channels=2)(x).shape == (1, 1, 16, 24, 32)


def test_dae_rejects_sizes_not_divisible_by_8():
    with pytest.raises(ValueError, match=r"multiple of 8.*\(1, 1, 20, 20, 20\)"):
        DenoisingAutoencoder3D()(torch.rand(1, 1, 20, 20, 20))
    with pytest.raises(ValueError, match="in_channels=1"):
        DenoisingAutoencoder3D()(torch.rand(1, 2, 16, 16, 16))
    with pytest.raises(ValueError, match="5-D"):
        DenoisingAutoencoder3D()(torch.rand(1, 16, 16, 16))
    with pytest.raises(ValueError, match="in_channels"):
        DenoisingAutoencoder3D(in_channels=0)


def test_fused_relu_pool_equals_relu_then_maxpool():
    x = torch.randn(2, 3, 8, 6, 10, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    ref = nn.MaxPool3d(2)(torch.relu(x2))
    out = ReLUMaxPool3d()(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, rtol=0, atol=0)


def test_fused_and_unfused_dae_give_identical_gradients():
    a = DenoisingAutoencoder3D(fused_relu_pool=True).double()
    b = DenoisingAutoencoder3D(fused_relu_pool=False).double()
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 1, 8, 16, 8, dtype=torch.float64)
    y = (torch.rand_like(x) > 0.8).double()
    for m in (a, b):
        FocalLoss()(m(x), y).backward()
    for ga, gb in zip(_grads(a), _grads(b)):
        torch.testing.assert_close(ga, gb, rtol=1e-12, atol=1e-14)


def test_dae_receptive_radius_is_tight():
    """Perturbing an input plane 8 voxels before an 8-block leaves it unchanged; 7 voxels changes it."""
    m = DenoisingAutoencoder3D().double().eval()
    assert m.receptive_radius == 7
    x = torch.rand(1, 1, 48, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        base = m(x)[0, 0, 24:32]
        for dist, changes in ((8, False), (7, True)):
            xp = x.clone()
            xp[0, 0, 24 - dist] += 5.0
            diff = (m(xp)[0, 0, 24:32] - base).abs().max().item()
            assert (diff > 1e-9) is changes, (dist, diff)
            xp = x.clone()
            xp[0, 0, 31 + dist] += 5.0
            diff = (m(xp)[0, 0, 24:32] - base).abs().max().item()
            assert (diff > 1e-9) is changes, (dist, diff)


# ----------------------------------------------------------------------------- UNet
@pytest.mark.parametrize("in_channels", [1, 2])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_unet_shapes(in_channels, depth):
    n = 2**depth * 2
    m = UNet3D(in_channels=in_channels, base_channels=4, depth=depth)
    assert m(torch.rand(1, in_channels, n, n, n)).shape == (1, 1, n, n, n)
    assert m.spatial_divisor == 2**depth


def test_unet_defaults_and_variants():
    x = torch.rand(2, 1, 16, 16, 16)
    assert UNet3D()(x).shape == x.shape
    assert UNet3D(base_channels=4, residual=False, norm="instance")(x).shape == x.shape
    assert UNet3D(base_channels=8, norm="group", norm_groups=4, out_channels=2)(x).shape == (2, 2, 16, 16, 16)
    assert build_model("unet", in_channels=2, base_channels=4).in_channels == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 0}, "depth"),
        ({"depth": 2.0}, "depth"),
        ({"base_channels": 0}, "base_channels"),
        ({"in_channels": "2"}, "in_channels"),
        ({"norm": "layer"}, "norm"),
        ({"norm": "group", "base_channels": 12, "norm_groups": 8}, "norm_groups"),
    ],
)
def test_unet_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet3D(**kwargs)


def test_unet_rejects_indivisible_sizes():
    with pytest.raises(ValueError, match=r"multiple of 8.*\(1, 1, 16, 16, 20\)"):
        UNet3D(base_channels=4)(torch.rand(1, 1, 16, 16, 20))


def test_build_model_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet")


# ----------------------------------------------------------------------------- checkpointing
@pytest.mark.parametrize("name", ["dae", "unet"])
def test_checkpointing_gives_the_same_gradients_and_running_stats(name):
    kwargs = {} if name == "dae" else {"base_channels": 4, "depth": 2}
    plain = build_model(name, **kwargs).double()
    ckpt = copy.deepcopy(plain)
    ckpt.checkpointing = True
    x = torch.rand(2, 1, 8, 16, 8, dtype=torch.float64)
    y = (torch.rand_like(x) > 0.8).double()
    for m in (plain, ckpt):
        FocalLoss()(m(x), y).backward()
    for a, b in zip(_grads(plain), _grads(ckpt)):
        torch.testing.assert_close(a, b)
    for a, b in zip(plain.buffers(), ckpt.buffers()):  # running stats updated once, not twice
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- losses
def _hand_focal(x: float, y: float, alpha: float, gamma: float) -> float:
    p = 1.0 / (1.0 + math.exp(-x))
    p_t = p if y == 1 else 1.0 - p
    alpha_t = alpha if y == 1 else 1.0 - alpha
    return -alpha_t * (1.0 - p_t) ** gamma * math.log(p_t)


@pytest.mark.parametrize(("alpha", "gamma"), [(0.5, 0.2), (0.25, 2.0)])
def test_focal_loss_against_hand_computed_values(alpha, gamma):
    xs, ys = [2.0, -1.0, 0.5, -3.0], [1.0, 0.0, 0.0, 1.0]
    expected = sum(_hand_focal(x, y, alpha, gamma) for x, y in zip(xs, ys)) / 4
    got = FocalLoss(alpha, gamma)(torch.tensor(xs), torch.tensor(ys))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_focal_paper_defaults_single_value():
    # x = 2, y = 1: p_t = sigmoid(2) = 0.8807971, -log(p_t) = 0.1269280, (1 - p_t)^0.2 = 0.6533...
    expected = 0.5 * (1 - 0.8807970779778823) ** 0.2 * 0.12692801104297263
    assert FocalLoss()(torch.tensor([2.0]), torch.tensor([1.0])).item() == pytest.approx(expected, rel=1e-6)


def test_focal_with_gamma_zero_is_alpha_weighted_bce():
    x = torch.randn(3, 1, 4, 4, 4)
    y = (torch.rand_like(x) > 0.7).float()
    alpha = 0.3
    weights = y * alpha + (1 - y) * (1 - alpha)
    bce = F.binary_cross_entropy_with_logits(x, y, weight=weights)
    torch.testing.assert_close(FocalLoss(alpha, 0.0)(x, y), bce)


def test_focal_gradient_matches_autograd_and_is_finite_when_saturated():
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    for y in ((torch.rand(50) > 0.5).double(), torch.rand(50, dtype=torch.float64)):
        assert torch.autograd.gradcheck(lambda z, y=y: focal_loss(z, y, alpha=0.3, gamma=0.2), (x,))
    sat = torch.tensor([40.0, -40.0, 3.0], requires_grad=True)
    focal_loss(sat, torch.tensor([1.0, 0.0, 1.0])).backward()
    assert torch.isfinite(sat.grad).all()
    # plain autograd through (1 - p_t) ** 0.2 gives nan there; the closed form does not
    naive = sat.detach().clone().requires_grad_()
    bce = F.binary_cross_entropy_with_logits(naive, torch.tensor([1.0, 0.0, 1.0]), reduction="none")
    (0.5 * (1 - torch.exp(-bce)) ** 0.2 * bce).mean().backward()
    assert not torch.isfinite(naive.grad).all()
    torch.testing.assert_close(sat.grad[2], naive.grad[2])


def test_focal_is_float32_and_stable_under_bf16():
    x = torch.randn(1, 1, 8, 8, 8) * 10
    y = torch.rand_like(x) > 0.5
    ref = FocalLoss()(x, y.float())
    xb = x.bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = FocalLoss()(xb, y)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(ref.item(), rel=2e-2)
    loss.backward()
    assert xb.grad.dtype == torch.bfloat16 and torch.isfinite(xb.grad.float()).all()


def test_focal_rejects_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        FocalLoss(alpha=1.5)
    with pytest.raises(ValueError, match="gamma"):
        FocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="shape"):
        FocalLoss()(torch.zeros(2), torch.zeros(3))


def test_dice_bce_of_a_perfect_prediction_is_about_zero():
    y = (torch.rand(2, 1, 8, 8, 8) > 0.7).float()
    logits = (y * 2 - 1) * 30
    assert DiceBCELoss()(logits, y).item() == pytest.approx(0.0, abs=1e-6)
    assert DiceBCELoss()(-logits, y).item() > 0.9


def test_build_loss():
    assert isinstance(build_loss("focal"), FocalLoss)
    assert isinstance(build_loss("dice_bce", dice_weight=0.3), DiceBCELoss)
    x, y = torch.randn(4), torch.tensor([True, False, True, False])
    torch.testing.assert_close(build_loss("bce")(x, y), F.binary_cross_entropy_with_logits(x, y.float()))
    with pytest.raises(ValueError, match="unknown loss"):
        build_loss("l2")


# ----------------------------------------------------------------------------- training / precision
@pytest.mark.parametrize("name", ["dae", "unet"])
def test_a_few_adam_steps_decrease_the_loss(name):
    model = build_model(name, **({} if name == "dae" else {"base_channels": 8, "depth": 2}))
    x = torch.rand(2, 1, 16, 16, 16)
    y = (x > 0.6).float()  # a fixed, learnable target
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = FocalLoss()
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


@pytest.mark.parametrize("name", ["dae", "unet"])
@pytest.mark.parametrize("seed", [0, 1, 2, 20])
def test_bf16_autocast_forward_and_backward_on_cpu(name, seed):
    # 16^3: the U-Net's bottleneck (and the DAE's at 2^3 under 3 poolings: 16/8) has depth 2,
    # where oneDNN's bf16 weight gradient is wrong; seed 20 gave an inf gradient before SafeConv3d
    torch.manual_seed(seed)
    model = build_model(name, **({} if name == "dae" else {"base_channels": 4}))
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
        loss = FocalLoss()(out, (x > 0.5).float())
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def _conv_grads(conv: nn.Conv3d, x: torch.Tensor, g: torch.Tensor, bf16: bool) -> tuple[torch.Tensor, ...]:
    conv.zero_grad()
    x = x.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        y = conv(x)
    y.backward(g)
    return y.float(), conv.weight.grad.clone(), x.grad


@pytest.mark.parametrize("shape", [(2, 2, 2), (2, 4, 4), (4, 4, 4)])
def test_safe_conv3d_bf16_gradients_match_fp32(shape):
    # a 32 -> 64 channel 3x3x3 conv on a depth-2 input is where oneDNN's CPU bf16 weight
    # gradient was inf/NaN in 15% of trials and off by up to 1e38 in the rest
    conv = SafeConv3d(32, 64, 3, padding=1, bias=False)
    plain = nn.Conv3d(32, 64, 3, padding=1, bias=False)
    plain.load_state_dict(conv.state_dict())  # same parameters and keys as nn.Conv3d
    for trial in range(8):
        torch.manual_seed(trial)
        x, g = torch.randn(1, 32, *shape), torch.randn(1, 64, *shape)
        ref = _conv_grads(conv, x, g, bf16=False)
        got = _conv_grads(conv, x, g, bf16=True)
        for a, b in zip(got, ref, strict=True):
            assert torch.isfinite(a).all()
            assert (a - b).norm() <= 2e-2 * b.norm()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        deep = conv(torch.randn(1, 32, 4, 4, 4))
        shallow = conv(torch.randn(1, 32, 2, 4, 4))
    assert deep.dtype == torch.bfloat16  # plain autocast where the kernel is right
    assert shallow.dtype == torch.float32  # computed in float32 at depth 2
