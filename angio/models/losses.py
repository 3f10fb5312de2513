"""Segmentation losses on logits: the paper's focal loss, Dice + BCE, plain BCE.

All losses take ``logits`` and ``target`` of the same shape, typically ``(B, 1, Z, Y, X)``;
targets are vessel masks (``bool`` or ``{0, 1}`` floats; soft targets in ``[0, 1]`` also
work). Every loss computes in ``float32`` even under bf16/fp16 autocast and returns a
``float32`` scalar.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FocalLoss", "DiceBCELoss", "BCELoss", "build_loss", "focal_loss"]


def _upcast(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and targets in float32 (float64 stays float64)."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    return logits.to(dtype), target.to(dtype)


def _alpha_t(target: torch.Tensor, alpha: float) -> torch.Tensor | float:
    """``alpha`` for vessel voxels, ``1 - alpha`` for background (a scalar when they are equal)."""
    if alpha == 0.5:
        return 0.5
    return target * alpha + (1.0 - target) * (1.0 - alpha)


class _FocalFn(torch.autograd.Function):
    """Element-wise focal loss with a closed-form, overflow-free gradient.

    Autograd through ``(1 - p_t) ** gamma`` with ``gamma < 1`` evaluates
    ``gamma * (1 - p_t) ** (gamma - 1)``, which is ``inf`` wherever a voxel is predicted
    confidently right (``p_t`` rounds to 1), and the product with the other factors gives
    ``nan``. Here the gradient is written as::

        dL/dx = alpha_t * u**gamma * (gamma * p_t * bce / u + 1) * (sigmoid(x) - y),
        u = 1 - p_t = -expm1(-bce),

    where ``bce / u -> 1`` as ``u -> 0``, so it is finite everywhere. Only the logits and
    targets are saved for backward (no float32 intermediates).
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(logits, target)
        ctx.alpha, ctx.gamma = alpha, gamma
        with torch.autocast(logits.device.type, enabled=False):
            x, y = _upcast(logits, target)
            bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
            u = torch.expm1(-bce).neg_()  # 1 - p_t, accurate for p_t close to 1
            return bce.mul_(u.pow_(gamma)).mul_(_alpha_t(y, alpha))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        logits, target = ctx.saved_tensors
        alpha, gamma = ctx.alpha, ctx.gamma
        with torch.autocast(logits.device.type, enabled=False):
            x, y = _upcast(logits, target)
            bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
            u = torch.expm1(-bce).neg_()
            ratio = torch.where(u > 0, bce / u, torch.ones((), device=u.device))  # bce / (1 - p_t) >= 1
            p_t = torch.exp(-bce)
            factor = ratio.mul_(p_t).mul_(gamma).add_(1.0).mul_(u.pow_(gamma))
            dx = torch.sigmoid(x).sub_(y).mul_(factor).mul_(_alpha_t(y, alpha)).mul_(grad)
        return dx.to(logits.dtype), None, None, None


