"""A configurable residual 3D U-Net: going beyond the paper's plain autoencoder.

Input ``(B, in_channels, Z, Y, X)`` (e.g. 1 channel for the sum back-projection, 1 for the
min back-projection, or 2 for both stacked); output logits ``(B, out_channels, Z, Y, X)``.
Fully convolutional: any spatial size that is a multiple of ``2 ** depth`` works.
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
    hull,
    rf_conv,
    rf_pool,
    rf_up,
)

__all__ = ["UNet3D", "ResidualBlock3D"]

_NORMS = ("batch", "instance", "group")


def _norm(kind: str, channels: int, groups: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm3d(channels, affine=True)
    return nn.GroupNorm(groups, channels)


def _conv_norm(cin: int, cout: int, kernel: int, norm: str, groups: int) -> nn.Sequential:
    """``Conv3d`` (no bias: the norm's shift replaces it) followed by a normalisation layer."""
    return nn.Sequential(SafeConv3d(cin, cout, kernel, padding=kernel // 2, bias=False), _norm(norm, cout, groups))


class ResidualBlock3D(nn.Module):
    """Two ``3x3x3`` conv-norm layers with ReLU, optionally with a residual shortcut.

    ``residual=True``: ``relu(norm(conv(relu(norm(conv(x))))) + shortcut(x))`` where the
    shortcut is the identity, or a ``1x1x1`` conv-norm when the channel count changes.
    ``residual=False``: the plain double convolution of the original U-Net.

    Shapes: ``(B, in_channels, Z, Y, X) -> (B, out_channels, Z, Y, X)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, norm: str, groups: int, residual: bool) -> None:
        super().__init__()
        self.conv1 = _conv_norm(in_channels, out_channels, 3, norm, groups)
        self.conv2 = _conv_norm(out_channels, out_channels, 3, norm, groups)
        self.residual = residual
        if residual and in_channels != out_channels:
            self.shortcut: nn.Module | None = _conv_norm(in_channels, out_channels, 1, norm, groups)
        else:
            self.shortcut = nn.Identity() if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        h = self.conv2(torch.relu_(self.conv1(x)))
        if self.shortcut is not None:
            h = h + self.shortcut(x)
        return torch.relu_(h)


def _block_rf(iv: Interval) -> Interval:
    return rf_conv(rf_conv(iv))


class UNet3D(nn.Module):
    """Residual 3D U-Net with concatenation skips, max-pool down, transposed-conv up.

    Level ``l`` (``0 <= l <= depth``) has ``base_channels * 2 ** l`` channels; levels
    ``0 .. depth - 1`` have an encoder block (whose output is the skip) and a decoder block,
    level ``depth`` is the bottleneck. Down-sampling is ``MaxPool3d(2)`` (computed as
    :class:`~angio.models.blocks.ReLUMaxPool3d`, identical on the non-negative block outputs,
    but lighter on memory); up-sampling is ``ConvTranspose3d(kernel=2, stride=2)``
    followed by concatenation with the skip. A ``1x1x1`` convolution gives the logits.

    Parameters
    ----------
    in_channels
        Input channels: 1 (sum or min back-projection) or 2 (both stacked).
    out_channels
        Output channels (logits; 1 for a vessel mask).
    base_channels
        Channels at full resolution.
    depth
        Number of 2x down-samplings (1 to 6); spatial sizes must be multiples of ``2 ** depth``.
    residual
        Residual blocks (``True``) or plain double convolutions.
    norm
        ``"batch"``, ``"instance"`` or ``"group"``. Only ``"batch"`` gives a network whose
        eval-mode output is local (required by exact sliding-window inference); instance
        and group norm use statistics of the whole input.
    norm_groups
        Groups for ``norm="group"``; must divide ``base_channels``.
    checkpointing
        Activation checkpointing per encoder/bottleneck/decoder block (non-reentrant).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        base_channels: int = 16,
        depth: int = 3,
        residual: bool = True,
        norm: str = "batch",
        checkpointing: bool = False,
        *,
        norm_groups: int = 8,
    ) -> None:
        super().__init__()
        sizes = (("in_channels", in_channels), ("out_channels", out_channels), ("base_channels", base_channels))
        for name, value in sizes:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if not isinstance(depth, int) or isinstance(depth, bool) or not 1 <= depth <= 6:
            raise ValueError(f"depth must be an int in [1, 6], got {depth!r}.")
        if norm not in _NORMS:
            raise ValueError(f"norm must be one of {_NORMS}, got {norm!r}.")
        if norm == "group":
            if not isinstance(norm_groups, int) or norm_groups < 1 or base_channels % norm_groups:
                raise ValueError(
                    f"norm='group' needs norm_groups (a positive int) to divide base_channels; "
                    f"got norm_groups={norm_groups!r}, base_channels={base_channels}."
                )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.base_channels = base_channels
        self.depth = depth
        self.residual = bool(residual)
        self.norm = norm
        self.checkpointing = bool(checkpointing)

        ch = [base_channels * 2**level for level in range(depth + 1)]
        kw = {"norm": norm, "groups": norm_groups, "residual": self.residual}
        self.encoders = nn.ModuleList(
            ResidualBlock3D(in_channels if level == 0 else ch[level - 1], ch[level], **kw) for level in range(depth)
        )
        self.pool = ReLUMaxPool3d()
        self.bottleneck = ResidualBlock3D(ch[depth - 1], ch[depth], **kw)
        # ups[l] / decoders[l] belong to level l (applied deepest first).
        self.ups = nn.ModuleList(nn.ConvTranspose3d(ch[level + 1], ch[level], 2, stride=2) for level in range(depth))
        self.decoders = nn.ModuleList(ResidualBlock3D(2 * ch[level], ch[level], **kw) for level in range(depth))
        self.head = nn.Conv3d(ch[0], out_channels, 1)

    @property
    def spatial_divisor(self) -> int:
        """Spatial sizes must be multiples of this (``2 ** depth``)."""
        return 2**self.depth

    @property
    def receptive_radius(self) -> int:
        """Input voxels beyond an aligned ``2 ** depth`` output block that the block depends on.

        Computed by propagating the block's inclusive interval back through the decoder,
        the skips and the encoder (interval rules in :mod:`angio.models.blocks`).
        """
        d = self.spatial_divisor

        def encoder_out(level: int, iv: Interval) -> Interval:
            iv = _block_rf(iv)
            return iv if level == 0 else encoder_out(level - 1, rf_pool(iv))

        def decoder_out(level: int, iv: Interval) -> Interval:
            if level == self.depth:  # bottleneck
                return encoder_out(level - 1, rf_pool(_block_rf(iv)))
            iv = _block_rf(iv)
            return hull(encoder_out(level, iv), decoder_out(level + 1, rf_up(iv)))

        lo, hi = decoder_out(0, (0, d - 1))
        return max(-lo, hi - (d - 1))

    def _run(self, fn, modules, *args: torch.Tensor) -> torch.Tensor:
        if self.checkpointing and torch.is_grad_enabled():
            return checkpoint_call(fn, modules, *args)
        return fn(*args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, Z, Y, X)`` to logits ``(B, out_channels, Z, Y, X)``."""
        check_input(self, x, self.in_channels, self.spatial_divisor)
        skips = []
        for block in self.encoders:
            x = self._run(block, (block,), x)
            skips.append(x)
            x = self.pool(x)
        x = self._run(self.bottleneck, (self.bottleneck,), x)
        for level in reversed(range(self.depth)):
            up, block = self.ups[level], self.decoders[level]

            def stage(low: torch.Tensor, skip: torch.Tensor, up=up, block=block) -> torch.Tensor:
                return block(torch.cat([up(low), skip], dim=1))

            x = self._run(stage, (up, block), x, skips[level])
        return self.head(x)

    def extra_repr(self) -> str:
        """The constructor arguments, for ``repr``."""
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, base_channels={self.base_channels}, "
            f"depth={self.depth}, residual={self.residual}, norm={self.norm!r}, checkpointing={self.checkpointing}"
        )
