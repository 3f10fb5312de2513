"""Memory estimates for training and inference of the volumetric networks, and a fit check.

How :func:`estimate_memory` works
---------------------------------
Parameters, gradients and optimizer state are exact: their byte counts are read off the
model (Adam keeps two states per parameter). Activation memory is *measured* on the CPU
with two small probe inputs (side ``s``, the smallest multiple of the model's
``spatial_divisor`` ``d`` that is at least 16 and ``2 d``, and side ``2 s``: 16^3 and 32^3
for the paper's model and the default U-Net) under the requested
autocast precision and checkpointing setting, and extrapolated linearly in the number of
voxels: a fully convolutional network's tensors are all proportional to the voxel count,
and the two probes separate that part from the voxel-independent part (autocast weight
copies, per-channel statistics, weight gradients being formed).

Two measurement methods:

``method="trace"`` (default)
    A :class:`~torch.utils._python_dispatch.TorchDispatchMode` sees every tensor each
    ATen op allocates - forward, loss, backward and the recomputation of checkpointed
    stages - and a finalizer on each storage sees it freed, so the probe records the exact
    number of live tensor bytes over time. ``activations`` is what is alive at the end of
    the forward pass (everything autograd saved, checkpoint inputs, the logits);
    ``workspace`` is the additional peak reached during backward (gradient buffers, the
    recomputed stage when checkpointing). In inference mode ``activations`` is the peak of
    the forward pass - in effect the largest pair of consecutive activations.
``method="saved"``
    The simpler rule: bytes autograd saves for backward
    (:func:`torch.autograd.graph.saved_tensors_hooks`, each distinct storage counted once)
    as ``activations``, plus the largest single tensor the forward pass produces as
    ``workspace``; for inference the largest ``input + output`` of a single op. It does
    not model the backward pass (for the paper's model the peak is in the first stage's
    backward, where BatchNorm's input, output gradient and input gradient - three
    full-resolution 32-channel tensors - coexist) nor the recomputation of checkpointed
    stages; it is kept for comparison.

Assumptions and limits: tensor bytes, plus an allowance for the float32 blocked-layout
buffers (channels padded to 16) a oneDNN convolution holds while it runs - for its
output in forward, for its output and input gradients in backward. That allowance sets
the peak of whole-volume inference and of bf16 training steps on CPU; on CUDA, where
cuDNN's workspace is not modelled, it is only a rough stand-in for it. Not included: allocator caching and
fragmentation, other scratch space, the CUDA context, the Python process itself, and
optimizer-step temporaries (parameter-sized, and they occur after the activations are
freed). CPU and CUDA autocast cast the same op families (convolutions) to low precision.

Validation (``benchmarks/bench_training.py``, peak RSS of fresh processes on CPU): with
glibc's mmap threshold fixed (``MALLOC_MMAP_THRESHOLD_=131072``) the measured peak of a
training step at 96^3-128^3 is within ~10 % of the estimate for both models, fp32 and
bf16, with and without checkpointing. With glibc's default *dynamic* threshold, freed
1-32 MB blocks stay resident and the peak RSS is 1.2-1.6x higher.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from angio.checks import size3
from angio.device import PRECISION_DTYPES, autocast
from angio.inference import fold_batchnorm
from angio.models.losses import build_loss

__all__ = ["MemoryEstimate", "InsufficientMemoryError", "estimate_memory", "available_memory", "check_fits"]

GiB = 1024**3
_OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "sgd": 0, "sgd_momentum": 1, "none": 0}


def _gib(n: float) -> str:
    """Human-readable size: MiB below 1 GiB (so small budgets never print as 0.00 GiB)."""
    return f"{n / 2**20:.0f} MiB" if n < GiB else f"{n / GiB:.1f} GiB"


def _shape_str(shape: tuple[int, int, int]) -> str:
    return f"{shape[0]}^3" if len(set(shape)) == 1 else "x".join(map(str, shape))


# ----------------------------------------------------------------------------- result type
@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak memory of one training step or one inference pass, in bytes.

    Attributes
    ----------
    parameters
        Parameters and buffers (e.g. BatchNorm running statistics) as stored.
    gradients
        Parameter gradients (0 for inference).
    optimizer_state
        Optimizer state (Adam: ``2 x`` the trainable parameters; 0 for inference).
    inputs
        The float32 input batch ``(B, C, Z, Y, X)`` and, when training, the float32 target.
    activations
        Training: tensors alive at the end of the forward pass (saved for backward,
        checkpoint inputs, logits). Inference: peak of the forward pass.
    workspace
        Training: extra bytes at the peak of the backward pass (gradient buffers,
        recomputed checkpointed stages). 0 for inference.
    peak_total
        Sum of the above.
    size, batch, precision, checkpointing, training, method
        What was estimated.
    bytes_per_voxel
        Voxel-proportional part of ``activations + workspace`` per input voxel (batch 1).
    """

    parameters: int
    gradients: int
    optimizer_state: int
    inputs: int
    activations: int
    workspace: int
    size: tuple[int, int, int]
    batch: int
    precision: str
    checkpointing: bool
    training: bool
    method: str
    bytes_per_voxel: float
    peak_total: int = field(init=False)

    def __post_init__(self) -> None:
        total = (self.parameters + self.gradients + self.optimizer_state + self.inputs + self.activations
                 + self.workspace)
        object.__setattr__(self, "peak_total", int(total))

    def describe(self) -> str:
        """One-line description of the configuration, e.g. ``'training at 384^3, batch 1, bf16 + checkpointing'``."""
        what = "training" if self.training else "inference"
        opts = self.precision + (" + checkpointing" if self.checkpointing else "")
        return f"{what} at {_shape_str(self.size)}, batch {self.batch}, {opts}"

    def __str__(self) -> str:
        rows = [
            ("parameters", self.parameters),
            ("gradients", self.gradients),
            ("optimizer state", self.optimizer_state),
            ("inputs", self.inputs),
            ("activations", self.activations),
            ("workspace", self.workspace),
        ]
        body = "\n".join(f"  {name:<16} {_gib(v):>11}" for name, v in rows)
        return (
            f"MemoryEstimate({self.describe()}, method={self.method!r})\n{body}\n"
            f"  {'peak total':<16} {_gib(self.peak_total):>11}  ({self.bytes_per_voxel:.0f} activation bytes/voxel)"
        )