def focal_loss(
    logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 0.5, gamma: float = 0.2, reduction: str = "mean"
) -> torch.Tensor:
    """Binary focal loss ``FL = -alpha_t (1 - p_t) ** gamma log(p_t)`` on logits.

    Parameters
    ----------
    logits
        Raw network outputs, any shape, e.g. ``(B, 1, Z, Y, X)``; any float dtype.
    target
        Same shape; ``bool`` or floats in ``[0, 1]`` (1 = vessel). No gradient flows to it.
    alpha
        Weight of the vessel class: ``alpha_t = alpha`` where ``y = 1`` and ``1 - alpha``
        where ``y = 0`` (Lin et al.), so ``alpha = 0.5`` weights both classes equally.
    gamma
        Focusing exponent (>= 0); ``gamma = 0`` gives ``alpha_t``-weighted BCE.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"``.

    Returns
    -------
    torch.Tensor
        ``float32``: a scalar, or the element-wise loss for ``reduction="none"``.

    Notes
    -----
    Computed as ``bce = binary_cross_entropy_with_logits(x, y)``, ``p_t = exp(-bce)``,
    ``loss = alpha_t * (1 - p_t) ** gamma * bce`` with ``1 - p_t`` evaluated as
    ``-expm1(-bce)``; all in float32 with autocast disabled. The gradient is the closed
    form of :class:`_FocalFn` (finite for saturated logits, where plain autograd gives
    ``nan`` for ``gamma < 1``).
    """
    if logits.shape != target.shape:
        raise ValueError(f"focal_loss: logits shape {tuple(logits.shape)} != target shape {tuple(target.shape)}.")
    if target.requires_grad:
        raise ValueError("focal_loss: target must not require grad (no gradient is computed for it).")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
    loss = _FocalFn.apply(logits, target, float(alpha), float(gamma))
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class FocalLoss(nn.Module):
    """The paper's focal loss on logits (``alpha = 0.5``, ``gamma = 0.2``); see :func:`focal_loss`.

    Parameters
    ----------
    alpha
        Vessel-class weight in ``[0, 1]`` (background gets ``1 - alpha``).
    gamma
        Focusing exponent, ``>= 0``.
    reduction
        ``"mean"`` (default), ``"sum"`` or ``"none"``.
    """

    def __init__(self, alpha: float = 0.5, gamma: float = 0.2, *, reduction: str = "mean") -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}.")
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
        self.alpha, self.gamma, self.reduction = float(alpha), float(gamma), reduction

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss of ``logits`` against ``target`` (same shape)."""
        return focal_loss(logits, target, alpha=self.alpha, gamma=self.gamma, reduction=self.reduction)

    def extra_repr(self) -> str:
        """The loss's parameters, for ``repr``."""
        return f"alpha={self.alpha}, gamma={self.gamma}, reduction={self.reduction!r}"


class BCELoss(nn.Module):
    """Mean binary cross-entropy on logits, in float32; accepts ``bool`` targets."""

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """BCE of ``logits`` against ``target`` (same shape)."""
        if logits.shape != target.shape:
            raise ValueError(f"BCELoss: logits shape {tuple(logits.shape)} != target shape {tuple(target.shape)}.")
        with torch.autocast(logits.device.type, enabled=False):
            return F.binary_cross_entropy_with_logits(*_upcast(logits, target))


class DiceBCELoss(nn.Module):
    """``dice_weight * soft_dice + (1 - dice_weight) * bce`` on logits.

    The soft Dice loss is ``1 - (2 sum(p y) + eps) / (sum(p) + sum(y) + eps)`` with
    ``p = sigmoid(logits)``, summed over all axes but the batch axis and averaged over the
    batch; ``eps = 1e-5`` makes an empty prediction of an empty mask score 0.

    Parameters
    ----------
    dice_weight
        Weight of the Dice term in ``[0, 1]``.
    eps
        Smoothing added to numerator and denominator.
    """

    def __init__(self, dice_weight: float = 0.5, *, eps: float = 1e-5) -> None:
        super().__init__()
        if not 0.0 <= dice_weight <= 1.0:
            raise ValueError(f"dice_weight must be in [0, 1], got {dice_weight!r}.")
        self.dice_weight, self.eps = float(dice_weight), float(eps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Combined loss of ``logits`` ``(B, ...)`` against ``target`` (same shape)."""
        if logits.shape != target.shape:
            raise ValueError(f"DiceBCELoss: logits shape {tuple(logits.shape)} != target shape {tuple(target.shape)}.")
        with torch.autocast(logits.device.type, enabled=False):
            x, y = _upcast(logits, target)
            p = torch.sigmoid(x).flatten(1)
            yf = y.flatten(1)
            inter = (p * yf).sum(1)
            dice = 1.0 - (2.0 * inter + self.eps) / (p.sum(1) + yf.sum(1) + self.eps)
            bce = F.binary_cross_entropy_with_logits(x, y)
            return self.dice_weight * dice.mean() + (1.0 - self.dice_weight) * bce

    def extra_repr(self) -> str:
        """The loss's parameters, for ``repr``."""
        return f"dice_weight={self.dice_weight}"


def build_loss(name: str, **kwargs) -> nn.Module:
    """Loss by name: ``"focal"`` (:class:`FocalLoss`), ``"dice_bce"`` (:class:`DiceBCELoss`), ``"bce"``.

    ``kwargs`` go to the loss constructor.
    """
    losses = {"focal": FocalLoss, "dice_bce": DiceBCELoss, "bce": BCELoss}
    if name not in losses:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(losses)}.")
    return losses[name](**kwargs)
