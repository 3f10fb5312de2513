"""Marching-cubes surfaces, mesh files and offline HTML scenes."""

import math

import numpy as np
import pytest

pv = pytest.importorskip("pyvista")

from angio.mesh import Layer, Panel, embed_scene, save_mesh, scene_html, surface, surface_row  # noqa: E402


def ball(n=32, r=10.0):
    """Anti-aliased ball: a linear ramp one voxel wide across the sphere of radius r."""
    c = (n - 1) / 2
    z, y, x = np.meshgrid(*[np.arange(n)] * 3, indexing="ij")
    dist = np.sqrt((z - c) ** 2 + (y - c) ** 2 + (x - c) ** 2)
    return np.clip(0.5 - (dist - r), 0, 1).astype(np.float32)


def test_sphere_surface_area_and_physical_units():
    mesh = surface(ball(), spacing=(0.5, 0.5, 0.5), origin=(10.0, 0.0, 0.0))
    assert mesh.n_cells > 100 and mesh.is_manifold
    assert mesh.area == pytest.approx(4 * math.pi * 5.0**2, rel=0.02)  # r = 10 voxels = 5 mm
    centre = np.asarray(mesh.center)  # (x, y, z): z carries the 10 mm origin
    np.testing.assert_allclose(centre, [7.75, 7.75, 17.75], atol=0.1)


def test_surface_closes_at_the_border_and_empty_volumes():
    full = np.ones((8, 8, 8), np.float32)
    assert surface(full).is_manifold
    assert surface(np.zeros((8, 8, 8))).n_points == 0
    small = surface(ball(), max_faces=300)
    assert 0 < small.n_cells <= 400
    with pytest.raises(ValueError, match="3D"):
        surface(np.zeros((4, 4)))


def test_save_mesh_formats(tmp_path):
    mesh = surface(ball(16, 5.0))
    for name in ("a.stl", "a.vtp"):
        out = save_mesh(mesh, tmp_path / name)
        assert pv.read(out).n_cells == mesh.n_cells
    with pytest.raises(ValueError, match="stl or .vtp"):
        save_mesh(mesh, tmp_path / "a.obj")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.stl", "a.vtp"]


def test_scene_is_a_standalone_page_embedded_in_an_iframe():
    page = scene_html([Layer(surface(ball(16, 5.0)), "crimson", 1.0, "ball")])
    assert page.lstrip().lower().startswith("<!doctype html")
    assert "vtk" in page.lower() and len(page) > 100_000
    assert "http://" not in page.split("<body", 1)[-1][:2000]  # no remote viewer to load
    shown = embed_scene(page, height=400).data
    assert shown.startswith('<div class="angio-scene"><iframe') and "srcdoc=" in shown
    assert "<!doctype" not in shown.lower()  # escaped inside the attribute


def test_surface_row_places_labelled_surfaces_side_by_side_and_names_files_by_key(tmp_path):
    panels = [Panel("ground_truth", "ground truth (Otsu)", ball(16, 4.0)),
              Panel("empty", "nothing (blank)", np.zeros((16, 16, 16), np.float32)),
              Panel("10_views", "10 views", ball(16, 4.0))]
    layers = surface_row(panels, spacing=(0.5, 0.5, 0.5), step_mm=10.0, out_dir=tmp_path, prefix="BG001",
                         colors=("grey", "red"))
    assert [la.label for la in layers] == [p.label for p in panels]
    assert [la.color for la in layers] == ["grey", "red", "grey"]
    assert layers[1].mesh.n_points == 0
    shift = np.asarray(layers[2].mesh.center) - np.asarray(layers[0].mesh.center)
    np.testing.assert_allclose(shift, [20.0, 0.0, 0.0], atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BG001_10_views.stl", "BG001_10_views.vtp",
                                                         "BG001_ground_truth.stl", "BG001_ground_truth.vtp"]
    np.testing.assert_allclose(pv.read(tmp_path / "BG001_10_views.stl").center, layers[0].mesh.center, atol=1e-4)
    (only,) = surface_row(panels[:1], spacing=(1, 1, 1), step_mm=1.0)  # no files without out_dir
    assert only.mesh.n_cells > 0 and len(list(tmp_path.iterdir())) == 4


