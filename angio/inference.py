"""Inference: BatchNorm folding and whole-volume or sliding-window prediction.

Exact tiling
------------
In eval mode with BatchNorm (folded or not) the networks of :mod:`angio.models` are local:
an output voxel depends only on input voxels within a finite receptive field. Consider an
output block aligned to the pooling grid, ``[k d, k d + d - 1]`` along one axis, where
``d = model.spatial_divisor`` (8 for the paper's model). Propagating that interval back
through the layers gives the input interval it depends on; its overhang on either side is
``model.receptive_radius`` (7 voxels for the paper's model: ``[8k - 7, 8k + 14]``).

Run the network on a window ``[s, s + P)`` of the volume with ``s`` and ``P`` multiples of
``d``, so that every pooling grid in the window coincides with the whole-volume one. The
window's convolutions zero-pad at the window border, at every level, where the
whole-volume pass would see real data; an output block is unaffected by that padding if
its input interval lies inside the window. With ``margin = ceil(radius / d) * d`` (8 for
the paper's model) every block of ``[s + margin, s + P - margin)`` qualifies. At a window
side that coincides with the volume border, the window's zero padding *is* the whole-volume
pass's zero padding, at every level, so no margin is needed there: windows are clamped
inside the volume and their valid regions extended to the border. Windows advance by
``P - 2 margin`` and each output voxel is taken from exactly one window, so the stitched
result equals the whole-volume pass up to floating-point rounding (different convolution
algorithms for different sizes), with no blending. The price is recomputation: interior
windows compute ``(P / (P - 2 margin))^3`` times the voxels they deliver, so prefer
windows much larger than the margin (the U-Net's receptive field is larger: margin 48 at
depth 3). Normalisations that use statistics of the whole input (instance norm, group
norm) break locality; ``mode="exact"`` refuses them.

``mode="gaussian"`` is the common alternative (MONAI-style): windows overlap by
``overlap * P`` and predictions are averaged with a Gaussian importance map; it works
for any model but does not reproduce the whole-volume output.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

__all__ = ["check_patch_size", "fold_batchnorm", "is_local", "predict_volume", "receptive_margin"]

_CONVS = (nn.Conv3d, nn.ConvTranspose3d)
_NONLOCAL_NORMS = (nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


# ----------------------------------------------------------------------------- BN folding
def _fold_pair(conv: nn.Conv3d | nn.ConvTranspose3d, bn: nn.BatchNorm3d) -> None:
    """Fold eval-mode ``bn`` into ``conv`` in place (computed in float64)."""
    with torch.no_grad():
        var = bn.running_var.double()
        scale = torch.rsqrt(var + bn.eps)
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        w = conv.weight.double()
        if isinstance(conv, nn.ConvTranspose3d):
            # weight is (in, out // groups, k, k, k): output channel o = g * (out // groups) + j
            g = conv.groups
            w = w.view(g, w.shape[0] // g, w.shape[1], *w.shape[2:])
            w = w * scale.view(g, 1, -1, 1, 1, 1)
            w = w.view(conv.weight.shape)
        else:
            w = w * scale.view(-1, 1, 1, 1, 1)  # weight is (out, in // groups, k, k, k)
        bias = shift if conv.bias is None else conv.bias.double() * scale + shift
        conv.weight.copy_(w.to(conv.weight.dtype))
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def _fold_in(module: nn.Module) -> None:
    for child in module.children():
        _fold_in(child)
    if not isinstance(module, nn.Sequential):
        return
    names = list(module._modules)
    for prev, nxt in zip(names, names[1:]):
        conv, bn = module._modules[prev], module._modules[nxt]
        if (
            isinstance(conv, _CONVS)
            and type(bn) is nn.BatchNorm3d
            and bn.running_mean is not None
            and bn.running_var is not None
        ):
            _fold_pair(conv, bn)
            module._modules[nxt] = nn.Identity()


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Eval-mode copy of ``model`` with each BatchNorm3d folded into the convolution before it.

    A ``BatchNorm3d`` (with running statistics) that directly follows a ``Conv3d`` or
    ``ConvTranspose3d`` inside an ``nn.Sequential`` is replaced by ``nn.Identity`` and its
    eval-mode affine map ``(x - mean) / sqrt(var + eps) * gamma + beta`` is folded into the
    convolution: the per-output-channel scale multiplies dimension 0 of a ``Conv3d``
    weight ``(out, in, k, k, k)`` and dimension 1 of a ``ConvTranspose3d`` weight
    ``(in, out, k, k, k)``; the bias becomes ``(b - mean) * scale + beta``. Outputs match the
    unfolded eval-mode model to float rounding (~1e-6). The input model is not modified.

    Parameters
    ----------
    model
        Any module; pairs in ``nn.Sequential`` containers are folded (all models in
        :mod:`angio.models` keep convolution and BatchNorm together that way).

    Returns
    -------
    nn.Module
        The folded copy, in eval mode.
    """
    folded = copy.deepcopy(model).eval()
    _fold_in(folded)
    return folded


