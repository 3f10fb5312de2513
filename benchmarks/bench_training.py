"""Training-step and inference time / peak memory of the paper's DAE and the default UNet3D.

Every configuration runs in a fresh subprocess, so peak memory is not polluted by earlier
runs. Peak memory of a run is measured as

* CPU: the peak resident set after the step (``VmHWM`` of ``/proc/self/status``, the
  high-water mark ``getrusage(RUSAGE_SELF).ru_maxrss`` also reports, but per address
  space: ``ru_maxrss`` inherits the parent's peak across fork + exec), minus the current
  resident set (``VmRSS``) just before it; the peak mark is reset to the current RSS
  before the step (``echo 5 > /proc/self/clear_refs``), since importing torch alone peaks
  well above where it settles. The baseline is taken after imports, model and optimizer
  creation and one warm-up step at 16^3 (which allocates gradients and Adam state and
  loads the oneDNN kernels), so the difference is the step's own memory: input and
  target, activations, gradient buffers, plus what the tensor-level estimate cannot see
  (oneDNN scratch space, allocator slack). The measuring processes run with
  ``MALLOC_MMAP_THRESHOLD_=131072`` (``--malloc default`` to not): glibc's default dynamic
  threshold keeps freed 1-32 MB blocks resident, which adds 25-60 % to the peak RSS of a
  training step (and saves some page-fault time); a separate section compares the two.
* CUDA: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` before the step.

Beside each measurement: :func:`angio.memory.estimate_memory` for the same step (its
voxel-dependent part, ``inputs + activations + workspace``, which is what the measurement
sees) with ``method="trace"`` and ``method="saved"``. The 384^3 extrapolation is the
measured bytes per voxel at the largest measured size times 384^3, plus parameters,
gradients and Adam state; the paper reports about 43 GB for its 384^3 training.

Usage::

    python benchmarks/bench_training.py            # 64^3, 96^3, 128^3 + inference at 128^3
    python benchmarks/bench_training.py --quick    # 64^3 only (CI smoke test)
    python benchmarks/bench_training.py --size 384 # the real thing, where memory allows
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAPER_BYTES = 43e9  # the paper's reported training memory at 384^3
GiB, MiB = 1024**3, 1024**2


# ----------------------------------------------------------------------------- worker side
def _status(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (``None`` where unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _rss_now() -> int:
    return _status("VmRSS") or 0


def _rss_peak() -> int:
    """Peak RSS of this address space: ``VmHWM``, falling back to ``ru_maxrss``.

    ``ru_maxrss`` would be the natural choice, but Linux carries the parent's peak across
    fork + exec into it (the parent has torch imported: ~300 MB), and it is not reset by
    ``clear_refs``; ``VmHWM`` is the same high-water mark for this address space only.
    """
    hwm = _status("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_baseline() -> int:
    """Current RSS, after resetting the peak-RSS mark to it (Linux ``clear_refs``).

    A transient peak from imports or warm-up then cannot mask the measured step's peak.
    """
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass  # older kernels: ru_maxrss then also covers earlier peaks (an overestimate for tiny runs)
    return _rss_now()


def _build(cfg: dict):
    import torch

    from angio.models import build_model

    torch.manual_seed(0)
    return build_model(cfg["model"], **cfg.get("kwargs", {}))


def _worker_train(cfg: dict) -> dict:
    import torch

    from angio.device import autocast, resolve_device
    from angio.models import FocalLoss

    device = resolve_device("auto")
    cuda = device.type == "cuda"
    kwargs = {**cfg.get("kwargs", {}), "checkpointing": cfg["checkpointing"]}
    model = _build({**cfg, "kwargs": kwargs}).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = FocalLoss()

    def data(n: int):
        x = torch.rand(1, model.in_channels, n, n, n, device=device)
        return x, (x > 0.9).float()

    def step(x, y) -> float:
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=False)
        with autocast(device, cfg["precision"]):
            loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    step(*data(16))  # warm-up: gradients, Adam state, kernels
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_baseline()
    x, y = data(cfg["size"])
    times = [step(x, y) for _ in range(cfg["steps"])]
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss_peak()) - base
    return {"time": min(times[1:]) if len(times) > 1 else times[0], "peak": peak, "device": str(device)}


def _worker_infer(cfg: dict) -> dict:
    import numpy as np
    import torch

    from angio.device import resolve_device
    from angio.inference import predict_volume

    model = _build(cfg)
    _randomize_bn(model)
    rng = np.random.default_rng(0)
    predict_volume(model, rng.random((32, 32, 32), dtype=np.float32), precision=cfg["precision"])  # warm-up
    vol = rng.random((cfg["size"],) * 3, dtype=np.float32)
    cuda = resolve_device("auto").type == "cuda"
    if cuda:
        model.cuda()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _rss_baseline()
    t0 = time.perf_counter()
    out = predict_volume(model, vol, patch_size=cfg["patch"], precision=cfg["precision"])
    elapsed = time.perf_counter() - t0
    peak = (torch.cuda.max_memory_allocated() if cuda else _rss_peak()) - base
    np.save(cfg["out"], out)
    return {"time": elapsed, "peak": peak, "device": "cuda" if cuda else "cpu"}


def _randomize_bn(model) -> None:
    """Non-trivial BatchNorm statistics, so that inference is not an identity-BN special case."""
    import torch

    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)


def _worker(arg: str) -> None:
    cfg = json.loads(arg)
    result = _worker_train(cfg) if cfg["kind"] == "train" else _worker_infer(cfg)
    print("RESULT " + json.dumps(result))


# ----------------------------------------------------------------------------- parent side
# glibc raises its mmap threshold dynamically (up to 32 MB) when large blocks are freed, after
# which freed 1-32 MB tensors stay resident; a fixed threshold returns them to the OS.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}
_MALLOC_ENV: dict[str, str] = dict(FIXED_MALLOC)


def _run(cfg: dict, timeout: float = 1800, malloc_env: dict[str, str] | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(_MALLOC_ENV if malloc_env is None else malloc_env)
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}


def _label(model: str, kwargs: dict) -> str:
    if model == "dae":
        return "DAE" + (" (unfused ReLU/pool)" if kwargs.get("fused_relu_pool") is False else "")
    return "UNet3D"


_MODELS: dict[str, object] = {}


def _model(model_name: str, kwargs: dict):
    """One model instance per configuration, so that estimate_memory's probe cache is reused."""
    from angio.models import build_model

    key = model_name + json.dumps(kwargs, sort_keys=True)
    if key not in _MODELS:
        _MODELS[key] = build_model(model_name, **kwargs)
    return _MODELS[key]


