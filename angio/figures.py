"""Matplotlib figures shared by the notebooks (volumes, projections, curves, tables).

Images of ``[z, y, x]`` volumes are drawn with ``z`` (superior) up. Every function returns
the :class:`matplotlib.figure.Figure` it made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["orthogonal_mips", "projection_strip", "backprojection_grid", "loss_curves",
           "metric_vs_views", "prediction_panel", "table", "learning_curves", "per_case"]


def _plt():
    import matplotlib.pyplot as plt  # the notebook's inline backend, or a headless default

    return plt


def _image(ax, img: np.ndarray, title: str = "", cmap: str = "gray", vmin=None, vmax=None) -> None:
    ax.imshow(np.asarray(img, dtype=np.float32), cmap=cmap, origin="lower", vmin=vmin, vmax=vmax,
              interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def orthogonal_mips(volumes: Mapping[str, np.ndarray], *, size: float = 2.4):
    """One row per volume: maximum-intensity projections along y (frontal), x (lateral), z (axial).

    Parameters
    ----------
    volumes : mapping of str to ndarray, shape (N, N, N)
        Named ``[z, y, x]`` volumes (masks are shown as 0/1).
    """
    plt = _plt()
    fig, axes = plt.subplots(len(volumes), 3, figsize=(3 * size, len(volumes) * size), squeeze=False)
    for row, (name, v) in zip(axes, volumes.items()):
        v = np.asarray(v, dtype=np.float32)
        _image(row[0], v.max(axis=1), f"{name}: frontal (max over y)")
        _image(row[1], v.max(axis=2), f"{name}: lateral (max over x)")
        _image(row[2], v.max(axis=0), f"{name}: axial (max over z)")
    fig.tight_layout()
    return fig


def projection_strip(projections: np.ndarray, angles: Sequence[float], *, max_images: int = 5,
                     title: str = "", size: float = 2.2):
    """Up to ``max_images`` MIPs ``(n_views, N, N)`` spread over the schedule, with their angles."""
    plt = _plt()
    n = len(angles)
    pick = np.unique(np.linspace(0, n - 1, min(n, max_images)).round().astype(int))
    fig, axes = plt.subplots(1, len(pick), figsize=(len(pick) * size, size + 0.4), squeeze=False)
    for ax, k in zip(axes[0], pick):
        _image(ax, projections[k], f"{angles[k]:g}°")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def backprojection_grid(rows: Mapping[int, Mapping[str, np.ndarray]], *, z_index: int | None = None,
                        size: float = 2.0):
    """Back-projections per view count: for each row (views), each named volume's axial slice.

    Parameters
    ----------
    rows : mapping of int to mapping of str to ndarray (N, N, N)
        ``{n_views: {"sum": volume, "min": volume, ...}}``.
    z_index : int, optional
        Axial slice shown (default: the slice with the most signal in the first volume).
    """
    plt = _plt()
    names = list(next(iter(rows.values())))
    fig, axes = plt.subplots(len(rows), len(names), figsize=(len(names) * size, len(rows) * size),
                             squeeze=False)
    for r, (n_views, vols) in enumerate(rows.items()):
        for c, name in enumerate(names):
            v = np.asarray(vols[name])
            z = z_index if z_index is not None else int(np.argmax(v.reshape(v.shape[0], -1).sum(axis=1)))
            _image(axes[r, c], v[z], f"{name}, {n_views} views (z={z})", vmin=0, vmax=1)
    fig.tight_layout()
    return fig


def loss_curves(history: Mapping, *, title: str = ""):
    """Training loss (and validation loss and IoU when present) per epoch."""
    plt = _plt()
    rows = history["epochs"]
    epochs = [r["epoch"] + 1 for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(epochs, [r["train_loss"] for r in rows], "o-", label="train")
    if any(r.get("val_loss") is not None for r in rows):
        ax[0].plot(epochs, [r.get("val_loss") for r in rows], "s--", label="validation")
        ax[1].plot(epochs, [r.get("val_iou") for r in rows], "s--", color="C2")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("focal loss")
    ax[0].legend()
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("validation IoU")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def learning_curves(curves: Mapping[str, Sequence[Mapping]], *, selected: Mapping[str, int] | None = None):
    """Training loss and validation Dice against optimizer steps, one line per named run.

    Parameters
    ----------
    curves : mapping of str to sequence of mapping
        ``{name: history rows}`` (rows with ``global_step``, ``train_loss``, ``val_dice``).
    selected : mapping of str to int, optional
        ``{name: epoch}`` of the shipped weights, marked with a star.
    """
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    for k, (name, rows) in enumerate(curves.items()):
        steps = [r["global_step"] for r in rows]
        ax[0].plot(steps, [r["train_loss"] for r in rows], "-", color=f"C{k}", label=name)
        val = [(r["global_step"], r["val_dice"]) for r in rows if r.get("val_dice") is not None]
        if val:
            ax[1].plot(*zip(*val), "o-", color=f"C{k}", ms=3, label=name)
        # validations of an earlier stage of the run made with BatchNorm running statistics
        bn = [(r["global_step"], r["batchnorm_val_dice"]) for r in rows if r.get("batchnorm_val_dice") is not None]
        if bn:
            ax[1].plot(*zip(*bn), "x:", color=f"C{k}", ms=4, alpha=0.5,
                       label=f"{name} (BatchNorm running statistics)")
        if selected and name in selected:
            best = [r for r in rows if r["epoch"] == selected[name] and r.get("val_dice") is not None]
            if best:
                ax[1].plot(best[0]["global_step"], best[0]["val_dice"], "*", color=f"C{k}", ms=12)
    ax[0].set_xlabel("optimizer steps")
    ax[0].set_ylabel("training loss")
    ax[1].set_xlabel("optimizer steps")
    ax[1].set_ylabel("validation Dice (exact mask)")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def per_case(rows: Sequence[Mapping], *, metric: str = "dice", by: str = "method", goal: float | None = None):
    """Every case's ``metric`` per group (dots) with the group mean (bar): the spread, not only means."""
    plt = _plt()
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(str(r[by]), []).append(float(r[metric]))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(groups)), 3.2))
    for k, values in enumerate(groups.values()):
        ax.bar(k, np.mean(values), color=f"C{k}", alpha=0.35, width=0.6)
        ax.plot(np.full(len(values), k) + np.linspace(-0.15, 0.15, len(values)), values, "o", color=f"C{k}")
    if goal is not None:
        ax.axhline(goal, color="k", ls="--", lw=1, label=f"target {goal:g}")
        ax.legend(fontsize=8)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(list(groups), rotation=20, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def metric_vs_views(series: Mapping[str, Mapping[int, float]], *, metric: str = "IoU (%)"):
    """Metric against the number of views (log axis), one line per named series."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for name, points in series.items():
        xs = sorted(k for k, v in points.items() if v is not None)
        ax.plot(xs, [points[k] for k in xs], "o-", label=name)
    ax.set_xscale("log")
    ticks = sorted({k for p in series.values() for k in p})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("number of views")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def prediction_panel(columns: Mapping[str, np.ndarray], *, size: float = 2.4):
    """Frontal and lateral MIPs of named volumes side by side (input, prediction, truth...)."""
    plt = _plt()
    fig, axes = plt.subplots(2, len(columns), figsize=(len(columns) * size, 2 * size), squeeze=False)
    for c, (name, v) in enumerate(columns.items()):
        v = np.asarray(v, dtype=np.float32)
        _image(axes[0, c], v.max(axis=1), f"{name} (frontal)")
        _image(axes[1, c], v.max(axis=2), f"{name} (lateral)")
    fig.tight_layout()
    return fig


def table(rows: Sequence[Mapping], columns: Mapping[str, str], *, formats: Mapping[str, str] | None = None,
          caption: str = ""):
    """An HTML table (for notebooks and the book) from rows of dicts.

    Parameters
    ----------
    rows : sequence of mapping
        Table rows.
    columns : mapping of str to str
        ``{key: header}`` in display order.
    formats : mapping of str to str, optional
        ``{key: format spec}`` such as ``".1%"`` or ``".4f"``, applied to numbers (other values
        print as they are); ``None`` and NaN print as "—".
    caption : str
        Table caption.
    """
    import html as _html

    from IPython.display import HTML

    formats = formats or {}

    def cell(row, key):
        value = row.get(key)
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "—"
        spec = formats.get(key)
        numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
        return _html.escape(format(value, spec) if spec and numeric else str(value))

    head = "".join(f"<th>{_html.escape(h)}</th>" for h in columns.values())
    body = "".join("<tr>" + "".join(f"<td>{cell(r, k)}</td>" for k in columns) + "</tr>" for r in rows)
    cap = f"<caption>{_html.escape(caption)}</caption>" if caption else ""
    return HTML(f'<table class="angio-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
