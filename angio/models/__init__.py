"""Networks and losses: the paper's denoising autoencoder and a residual 3D U-Net.

Network tensors are ``(B, C, Z, Y, X)``; every model returns logits (apply
``torch.sigmoid`` for probabilities) of the input's spatial size, and exposes
``spatial_divisor`` (spatial sizes must be multiples of it), ``in_channels``,
``out_channels``, ``checkpointing`` and ``receptive_radius`` (used by exact
sliding-window inference, :func:`angio.inference.predict_volume`).
"""

from __future__ import annotations

from torch import nn

from angio.models.dae import DenoisingAutoencoder3D, ReLUMaxPool3d
from angio.models.losses import BCELoss, DiceBCELoss, FocalLoss, build_loss, focal_loss
from angio.models.unet import ResidualBlock3D, UNet3D

__all__ = [
    "DenoisingAutoencoder3D",
    "UNet3D",
    "ResidualBlock3D",
    "ReLUMaxPool3d",
    "FocalLoss",
    "DiceBCELoss",
    "BCELoss",
    "focal_loss",
    "build_loss",
    "build_model",
    "count_parameters",
]

_MODELS = {"dae": DenoisingAutoencoder3D, "unet": UNet3D}


def build_model(name: str, **kwargs) -> nn.Module:
    """Model by name.

    Parameters
    ----------
    name
        ``"dae"`` (:class:`DenoisingAutoencoder3D`, the paper's model) or ``"unet"``
        (:class:`UNet3D`).
    **kwargs
        Constructor arguments, e.g. ``in_channels=2, checkpointing=True``.
    """
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(_MODELS)}.")
    return _MODELS[name](**kwargs)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