class InsufficientMemoryError(MemoryError):
    """A run does not fit in the available memory.

    Attributes
    ----------
    required, available
        Bytes needed (estimated peak) and bytes available.
    alternatives
        ``(description, bytes_needed, fits)`` for each alternative that was tried.
    """

    def __init__(
        self, message: str, *, required: int, available: int, alternatives: list[tuple[str, int, bool]]
    ) -> None:
        super().__init__(message)
        self.required, self.available, self.alternatives = required, available, alternatives


# ----------------------------------------------------------------------------- tracing
_CONV_OPS = {
    "convolution", "_convolution", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "mkldnn_convolution", "convolution_overrideable",
}


def _padded_fp32_bytes(t: object) -> int:
    """Bytes of ``t`` as float32 with its channel axis (dim 1) padded to a multiple of 16."""
    if not isinstance(t, torch.Tensor) or t.ndim < 3 or t.shape[1] == 0:
        return 0
    return 4 * (-(-t.shape[1] // 16) * 16) * (t.numel() // t.shape[1])


class _LiveBytes(TorchDispatchMode):
    """Dispatch mode counting bytes of tensor storages allocated inside it that are still alive.

    A storage counts once (views share it); outputs that alias an input (in-place ops,
    views) are not new allocations. Storages listed in ``exclude`` (parameters, the probe
    input) are never counted. Also records the largest single op output and the largest
    ``inputs + outputs`` of one op (for ``method="saved"``).
    """

    def __init__(self, exclude: set[int]) -> None:
        super().__init__()
        self.exclude = exclude
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.max_output = 0
        self.max_pair = 0
        self._finalizers: list[weakref.finalize] = []

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        in_storages = {}
        for t in tree_flatten((args, kwargs))[0]:
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                in_storages[st.data_ptr()] = st.nbytes()
        out_bytes = 0
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key, nbytes = st.data_ptr(), st.nbytes()
            if nbytes == 0 or key in in_storages or key in self.exclude:
                continue
            out_bytes += nbytes
            if key not in self.live:
                self.live[key] = nbytes
                self.current += nbytes
                self._finalizers.append(weakref.finalize(st, self._free, key))
        self.peak = max(self.peak, self.current + self._backend_transient(func, args, out))
        self.max_output = max(self.max_output, out_bytes)
        activation_inputs = sum(n for k, n in in_storages.items() if k not in self.exclude)
        self.max_pair = max(self.max_pair, activation_inputs + out_bytes)
        return out

    @staticmethod
    def _backend_transient(func, args, out) -> int:
        """Allowance for memory a convolution kernel uses internally (no visible tensor).

        oneDNN (CPU) computes convolutions in a blocked layout with the channel count
        padded to a multiple of 16 and float32 accumulation. While the op runs it holds
        such a float32 buffer for the output (forward), and for the output gradient and, when
        it is computed, the input gradient (backward). Measured against peak RSS for the
        paper's model at 96^3: its first layer's forward (1 -> 32 channels) holds +110
        (fp32) / +129 (bf16) bytes per voxel beyond its output (allowance: 128); its last
        layer's backward (a 1-channel output gradient) +102 in bf16 (allowance: 80).
        """
        name = func.__name__.split(".")[0]
        if name in _CONV_OPS and isinstance(out, torch.Tensor):
            return _padded_fp32_bytes(out)
        if name == "convolution_backward":
            grad_output, inp, mask = args[0], args[1], args[-1]
            extra = _padded_fp32_bytes(grad_output)
            if isinstance(mask, (list, tuple)) and mask and mask[0]:
                extra += _padded_fp32_bytes(inp)
            return extra
        return 0

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        for f in self._finalizers:
            f.detach()


@contextlib.contextmanager
def _saved_bytes(exclude: set[int]) -> Iterator[dict[int, int]]:
    """Collect ``{storage: bytes}`` of the tensors autograd saves for backward."""
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in exclude:
            saved.setdefault(st.data_ptr(), st.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield saved


def _storage_keys(*tensors: torch.Tensor) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors}


class _Probe(NamedTuple):
    activations: int
    workspace: int


def _probe_training(model: nn.Module, side: int, cin: int, cout: int, precision: str, loss: str, method: str) -> _Probe:
    gen = torch.Generator().manual_seed(0)  # private: the global RNG stream is left alone
    x = torch.rand(1, cin, side, side, side, generator=gen)
    target = (torch.rand(1, cout, side, side, side, generator=gen) > 0.5).float()
    loss_fn = build_loss(loss)
    exclude = _storage_keys(x, target, *model.parameters(), *model.buffers())
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)  # gradients are accounted for exactly, not traced
    with _LiveBytes(exclude) as tracker, _saved_bytes(exclude) as saved:
        with autocast("cpu", precision):
            value = loss_fn(model(x), target)
        held, forward_max_output = tracker.current, tracker.max_output
        value.backward()
        del value
    if method == "saved":
        return _Probe(sum(saved.values()), forward_max_output)
    return _Probe(held, tracker.peak - held)


def _probe_inference(model: nn.Module, side: int, cin: int, precision: str, method: str) -> _Probe:
    x = torch.rand(1, cin, side, side, side, generator=torch.Generator().manual_seed(0))
    exclude = _storage_keys(x, *model.parameters(), *model.buffers())
    with torch.inference_mode(), _LiveBytes(exclude) as tracker:
        with autocast("cpu", precision):
            logits = model(x)
        probs = torch.sigmoid(logits.float())
        del logits, probs
    return _Probe(tracker.max_pair if method == "saved" else tracker.peak, 0)


class _Fit(NamedTuple):
    """``bytes = const + per_voxel * voxels`` for activations and workspace (batch 1)."""

    act_const: float
    act_per_voxel: float
    ws_const: float
    ws_per_voxel: float


def _linear(v1: int, y1: int, v2: int, y2: int) -> tuple[float, float]:
    slope = max((y2 - y1) / (v2 - v1), 0.0)
    return max(y1 - slope * v1, 0.0), slope


_FIT_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple, _Fit]] = weakref.WeakKeyDictionary()