def _estimates(model_name: str, kwargs: dict, size: int, precision: str, ckpt: bool, training: bool = True):
    from angio.memory import estimate_memory

    model = _model(model_name, kwargs)
    out = {}
    for method in ("trace", "saved"):
        e = estimate_memory(model, size, precision=precision, checkpointing=ckpt, training=training, method=method)
        out[method] = e
    return out


def _fixed_bytes(model_name: str, kwargs: dict) -> int:
    from angio.memory import estimate_memory

    e = estimate_memory(_model(model_name, kwargs), 16)
    return e.parameters + e.gradients + e.optimizer_state


def _fmt_mib(n: float) -> str:
    return f"{n / MiB:8.0f}"


def bench_training(sizes: list[int], *, unfused: bool) -> list[dict]:
    """Measure a training step of each model, size, precision and checkpointing setting (one row each)."""
    from angio.device import resolve_device
    from angio.memory import InsufficientMemoryError, available_memory, check_fits

    device = str(resolve_device("auto"))
    configs = []
    for model_name, kwargs in (("dae", {}), ("unet", {})):
        for size in sizes:
            for precision in ("fp32", "bf16"):
                for ckpt in (False, True):
                    configs.append((model_name, kwargs, size, precision, ckpt))
    if unfused:
        for size in sizes:
            for precision in ("fp32", "bf16"):
                configs.append(("dae", {"fused_relu_pool": False}, size, precision, False))
    rows = []
    header = (
        f"{'model':<26}{'size':>6} {'prec':<5}{'ckpt':<5}{'step s':>8}{'meas MiB':>10}{'est MiB':>9}"
        f"{'est/meas':>9}{'saved MiB':>10}{'B/vox':>7}{'384^3 GiB':>10}{'/paper':>8}"
    )
    print("\nTraining step (forward + focal loss + backward + Adam, batch 1); memory = step's own peak")
    print(header)
    print("-" * len(header))
    for model_name, kwargs, size, precision, ckpt in configs:
        label = _label(model_name, kwargs)
        est = _estimates(model_name, kwargs, size, precision, ckpt)
        row = {"model": label, "size": size, "precision": precision, "ckpt": ckpt}
        try:
            check_fits(_model(model_name, kwargs), size, device, precision=precision, checkpointing=ckpt,
                       available=available_memory(device))
        except InsufficientMemoryError as exc:
            print(f"{label:<26}{size:>6} {precision:<5}{'yes' if ckpt else 'no':<5} skipped: {exc}")
            continue
        steps = 3 if size <= 64 else 2
        res = _run({"kind": "train", "model": model_name, "kwargs": kwargs, "size": size, "precision": precision,
                    "checkpointing": ckpt, "steps": steps})
        if "error" in res:
            print(f"{label:<26}{size:>6} {precision:<5}{'yes' if ckpt else 'no':<5} failed: {res['error']}")
            continue
        t, e = est["trace"], est["saved"]
        est_step = t.inputs + t.activations + t.workspace
        saved_step = e.inputs + e.activations + e.workspace
        bpv = res["peak"] / size**3
        extrap = bpv * 384**3 + _fixed_bytes(model_name, kwargs)
        row.update(time=res["time"], peak=res["peak"], est=est_step, saved=saved_step, bpv=bpv, extrap=extrap,
                   est384=_estimates(model_name, kwargs, 384, precision, ckpt)["trace"].peak_total)
        rows.append(row)
        print(
            f"{label:<26}{size:>6} {precision:<5}{'yes' if ckpt else 'no':<5}{res['time']:8.2f}"
            f"{_fmt_mib(res['peak']):>10}"
            f"{_fmt_mib(est_step):>9}{est_step / res['peak']:9.2f}{_fmt_mib(saved_step):>10}{bpv:7.0f}"
            f"{extrap / GiB:10.1f}{extrap / PAPER_BYTES:8.2f}",
            flush=True,
        )
    return rows


