"""Surface meshes of vessel volumes: marching cubes, STL/VTP files, interactive HTML scenes.

Meshes are :class:`pyvista.PolyData` with points in millimetres in ``(x, y, z)`` order (the
order every mesh tool expects), built from ``[z, y, x]`` volumes with
:func:`skimage.measure.marching_cubes`.

Interactive scenes for the offline HTML book are standalone vtk.js pages exported by
``plotter.trame.export_html`` and embedded in an ``<iframe srcdoc=...>``: they need no server,
no network and no widget manager (PyVista's ``html`` notebook backend loads its viewer from a
CDN and renders blank offline). Each page inlines about 1 MB of viewer code, so a book page
should hold one scene, with decimated meshes. The export carries the meshes and the camera
only, not 2D overlays such as a legend or text: :func:`embed_scene` therefore draws the
layers' labels as an HTML key under the scene, while :func:`screenshot` draws a legend.

PyVista is imported lazily; rendering off screen needs EGL/Mesa on Linux (``make setup``
installs it) and ``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``, which this module sets
when unset.
"""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["surface", "save_mesh", "Layer", "Panel", "ROW_COLORS", "surface_row", "scene_html", "embed_scene",
           "screenshot", "error_layers", "ERROR_COLORS"]

os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")


def _pv():
    import pyvista

    pyvista.OFF_SCREEN = True
    return pyvista


def surface(volume: np.ndarray, *, level: float = 0.5,
            spacing: Sequence[float] = (1.0, 1.0, 1.0), origin: Sequence[float] = (0.0, 0.0, 0.0),
            max_faces: int | None = None):
    """Iso-surface of a volume by marching cubes.

    Parameters
    ----------
    volume : ndarray, shape (Z, Y, X)
        Probabilities, fractions or a boolean mask (``[z, y, x]``).
    level : float
        Iso-value (0.5: the metrics' threshold; for a mask, the boundary).
    spacing : (dz, dy, dx)
        Voxel size in mm.
    origin : (z, y, x)
        Position of voxel ``[0, 0, 0]`` in mm.
    max_faces : int, optional
        Decimate to about this many triangles (for light HTML scenes).

    Returns
    -------
    pyvista.PolyData
        Triangles with points ``(x, y, z)`` in mm; empty when the volume never crosses
        ``level``.
    """
    from skimage.measure import marching_cubes

    pv = _pv()
    v = np.asarray(volume, dtype=np.float32)
    if v.ndim != 3:
        raise ValueError(f"volume must be 3D [z, y, x], got shape {v.shape}")
    if v.size == 0 or float(v.max()) < level:
        return pv.PolyData()
    padded = np.pad(v, 1, constant_values=min(float(v.min()), level - 1.0))  # closed surfaces
    verts, faces, _, _ = marching_cubes(padded, level=level, spacing=tuple(spacing))
    verts = verts - np.asarray(spacing) + np.asarray(origin)
    cells = np.hstack([np.full((len(faces), 1), 3), faces]).astype(np.int64).ravel()
    mesh = pv.PolyData(np.ascontiguousarray(verts[:, ::-1]), cells)
    if max_faces is not None and mesh.n_cells > max_faces:
        mesh = mesh.decimate(1.0 - max_faces / mesh.n_cells)
    return mesh


