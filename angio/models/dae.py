"""The paper's 3D denoising autoencoder.

:class:`DenoisingAutoencoder3D` maps a back-projected volume (smeared MIPs in ``[0, 1]``)
of shape ``(B, C, Z, Y, X)`` to vessel-mask logits of shape ``(B, 1, Z, Y, X)``. Its
building blocks (shared with :mod:`angio.models.unet`) are in :mod:`angio.models.blocks`.
"""

from __future__ import annotations

import torch
from torch import nn

from angio.models.blocks import (
    Interval,
    ReLUMaxPool3d,
    SafeConv3d,
    check_input,
    checkpoint_call,
    rf_conv,
    rf_pool,
    rf_up,
)

__all__ = ["DenoisingAutoencoder3D"]


class DenoisingAutoencoder3D(nn.Module):
    """The paper's volumetric denoising autoencoder (Wu et al.), 360,481 parameters.

    Encoder: three stages ``Conv3d(k=3, p=1) -> BatchNorm3d -> ReLU -> MaxPool3d(2)`` with
    ``in_channels -> 32 -> 64 -> 128`` channels. Decoder: ``ConvTranspose3d(k=2, s=2) ->
    BatchNorm3d -> ReLU`` with ``128 -> 64 -> 32`` channels, then a final
    ``ConvTranspose3d(k=2, s=2)`` ``32 -> 1`` that gives the logits (apply
    ``torch.sigmoid`` for vessel probabilities).

    The paper's prose mentions max pooling after two of the encoder layers, but its decoder
    uses three stride-2 transposed convolutions, each doubling the size; for the output to
    have the input's size the encoder must therefore halve three times, so all three
    encoder stages pool here. With ``in_channels=1`` the parameter count is exactly the
    paper's 360,481, which confirms the layer list (pooling has no parameters).

    Parameters
    ----------
    in_channels
        Input channels (1 for a single back-projection).
    checkpointing
        Activation checkpointing per encoder/decoder stage (non-reentrant); trades one
        extra forward pass for memory. Gradients are unchanged.
    fused_relu_pool
        Use :class:`ReLUMaxPool3d` (identical math, less memory) instead of
        ``nn.ReLU`` + ``nn.MaxPool3d``. The state dict is the same either way.

    Notes
    -----
    Input ``(B, in_channels, Z, Y, X)`` with ``Z, Y, X`` multiples of 8; output logits
    ``(B, 1, Z, Y, X)``. Other sizes raise ``ValueError`` (naming the shape and the divisor).
    """

    spatial_divisor = 8
    out_channels = 1

    def __init__(self, in_channels: int = 1, *, checkpointing: bool = False, fused_relu_pool: bool = True) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or isinstance(in_channels, bool) or in_channels < 1:
            raise ValueError(f"in_channels must be a positive int, got {in_channels!r}.")
        self.in_channels = in_channels
        self.checkpointing = bool(checkpointing)
        self.fused_relu_pool = bool(fused_relu_pool)

        def down(cin: int, cout: int) -> nn.Sequential:
            tail = [ReLUMaxPool3d()] if fused_relu_pool else [nn.ReLU(inplace=True), nn.MaxPool3d(2)]
            return nn.Sequential(SafeConv3d(cin, cout, 3, padding=1), nn.BatchNorm3d(cout), *tail)

        def up(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose3d(cin, cout, 2, stride=2), nn.BatchNorm3d(cout), nn.ReLU(inplace=True)
            )

        self.encoder = nn.Sequential(down(in_channels, 32), down(32, 64), down(64, 128))
        self.decoder = nn.Sequential(up(128, 64), up(64, 32))
        self.head = nn.ConvTranspose3d(32, 1, 2, stride=2)

    @property
    def receptive_radius(self) -> int:
        """Input voxels beyond an aligned 8-voxel output block that the block depends on (7).

        Computed by propagating the inclusive interval ``[0, 7]`` back through the layers
        (transposed convolutions: ``[a // 2, b // 2]``; pooling: ``[2a, 2b + 1]``;
        3x3x3 convolutions: ``[a - 1, b + 1]``), which gives ``[-7, 14]``.
        """
        iv: Interval = (0, self.spatial_divisor - 1)
        for _ in range(3):  # head + two decoder stages
            iv = rf_up(iv)
        for _ in range(3):  # encoder stages, deepest first
            iv = rf_conv(rf_pool(iv))
        return max(-iv[0], iv[1] - (self.spatial_divisor - 1))

    def _stage(self, stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint_call(stage, (stage,), x)
        return stage(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, Z, Y, X)`` inputs to ``(B, 1, Z, Y, X)`` logits."""
        check_input(self, x, self.in_channels, self.spatial_divisor)
        for stage in self.encoder:
            x = self._stage(stage, x)
        for stage in self.decoder:
            x = self._stage(stage, x)
        return self.head(x)
