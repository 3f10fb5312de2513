"""Networks and losses: the paper's denoising autoencoder and a residual 3D U-Net.

Network tensors are ``(B, C, Z, Y, X)``; every model returns logits (apply
``torch.sigmoid`` for probabilities) of the input's spatial size, and exposes
``spatial_divisor`` (spatial sizes must be multiples of it), ``in_channels``,
``out_channels``, ``checkpointing`` and ``receptive_radius`` (used by exact
sliding-window inference, :func:`angio.inference.predict_volume`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from angio.models.blocks import ReLUMaxPool3d, SafeConv3d
from angio.models.dae import DenoisingAutoencoder3D
from angio.models.losses import BCELoss, DiceBCELoss, FocalLoss, build_loss, focal_loss
from angio.models.unet import ResidualBlock3D, UNet3D

__all__ = [
    "DenoisingAutoencoder3D",
    "UNet3D",
    "ResidualBlock3D",
    "ReLUMaxPool3d",
    "SafeConv3d",
    "FocalLoss",
    "DiceBCELoss",
    "BCELoss",
    "focal_loss",
    "build_loss",
    "build_model",
    "count_parameters",
    "set_output_prior",
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


def set_output_prior(model: nn.Module, probability: float) -> nn.Module:
    """Set the output layer's bias so an untrained model predicts ``probability`` everywhere.

    The bias of ``model.head`` becomes ``log(p / (1 - p))`` (Lin et al., "Focal loss for dense
    object detection", 2017); the weights keep their initialization. Returns the model.
    """
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {probability!r}.")
    head = getattr(model, "head", None)
    if head is None or getattr(head, "bias", None) is None:
        raise ValueError(f"{type(model).__name__} has no output layer `head` with a bias.")
    with torch.no_grad():
        head.bias.fill_(math.log(probability / (1.0 - probability)))
    return model