def save_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write a mesh as ``.stl`` or ``.vtp`` (by suffix), atomically (temp file + rename)."""
    from angio.atomic import atomic_path

    path = Path(path)
    if path.suffix.lower() not in (".stl", ".vtp"):
        raise ValueError(f"{path}: mesh files must end in .stl or .vtp")
    with atomic_path(path, keep_suffix=True) as tmp:
        mesh.save(tmp)
    return path


@dataclass(frozen=True)
class Layer:
    """One mesh of a scene, with its colour (name or hex), opacity and legend label."""

    mesh: object
    color: str = "crimson"
    opacity: float = 1.0
    label: str = ""


@dataclass(frozen=True)
class Panel:
    """A named volume to show: ``key`` names its files, ``label`` is what readers see."""

    key: str
    label: str
    volume: np.ndarray


#: Colours of :func:`surface_row`, in order (the first, grey, for a ground truth).
ROW_COLORS = ("#444444", "crimson", "darkorange", "royalblue")


def surface_row(panels: Sequence[Panel], *, spacing: Sequence[float], step_mm: float,
                out_dir: str | os.PathLike | None = None, prefix: str = "",
                colors: Sequence[str] = ROW_COLORS, max_faces: int | None = 25_000) -> list[Layer]:
    """Surfaces of several volumes side by side along ``x``, one :class:`Layer` each, in order.

    Parameters
    ----------
    panels : sequence of Panel
        The volumes (iso-surface at 0.5, see :func:`surface`) and their names.
    spacing : (dz, dy, dx)
        Voxel size in mm (the same for every volume).
    step_mm : float
        Shift along ``x`` between neighbouring surfaces (e.g. a bit more than the field of view).
    out_dir : path-like, optional
        Also write each non-empty surface, before it is shifted, as ``<prefix>_<key>.stl`` and
        ``.vtp`` (``<key>.stl`` without a prefix) in this folder.
    colors : sequence of str
        Colours, cycled.
    max_faces : int, optional
        Decimation of each surface (see :func:`surface`).

    Returns
    -------
    list of Layer
        Labelled with the panels' labels; an empty volume gives an empty layer.
    """
    layers = []
    for k, panel in enumerate(panels):
        surf = surface(panel.volume, spacing=spacing, max_faces=max_faces)
        if surf.n_points:
            if out_dir is not None:
                stem = f"{prefix}_{panel.key}" if prefix else panel.key
                for suffix in (".stl", ".vtp"):
                    save_mesh(surf, Path(out_dir) / f"{stem}{suffix}")
            surf = surf.translate((k * step_mm, 0, 0))
        layers.append(Layer(surf, colors[k % len(colors)], 1.0, panel.label))
    return layers


#: Colours of :func:`error_layers`: true positives, false positives, false negatives.
ERROR_COLORS = {"true positive": "#999999", "false positive": "crimson", "false negative": "royalblue"}


def error_layers(prediction: np.ndarray, truth: np.ndarray, *, spacing: Sequence[float], level: float = 0.5,
                 shift_mm: float = 0.0, max_faces: int | None = 25_000) -> list[Layer]:
    """A reconstruction coloured by its errors: true-positive, false-positive and false-negative surfaces.

    Parameters
    ----------
    prediction : ndarray, shape (Z, Y, X)
        Probabilities (thresholded at ``level``) or a mask.
    truth : ndarray of bool, shape (Z, Y, X)
        The ground-truth mask.
    spacing : (dz, dy, dx)
        Voxel size in mm.
    level : float
        Threshold of ``prediction``.
    shift_mm : float
        Shift along ``x`` (to place the scene beside another).
    max_faces : int, optional
        Decimation of each surface.

    Returns
    -------
    list of Layer
        Three layers labelled with :data:`ERROR_COLORS`' keys and their voxel counts; an empty
        set gives an empty layer (its label says ``0 voxels``).
    """
    pred = np.asarray(prediction) >= level
    true = np.asarray(truth, dtype=bool)
    if pred.shape != true.shape or pred.ndim != 3:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} must be the same 3D shape")
    sets = {"true positive": pred & true, "false positive": pred & ~true, "false negative": ~pred & true}
    layers = []
    for name, voxels in sets.items():
        surf = surface(voxels.astype(np.float32), spacing=spacing, max_faces=max_faces)
        if surf.n_points and shift_mm:
            surf = surf.translate((shift_mm, 0, 0))
        layers.append(Layer(surf, ERROR_COLORS[name], 1.0, f"{name} ({int(voxels.sum())} voxels)"))
    return layers


def _plotter(layers: Sequence[Layer], window_size: tuple[int, int], *, legend: bool = False):
    pv = _pv()
    plotter = pv.Plotter(off_screen=True, window_size=list(window_size))
    plotter.background_color = "white"
    labelled = False
    for layer in layers:
        if layer.mesh is not None and layer.mesh.n_points:
            plotter.add_mesh(layer.mesh, color=layer.color, opacity=layer.opacity,
                             smooth_shading=True, label=layer.label or None)
            labelled = labelled or bool(layer.label)
    if legend and labelled:  # a 2D overlay: drawn in screenshots, not carried by the HTML export
        size = (0.4, min(0.06 * len(layers), 0.5))
        box = plotter.add_legend(bcolor="white", border=True, face="rectangle", size=size, loc="upper left")
        box.SetPosition(1 - size[0] - 0.02, 1 - size[1] - 0.02)  # upper right ("upper right" places by height)
    plotter.view_isometric()
    plotter.reset_camera()  # framed on the meshes, not on an empty corner of the scene
    return plotter


def scene_html(layers: Sequence[Layer], *, window_size: tuple[int, int] = (800, 560)) -> str:
    """A standalone, offline vtk.js page showing the meshes; drag to rotate, scroll to zoom.

    The page holds no legend (the export drops 2D overlays): pass the same layers to
    :func:`embed_scene` as ``legend`` to show their labels beside it.
    """
    plotter = _plotter(layers, window_size)
    try:
        return plotter.trame.export_html(None).getvalue()
    finally:
        plotter.close()


def _key(layers: Sequence[Layer]) -> str:
    items = "".join(
        f'<span style="margin-right:1.2em;white-space:nowrap"><span style="display:inline-block;width:0.9em;'
        f'height:0.9em;margin-right:0.35em;vertical-align:-0.1em;background:{html.escape(layer.color, quote=True)};'
        f'opacity:{max(float(layer.opacity), 0.3):g};border:1px solid #888"></span>{html.escape(layer.label)}</span>'
        for layer in layers if layer.label)
    return f'<div class="angio-scene-key" style="font-size:0.9em;margin:0.3em 0">{items}</div>' if items else ""


def embed_scene(page: str, *, height: int = 560, title: str = "3D scene", legend: Sequence[Layer] = ()):
    """Wrap a :func:`scene_html` page for notebook/HTML-book display (an ``iframe srcdoc``).

    Parameters
    ----------
    page : str
        The page from :func:`scene_html`.
    height : int
        Height of the frame in CSS pixels.
    title : str
        The frame's accessible title.
    legend : sequence of Layer
        Layers whose colours and labels are listed under the frame (an HTML key; the vtk.js
        page itself cannot hold a legend). Layers without a label are left out; empty layers
        are listed, so that a label such as ``"false positive (0 voxels)"`` still shows.
    """
    from IPython.display import HTML

    return HTML(f'<div class="angio-scene"><iframe title="{html.escape(title)}" '
                f'srcdoc="{html.escape(page, quote=True)}" style="width:100%;height:{height}px;'
                f'border:1px solid #ddd" loading="lazy"></iframe>{_key(legend)}</div>')


def screenshot(layers: Sequence[Layer], *, window_size: tuple[int, int] = (800, 560),
               legend: bool = True) -> np.ndarray:
    """A static off-screen rendering of the meshes, ``(H, W, 3)`` uint8.

    With ``legend`` (the default), the labels of the non-empty labelled layers are drawn in a
    legend box at the upper right.
    """
    plotter = _plotter(layers, window_size, legend=legend)
    try:
        return plotter.screenshot(return_img=True)
    finally:
        plotter.close()
