"""Matplotlib figures shared by the notebooks (volumes, projections, curves, tables).

Images of ``[z, y, x]`` volumes are drawn with ``z`` (superior) up. Every function returns
the :class:`matplotlib.figure.Figure` it made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from angio.mesh import ERROR_COLORS

__all__ = ["orthogonal_mips", "projection_strip", "backprojection_grid", "loss_curves",
           "metric_vs_views", "prediction_panel", "orthogonal_slices", "table", "learning_curves", "cpu_hours_curve",
           "per_case"]


def _plt():
    import matplotlib.pyplot as plt  # the notebook's inline backend, or a headless default

    return plt


def _titled(ax, title: str) -> None:
    """An image panel's frame: a small title, no ticks."""
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _image(ax, img: np.ndarray, title: str = "", cmap: str = "gray", vmin=None, vmax=None) -> None:
    ax.imshow(np.asarray(img, dtype=np.float32), cmap=cmap, origin="lower", vmin=vmin, vmax=vmax,
              interpolation="nearest")
    _titled(ax, title)


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


def learning_curves(curves: Mapping[str, Sequence[Mapping]], *, selected: Mapping[str, int] | None = None,
                    target: str = "exact mask", log_steps: bool = False):
    """Training loss and validation Dice against optimizer steps, one line per named run.

    Parameters
    ----------
    curves : mapping of str to sequence of mapping
        ``{name: history rows}`` (rows with ``global_step``, ``train_loss``, ``val_dice``).
    selected : mapping of str to int, optional
        ``{name: epoch}`` of the shipped weights, marked with a star.
    target : str
        What the validation Dice was measured against (the y label says it).
    log_steps : bool
        Logarithmic step axis (to show a short run beside a long one).
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
    ax[1].set_ylabel(f"validation Dice ({target})")
    for a in ax:
        if log_steps:
            a.set_xscale("log")
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cpu_hours_curve(rows: Sequence[Mapping], *, start_label: str = "start", target: str = "exact mask"):
    """Validation Dice against cumulative CPU-hours, one colour per CPU session.

    Parameters
    ----------
    rows : sequence of mapping
        Rows of :func:`angio.study.levers.cpu_hours_curve`: ``session``, ``epoch`` (``None``
        for a session's starting point), ``threads``, ``cpu_hours`` and ``val_dice``.
    start_label : str
        Legend of the first starting point (where the CPU sessions took over, e.g. after a GPU).
    target : str
        What the validation Dice was measured against (the y label says it).
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    sessions = list(dict.fromkeys(r["session"] for r in rows))
    for k, s in enumerate(sessions):
        mine = [r for r in rows if r["session"] == s]
        threads = mine[0]["threads"]
        ax.plot([r["cpu_hours"] for r in mine], [r["val_dice"] for r in mine], "-", color=f"C{k}", lw=1)
        epochs = [r for r in mine if r["epoch"] is not None]
        ax.plot([r["cpu_hours"] for r in epochs], [r["val_dice"] for r in epochs], "o", color=f"C{k}", ms=4,
                label=f"session {s} ({threads} thread{'s' if threads != 1 else ''})")
    starts = [r for r in rows if r["epoch"] is None]
    if starts:
        ax.plot(starts[0]["cpu_hours"], starts[0]["val_dice"], "s", mfc="none", mec="k", ms=8, label=start_label)
    trained = [r for r in rows if r["epoch"] is not None]
    if trained:
        best = max(trained, key=lambda r: r["val_dice"])
        ax.plot(best["cpu_hours"], best["val_dice"], "*", color="k", ms=12, label=f"best (epoch {best['epoch'] + 1})")
    ax.set_xlabel("CPU-hours (wall time × threads)")
    ax.set_ylabel(f"validation Dice ({target})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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


def headline(views: Mapping[str, np.ndarray], scenes: Mapping[str, np.ndarray], *, size: float = 3.4):
    """The book's opening figure: the views a model gets and the 3D reconstructions it makes.

    Parameters
    ----------
    views : mapping of str to ndarray, shape (H, W)
        Named 2D images (e.g. the frontal and lateral projections of a biplane C-arm), shown in
        grey with the first array axis up.
    scenes : mapping of str to ndarray, shape (H, W, 3), uint8
        Named renderings (:func:`angio.mesh.screenshot`), shown as they are.
    size : float
        Height of the row in inches (each panel keeps its own aspect ratio).

    Returns
    -------
    matplotlib.figure.Figure
    """
    plt = _plt()
    if not views and not scenes:
        raise ValueError("headline needs at least one view or scene")
    for name, img in views.items():
        if np.ndim(img) != 2:
            raise ValueError(f"view {name!r} must be a 2D image, got shape {np.shape(img)}")
    for name, img in scenes.items():
        if np.ndim(img) != 3 or np.shape(img)[2] not in (3, 4):
            raise ValueError(f"scene {name!r} must be an (H, W, 3) image, got shape {np.shape(img)}")
    panels = [*views.items(), *scenes.items()]
    widths = [np.shape(img)[1] / np.shape(img)[0] for _, img in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(size * sum(widths), size + 0.4),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    for ax, (name, img) in zip(axes[0], panels):
        if np.ndim(img) == 2:
            _image(ax, img, name)
        else:
            ax.imshow(np.asarray(img)[..., :3])
            _titled(ax, name)
            for spine in ax.spines.values():
                spine.set_visible(False)
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


def _volume(name: str, v) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim != 3:
        raise ValueError(f"{name} must be a 3D [z, y, x] volume, got shape {v.shape}")
    if v.size == 0:
        raise ValueError(f"{name} is empty (shape {v.shape})")
    return v


def _busiest_slices(mask: np.ndarray) -> tuple[int, int, int]:
    """Per axis, the index of the slice holding the most voxels of ``mask`` (the middle if it is empty)."""
    if not mask.any():
        return tuple(n // 2 for n in mask.shape)
    return tuple(int(np.argmax(mask.sum(axis=tuple(a for a in range(3) if a != k)))) for k in range(3))


def orthogonal_slices(prediction: np.ndarray, truth: np.ndarray, *, image: np.ndarray | None = None,
                      point: Sequence[int] | None = None, level: float = 0.5,
                      voxel_mm: float | Sequence[float] | None = None, title: str = "", size: float = 2.8):
    """Axial, coronal and sagittal slices through one voxel: a prediction's errors against its truth.

    Each voxel of a slice is coloured as a true positive (grey), false positive (red) or false
    negative (blue), the colours of :data:`angio.mesh.ERROR_COLORS`; true negatives are white.
    Slices are drawn with ``z`` (superior) up in the coronal and sagittal panels and ``y``
    (anterior) up in the axial panel; each panel's caption gives its counts.

    Parameters
    ----------
    prediction : ndarray, shape (Z, Y, X)
        Probabilities (a voxel is vessel where ``prediction >= level``) or a mask, ``[z, y, x]``.
    truth : ndarray, shape (Z, Y, X)
        The ground-truth mask (non-zero is vessel).
    image : ndarray, shape (Z, Y, X), optional
        The network input (e.g. the sum back-projection), shown in grey in a first row, on one
        grey scale for the three slices.
    point : (z, y, x) of int, optional
        The voxel the three slices go through. Default: along each axis, the slice holding the
        most vessel voxels of ``truth`` (the middle slice where ``truth`` is empty).
    level : float
        Threshold of ``prediction``.
    voxel_mm : float or (dz, dy, dx), optional
        Voxel size in mm: sets the panels' aspect ratio and is named in the title.
    title : str
        Put before the slice indices in the figure title.
    size : float
        Height of one panel in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One row of three error panels (below a row of ``image`` slices when given), in the
        order axial (``z`` fixed), coronal (``y`` fixed), sagittal (``x`` fixed).

    Raises
    ------
    ValueError
        If a volume is not 3D or is empty, the shapes differ, ``point`` is not three indices
        inside the volume, ``level`` is not finite or ``voxel_mm`` is not positive.
    """
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    plt = _plt()
    pred_v = _volume("prediction", prediction)
    true_v = _volume("truth", truth)
    if pred_v.shape != true_v.shape:
        raise ValueError(f"prediction shape {pred_v.shape} and truth shape {true_v.shape} differ")
    img_v = None if image is None else _volume("image", image)
    if img_v is not None and img_v.shape != true_v.shape:
        raise ValueError(f"image shape {img_v.shape} and truth shape {true_v.shape} differ")
    if not np.isfinite(level):
        raise ValueError(f"level must be finite, got {level}")
    spacing = (1.0, 1.0, 1.0)
    if voxel_mm is not None:
        spacing = tuple(float(h) for h in np.broadcast_to(np.asarray(voxel_mm, dtype=float), (3,)))
        if not all(np.isfinite(h) and h > 0 for h in spacing):
            raise ValueError(f"voxel_mm must be positive, got {voxel_mm}")
    pred = pred_v >= level
    true = true_v.astype(bool)
    if point is None:
        point = _busiest_slices(true)
    point = tuple(int(i) for i in point)
    if len(point) != 3 or not all(0 <= i < n for i, n in zip(point, true.shape)):
        raise ValueError(f"point {point} must be (z, y, x) indices inside the shape {true.shape}")
    z, y, x = point
    dz, dy, dx = spacing
    # (name, slice, aspect = height / width of one pixel): rows of each slice are its first remaining axis
    views = [(f"axial (z = {z})", np.s_[z, :, :], dy / dx), (f"coronal (y = {y})", np.s_[:, y, :], dz / dx),
             (f"sagittal (x = {x})", np.s_[:, :, x], dz / dy)]
    palette = np.array([(1.0, 1.0, 1.0)] + [to_rgb(c) for c in ERROR_COLORS.values()])  # TN, TP, FP, FN
    label = np.zeros(true.shape, np.uint8)
    label[pred & true] = 1
    label[pred & ~true] = 2
    label[~pred & true] = 3
    rows = 1 if img_v is None else 2
    widths = [true.shape[2] * dx, true.shape[2] * dx, true.shape[1] * dy]
    heights = [true.shape[1] * dy, true.shape[0] * dz, true.shape[0] * dz]
    fig, axes = plt.subplots(rows, 3, figsize=(sum(w / h for w, h in zip(widths, heights)) * size + 0.6,
                                               rows * (size + 0.4) + 0.6), squeeze=False, layout="constrained")
    for c, (name, sl, aspect) in enumerate(views):
        if img_v is not None:
            _image(axes[0, c], img_v[sl], f"input: {name}", vmin=float(img_v.min()), vmax=float(img_v.max()))
            axes[0, c].set_aspect(aspect)
        lab = label[sl]
        ax = axes[-1, c]
        ax.imshow(palette[lab], origin="lower", interpolation="nearest", aspect=aspect)
        _titled(ax, name)
        ax.set_xlabel(f"TP {int((lab == 1).sum())}, FP {int((lab == 2).sum())}, FN {int((lab == 3).sum())}",
                      fontsize=8)
    where = f"slices z = {z}, y = {y}, x = {x}"
    if voxel_mm is not None:
        where += (f", voxel {dz:g} mm" if dz == dy == dx else f", voxel {dz:g} × {dy:g} × {dx:g} mm")
    where += f", prediction ≥ {level:g}"
    fig.suptitle(f"{title}: {where}" if title else where.capitalize(), fontsize=10)
    fig.legend(handles=[Patch(facecolor=col, edgecolor="#666666", label=name) for name, col in ERROR_COLORS.items()],
               loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    return fig


def table(rows: Sequence[Mapping], columns: Mapping[str, str], *,
          formats: Mapping[str, str] | None = None, caption: str = "", entries: Sequence[str] = ()):
    """An HTML table (for notebooks and the book) from rows of dicts.

    Parameters
    ----------
    rows : sequence of mapping
        Table rows.
    columns : mapping of str to str
        ``{key: header}`` in display order (the study's presets for each kind of table are
        :data:`angio.study.tables.PRESETS`, shown with :func:`angio.study.tables.table`).
    formats : mapping of str to str, optional
        ``{key: format spec}`` such as ``".1%"`` or ``".4f"``, applied to numbers (other values
        print as they are); ``None`` and NaN print as "—".
    caption : str
        Table caption.
    entries : sequence of str
        The model-zoo entries whose records (or re-measured weights) the rows come from. A
        table with entries is one of the study's results: it is marked ``angio-result`` and
        names them in ``data-entries``, which the tests check against the zoo (no result may
        come from a run shorter than its recipe). Leave it empty for anything else.

    Raises
    ------
    ValueError
        An entry name that is empty or holds white space.
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
    names = list(dict.fromkeys(str(e) for e in entries))
    if any(not n or any(c.isspace() for c in n) for n in names):
        raise ValueError(f"entry names must be non-empty words, got {names}")
    marks = (' class="angio-table angio-result" data-entries="' + _html.escape(" ".join(names), quote=True) + '"'
             if names else ' class="angio-table"')
    return HTML(f"<table{marks}>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
