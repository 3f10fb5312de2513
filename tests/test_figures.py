"""Matplotlib figures: the orthogonal error slices and the headline row."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from angio.figures import orthogonal_slices  # noqa: E402
from angio.mesh import ERROR_COLORS  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def scene():
    """A bar along x (the truth); the prediction finds part of it, adds a blob and misses the rest."""
    truth = np.zeros((12, 10, 16), bool)
    truth[5:8, 3:6, 2:14] = True
    pred = np.zeros(truth.shape, np.float32)
    pred[5:8, 3:6, 2:9] = 0.9  # true positives
    pred[5:8, 3:6, 9:14] = 0.4  # below the threshold: false negatives
    pred[1:3, 7:9, 11:13] = 0.6  # false positives, off the bar
    pred[6, 4, 12] = 0.5  # exactly at the threshold: counts as vessel
    return pred, truth


def pixels(ax):
    """Number of pixels of each error colour in an error panel."""
    rgb = np.asarray(ax.images[0].get_array())[..., :3]
    return {name: int(np.all(np.isclose(rgb, to_rgb(c), atol=1e-6), axis=-1).sum())
            for name, c in ERROR_COLORS.items()}


def expected(pred, truth, sl, level=0.5):
    p, t = pred[sl] >= level, truth[sl]
    return {"true positive": int((p & t).sum()), "false positive": int((p & ~t).sum()),
            "false negative": int((~p & t).sum())}


def test_pixel_colours_count_the_errors_of_each_slice():
    pred, truth = scene()
    point = (6, 4, 12)  # through the bar's far end, the blob's column and the threshold voxel
    fig = orthogonal_slices(pred, truth, point=point)
    axes = fig.axes
    assert len(axes) == 3
    slices = [np.s_[6, :, :], np.s_[:, 4, :], np.s_[:, :, 12]]
    for ax, sl in zip(axes, slices):
        want = expected(pred, truth, sl)
        assert pixels(ax) == want
        assert ax.get_xlabel() == (f"TP {want['true positive']}, FP {want['false positive']}, "
                                   f"FN {want['false negative']}")
    # the panels are the slices themselves, oriented (rows, columns) = (y, x), (z, x), (z, y)
    assert [np.asarray(ax.images[0].get_array()).shape[:2] for ax in axes] == [(10, 16), (12, 16), (12, 10)]
    assert all(ax.images[0].origin == "lower" for ax in axes)  # z (superior) up
    # the axial slice z = 6: 3 rows of 12 bar voxels, 7 found per row plus the one at the threshold
    assert pixels(axes[0]) == {"true positive": 22, "false positive": 0, "false negative": 14}
    # the sagittal slice x = 12: bar (3 x 3 voxels, one predicted at 0.5) and blob (2 x 2)
    assert pixels(axes[2]) == {"true positive": 1, "false positive": 4, "false negative": 8}
    names = [ax.get_title() for ax in axes]
    assert names == ["axial (z = 6)", "coronal (y = 4)", "sagittal (x = 12)"]
    assert "z = 6, y = 4, x = 12" in fig._suptitle.get_text()


def test_default_point_is_the_busiest_truth_slice_and_the_title_says_so():
    pred, truth = scene()
    truth[:, :, 5] = False  # no longer a tie: x = 5 is empty ...
    truth[0:4, 0:2, 7] = True  # ... and x = 7 the slice with the most vessel voxels
    fig = orthogonal_slices(pred, truth, voxel_mm=0.5, title="unet-biplane on BG0014", level=0.3)
    text = fig._suptitle.get_text()
    z = int(np.argmax(truth.sum(axis=(1, 2))))
    y = int(np.argmax(truth.sum(axis=(0, 2))))
    assert (z, y) == (5, 3)
    assert text == "unet-biplane on BG0014: slices z = 5, y = 3, x = 7, voxel 0.5 mm, prediction ≥ 0.3"
    assert pixels(fig.axes[2]) == expected(pred, truth, np.s_[:, :, 7], level=0.3)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(ERROR_COLORS)


def test_input_row_and_anisotropic_voxels():
    pred, truth = scene()
    image = np.random.default_rng(0).random(truth.shape).astype(np.float32)
    fig = orthogonal_slices(pred, truth, image=image, point=(6, 4, 12), voxel_mm=(2.0, 1.0, 0.5))
    assert len(fig.axes) == 6
    top = [np.asarray(ax.images[0].get_array()) for ax in fig.axes[:3]]
    np.testing.assert_array_equal(top[0], image[6])
    np.testing.assert_array_equal(top[1], image[:, 4, :])
    np.testing.assert_array_equal(top[2], image[:, :, 12])
    assert {ax.images[0].get_clim() for ax in fig.axes[:3]} == {(float(image.min()), float(image.max()))}
    assert [ax.get_aspect() for ax in fig.axes[3:]] == [2.0, 4.0, 2.0]  # dy/dx, dz/dx, dz/dy
    assert pixels(fig.axes[4]) == expected(pred, truth, np.s_[:, 4, :])
    assert "voxel 2 × 1 × 0.5 mm" in fig._suptitle.get_text()


def test_empty_truth_slices_through_the_middle():
    pred, truth = scene()
    fig = orthogonal_slices(pred, np.zeros_like(truth))
    assert [ax.get_title() for ax in fig.axes] == ["axial (z = 6)", "coronal (y = 5)", "sagittal (x = 8)"]


def test_invalid_inputs_raise_clear_errors():
    pred, truth = scene()
    with pytest.raises(ValueError, match=r"prediction shape \(12, 10, 15\) and truth shape \(12, 10, 16\)"):
        orthogonal_slices(pred[:, :, :15], truth)
    with pytest.raises(ValueError, match=r"image shape \(12, 10\) .*|image must be a 3D"):
        orthogonal_slices(pred, truth, image=pred[0])
    with pytest.raises(ValueError, match=r"image shape \(6, 10, 16\) and truth shape \(12, 10, 16\)"):
        orthogonal_slices(pred, truth, image=pred[:6])
    with pytest.raises(ValueError, match=r"truth must be a 3D \[z, y, x\] volume, got shape \(10, 16\)"):
        orthogonal_slices(pred, truth[0])
    with pytest.raises(ValueError, match="prediction must be a 3D"):
        orthogonal_slices(pred[None], truth)
    with pytest.raises(ValueError, match="empty"):
        orthogonal_slices(np.zeros((0, 3, 3)), np.zeros((0, 3, 3)))
    for bad in [(12, 0, 0), (0, -1, 0), (0, 0)]:
        with pytest.raises(ValueError, match="point"):
            orthogonal_slices(pred, truth, point=bad)
    with pytest.raises(ValueError, match="voxel_mm"):
        orthogonal_slices(pred, truth, voxel_mm=0.0)
    with pytest.raises(ValueError, match="level"):
        orthogonal_slices(pred, truth, level=float("nan"))


def test_headline_shows_views_and_scenes_side_by_side_in_their_aspect(tmp_path):
    from angio.figures import headline
    from angio.study import StudySettings, save_figure

    view = np.zeros((32, 32), np.float32)
    view[10:20, 5:25] = 1.0
    scene_img = np.full((60, 120, 3), 255, np.uint8)
    scene_img[20:40, 30:90] = (200, 0, 0)
    fig = headline({"frontal": view, "lateral": view.T}, {"2 views": scene_img})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["frontal", "lateral", "2 views"]
    widths = [ax.get_position().width for ax in axes]
    assert widths[2] == pytest.approx(2 * widths[0], rel=0.05)  # the scene keeps its 2:1 aspect
    np.testing.assert_array_equal(axes[2].images[0].get_array()[25, 40], (200, 0, 0))  # shown as it is
    path = save_figure(fig, "headline", StudySettings(results_dir=str(tmp_path)))
    assert path == tmp_path / "figures" / "headline.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2D image"):
        headline({"bad": np.zeros((3, 3, 3))}, {})
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        headline({}, {"bad": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="at least one"):
        headline({}, {})


def test_table_presets_give_the_study_headers_and_formats():
    from angio.study.tables import PRESETS, table

    rows = [{"label": "vessels only", "views": 90, "iou": 0.524, "iou_std": 0.03, "paper_iou": 0.568,
             "diff_iou": -0.044, "mse": 0.0012, "paper_mse": 0.00124, "diff_mse": None}]
    html = table(rows, preset="table1", caption="Table 1").data
    assert "<th>paper IoU</th>" in html and "<th>Δ IoU</th>" in html and "<th>± sd</th>" in html
    assert "<td>52.4%</td>" in html and "<td>-4.4%</td>" in html and "<td>0.0012</td>" in html
    assert '<table class="angio-table">' in html  # not a result: no entries named
    # the caller's columns and formats win over the preset's
    own = table(rows, {"views": "n", "iou": "overlap"}, preset="table1", formats={"iou": ".3f"}).data
    assert "<th>n</th><th>overlap</th></tr>" in own and "<td>0.524</td>" in own
    for name, preset in PRESETS.items():
        assert preset.columns and set(preset.formats) <= set(preset.columns), name
    with pytest.raises(ValueError, match="unknown table preset"):
        table(rows, preset="table9")
    with pytest.raises(ValueError, match="columns or a preset"):
        table(rows)


def test_a_result_table_names_the_zoo_entries_it_comes_from():
    from angio.study.tables import table

    rows = [{"entry": "paper-dae-2v", "iou": 0.18}]
    html = table(rows, preset="check", entries={"paper-dae-2v": object(), "unet-biplane": object()}).data
    assert html.startswith('<table class="angio-table angio-result" data-entries="paper-dae-2v unet-biplane">')
    again = table(rows, preset="check", entries=["a", "a", "b"]).data
    assert 'data-entries="a b"' in again  # each once, in order
    with pytest.raises(ValueError, match="entry names"):
        table(rows, preset="check", entries=["two words"])


def test_learning_curves_say_what_the_validation_dice_was_measured_against():
    from angio.figures import learning_curves

    rows = [{"epoch": k, "global_step": 10 * (k + 1), "train_loss": 1.0 / (k + 1), "val_dice": 0.1 * k}
            for k in range(4)]
    fig = learning_curves({"short": rows[:2], "long": rows}, selected={"long": 3}, target="Otsu target",
                          log_steps=True)
    loss, val = fig.axes
    assert val.get_ylabel() == "validation Dice (Otsu target)" and val.get_xscale() == "log"
    assert len(val.lines) == 3  # two curves and the star of the shipped epoch
    assert learning_curves({"a": rows}).axes[1].get_ylabel() == "validation Dice (exact mask)"