def _probe_sides(model: nn.Module) -> tuple[int, int]:
    d = int(getattr(model, "spatial_divisor", 1))
    small = d * max(2, math.ceil(16 / d))
    return small, 2 * small


def _fit(
    model: nn.Module, *, in_channels: int, precision: str, checkpointing: bool, training: bool, loss: str, method: str
) -> _Fit:
    key = (in_channels, precision, checkpointing, training, loss, method)
    cache = _FIT_CACHE.setdefault(model, {})
    if key in cache:
        return cache[key]
    if training:
        probe_model = copy.deepcopy(model).cpu().train()
        if hasattr(probe_model, "checkpointing"):
            probe_model.checkpointing = checkpointing
    else:
        probe_model = fold_batchnorm(model).cpu()
    cout = int(getattr(model, "out_channels", 1))
    results = []
    for side in _probe_sides(model):
        if training:
            results.append((side**3, _probe_training(probe_model, side, in_channels, cout, precision, loss, method)))
        else:
            results.append((side**3, _probe_inference(probe_model, side, in_channels, precision, method)))
    (v1, p1), (v2, p2) = results
    fit = _Fit(*_linear(v1, p1.activations, v2, p2.activations), *_linear(v1, p1.workspace, v2, p2.workspace))
    cache[key] = fit
    return fit


