"""Building blocks shared by the networks of :mod:`angio.models` (kept apart from the networks, as MONAI does).

* :class:`SafeConv3d`: ``nn.Conv3d`` that computes in float32, not bfloat16, where
  oneDNN's CPU bf16 kernel returns a wrong weight gradient (inputs of depth 2).
* :class:`ReLUMaxPool3d`: ``MaxPool3d(2)(ReLU(x))`` as one autograd function that saves the
  pooled output and a 1-byte in-window argmax instead of the full-resolution ReLU output and
  8-byte pooling indices. Outputs and gradients are identical to ``nn.ReLU`` followed by
  ``nn.MaxPool3d(2)``; the first, full-resolution stage dominates training memory, and
  with bf16 autocast this more than halves the measured peak of a training step.
* :func:`checkpoint_call`: non-reentrant activation checkpointing that does not update
  BatchNorm running statistics a second time when the stage is recomputed in backward.
* :func:`check_input`: the input-shape check of every network.
* receptive-field interval helpers (:func:`rf_conv`, :func:`rf_pool`, :func:`rf_up`,
  :func:`hull` on :data:`Interval`), used to compute the exact-tiling margin of
  :func:`angio.inference.predict_volume`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

__all__ = [
    "Interval",
    "ReLUMaxPool3d",
    "SafeConv3d",
    "check_input",
    "checkpoint_call",
    "hull",
    "rf_conv",
    "rf_pool",
    "rf_up",
]

#: An inclusive interval ``(first, last)`` of voxel indices along one axis.
Interval = tuple[int, int]


# ----------------------------------------------------------------------------- convolution
def _cpu_bf16_autocast(x: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and torch.is_autocast_enabled("cpu")
        and torch.get_autocast_dtype("cpu") == torch.bfloat16
    )


class SafeConv3d(nn.Conv3d):
    """``nn.Conv3d`` that leaves CPU bf16 autocast where oneDNN computes a wrong weight gradient.

    Measured with torch 2.13 (oneDNN 3.12, AVX-512 CPU): under ``torch.autocast("cpu",
    dtype=torch.bfloat16)``, the weight gradient of a ``3x3x3`` convolution whose input has
    depth (``Z``) 2 and enough channels (16 -> 32 and wider in our trials) is garbage: ``inf``/``NaN`` in 15% of random
    trials, a relative error up to ``1e38`` in the rest, against 2e-3 at every other depth
    tried (1, 3, 4, 6, 8). It meets a U-Net's bottleneck on small patches (a 32^3 patch at
    depth 4 is 2^3 there) and stopped bf16 training runs with a non-finite gradient norm.

    Such an input is tiny, so this layer computes it in float32 (autocast off; the output is
    float32 and the next layer casts it back). Everywhere else, and on other devices, it is
    ``nn.Conv3d``. Parameters and state-dict keys are those of ``nn.Conv3d``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` of shape ``(B, C_in, Z, Y, X)``."""
        if x.dim() == 5 and x.shape[2] <= 2 and _cpu_bf16_autocast(x):
            with torch.autocast("cpu", enabled=False):
                return super().forward(x.float())
        return super().forward(x)


# ----------------------------------------------------------------------------- fused ReLU + pool
def _window_base(spatial: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """Flat index of the first voxel of every 2x2x2 pooling window.

    Parameters
    ----------
    spatial
        Full-resolution spatial shape ``(Z, Y, X)`` (all even).

    Returns
    -------
    torch.Tensor
        ``int64`` of shape ``(Z // 2, Y // 2, X // 2)``: ``2 z Y X + 2 y X + 2 x``.
    """
    z, y, x = spatial
    bz = torch.arange(z // 2, device=device).mul_(2 * y * x).view(-1, 1, 1)
    by = torch.arange(y // 2, device=device).mul_(2 * x).view(1, -1, 1)
    bx = torch.arange(x // 2, device=device).mul_(2).view(1, 1, -1)
    return bz + by + bx


def _global_to_local(indices: torch.Tensor, spatial: tuple[int, int, int]) -> torch.Tensor:
    """Convert max-pool flat indices (consumed) to the position in the 2x2x2 window (``int8``).

    The code is ``4 dz + 2 dy + dx``; computed in place so that only one ``int64`` buffer of
    the pooled size is alive.
    """
    _, y, x = spatial
    off = indices.sub_(_window_base(spatial, indices.device))  # in {0, 1, X, X+1, YX, ...}
    local = torch.zeros(off.shape, dtype=torch.int8, device=off.device)
    local.add_(off >= y * x, alpha=4)
    off.remainder_(y * x)
    local.add_(off >= x, alpha=2)
    off.remainder_(x)
    local.add_(off.to(torch.int8))
    return local


# Channels per chunk when expanding the window positions back to ``int64`` flat indices in
# backward: bounds that transient to 1/4 of the pooled size for 32 channels.
_CHUNK_CHANNELS = 8


def _scatter_to_windows(grad: torch.Tensor, local: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Scatter the gradient of the pooled tensor back to the argmax voxels of each window.

    ``grad`` ``(B, C, Z/2, Y/2, X/2)`` is placed into a new zero tensor of the input ``shape``
    ``(B, C, Z, Y, X)``.
    """
    b, c, z, y, x = shape
    out = grad.new_zeros((b, c, z * y * x))
    base = _window_base((z, y, x), grad.device)
    for c0 in range(0, c, _CHUNK_CHANNELS):
        c1 = min(c, c0 + _CHUNK_CHANNELS)
        code = local[:, c0:c1].to(torch.int64)
        flat = (code >> 2).mul_(y * x)
        flat.add_(code.bitwise_and_(3) >> 1, alpha=x)  # dy * X (code is now 2 dy + dx)
        flat.add_(code.bitwise_and_(1)).add_(base)
        del code
        out[:, c0:c1].scatter_(2, flat.view(b, c1 - c0, -1), grad[:, c0:c1].reshape(b, c1 - c0, -1))
    return out.view(shape)


class _ReLUMaxPool3dFn(torch.autograd.Function):
    """``max_pool3d(relu(x), 2)`` saving the pooled output and 1-byte window positions."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pooled, indices = F.max_pool3d(x, 2, return_indices=True)
        # max and ReLU commute (ReLU is monotone), so pooling first is exact and 8x cheaper.
        pooled.relu_()
        local = _global_to_local(indices, tuple(x.shape[-3:]))
        del indices
        ctx.save_for_backward(pooled, local)
        ctx.in_shape = tuple(x.shape)
        return pooled

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        pooled, local = ctx.saved_tensors
        shape = ctx.in_shape
        # ReLU passes gradient only where its output is > 0; the routed voxel *is* the max.
        grad = torch.where(pooled > 0, grad, torch.zeros((), dtype=grad.dtype, device=grad.device))
        return _scatter_to_windows(grad, local, shape)


class ReLUMaxPool3d(nn.Module):
    """``MaxPool3d(kernel_size=2)(ReLU(x))`` with a small autograd footprint.

    Numerically identical (forward and gradients) to ``nn.ReLU()`` followed by
    ``nn.MaxPool3d(2)``, because ReLU is monotone and therefore commutes with max; the
    gradient is routed to the same voxel PyTorch's max-pool picks. What autograd keeps for
    backward is the pooled output (which the next convolution keeps anyway) plus one
    ``int8`` per pooled element, instead of the full-resolution ReLU output plus one
    ``int64`` per pooled element: for a 32-channel full-resolution stage that is
    ``32 / 8 = 4`` instead of ``4 * 32 + 8 * 32 / 8 = 160`` bytes per input voxel in fp32.

    Shapes: ``(B, C, Z, Y, X) -> (B, C, Z // 2, Y // 2, X // 2)``, all of ``Z, Y, X`` even.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ReLU then 2x2x2 max pooling."""
        if any(s % 2 for s in x.shape[-3:]):
            raise ValueError(f"ReLUMaxPool3d needs even spatial sizes, got input shape {tuple(x.shape)}.")
        if not (torch.is_grad_enabled() and x.requires_grad):
            return F.max_pool3d(x, 2).relu_()
        return _ReLUMaxPool3dFn.apply(x)


# ----------------------------------------------------------------------------- checkpointing
def _batchnorms(modules: Iterable[nn.Module]) -> list[nn.modules.batchnorm._BatchNorm]:
    found = []
    for module in modules:
        found.extend(
            m
            for m in module.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
        )
    return found


@contextlib.contextmanager
def _frozen_running_stats(norms: list[nn.modules.batchnorm._BatchNorm]) -> Iterator[None]:
    """Recompute BatchNorm in training mode (batch statistics) without changing running stats.

    ``momentum = 0`` makes the in-kernel update ``(1 - 0) * running + 0 * batch`` a no-op
    while keeping the op (and the tensors autograd saves, which checkpointing compares)
    identical to the original forward; ``num_batches_tracked`` is restored afterwards.
    """
    saved = [
        (m, m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms
    ]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, tracked in saved:
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


def checkpoint_call(fn: Callable[..., torch.Tensor], modules: Iterable[nn.Module], *args: torch.Tensor) -> torch.Tensor:
    """Run ``fn(*args)`` under non-reentrant activation checkpointing.

    Only ``args`` are kept for backward; the intermediate activations of ``fn`` are
    recomputed when the gradient reaches it. BatchNorm layers inside ``modules`` use batch
    statistics in the recomputation (as in the original forward) but do not update their
    running statistics a second time.

    Parameters
    ----------
    fn
        The stage to run (a module or a closure over modules).
    modules
        The modules ``fn`` uses (searched for BatchNorm layers).
    *args
        Tensor inputs of ``fn``, e.g. ``(B, C, Z, Y, X)``.
    """
    norms = _batchnorms(modules)
    return checkpoint(
        fn,
        *args,
        use_reentrant=False,
        context_fn=lambda: (contextlib.nullcontext(), _frozen_running_stats(norms)),
    )


# ----------------------------------------------------------------------------- validation, RF
def check_input(model: nn.Module, x: torch.Tensor, in_channels: int, divisor: int) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(B, in_channels, Z, Y, X)`` with sizes divisible by ``divisor``."""
    name = type(model).__name__
    if x.ndim != 5:
        raise ValueError(f"{name} expects a 5-D tensor (B, C, Z, Y, X), got shape {tuple(x.shape)}.")
    if x.shape[1] != in_channels:
        raise ValueError(f"{name} was built with in_channels={in_channels}, got input shape {tuple(x.shape)}.")
    bad = [s for s in x.shape[2:] if s % divisor or s == 0]
    if bad:
        raise ValueError(
            f"{name} needs every spatial size to be a positive multiple of {divisor} "
            f"(it pools {divisor.bit_length() - 1} times by 2), got input shape {tuple(x.shape)}."
        )


def rf_conv(iv: Interval, kernel: int = 3) -> Interval:
    """Input interval a 'same'-padded convolution of odd ``kernel`` needs for output interval ``iv``."""
    r = kernel // 2
    return iv[0] - r, iv[1] + r


def rf_pool(iv: Interval) -> Interval:
    """Input interval a 2x max pooling needs for output interval ``iv`` (inclusive ends)."""
    return 2 * iv[0], 2 * iv[1] + 1


def rf_up(iv: Interval) -> Interval:
    """Input interval a kernel-2 stride-2 transposed convolution needs for output interval ``iv``."""
    return iv[0] // 2, iv[1] // 2


def hull(*ivs: Interval) -> Interval:
    """Smallest interval containing all ``ivs``."""
    return min(i[0] for i in ivs), max(i[1] for i in ivs)