def _find(rows: list[dict], **keys) -> dict | None:
    for r in rows:
        if all(r.get(k) == v for k, v in keys.items()):
            return r
    return None


def print_ratios(rows: list[dict], sizes: list[int]) -> None:
    """Print the time and memory ratios of bf16 and checkpointing (same model and size) and the 384^3 extrapolation."""
    print("\nRatios (same model and size)")
    print(f"{'model':<26}{'size':>6}{'bf16/fp32 time':>16}{'bf16/fp32 mem':>15}{'ckpt/no time':>14}"
          f"{'ckpt mem saving':>17}{'bf16+ckpt mem/fp32':>20}")
    for label in sorted({r["model"] for r in rows}):
        for size in sizes:
            base = _find(rows, model=label, size=size, precision="fp32", ckpt=False)
            bf = _find(rows, model=label, size=size, precision="bf16", ckpt=False)
            ck = _find(rows, model=label, size=size, precision="fp32", ckpt=True)
            both = _find(rows, model=label, size=size, precision="bf16", ckpt=True)
            if not (base and bf):
                continue
            parts = [f"{bf['time'] / base['time']:16.2f}", f"{bf['peak'] / base['peak']:15.2f}"]
            if ck and both:
                saving = round(1 - ck["peak"] / base["peak"], 2) + 0.0  # no "-0%"
                parts += [f"{ck['time'] / base['time']:14.2f}", f"{saving:17.0%}",
                          f"{both['peak'] / base['peak']:20.2f}"]
            print(f"{label:<26}{size:>6}" + "".join(parts))
    print("\n384^3 training: extrapolated from the largest measured size (measured bytes/voxel x 384^3 + params,")
    print("grads, Adam) and the trace estimate; the paper reports ~43 GB.")
    largest = max(sizes)
    for r in rows:
        if r["size"] == largest:
            ok = "<= 16 GB" if r["extrap"] <= 16e9 else "> 16 GB"
            print(f"  {r['model']:<26}{r['precision']:<5}{'ckpt' if r['ckpt'] else '    '}  measured-extrapolated "
                  f"{r['extrap'] / 1e9:6.1f} GB, estimate {r['est384'] / 1e9:6.1f} GB, "
                  f"{r['extrap'] / PAPER_BYTES:5.2f} x paper  ({ok})")