def _in_channels(model: nn.Module, in_channels: int | None) -> int:
    if in_channels is not None:
        return int(in_channels)
    if hasattr(model, "in_channels"):
        return int(model.in_channels)
    for m in model.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
            return int(m.in_channels)
    raise ValueError("cannot infer the model's input channels; pass in_channels=.")


def _assemble(
    model: nn.Module, fit: _Fit, shape: tuple[int, int, int], *, in_channels: int, batch: int, precision: str,
    checkpointing: bool, training: bool, optimizer: str, method: str,
) -> MemoryEstimate:
    voxels = shape[0] * shape[1] * shape[2]
    trainable = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    stored = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    cout = int(getattr(model, "out_channels", 1))
    inputs = 4 * batch * voxels * (in_channels + (cout if training else 0))
    return MemoryEstimate(
        parameters=stored,
        gradients=trainable if training else 0,
        optimizer_state=_OPTIMIZER_STATES[optimizer] * trainable if training else 0,
        inputs=inputs,
        activations=int(fit.act_const + fit.act_per_voxel * voxels * batch),
        workspace=int(fit.ws_const + fit.ws_per_voxel * voxels * batch),
        size=shape,
        batch=batch,
        precision=precision,
        checkpointing=checkpointing,
        training=training,
        method=method,
        bytes_per_voxel=fit.act_per_voxel + fit.ws_per_voxel,
    )


def _validate(precision: str, optimizer: str, method: str, batch: int) -> None:
    if precision not in PRECISION_DTYPES:
        raise ValueError(f"precision must be one of {sorted(PRECISION_DTYPES)}, got {precision!r}.")
    if optimizer not in _OPTIMIZER_STATES:
        raise ValueError(f"optimizer must be one of {sorted(_OPTIMIZER_STATES)}, got {optimizer!r}.")
    if method not in ("trace", "saved"):
        raise ValueError(f"method must be 'trace' or 'saved', got {method!r}.")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int, got {batch!r}.")