def test_error_layers_split_a_reconstruction_and_frame_the_scene():
    from angio.mesh import error_layers, screenshot

    truth = np.zeros((24, 24, 24), bool)
    truth[8:16, 8:16, 4:20] = True  # a bar
    pred = np.zeros((24, 24, 24), np.float32)
    pred[8:16, 8:16, 4:14] = 0.9  # finds part of the bar ...
    pred[2:5, 2:5, 2:5] = 0.8  # ... and a blob that is not there
    tp, fp, fn = error_layers(pred, truth, spacing=(1.0, 1.0, 1.0))
    assert tp.label == "true positive (640 voxels)" and fp.label == "false positive (27 voxels)"
    assert fn.label == "false negative (384 voxels)"
    assert all(layer.mesh.n_points for layer in (tp, fp, fn))
    img = screenshot([tp, fp, fn], window_size=(320, 240))
    drawn = (img.astype(int).sum(-1) < 3 * 250).mean()  # non-white pixels
    assert drawn > 0.05  # the camera is fitted to the meshes, not a speck in a corner
    empty = error_layers(np.zeros_like(pred), np.zeros_like(truth), spacing=(1.0, 1.0, 1.0))
    assert [layer.mesh.n_points for layer in empty] == [0, 0, 0] and "0 voxels" in empty[0].label


def _bar_layers():
    from angio.mesh import error_layers

    truth = np.zeros((24, 24, 24), bool)
    truth[8:16, 8:16, 4:20] = True
    pred = np.zeros((24, 24, 24), np.float32)
    pred[8:16, 8:16, 4:14] = 0.9
    return error_layers(pred, truth, spacing=(1.0, 1.0, 1.0))  # no false positives


def test_screenshot_draws_a_legend_of_the_labelled_meshes():
    from angio.mesh import screenshot

    layers = _bar_layers()
    with_key = screenshot(layers, window_size=(400, 300)).astype(int)
    without = screenshot(layers, window_size=(400, 300), legend=False).astype(int)
    unlabelled = screenshot([Layer(la.mesh, la.color) for la in layers], window_size=(400, 300)).astype(int)
    np.testing.assert_array_equal(unlabelled, without)  # nothing to list: no legend box
    changed = np.abs(with_key - without).sum(-1) > 30
    rows, cols = np.nonzero(changed)
    assert changed.mean() > 0.005  # the legend is drawn ...
    assert rows.mean() < 150 and cols.mean() > 200  # ... in the upper right corner (row 0 is the top)


def test_embed_scene_lists_every_labelled_layer_under_the_frame():
    layers = _bar_layers()
    shown = embed_scene("<!doctype html><p>scene</p>", legend=layers).data
    frame, key = shown.split("</iframe>", 1)
    assert 'class="angio-scene-key"' in key
    for label, color in [("true positive (640 voxels)", "#999999"), ("false positive (0 voxels)", "crimson"),
                         ("false negative (384 voxels)", "royalblue")]:
        assert label in key and f"background:{color}" in key  # empty sets are listed too
    assert key.index("true positive") < key.index("false positive") < key.index("false negative")
    assert "angio-scene-key" not in embed_scene("<p/>").data  # no key unless asked
    odd = embed_scene("<p/>", legend=[Layer(None, "red", 1.0, "<b>&</b>"), Layer(None, "blue")]).data
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in odd and "blue" not in odd  # escaped; unlabelled layers left out


def _drawn_inside_border(img, border=3):
    """True when no drawn pixel touches the frame's outermost ``border`` pixels."""
    drawn = np.abs(img.astype(int) - 255).max(axis=2) > 30
    inner = np.zeros_like(drawn)
    inner[border:-border, border:-border] = True
    return not (drawn & ~inner).any()