# ----------------------------------------------------------------------------- tiling
def receptive_margin(model: nn.Module) -> int:
    """Margin (voxels, a multiple of ``spatial_divisor``) that exact tiling discards at inner window sides.

    ``ceil(model.receptive_radius / d) * d`` with ``d = model.spatial_divisor``; 8 for the
    paper's autoencoder (radius 7), 48 for the default :class:`~angio.models.UNet3D`
    (radius 46). See the module docstring for the argument.
    """
    if not hasattr(model, "receptive_radius"):
        raise ValueError(
            f"{type(model).__name__} has no 'receptive_radius'; pass margin= to predict_volume (exact mode) "
            "or use mode='gaussian'."
        )
    d = int(getattr(model, "spatial_divisor", 1))
    return math.ceil(int(model.receptive_radius) / d) * d


Window = tuple[int, int, int, int]


def _exact_windows(n: int, p: int, margin: int) -> list[Window]:
    """``(start, stop, lo, hi)`` per window along an axis of length ``n``.

    The window ``[start, stop)`` supplies the output voxels ``[lo, hi)``; the ``[lo, hi)``
    partition ``[0, n)``.
    """
    if p >= n:
        return [(0, n, 0, n)]
    step = p - 2 * margin
    starts = [0]
    while starts[-1] + p < n:
        starts.append(min(starts[-1] + step, n - p))
    windows, covered = [], 0
    for s in starts:
        hi = n if s + p >= n else s + p - margin
        assert s == 0 or covered >= s + margin, "internal tiling error"
        windows.append((s, s + p, covered, hi))
        covered = hi
    return windows


