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

from angio.atomic import atomic_path

__all__ = ["surface", "save_mesh", "Layer", "Panel", "ROW_COLORS", "surface_row", "scene_html", "embed_scene",
           "screenshot", "error_layers", "ERROR_COLORS", "GridPanel", "error_grid", "error_key", "TRUTH_COLOR",
           "fit_camera", "Framing", "framing", "VIEW_DIRECTION"]

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
                 shift_mm: float = 0.0, max_faces: int | None = 25_000, prefix: str = "") -> list[Layer]:
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
    prefix : str
        Put before each label (e.g. the model's name, when a scene holds several).

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
        layers.append(Layer(surf, ERROR_COLORS[name], 1.0, f"{prefix}{name} ({int(voxels.sum())} voxels)"))
    return layers


#: Colour of the ground truth's surface in :func:`error_grid`.
TRUTH_COLOR = "#444444"


@dataclass(frozen=True)
class GridPanel:
    """One place of an :func:`error_grid` scene: what it shows, where, and what it drew.

    ``label``: the panel's name (the ground truth's label, or a prediction's key);
    ``row`` and ``column``: its place (row 0 at the top); ``layers``: its surfaces, already
    moved to their place; ``voxels``: voxels per layer (``{"ground truth": n}``, or per error
    set of :data:`ERROR_COLORS`); ``truth``: whether this is the ground truth's panel.
    """

    label: str
    row: int
    column: int
    layers: tuple[Layer, ...]
    voxels: dict[str, int]
    truth: bool = False

    @property
    def triangles(self) -> dict[str, int]:
        """Triangles per layer, keyed as :attr:`voxels`."""
        return {k: int(layer.mesh.n_cells) for k, layer in zip(self.voxels, self.layers)}

    def summary(self) -> str:
        """One line: the panel's label and the triangles of each of its layers."""
        tri = self.triangles
        if self.truth:
            return f"{self.label}: {sum(tri.values())} triangles"
        return f"{self.label}: " + ", ".join(f"{k} {n} triangles" for k, n in tri.items())

    @property
    def place(self) -> str:
        """Where the panel is, in words (``"row 1, column 2"``, counted from the top left)."""
        return f"row {self.row + 1}, column {self.column + 1}"


def error_grid(predictions, truth: np.ndarray, *, spacing: Sequence[float], columns: int = 3,
               step_mm: float | None = None, level: float = 0.5, truth_label: str | None = "ground truth",
               max_faces: int | None = 25_000, out_dir: str | os.PathLike | None = None,
               prefix: str = "") -> list[GridPanel]:
    """Reconstructions coloured by their errors, laid out on a grid in one scene, beside the truth.

    Each prediction becomes the three surfaces of :func:`error_layers` (true positives, false
    positives, false negatives against ``truth``); the ground truth, when ``truth_label`` is
    given, takes the first place as one surface in :data:`TRUTH_COLOR`. Places fill rows of
    ``columns`` from the top left: columns run along ``x``, rows down along ``z`` (the
    scenes' camera looks along :data:`VIEW_DIRECTION`, ``z`` up), so the grid reads as it is
    listed, and the camera of :func:`scene_html` and :func:`screenshot` is fitted to all of it.

    Parameters
    ----------
    predictions : mapping of str to ndarray, shape (Z, Y, X)
        ``{label: probabilities or mask}``, in the order to show them.
    truth : ndarray of bool, shape (Z, Y, X)
        The ground-truth mask (the errors are counted against it).
    spacing : (dz, dy, dx)
        Voxel size in mm.
    columns : int
        Places per row.
    step_mm : float, optional
        Distance between neighbouring places (default: 1.3 times the volume's largest extent: the
        scenes' camera looks down at an angle, so closer places would overlap).
    level : float
        Threshold of the predictions.
    truth_label : str, optional
        Label of the ground truth's place; ``None`` leaves the truth out of the scene.
    max_faces : int, optional
        Decimation of each surface (see :func:`surface`).
    out_dir : path-like, optional
        Also write the truth's surface and each prediction's (its iso-surface at ``level``,
        unmoved) as ``<prefix>_<name>.stl`` and ``.vtp``, the name made of the label's letters,
        digits and dashes.
    prefix : str
        Put before the file names.

    Returns
    -------
    list of GridPanel
        One per place, the truth's first; each prediction's layers are labelled
        ``"<label>: <error set> (<n> voxels)"``.

    Raises
    ------
    ValueError
        If there is nothing to show, ``columns`` is not positive, or a prediction's shape
        differs from the truth's.
    """
    true = np.asarray(truth, dtype=bool)
    if true.ndim != 3:
        raise ValueError(f"truth must be a 3D [z, y, x] mask, got shape {true.shape}")
    if columns < 1:
        raise ValueError(f"columns must be positive, got {columns}")
    items = list(predictions.items())
    if not items and truth_label is None:
        raise ValueError("error_grid needs a prediction or the truth to show")
    for label, pred in items:
        if np.shape(pred) != true.shape:
            raise ValueError(f"prediction {label!r} has shape {np.shape(pred)}, the truth {true.shape}")
    step = float(step_mm) if step_mm is not None else 1.3 * max(n * h for n, h in zip(true.shape, spacing))

    def save(volume, name):
        if out_dir is None:
            return
        surf = surface(volume, level=level, spacing=spacing, max_faces=max_faces)
        if surf.n_points:
            stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
            for suffix in (".stl", ".vtp"):
                save_mesh(surf, Path(out_dir) / (f"{prefix}_{stem}{suffix}" if prefix else f"{stem}{suffix}"))

    panels = []
    places = ([(truth_label, None)] if truth_label is not None else []) + items
    for k, (label, pred) in enumerate(places):
        row, column = divmod(k, columns)
        shift = np.array([column * step, 0.0, -row * step])
        if pred is None:
            surf = surface(true.astype(np.float32), spacing=spacing, max_faces=max_faces)
            save(true.astype(np.float32), label)
            moved = surf.translate(tuple(shift)) if surf.n_points else surf
            panels.append(GridPanel(label, row, column, (Layer(moved, TRUTH_COLOR, 1.0, label),),
                                    {label: int(true.sum())}, truth=True))
            continue
        save(np.asarray(pred, dtype=np.float32), label)
        layers = error_layers(pred, true, spacing=spacing, level=level, max_faces=max_faces, prefix=f"{label}: ")
        layers = [Layer(la.mesh.translate(tuple(shift)) if la.mesh.n_points else la.mesh, la.color, la.opacity,
                        la.label) for la in layers]
        p = np.asarray(pred) >= level
        voxels = {"true positive": int((p & true).sum()), "false positive": int((p & ~true).sum()),
                  "false negative": int((~p & true).sum())}
        panels.append(GridPanel(label, row, column, tuple(layers), voxels))
    return panels


def error_key(truth_label: str | None = "ground truth") -> list[Layer]:
    """Legend layers (no meshes) of an :func:`error_grid` scene, for :func:`embed_scene`'s ``legend``."""
    key = [Layer(None, TRUTH_COLOR, 1.0, truth_label)] if truth_label else []
    return key + [Layer(None, color, 1.0, name) for name, color in ERROR_COLORS.items()]


#: Direction the scenes' camera looks along, ``(x, y, z)`` in mm space: a frontal view of the head
#: (along ``+y``, with ``z``, the volume's first axis, up, so the carotids enter from below)
#: turned 10 degrees about ``z`` and looking 20 degrees down, so that depth reads and a row of
#: :func:`surface_row` panels (side by side along ``x``) runs across the frame.
VIEW_DIRECTION = (np.sin(np.radians(10)) * np.cos(np.radians(20)), np.cos(np.radians(10)) * np.cos(np.radians(20)),
                  -np.sin(np.radians(20)))


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
    plotter.camera.focal_point = (0.0, 0.0, 0.0)
    plotter.camera.position = tuple(-np.asarray(VIEW_DIRECTION, float))
    plotter.camera.up = (0.0, 0.0, 1.0)
    fit_camera(plotter.camera, [la.mesh for la in layers if la.mesh is not None and la.mesh.n_points],
               aspect=window_size[0] / window_size[1])
    return plotter


#: The scenes' camera's vertical view angle: VTK's and vtk.js's default. The vtk.js export carries
#: the camera's position, focal point and up vector but not its view angle or projection, so
#: an interactive scene frames its meshes as the screenshot does only at this angle.
VIEW_ANGLE_DEG = 30.0


def fit_camera(camera, meshes: Sequence, *, aspect: float, margin: float = 0.05, max_points: int = 200_000) -> None:
    """Aim a perspective camera, keeping its direction, so the meshes fill the frame.

    PyVista's ``reset_camera`` frames the bounding *sphere* of the scene, which leaves a long,
    thin vessel tree (or a row of them) small in the middle of the frame. This centres the
    points' bounding box *as seen along the view direction* and backs the camera off until that
    box, plus ``margin`` on each side, fits the frame's width and height (at the box's middle
    depth; a deep scene's nearest points may reach further out).

    Parameters
    ----------
    camera : pyvista.Camera
        Its direction and up vector are kept; its view angle becomes :data:`VIEW_ANGLE_DEG`,
        and its focal point and position change.
    meshes : sequence of pyvista.PolyData
        What must be in view (empty meshes are ignored; none leaves the camera as it is).
    aspect : float
        Frame width / height in pixels.
    margin : float
        Free border as a share of the frame, on each side.
    max_points : int
        Points used (an even subsample of larger meshes).
    """
    pts = [np.asarray(m.points, dtype=np.float64) for m in meshes if m is not None and m.n_points]
    if not pts:
        return
    p = np.concatenate(pts)
    p = p[:: max(1, len(p) // max_points)]
    position, focal = np.asarray(camera.position, float), np.asarray(camera.focal_point, float)
    d = (focal - position) / np.linalg.norm(focal - position)
    up = np.asarray(camera.up, float)
    up = up - d * (up @ d)
    up /= np.linalg.norm(up)
    right = np.cross(d, up)
    u, v, w = p @ right, p @ up, p @ d
    centre = right * (u.min() + u.max()) / 2 + up * (v.min() + v.max()) / 2 + d * (w.min() + w.max()) / 2
    half_h = max((v.max() - v.min()) / 2, (u.max() - u.min()) / 2 / aspect, 1e-6) / (1 - 2 * margin)
    camera.view_angle = VIEW_ANGLE_DEG
    camera.focal_point = tuple(centre)
    camera.position = tuple(centre - d * (half_h / np.tan(np.radians(VIEW_ANGLE_DEG) / 2) + (w.max() - w.min()) / 4))
    camera.up = tuple(up)
    camera.reset_clipping_range()


@dataclass(frozen=True)
class Framing:
    """How a rendered scene fills its frame (see :func:`framing`).

    ``drawn``: share of the pixels that are not background; ``width`` and ``height``: the
    drawn pixels' bounding box as a share of the frame's width and height.
    """

    drawn: float
    width: float
    height: float


def framing(image: np.ndarray, *, background: Sequence[int] = (255, 255, 255), tolerance: int = 30) -> Framing:
    """Measure how a rendered scene fills its frame (a check that the camera is on the vessels).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3) or (H, W, 4)
        A rendering (:func:`screenshot`, or a browser's screenshot of a scene page).
    background : (r, g, b)
        The scene's background colour (white in this module's scenes).
    tolerance : int
        A pixel is drawn when a channel differs from the background by more than this.

    Returns
    -------
    Framing
        All zero for a blank image.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"image must be (H, W, 3) or (H, W, 4), got shape {img.shape}")
    drawn = (np.abs(img[..., :3].astype(int) - np.asarray(background, int)).max(axis=2) > tolerance)
    if not drawn.any():
        return Framing(0.0, 0.0, 0.0)
    rows, cols = np.nonzero(drawn)
    return Framing(float(drawn.mean()), float((cols.max() - cols.min() + 1) / drawn.shape[1]),
                   float((rows.max() - rows.min() + 1) / drawn.shape[0]))


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