def test_framing_measures_the_drawn_share_and_extent():
    from angio.mesh import Framing, framing

    img = np.full((100, 200, 3), 255, np.uint8)
    assert framing(img) == Framing(0.0, 0.0, 0.0)
    img[10:60, 50:150] = (200, 0, 0)
    f = framing(img)
    assert f.drawn == pytest.approx(50 * 100 / 20_000) and f.width == 0.5 and f.height == 0.5
    img[10:12, 50:52] = 250  # within the tolerance of white: not drawn, the extent is unchanged
    assert framing(img).width == 0.5
    with pytest.raises(ValueError, match="shape"):
        framing(np.zeros((10, 10)))


@pytest.mark.parametrize("window", [(800, 560), (960, 300)])
def test_camera_is_fitted_to_a_long_thin_vessel_not_its_bounding_sphere(window):
    from angio.mesh import framing, screenshot

    rod = np.zeros((40, 40, 200), np.float32)  # 200 mm long along x, 4 mm thick, near one end of y
    rod[18:22, 2:6, :] = 1.0
    layer = Layer(surface(rod, spacing=(1.0, 1.0, 1.0)), "crimson", 1.0, "rod")
    img = screenshot([layer], window_size=window, legend=False)
    f = framing(img)
    assert max(f.width, f.height) > 0.8  # fills the frame along its long side ...
    assert _drawn_inside_border(img)  # ... and nothing is cut off


def test_a_real_tree_and_a_row_of_them_fill_the_frame():
    from angio.mesh import framing, screenshot
    from angio.pipeline import VolumeSpec, build_case

    spec = VolumeSpec(size=64, fov_mm=96.0, center="major")  # the study's field, 1.5 mm voxels
    vol, h = build_case("BG001", spec).fraction.astype(np.float32), (spec.voxel_mm,) * 3
    one = screenshot([Layer(surface(vol, spacing=h), "crimson", 1.0)], window_size=(640, 480), legend=False)
    row = surface_row([Panel(f"p{k}", f"panel {k}", vol) for k in range(4)], spacing=h, step_mm=1.1 * spec.fov_mm)
    four = screenshot(row, window_size=(960, 400), legend=False)
    for img in (one, four):
        f = framing(img)
        assert max(f.width, f.height) > 0.7 and f.drawn > 0.01, f  # thin vessels: few pixels
        assert _drawn_inside_border(img)
    assert framing(four).width > 0.8  # a row runs across the frame


def _bars():
    """A bar (the truth) and two predictions of it: one partial with a blob, one exact."""
    truth = np.zeros((24, 24, 24), bool)
    truth[8:16, 8:16, 4:20] = True
    partial = np.zeros(truth.shape, np.float32)
    partial[8:16, 8:16, 4:14] = 0.9
    partial[2:5, 2:5, 2:5] = 0.8
    return truth, partial, truth.astype(np.float32)