def _overlap_windows(n: int, p: int, overlap: float, d: int) -> list[Window]:
    """``(start, stop, start, stop)`` for windows of size ``p`` overlapping by about ``overlap * p``."""
    if p >= n:
        return [(0, n, 0, n)]
    step = max(d, int(p * (1.0 - overlap)) // d * d)
    starts = list(range(0, n - p, step)) + [n - p]
    return [(s, s + p, s, s + p) for s in starts]


def _gaussian_map(shape: tuple[int, int, int]) -> np.ndarray:
    """Separable Gaussian importance map (sigma = P / 8 per axis), float32, minimum 1e-3 of the peak."""
    axes = []
    for p in shape:
        t = np.arange(p, dtype=np.float64) - (p - 1) / 2.0
        axes.append(np.exp(-0.5 * (t / (0.125 * p)) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    return np.maximum(w / w.max(), 1e-3).astype(np.float32)


def _nonlocal_layer(model: nn.Module) -> str | None:
    """Name of the first layer that normalises with statistics of its whole input (``None``: none)."""
    for name, m in model.named_modules():
        nonlocal_bn = isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is None
        if isinstance(m, _NONLOCAL_NORMS) or nonlocal_bn:
            return name or "the model"
    return None


def is_local(model: nn.Module) -> bool:
    """Whether the eval-mode output of ``model`` at a voxel depends only on a bounded neighbourhood.

    False for networks with instance or group normalisation (statistics of the whole input):
    their output depends on the window they are given, so they are applied over windows of
    the size they were trained on, blended (``mode="gaussian"``).
    """
    return _nonlocal_layer(model) is None


def _check_local(model: nn.Module) -> None:
    name = _nonlocal_layer(model)
    if name is not None:
        raise ValueError(
            f"mode='exact' needs a model whose eval-mode output is local, but {name} normalises with "
            "statistics of the whole input; use mode='gaussian' or patch_size=None."
        )


# ----------------------------------------------------------------------------- prediction
def _as_input(volume: np.ndarray | torch.Tensor, in_channels: int) -> torch.Tensor:
    """``(C, Z, Y, X)`` float32 CPU tensor (no copy for a float32 array)."""
    x = torch.as_tensor(volume)
    x = x.detach().to(device="cpu", dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[0] != in_channels:
        raise ValueError(
            f"predict_volume expects a (Z, Y, X) or ({in_channels}, Z, Y, X) volume for a model with "
            f"in_channels={in_channels}, got shape {tuple(volume.shape)}."
        )
    return x


def _patch3(patch_size: int | tuple[int, int, int], d: int, shape: tuple[int, ...]) -> tuple[int, int, int]:
    dims = (patch_size,) * 3 if isinstance(patch_size, int) else tuple(patch_size)
    if len(dims) != 3 or any(not isinstance(p, int) or p < d or p % d for p in dims):
        raise ValueError(f"patch_size must be a positive multiple of {d} (or 3 of them), got {patch_size!r}.")
    return tuple(min(p, n) for p, n in zip(dims, shape))  # type: ignore[return-value]


def _resolve_mode(model: nn.Module, mode: str) -> str:
    """``"exact"`` or ``"gaussian"``: ``"auto"`` resolved by :func:`is_local`."""
    if mode not in ("auto", "exact", "gaussian"):
        raise ValueError(f"mode must be 'auto', 'exact' or 'gaussian', got {mode!r}.")
    if mode == "auto":
        return "exact" if is_local(model) else "gaussian"
    return mode


def _exact_margin(model: nn.Module, margin: int | None) -> int:
    """The exact-tiling margin: :func:`receptive_margin` or ``margin``, a non-negative multiple of the divisor."""
    d = int(getattr(model, "spatial_divisor", 1))
    m = receptive_margin(model) if margin is None else int(margin)
    if m % d or m < 0:
        raise ValueError(f"margin must be a non-negative multiple of {d}, got {m}.")
    return m


def check_patch_size(
    model: nn.Module,
    patch_size: int | tuple[int, int, int],
    shape: tuple[int, int, int],
    *,
    mode: str = "auto",
    margin: int | None = None,
) -> tuple[int, int, int]:
    """The window :func:`predict_volume` uses for a volume of ``shape``, or a ``ValueError`` saying why not.

    Parameters
    ----------
    model
        The network (its ``spatial_divisor`` and, for exact tiling, ``receptive_radius``).
    patch_size
        Window size, int or ``(Z, Y, X)``: multiples of ``spatial_divisor``.
    shape
        Spatial size ``(Z, Y, X)`` of the input volume.
    mode, margin
        As :func:`predict_volume`.

    Returns
    -------
    tuple of int
        The window size, clipped to the volume padded to multiples of ``spatial_divisor``.

    Raises
    ------
    ValueError
        A size that is not a positive multiple of ``spatial_divisor``; in exact mode a
        non-local model, or a window that does not exceed ``2 * margin`` by at least the
        divisor on a side where it does not cover the volume; for a model with instance
        normalisation, a window with one voxel at the coarsest level.
    """
    d = int(getattr(model, "spatial_divisor", 1))
    padded = tuple(math.ceil(n / d) * d for n in shape)
    patch = _patch3(patch_size, d, padded)
    if _resolve_mode(model, mode) == "exact":
        _check_local(model)
        m = _exact_margin(model, margin)
        for p, n in zip(patch, padded):
            if p < n and p - 2 * m < d:
                raise ValueError(
                    f"patch_size {patch} is too small for exact tiling: each side must exceed 2 * margin "
                    f"= {2 * m} voxels by at least {d} (or cover the volume)."
                )
    elif _has_instance_norm(model) and math.prod(p // d for p in patch) < 2:
        raise ValueError(
            f"patch_size {patch} leaves one voxel at the network's coarsest level, where instance "
            f"normalisation needs more; use at least {2 * d}."
        )
    return patch


def _has_instance_norm(model: nn.Module) -> bool:
    """Whether ``model`` normalises per instance (statistics over space: a window needs > 1 voxel per level)."""
    return any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in model.modules())


def _batched(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def predict_volume(
    model: nn.Module,
    volume: np.ndarray | torch.Tensor,
    *,
    patch_size: int | tuple[int, int, int] | None = None,
    overlap: float = 0.25,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    progress: bool = False,
    mode: str = "auto",
    margin: int | None = None,
    mirror: bool = False,
) -> np.ndarray:
    """Vessel probabilities for a whole volume, in one pass or over sliding windows.

    Parameters
    ----------
    model
        A network from :mod:`angio.models` (or any fully convolutional logits model). It is
        not modified: inference runs on an eval-mode copy with BatchNorm folded
        (:func:`fold_batchnorm`).
    volume
        Network input, ``(Z, Y, X)`` or ``(C, Z, Y, X)``, values in ``[0, 1]``. Sizes that
        are not multiples of the model's ``spatial_divisor`` are zero-padded at the high
        end and the result is cropped back.
    patch_size
        ``None`` for one whole-volume pass; else the window size (int or ``(Z, Y, X)``,
        multiples of ``spatial_divisor``).
    overlap
        Fractional overlap of windows for ``mode="gaussian"`` (ignored by ``"exact"``,
        whose windows overlap by ``2 * margin``).
    batch_size
        Windows per forward call.
    device
        Where to run (default: the model's device); the volume and output stay on the CPU.
    precision
        ``"fp32"`` or ``"bf16"`` (autocast).
    progress
        Show a tqdm progress bar over the windows.
    mode
        ``"exact"``: non-blended tiling that reproduces the whole-volume output (see the
        module docstring); ``"gaussian"``: Gaussian-weighted blending; ``"auto"`` (default):
        ``"exact"`` for a local model, ``"gaussian"`` for one with instance or group
        normalisation (:func:`is_local`).
    margin
        Override the exact-mode margin in voxels (default :func:`receptive_margin`).
    mirror
        Mirror test-time augmentation: also predict the input mirrored along ``x`` (the
        last, left-right axis), mirror that prediction back and average the two
        probability volumes (twice the work). Valid when the views are mirror symmetric
        (:func:`angio.projection.mirror_symmetric`, e.g. the biplane ``[0, 90]``) and the
        model was trained with left-right mirroring, as the zoo's models were.

    Returns
    -------
    numpy.ndarray
        ``float32`` probabilities, ``(Z, Y, X)`` for a one-channel model, else
        ``(out_channels, Z, Y, X)``.
    """
    if mirror:
        kwargs = dict(patch_size=patch_size, overlap=overlap, batch_size=batch_size, device=device,
                      precision=precision, progress=progress, mode=mode, margin=margin)
        arr = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
        plain = predict_volume(model, arr, **kwargs)
        mirrored = predict_volume(model, np.ascontiguousarray(arr[..., ::-1]), **kwargs)
        return (plain + mirrored[..., ::-1]) * np.float32(0.5)
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}.")
    mode = _resolve_mode(model, mode)
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    d = int(getattr(model, "spatial_divisor", 1))
    cin = int(getattr(model, "in_channels", 1))
    cout = int(getattr(model, "out_channels", 1))
    x = _as_input(volume, cin)
    shape = tuple(x.shape[1:])
    padded = tuple(math.ceil(n / d) * d for n in shape)
    if padded != shape:
        x = F.pad(x[None], [v for n, p in zip(reversed(shape), reversed(padded)) for v in (0, p - n)])[0]

    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    net = fold_batchnorm(model).to(device)

    if patch_size is None:
        axes = [[(0, n, 0, n)] for n in padded]
    else:
        patch = check_patch_size(model, patch_size, shape, mode=mode, margin=margin)
        if mode == "exact":
            m = _exact_margin(model, margin)
            axes = [_exact_windows(n, p, m) for n, p in zip(padded, patch)]
        else:
            axes = [_overlap_windows(n, p, overlap, d) for n, p in zip(padded, patch)]
    windows = [(wz, wy, wx) for wz in axes[0] for wy in axes[1] for wx in axes[2]]

    blend = mode == "gaussian" and patch_size is not None and len(windows) > 1
    out = np.zeros((cout, *padded), dtype=np.float32)
    weight = np.zeros(padded, dtype=np.float32) if blend else None
    gauss = _gaussian_map(tuple(w[1] - w[0] for w in windows[0])) if blend else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    with torch.inference_mode(), tqdm(total=len(windows), disable=not progress, desc="predict_volume") as bar:
        for group in _batched(windows, batch_size):
            # windows of one batch must have one size (they do, except for whole-axis windows)
            extents = {tuple(w[1] - w[0] for w in win) for win in group}
            for chunk in [group] if len(extents) == 1 else [[win] for win in group]:
                _run_chunk(net, x, chunk, out, weight, gauss, device, autocast)
            bar.update(len(group))
    if blend:
        out /= weight
    result = out[:, : shape[0], : shape[1], : shape[2]]
    if padded != shape:
        result = np.ascontiguousarray(result)
    return result[0] if cout == 1 else result


def _run_chunk(
    net: nn.Module,
    x: torch.Tensor,
    chunk: list[tuple[Window, Window, Window]],
    out: np.ndarray,
    weight: np.ndarray | None,
    gauss: np.ndarray | None,
    device: torch.device,
    autocast: torch.autocast,
) -> None:
    """Predict a batch of same-sized windows.

    Their valid regions are written (exact), or accumulated with Gaussian weights (blending,
    when ``weight`` is given).
    """
    extents = [tuple(slice(w[0], w[1]) for w in win) for win in chunk]
    if len(extents) == 1:  # a view, no copy (the whole volume in a single-window pass)
        batch = x[(slice(None), *extents[0])][None].to(device)
    else:
        batch = torch.stack([x[(slice(None), *e)] for e in extents]).to(device)
    with autocast:
        logits = net(batch)
    del batch
    probs = logits.float().sigmoid_().cpu().numpy()
    for k, (win, ext) in enumerate(zip(chunk, extents)):
        if weight is not None:
            out[(slice(None), *ext)] += probs[k] * gauss
            weight[ext] += gauss
        else:
            local = tuple(slice(w[2] - w[0], w[3] - w[0]) for w in win)
            target = tuple(slice(w[2], w[3]) for w in win)
            out[(slice(None), *target)] = probs[k][(slice(None), *local)]