def estimate_memory(
    model: nn.Module,
    size: int | tuple[int, int, int],
    *,
    in_channels: int | None = None,
    batch: int = 1,
    precision: str = "fp32",
    checkpointing: bool | None = None,
    training: bool = True,
    optimizer: str = "adam",
    loss: str = "focal",
    method: str = "trace",
) -> MemoryEstimate:
    """Estimate the peak memory of a training step or an inference pass.

    Parameters
    ----------
    model
        A fully convolutional network taking ``(B, C, Z, Y, X)``; not modified (probes run
        on a copy). Attributes ``spatial_divisor``, ``in_channels``, ``out_channels`` and
        ``checkpointing`` are used when present.
    size
        Spatial size in voxels: ``N`` for ``N^3`` or ``(Z, Y, X)``.
    in_channels
        Input channels (default: the model's).
    batch
        Batch size.
    precision
        ``"fp32"``, ``"bf16"`` or ``"fp16"`` autocast.
    checkpointing
        Activation checkpointing on/off (default: the model's current setting).
    training
        One training step (forward, loss, backward, optimizer step) if ``True``; a
        whole-volume inference pass with BatchNorm folded if ``False``.
    optimizer
        ``"adam"``/``"adamw"`` (2 states per parameter), ``"sgd_momentum"`` (1),
        ``"sgd"``/``"none"`` (0).
    loss
        Loss name for :func:`angio.models.build_loss` used in the probe.
    method
        ``"trace"`` (exact live-tensor tracing, default) or ``"saved"`` (saved tensors plus
        the largest forward output); see the module docstring.

    Returns
    -------
    MemoryEstimate
        Byte counts; ``print()`` it for a GiB summary.
    """
    shape = size3(size)
    _validate(precision, optimizer, method, batch)
    cin = _in_channels(model, in_channels)
    ckpt = bool(getattr(model, "checkpointing", False)) if checkpointing is None else bool(checkpointing)
    if ckpt and not hasattr(model, "checkpointing"):
        raise ValueError(
            f"{type(model).__name__} has no 'checkpointing' attribute; cannot estimate with checkpointing=True."
        )
    ckpt = ckpt and training
    fit = _fit(
        model, in_channels=cin, precision=precision, checkpointing=ckpt, training=training, loss=loss, method=method
    )
    return _assemble(
        model, fit, shape, in_channels=cin, batch=batch, precision=precision, checkpointing=ckpt,
        training=training, optimizer=optimizer, method=method,
    )


# ----------------------------------------------------------------------------- available memory
def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _cgroup_available() -> int | None:
    """Bytes left under the cgroup memory limit (v2, then v1), or ``None`` without a limit."""
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and usage is not None and limit < 1 << 60:
            return max(limit - usage, 0)
    return None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def available_memory(device: str | torch.device = "cpu") -> int:
    """Bytes of memory available for new tensors on ``device``.

    CUDA: free device memory (:func:`torch.cuda.mem_get_info`). CPU: ``MemAvailable`` from
    ``/proc/meminfo``, capped by the cgroup limit when one is set, falling back to
    ``os.sysconf`` (available physical pages).
    """
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free)
    if dev.type != "cpu":
        raise ValueError(f"available_memory supports 'cpu' and 'cuda' devices, got {str(dev)!r}.")
    candidates = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    if not candidates:
        candidates.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    return int(min(candidates))


# ----------------------------------------------------------------------------- fit check
def _alternatives(
    model: nn.Module, shape: tuple[int, int, int], opts: dict[str, Any], base: MemoryEstimate
) -> tuple[list[tuple[str, MemoryEstimate]], dict[str, Any]]:
    """Cheaper configurations to suggest (each with its estimate), and the cheapest option set."""
    out: list[tuple[str, MemoryEstimate]] = []
    can_ckpt = hasattr(model, "checkpointing") and base.training
    low = "bf16" if base.precision == "fp32" else base.precision
    combos = []
    if base.precision == "fp32":
        combos.append(("bf16", {"precision": "bf16"}))
    if can_ckpt and not base.checkpointing:
        combos.append(("checkpointing", {"checkpointing": True}))
        if base.precision == "fp32":
            combos.append(("bf16 + checkpointing", {"precision": "bf16", "checkpointing": True}))
    if base.batch > 1:
        combos.append(("batch 1", {"batch": 1}))
    for label, change in combos:
        out.append((label, estimate_memory(model, shape, **{**opts, **change})))
    cheapest = {"precision": low, "checkpointing": True if can_ckpt else opts.get("checkpointing"), "batch": 1}
    return out, cheapest