def bench_allocator(size: int) -> None:
    """The paper's DAE under glibc's default (dynamic) mmap threshold vs a fixed one."""
    print(f"\nAllocator: DAE training step at {size}^3, glibc default vs MALLOC_MMAP_THRESHOLD_=131072")
    print(f"{'prec':<6}{'default s':>10}{'default MiB':>13}{'fixed s':>9}{'fixed MiB':>11}{'default/fixed mem':>19}")
    for precision in ("fp32", "bf16"):
        res = {}
        for name, env in (("default", {}), ("fixed", FIXED_MALLOC)):
            res[name] = _run({"kind": "train", "model": "dae", "kwargs": {}, "size": size, "precision": precision,
                              "checkpointing": False, "steps": 2}, malloc_env=env)
        if any("error" in r for r in res.values()):
            print(f"{precision:<6} failed: {res}")
            continue
        d, f = res["default"], res["fixed"]
        print(f"{precision:<6}{d['time']:10.2f}{_fmt_mib(d['peak']):>13}{f['time']:9.2f}{_fmt_mib(f['peak']):>11}"
              f"{d['peak'] / f['peak']:19.2f}", flush=True)


def bench_inference(size: int, patches: dict[str, int]) -> list[dict]:
    """Measure whole-volume and sliding-window inference at ``size^3`` (one row per model, mode and precision)."""
    import numpy as np

    from angio.device import resolve_device
    from angio.memory import InsufficientMemoryError, available_memory, check_fits, estimate_memory

    device = str(resolve_device("auto"))

    print(f"\nInference at {size}^3 (BatchNorm folded, eval); sliding window = exact tiling (no blending)")
    header = (f"{'model':<10}{'mode':<25}{'prec':<6}{'time s':>8}{'peak MiB':>10}{'max|diff|':>11}{'est MiB':>9}"
              f"{'384^3 GiB':>11}")
    print(header)
    print("-" * len(header))
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for model_name in ("dae", "unet"):
            for precision in ("fp32", "bf16"):
                whole = None
                for patch in (None, min(patches[model_name], size)):
                    mode = "whole volume" if patch is None else f"sliding {patch}^3"
                    if patch == size:
                        mode += " (1 window)"
                    try:
                        check_fits(_model(model_name, {}), patch or size, device, training=False, precision=precision,
                                   available=available_memory(device))
                    except InsufficientMemoryError as exc:
                        print(f"{model_name:<10}{mode:<25}{precision:<6} skipped: {exc}")
                        continue
                    out = str(Path(tmp) / f"{model_name}_{precision}_{patch}.npy")
                    res = _run({"kind": "infer", "model": model_name, "size": size, "precision": precision,
                                "patch": patch, "out": out})
                    if "error" in res:
                        print(f"{model_name:<10}{mode:<25}{precision:<6} failed: {res['error']}")
                        continue
                    pred = np.load(out)
                    if patch is None:
                        whole = pred
                    diff = "" if whole is None or patch is None else f"{np.abs(pred - whole).max():11.1e}"
                    model = _model(model_name, {})
                    n = size**3
                    if patch is None:
                        e = estimate_memory(model, size, training=False, precision=precision)
                        est = e.activations  # the input is in the baseline; the output is written after
                        extrap = res["peak"] / n * 384**3 + 4 * 384**3  # + the input volume
                    else:
                        e = estimate_memory(model, patch, training=False, precision=precision)
                        est = e.inputs + e.activations + 4 * n  # patch working set + output array
                        extrap = (res["peak"] - 4 * n) + 8 * 384**3  # same working set + input and output
                    print(f"{model_name:<10}{mode:<25}{precision:<6}{res['time']:8.2f}{_fmt_mib(res['peak']):>10}"
                          f"{diff:>11}{_fmt_mib(est):>9}{extrap / GiB:11.2f}", flush=True)
                    rows.append({"model": model_name, "mode": mode, "precision": precision, "size": size,
                                 "time_s": res["time"], "peak_mib": res["peak"] / 2**20,
                                 "max_abs_diff": None if not diff else float(diff), "est_mib": est / 2**20,
                                 "extrap_384_gib": extrap / GiB})
    print("384^3 GiB: whole volume = measured bytes/voxel x 384^3 + the input; sliding window = the same patch")
    print("working set (independent of the volume size) + the float32 input and output volumes.")
    return rows


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only 64^3 (CI smoke test)")
    parser.add_argument("--size", type=int, nargs="+", help="training sizes to measure (e.g. 384)")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference comparison")
    parser.add_argument("--malloc", choices=("fixed", "default"), default="fixed",
                        help="glibc mmap threshold in the measuring processes: fixed at 128 KiB (default) "
                             "or glibc's own")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return

    import torch

    from angio.device import resolve_device

    cuda = resolve_device("auto").type == "cuda"
    sizes = [64] if args.quick else (args.size or [64, 96, 128])
    if args.malloc == "default":
        _MALLOC_ENV.clear()
    malloc = " ".join(f"{k}={v}" for k, v in _MALLOC_ENV.items()) or "glibc default malloc"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"device {'cuda: ' + torch.cuda.get_device_name() if cuda else 'cpu'}, "
          f"measuring processes run with {malloc}")
    rows = bench_training(sizes, unfused=not args.quick)
    print_ratios(rows, sizes)
    if not args.quick and not cuda:
        bench_allocator(max(sizes))
    inference = []
    if not args.no_inference:
        infer_size = 64 if args.quick else max(128, max(args.size or [128]))
        # exact tiling: windows advance by patch - 2 * margin (DAE margin 8, UNet margin 48)
        patches = {"dae": 40 if args.quick else 72, "unet": 104 if args.quick else 112}
        if infer_size >= 384:  # two windows per axis: 2 * patch - 2 * margin >= 384
            patches = {"dae": 200, "unet": 240}
        inference = bench_inference(infer_size, patches)
    if args.json:
        import platform
        from datetime import datetime, timezone

        cpu = f"{platform.machine()} CPU, {os.cpu_count()} cores"
        device = torch.cuda.get_device_name() if cuda else cpu
        training = [{"model": r["model"], "size": r["size"], "precision": r["precision"], "ckpt": r["ckpt"],
                     "step_s": r["time"], "peak_mib": r["peak"] / 2**20, "est_mib": r["est"] / 2**20,
                     "bytes_per_voxel": r["bpv"], "extrap_384_gb": r["extrap"] / 1e9,
                     "ratio_to_paper_43gb": r["extrap"] / PAPER_BYTES} for r in rows]
        info = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": device,
                "torch": torch.__version__, "threads": torch.get_num_threads()}
        Path(args.json).write_text(json.dumps({"info": info, "rows": training, "inference": inference}, indent=1))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