def test_error_grid_places_the_truth_and_each_reconstruction_on_a_grid(tmp_path):
    from angio.mesh import TRUTH_COLOR, error_grid, error_key, framing, screenshot

    truth, partial, exact = _bars()
    panels = error_grid({"partial": partial, "exact copy": exact}, truth, spacing=(1.0, 1.0, 1.0), columns=2,
                        step_mm=30.0, truth_label="exact mask", out_dir=tmp_path, prefix="BG1")
    assert [(p.label, p.row, p.column, p.truth) for p in panels] == [
        ("exact mask", 0, 0, True), ("partial", 0, 1, False), ("exact copy", 1, 0, False)]
    truth_panel, part, copy = panels
    assert truth_panel.layers[0].color == TRUTH_COLOR and truth_panel.voxels == {"exact mask": 1024}
    assert part.voxels == {"true positive": 640, "false positive": 27, "false negative": 384}
    assert all(part.triangles.values()) and part.layers[0].label == "partial: true positive (640 voxels)"
    assert copy.voxels["false positive"] == copy.voxels["false negative"] == 0
    assert copy.triangles["false positive"] == 0 and copy.triangles["true positive"] > 0
    # columns run along x, rows down along z, one step apart
    np.testing.assert_allclose(np.asarray(part.layers[0].mesh.bounds)[[0, 4]]
                               - np.asarray(truth_panel.layers[0].mesh.bounds)[[0, 4]], [30.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(np.asarray(copy.layers[0].mesh.center) - np.asarray(truth_panel.layers[0].mesh.center),
                               [0.0, 0.0, -30.0], atol=1e-6)
    assert copy.place == "row 2, column 1"
    assert truth_panel.summary().startswith("exact mask: ") and truth_panel.summary().endswith(" triangles")
    assert part.summary().startswith("partial: true positive ") and "false negative" in part.summary()
    # files: the truth and each prediction, unmoved, named by label
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "BG1_exact_copy.stl", "BG1_exact_copy.vtp", "BG1_exact_mask.stl", "BG1_exact_mask.vtp",
        "BG1_partial.stl", "BG1_partial.vtp"]
    # one scene, framed on all of it
    img = screenshot([la for p in panels for la in p.layers], window_size=(480, 360), legend=False)
    assert max(framing(img).width, framing(img).height) > 0.6
    assert [la.label for la in error_key("exact mask")] == ["exact mask", "true positive", "false positive",
                                                             "false negative"]
    assert all(la.mesh is None for la in error_key())
    no_truth = error_grid({"partial": partial}, truth, spacing=(1.0, 1.0, 1.0), truth_label=None)
    assert len(no_truth) == 1 and (no_truth[0].row, no_truth[0].column) == (0, 0)


def test_error_grid_refuses_what_it_cannot_show():
    from angio.mesh import error_grid

    truth, partial, _ = _bars()
    with pytest.raises(ValueError, match="shape"):
        error_grid({"p": partial[:-1]}, truth, spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="columns"):
        error_grid({"p": partial}, truth, spacing=(1, 1, 1), columns=0)
    with pytest.raises(ValueError, match="nothing|needs"):
        error_grid({}, truth, spacing=(1, 1, 1), truth_label=None)


def test_the_meshes_chapter_rows_refuse_an_empty_scene():
    from angio.mesh import error_grid
    from angio.study.meshes import ZooReconstructions, mesh_rows

    truth, partial, exact = _bars()

    class Volumes:
        pass

    vols = Volumes()
    vols.exact = truth
    recorded = {"partial": {"dice": 0.7}, "exact copy": {"dice": 1.0}}
    recon = ZooReconstructions("BG1", vols, {"partial": partial}, {"partial": 2}, 1.0, recorded)
    rows = mesh_rows(error_grid(recon.probabilities, truth, spacing=(1, 1, 1), truth_label="exact mask"), recon)
    assert [r["entry"] for r in rows] == ["exact mask", "partial"]
    assert rows[1]["dice"] == pytest.approx(2 * 640 / (667 + 1024)) and rows[1]["recorded_dice"] == 0.7
    assert rows[1]["views"] == 2 and rows[1]["false positive"] == 27 and rows[0]["true positive"] == 1024
    # a perfect prediction draws no errors, only its true positives: still a reconstruction to show
    perfect = ZooReconstructions("BG1", vols, {"exact copy": exact}, {"exact copy": 2}, 1.0, recorded)
    (row,) = mesh_rows(error_grid(perfect.probabilities, truth, spacing=(1, 1, 1), truth_label=None), perfect)
    assert row["dice"] == 1.0 and row["triangles"].endswith(" / 0 / 0")
    # a prediction that finds no vessel leaves its place empty of reconstruction
    blank = ZooReconstructions("BG1", vols, {"blank": np.zeros_like(exact)}, {"blank": 2}, 1.0, {"blank": {"dice": 0}})
    with pytest.raises(ValueError, match="empty surfaces.*blank"):
        mesh_rows(error_grid(blank.probabilities, truth, spacing=(1, 1, 1)), blank)