def _largest_patch(
    model: nn.Module, shape: tuple[int, int, int], opts: dict[str, Any], budget: int, extra: int
) -> tuple[int, MemoryEstimate] | None:
    """Largest cubic side whose estimate plus ``extra`` fits.

    The side is a multiple of the model's divisor, smaller than the volume (a patch as large
    as the volume is no alternative).
    """
    d = int(getattr(model, "spatial_divisor", 1))
    side = ((min(shape) - 1) // d) * d
    while side >= 2 * d:
        est = estimate_memory(model, side, **opts)
        if est.peak_total + extra <= budget:
            return side, est
        side -= d if side <= 8 * d else max(d, (side // 8 // d) * d)
    return None


def check_fits(
    model: nn.Module,
    size: int | tuple[int, int, int],
    device: str | torch.device = "cpu",
    *,
    available: int | None = None,
    headroom: float = 0.1,
    **options: Any,
) -> MemoryEstimate:
    """Check that a run fits in memory; raise :class:`InsufficientMemoryError` saying what would.

    Parameters
    ----------
    model, size
        As for :func:`estimate_memory`.
    device
        Where the run will happen (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    available
        Bytes available (default: :func:`available_memory` of ``device``); inject a value
        to plan for another machine.
    headroom
        Fraction of ``available`` kept free for what the estimate does not count.
    **options
        Keyword options of :func:`estimate_memory` (``precision``, ``checkpointing``,
        ``batch``, ``training``, ...).

    Returns
    -------
    MemoryEstimate
        The estimate, when ``peak_total <= (1 - headroom) * available``.

    Raises
    ------
    InsufficientMemoryError
        A :class:`MemoryError` whose message gives the estimated need, the available
        memory, and the estimate of each alternative tried (bf16, checkpointing, both,
        batch 1, patch training or sliding-window inference at the largest cubic patch
        that fits).
    """
    if not 0.0 <= headroom < 1.0:
        raise ValueError(f"headroom must be in [0, 1), got {headroom!r}.")
    shape = size3(size)
    est = estimate_memory(model, shape, **options)
    avail = int(available) if available is not None else available_memory(device)
    budget = int(avail * (1.0 - headroom))
    if est.peak_total <= budget:
        return est
    opts = {k: v for k, v in options.items() if k != "checkpointing"}
    opts["checkpointing"] = est.checkpointing
    alts, cheapest = _alternatives(model, shape, opts, est)
    tried = [(label, e.peak_total, e.peak_total <= budget) for label, e in alts]
    patch_opts = {**opts, **{k: v for k, v in cheapest.items() if v is not None}}
    if est.training:
        found = _largest_patch(model, shape, patch_opts, budget, 0)
        what = "patch training"
    else:
        # sliding-window inference also holds the whole input and the float32 output
        extra = est.inputs + 4 * est.batch * math.prod(shape) * int(getattr(model, "out_channels", 1))
        found = _largest_patch(model, shape, patch_opts, budget, extra)
        what = "sliding-window inference with patches"
    if found is not None:
        side, patch_est = found
        extra_bytes = 0 if est.training else extra
        ckpt_note = " + checkpointing" if patch_est.checkpointing else ""
        tried.append((f"{what} at {side}^3 ({patch_est.precision}{ckpt_note})",
                      patch_est.peak_total + extra_bytes, True))
    message = (
        f"{type(model).__name__} {est.describe()} needs an estimated {_gib(est.peak_total)}, but only "
        f"{_gib(budget)} is usable on {torch.device(device)} ({_gib(avail)} available, {headroom:.0%} headroom)."
    )
    fitting = [t for t in tried if t[2]]
    if fitting:
        message += " Options that fit: " + "; ".join(f"{label} needs {_gib(n)}" for label, n, _ in fitting) + "."
    else:
        message += " None of the alternatives fits"
        if tried:
            message += ": " + "; ".join(f"{label} needs {_gib(n)}" for label, n, _ in tried)
        message += "."
    raise InsufficientMemoryError(message, required=est.peak_total, available=avail, alternatives=tried)
