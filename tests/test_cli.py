"""Command line and reconstruction from 2D images: outputs, errors, nothing half-written."""

import json

import numpy as np
import pytest

import angio
from angio import cli
from angio.reconstruct import Reconstruction, prepare_projections, read_images, write_outputs


def write_png(path, img):
    import imageio.v3 as iio

    iio.imwrite(path, np.asarray(img, dtype=np.uint8))


def noise(shape, seed=0):
    """A non-blank 8-bit view."""
    return np.random.default_rng(seed).integers(0, 256, shape)


def tiny_checkpoint(path, *, size=16, n_views=2):
    """An untrained checkpoint of a small (16^3) two-channel model trained, it says, on ``n_views`` views."""
    import torch

    from angio.train.checkpoint import CHECKPOINT_FORMAT
    from angio.train.config import TrainConfig, model_from_config

    config = TrainConfig(model="dae", in_channels=2, data={"spec": {"size": size, "fov_mm": size * 0.5},
                                                           "n_views": n_views, "modes": ["sum", "min"]})
    torch.manual_seed(0)
    payload = {"format": CHECKPOINT_FORMAT, "model": model_from_config(config).state_dict(),
               "config": config.to_dict(), "epoch": 0, "global_step": 0}
    torch.save(payload, path)
    return path


def test_read_images_grey_colour_and_dicom(tmp_path):
    write_png(tmp_path / "a.png", np.full((20, 30), 7))
    write_png(tmp_path / "b.png", np.zeros((20, 30, 3)))
    imgs = read_images([tmp_path / "a.png", tmp_path / "b.png"])
    assert imgs.shape == (2, 20, 30) and imgs.dtype == np.float32 and imgs[0, 0, 0] == 7


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file"),
    ("garbage", "cannot read image"),
    ("sizes", "differ in size"),
])
def test_read_images_errors_name_the_file(tmp_path, case, message):
    write_png(tmp_path / "a.png", np.zeros((20, 30)))
    if case == "missing":
        paths = [tmp_path / "a.png", tmp_path / "nope.png"]
    elif case == "garbage":
        (tmp_path / "bad.png").write_bytes(b"not a png")
        paths = [tmp_path / "a.png", tmp_path / "bad.png"]
    else:
        write_png(tmp_path / "b.png", np.zeros((21, 30)))
        paths = [tmp_path / "a.png", tmp_path / "b.png"]
    with pytest.raises(angio.InputError, match=message) as info:
        read_images(paths)
    assert ("nope.png" in str(info.value)) or ("bad.png" in str(info.value)) or ("b.png 21x30" in str(info.value))


def test_prepare_projections_orientation_and_range():
    img = np.zeros((40, 40), np.float32)
    img[:10] = 200.0  # a bright band at the top of the image = superior
    p = prepare_projections(img[None], 8)
    assert p.shape == (1, 8, 8) and p.min() == 0.0 and p.max() == 1.0
    assert p[0, -1].mean() > p[0, 0].mean()  # z runs inferior -> superior
    dark = prepare_projections(img[None], 8, vessels="dark")
    np.testing.assert_allclose(dark, 1.0 - p)


def test_cli_reconstruct_reports_angle_count_mismatch(tmp_path, capsys):
    write_png(tmp_path / "a.png", np.zeros((16, 16)))
    code = cli.main(["reconstruct", str(tmp_path / "a.png"), "--angles", "0", "90", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "1 images but 2 angles" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_write_outputs_is_atomic_and_refuses_non_empty_folders(tmp_path, monkeypatch):
    n = 16
    z, y, x = np.meshgrid(*[np.arange(n)] * 3, indexing="ij")
    prob = np.exp(-((z - 8) ** 2 + (y - 8) ** 2 + (x - 8) ** 2) / 8.0).astype(np.float32)
    result = Reconstruction(prob, 1.5, np.array([0.0, 90.0]), prob[None])
    out = write_outputs(result, tmp_path / "rec")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["README.json", "dicom", "probability.npz", "surface.stl", "surface.vtp"]
    with np.load(out / "probability.npz") as z_:
        np.testing.assert_array_equal(z_["probability"], prob)
    with pytest.raises(angio.InputError, match="not empty"):
        write_outputs(result, tmp_path / "rec")
    # a failure mid-way keeps the previous folder intact and leaves no temporary folder
    from angio import reconstruct

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reconstruct, "save_mesh", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_outputs(result, tmp_path / "rec", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "rec").iterdir()) == names
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_outputs_share_patient_coordinates_with_the_isocentre_at_the_origin(tmp_path):
    import pyvista as pv

    from angio.io import read_dicom_series

    n, h = 20, 0.5
    prob = np.zeros((n, n, n), np.float32)
    prob[13:16, 4:7, 8:11] = 1.0  # a small cube at z 14, y 5, x 9 (index of its centre)
    out = write_outputs(Reconstruction(prob, h, np.array([0.0, 90.0]), prob[None]), tmp_path / "rec")
    expected = (np.array([9, 5, 14]) - (n - 1) / 2) * h  # patient (x, y, z) in mm from the isocentre
    vol = read_dicom_series(out / "dicom")
    k = np.argwhere(vol.array > 0.5).mean(0)[::-1]  # (x, y, z) index of the cube in the read-back volume
    world = np.asarray(vol.origin) + np.asarray(vol.direction) @ (k * np.asarray(vol.spacing)[::-1])
    np.testing.assert_allclose(world, expected, atol=1e-3)
    for name in ("surface.stl", "surface.vtp"):
        np.testing.assert_allclose(np.asarray(pv.read(out / name).center), expected, atol=0.05)
    readme = json.loads((out / "README.json").read_text())
    assert "LPS" in readme["frame"]
    np.testing.assert_allclose(readme["origin_mm"], [-(n - 1) / 2 * h] * 3)


@pytest.mark.slow
def test_train_evaluate_prepare_and_reconstruct_end_to_end(tmp_path, capsys):
    res = str(tmp_path / "results")
    assert cli.main(["train", "--profile", "tiny", "--results", res, "--views", "2"]) == 0
    run = json.loads(capsys.readouterr().out)
    assert run["epochs"] == 1 and not run["reused"]
    assert cli.main(["train", "--profile", "tiny", "--results", res, "--views", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["reused"]
    assert cli.main(["evaluate", "--profile", "tiny", "--results", res, "--views", "2"]) == 0
    assert '"iou"' in capsys.readouterr().out
    assert cli.main(["prepare", "--profile", "tiny", "--results", res, "--out", str(tmp_path / "prep"),
                     "--views", "2", "--split", "test"]) == 0
    manifest = json.loads((tmp_path / "prep" / "manifest.json").read_text())
    first = manifest["entries"][0]
    with np.load(tmp_path / "prep" / first["file"]) as z:
        assert z["inputs_2"].shape == (2, 32, 32, 32) and z["projections_2"].shape == (2, 32, 32)
    # reconstruct from the prepared MIPs saved as PNG images (head up)
    proj = z_proj = np.load(tmp_path / "prep" / first["file"])["projections_2"]
    for k, p in enumerate(z_proj):
        write_png(tmp_path / f"view{k}.png", (255 * p[::-1]).round())
    ckpt = next((tmp_path / "results" / "runs").glob("dae-sum-2v*")) / "last.pt"
    code = cli.main(["reconstruct", str(tmp_path / "view0.png"), str(tmp_path / "view1.png"),
                     "--angles", "0", "90", "--checkpoint", str(ckpt), "--out", str(tmp_path / "rec")])
    assert code == 0, capsys.readouterr().err
    with np.load(tmp_path / "rec" / "probability.npz") as z:
        assert z["probability"].shape == (32, 32, 32)
        assert 0.0 <= z["probability"].min() and z["probability"].max() <= 1.0
    assert proj.shape == (2, 32, 32)


def _held_out_views(tmp_path, n_views=2):
    """A test case of the zoo's biplane model, its volumes and its MIPs written as files."""
    import imageio.v3 as iio

    from angio import zoo
    from angio.pipeline import build_case
    from angio.projection import mip, view_angles

    entry = zoo.entries()[zoo.DEFAULT_MODELS[n_views]]
    case = entry.record["test"]["cases"][0]  # never seen in training or model selection
    vols = build_case(case, entry.spec, seed=entry.settings.seed)
    angles = view_angles(n_views)
    views = mip(vols.unit_intensity(), angles)
    files = {"tif": [], "png": []}
    for k, view in enumerate(views):
        iio.imwrite(tmp_path / f"view{k}.tif", np.ascontiguousarray(view[::-1], dtype=np.float32))
        write_png(tmp_path / f"view{k}.png", (255 * view[::-1]).round())  # head up, 8 bit
        files["tif"].append(str(tmp_path / f"view{k}.tif"))
        files["png"].append(str(tmp_path / f"view{k}.png"))
    return entry, vols, angles, files


@pytest.fixture(scope="module")
def png_reconstruction(tmp_path_factory):
    """``angio reconstruct`` of a held-out tree's two 8-bit PNG views, run once for the tests below."""
    tmp = tmp_path_factory.mktemp("png")
    entry, vols, _, files = _held_out_views(tmp)
    out = tmp / "recon"
    assert cli.main(["reconstruct", *files["png"], "--angles", "0", "90", "--out", str(out)]) == 0
    return entry, vols, files, out


@pytest.mark.slow
def test_user_images_reach_the_model_as_the_study_data_does(tmp_path, capsys, png_reconstruction):
    """A held-out case projected, saved, read back and reconstructed = the study's own path."""
    from angio import zoo
    from angio.pipeline import network_input
    from angio.study import predict_case

    entry, vols, files, png_out = png_reconstruction
    model, _ = zoo.load_entry(entry.name)
    # reconstruct averages the biplane model with its mirrored prediction by default (MIRROR_MODELS)
    study = predict_case(model, network_input(vols.unit_intensity(), 2, modes=entry.experiment.modes),
                         entry.settings, mirror=True)
    code = cli.main(["reconstruct", *files["tif"], "--angles", "0", "90", "--out", str(tmp_path / "tif")])
    assert code == 0, capsys.readouterr().err
    assert "unet-biplane" in capsys.readouterr().out  # says which model and resolution
    with np.load(tmp_path / "tif" / "probability.npz") as z:
        np.testing.assert_allclose(z["probability"], study, atol=1e-4)
        assert float(z["spacing_mm"]) == pytest.approx(entry.spec.voxel_mm)
    readme = json.loads((tmp_path / "tif" / "README.json").read_text())
    assert "unet-biplane" in readme["model"] and readme["warnings"] == []
    assert readme["mirror_tta"].startswith("yes")
    # 8-bit PNG: the same up to quantization (1/255 per pixel)
    with np.load(png_out / "probability.npz") as z:
        png = z["probability"]
    assert np.mean(np.abs(png - study)) < 2e-3
    assert angio.metrics.dice(png, study > 0.5) > 0.95


@pytest.mark.slow
def test_zoo_biplane_model_reconstructs_a_held_out_case(png_reconstruction):
    """`angio reconstruct` right after install: two PNG views -> probability volume and mesh."""
    from angio import metrics

    entry, vols, _, out = png_reconstruction
    assert {"probability.npz", "dicom", "surface.stl", "surface.vtp"} <= {p.name for p in out.iterdir()}
    with np.load(out / "probability.npz") as z:
        prob = z["probability"]
    assert prob.shape == vols.exact.shape == (entry.spec.size,) * 3
    recorded = next(r for r in entry.record["test"]["rows"]
                    if r["case"] == entry.record["test"]["cases"][0] and r["target"] == "exact")
    assert metrics.dice(prob, vols.exact) == pytest.approx(recorded["dice"], abs=0.02)


@pytest.mark.parametrize("argv, message", [
    (["--angles", "0", "45"], "trained on views at"),
    (["--angles", "0", "0"], "angles repeat"),
    (["--angles", "nan", "90"], "finite"),
    (["--angles", "0", "90", "--level", "nan"], "--level"),
    (["--angles", "0", "90", "--patch", "0"], "--patch"),
    (["--angles", "0", "90", "--patch", "-8"], "--patch must be a positive number of voxels, got -8"),
    (["--angles", "0", "90", "--patch", "7"], "--patch 7 cannot be used with zoo model 'unet-biplane'"),
    (["--angles", "0", "90", "--patch", "16"], "--patch 16 cannot be used with zoo model 'unet-biplane'"),
    (["--angles", "0", "90", "--device", "bogus"], "--device"),
])
def test_reconstruct_refuses_bad_requests(tmp_path, capsys, argv, message):
    for k in range(2):
        write_png(tmp_path / f"v{k}.png", noise((16, 16), seed=k))
    code = cli.main(["reconstruct", str(tmp_path / "v0.png"), str(tmp_path / "v1.png"), *argv,
                     "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_reconstruct_refuses_a_view_count_no_model_takes(tmp_path, capsys):
    write_png(tmp_path / "v0.png", noise((16, 16)))
    code = cli.main(["reconstruct", str(tmp_path / "v0.png"), "--angles", "0", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "no shipped model takes 1 view" in err and "2 views: unet-biplane" in err


def test_monochrome1_dicom_is_read_as_displayed(tmp_path):
    from dicom_factory import write_view

    img = np.zeros((8, 8), np.uint16)
    img[2:4] = 4095  # stored bright = displayed dark under MONOCHROME1
    paths = [write_view(tmp_path / f"{photometric}.dcm", img, photometric=photometric)
             for photometric in ("MONOCHROME2", "MONOCHROME1")]
    mono2, mono1 = read_images(paths, normalize=True)
    assert mono2[2, 0] == 1.0 and mono2[0, 0] == 0.0
    np.testing.assert_allclose(mono1, 1.0 - mono2)


def test_image_declaring_an_absurd_size_is_refused_before_decoding(tmp_path):
    import tifffile

    # a small compressed TIFF that would decode to 9000 x 9000 pixels, above the limit
    tiles = (np.zeros((1024, 1024), np.uint8) for _ in range(81))
    tifffile.imwrite(tmp_path / "bomb.tif", data=tiles, shape=(9000, 9000), dtype=np.uint8,
                     compression="zlib", tile=(1024, 1024))
    assert (tmp_path / "bomb.tif").stat().st_size < 2_000_000
    with pytest.raises(angio.InputError, match="bomb.tif: declares 9000 x 9000"):
        read_images([tmp_path / "bomb.tif"])


def test_blank_views_are_refused_before_any_work(tmp_path, capsys, monkeypatch):
    """All-zero views: the zoo model would invent vessels in them (1760 voxels >= 0.5 when tried); refused."""
    from angio import reconstruct as rec

    monkeypatch.setattr(rec, "_load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "o"
    write_png(tmp_path / "v0.png", np.zeros((32, 32)))
    write_png(tmp_path / "v1.png", noise((32, 32)))
    write_png(tmp_path / "v2.png", np.full((32, 32), 255))
    code = cli.main(["reconstruct", str(tmp_path / "v0.png"), str(tmp_path / "v1.png"), "--angles", "0", "90",
                     "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / 'v0.png'}: blank (one value everywhere, no contrast)" in err and "v1.png" not in err
    assert not out.exists()
    code = cli.main(["reconstruct", str(tmp_path / "v0.png"), str(tmp_path / "v2.png"), "--angles", "0", "90",
                     "--out", str(out)])
    assert code == 2 and f"{tmp_path / 'v0.png'}, {tmp_path / 'v2.png'}: blank" in capsys.readouterr().err


def test_an_empty_volume_writes_no_surface_and_says_so(tmp_path):
    result = Reconstruction(np.zeros((16, 16, 16), np.float32), 0.5, np.array([0.0, 90.0]), np.zeros((2, 16, 16, 16)))
    out = write_outputs(result, tmp_path / "rec")
    assert sorted(p.name for p in out.iterdir()) == ["README.json", "dicom", "probability.npz"]
    assert json.loads((out / "README.json").read_text())["surface"] == "empty: no voxel reached the level"


@pytest.mark.parametrize("argv, views", [(["--angles", "0", "45"], 2), (["--angles", "0", "45", "90"], 3)])
def test_allow_other_views_uses_the_model_and_records_a_warning(tmp_path, capsys, argv, views):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    files = [str(tmp_path / f"v{k}.png") for k in range(views)]
    for k, name in enumerate(files):
        write_png(name, noise((16, 16), seed=k))
    base = ["reconstruct", *files, *argv, "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]
    assert cli.main(base) == 2  # refused without the override ...
    err = capsys.readouterr().err
    assert "trained on" in err and "--allow-other-views" in err and not (tmp_path / "o").exists()
    assert cli.main([*base, "--allow-other-views"]) == 0  # ... and used, with a warning, with it
    printed = capsys.readouterr().out
    warnings = json.loads((tmp_path / "o" / "README.json").read_text())["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("model used outside its training views: checkpoint tiny.pt")
    assert f"warning: {warnings[0]}" in printed
    with np.load(tmp_path / "o" / "probability.npz") as z:
        assert z["probability"].shape == (16, 16, 16) and z["angles_deg"].tolist() == [float(a) for a in argv[1:]]


def test_views_the_model_was_trained_for_record_no_warning(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    for k in range(2):
        write_png(tmp_path / f"v{k}.png", noise((16, 16), seed=k))
    assert cli.main(["reconstruct", str(tmp_path / "v0.png"), str(tmp_path / "v1.png"), "--angles", "0", "90",
                     "--checkpoint", str(ckpt), "--allow-other-views", "--out", str(tmp_path / "o")]) == 0
    assert "warning" not in capsys.readouterr().out
    assert json.loads((tmp_path / "o" / "README.json").read_text())["warnings"] == []


def test_dicom_view_is_read_through_its_modality_and_voi_luts(tmp_path):
    from dicom_factory import write_view

    stored = np.array([[100, 300, 600, 2000]] * 4)
    lut = {"RescaleSlope": 2.0, "RescaleIntercept": -100.0, "WindowCenter": 1000.0, "WindowWidth": 1001.0}
    m2 = write_view(tmp_path / "m2.dcm", stored, extra=lut)
    m1 = write_view(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", extra=lut)
    # by hand: rescale 2 s - 100 maps stored 0..4095 to -100..8090 and 100, 300, 600, 2000 to 100, 500, 1100,
    # 3900; the window (LINEAR, PS3.3 C.11.2.1.2.1: c = 999.5, w = 1000) sends x <= 499.5 to the bottom of that
    # range, x > 1499.5 to its top, and x between to ((x - c) / w + 0.5): 0.0005 and 0.6005 of the range
    shown, inverted = read_images([m2, m1], normalize=True)
    np.testing.assert_allclose(shown[0], [0.0, 0.0005, 0.6005, 1.0], atol=1e-6)
    np.testing.assert_allclose(inverted, 1.0 - shown, atol=1e-6)  # MONOCHROME1: inverted after the LUTs
    raw = read_images([m2])[0, 0]  # as displayed, in the modality range
    np.testing.assert_allclose(raw, [-100.0, 0.0005 * 8190 - 100, 0.6005 * 8190 - 100, 8090.0], rtol=1e-5)
    plain = read_images([write_view(tmp_path / "plain.dcm", stored, extra={"RescaleSlope": 2.0,
                                                                               "RescaleIntercept": -100.0})])
    np.testing.assert_allclose(plain[0, 0], 2.0 * stored[0] - 100.0)  # the rescale alone: modality units


@pytest.mark.parametrize("extra, declared", [
    ({"Rows": 60000, "Columns": 60000}, "declares 60000 x 60000 pixels per frame"),
    ({"NumberOfFrames": 2}, "multi-frame DICOM (2 frames)"),
])
def test_dicom_view_declaring_an_absurd_size_is_refused_before_decoding(tmp_path, monkeypatch, extra, declared):
    from dicom_factory import write_view
    from pydicom.dataset import Dataset

    path = write_view(tmp_path / "bomb.dcm", np.zeros((4, 4)), extra=extra)
    monkeypatch.setattr(Dataset, "pixel_array", property(lambda ds: pytest.fail("the pixel data were decoded")))
    with pytest.raises(angio.InputError) as info:
        read_images([path])
    assert str(info.value).startswith(f"{path}: {declared}")


def test_written_series_takes_the_views_frame_of_reference(tmp_path):
    import pydicom

    prob = np.zeros((8, 8, 8), np.float32)
    uid = "1.2.826.0.1.3680043.8.498.2"
    out = write_outputs(Reconstruction(prob, 0.5, np.array([0.0, 90.0]), prob[None], frame_of_reference_uid=uid),
                        tmp_path / "same")
    assert {pydicom.dcmread(p).FrameOfReferenceUID for p in (out / "dicom").iterdir()} == {uid}
    assert json.loads((out / "README.json").read_text())["frame_of_reference"].startswith("the input views'")
    new = write_outputs(Reconstruction(prob, 0.5, np.array([0.0, 90.0]), prob[None]), tmp_path / "new")
    written = {pydicom.dcmread(p).FrameOfReferenceUID for p in (new / "dicom").iterdir()}
    assert len(written) == 1 and uid not in written


def test_study_sub_commands_parse_their_arguments():
    parser = cli.build_parser()
    args = parser.parse_args(["study", "run"])
    assert args.func is cli.cmd_study and args.action == "run"
    assert (args.profile, args.results, args.only, args.force) == ("cpu", "results", None, False)
    args = parser.parse_args(["study", "run", "--profile", "tiny", "--results", "r", "--only", "03", "05", "--force"])
    assert (args.profile, args.results, args.only, args.force) == ("tiny", "r", ["03", "05"], True)
    args = parser.parse_args(["study", "book", "--results", "r", "--out", "o", "--allow-warnings"])
    assert args.func is cli.cmd_study and (args.action, args.results, args.out, args.allow_warnings) == (
        "book", "r", "o", True)
    assert parser.parse_args(["study", "book"]).out == "_build"
    for bad in (["study"], ["study", "run", "--profile", "huge"], ["study", "publish"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_study_sub_commands_and_python_m_angio_study_call_the_same_code(monkeypatch, tmp_path, capsys):
    import runpy
    import sys

    from angio import study

    calls = []
    monkeypatch.setattr(study, "run", lambda *a, **k: calls.append(("run", a, k)))
    monkeypatch.setattr(study, "build_book", lambda **k: calls.append(("book", (), k)) or tmp_path / "index.html")
    assert cli.main(["study", "run", "--profile", "tiny", "--only", "03"]) == 0
    assert cli.main(["study", "book", "--allow-warnings"]) == 0
    monkeypatch.setattr(sys, "argv", ["python -m angio.study", "run", "--profile", "tiny", "--only", "03"])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module("angio.study", run_name="__main__")
    assert stop.value.code == 0
    run = ("run", ("tiny",), {"results_dir": "results", "only": ["03"], "force": False})
    assert calls == [run, ("book", (), {"results_dir": "results", "out_dir": "_build", "warnings_as_errors": False}),
                     run]
    assert str(tmp_path / "index.html") in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--profile", "tiny", "--cases", "NOPE01"], "unknown case ids ['NOPE01']"),
    (["evaluate", "--profile", "tiny", "--device", "bogus"], "--device 'bogus'"),
    (["train", "--profile", "tiny", "--device", "cuda:7"], "--device 'cuda:7'"),
    (["train", "--profile", "tiny", "--size", "0"], "--size must be a positive integer"),
    (["train", "--recipe", "unet-biplane-conerays", "--time-budget", "nan"], "--time-budget must be a positive"),
    (["train", "--recipe", "unet-biplane-conerays", "--time-budget", "-5"], "--time-budget must be a positive"),
    (["train", "--recipe", "unet-biplane-conerays", "--max-epochs", "0"], "--max-epochs must be a positive"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, capsys, argv, message):
    code = cli.main([*argv, "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "r" / "runs").exists()


def test_zoo_retrain_takes_every_recipe_or_one(monkeypatch, capsys, tmp_path):
    from angio import zoo

    parser = cli.build_parser()
    args = parser.parse_args(["zoo", "retrain"])
    assert args.func is cli.cmd_zoo and (args.action, args.name) == ("retrain", None)
    calls = []

    def fake_retrain(names, *, results_dir):
        calls.append((names, results_dir))
        return [tmp_path / "x.json"]

    monkeypatch.setattr(zoo, "retrain", fake_retrain)
    assert cli.main(["zoo", "retrain", "unet-3view", "--results", "r"]) == 0
    assert cli.main(["zoo", "retrain"]) == 0
    assert calls == [(["unet-3view"], "r"), (None, "results")]
    assert "published" in capsys.readouterr().out


def test_zoo_publish_and_robustness_reach_the_zoo(monkeypatch, capsys, tmp_path):
    from angio import zoo
    from angio.zoo import robustness as zoo_robustness

    calls = []
    monkeypatch.setattr(zoo, "publish", lambda name, *, results_dir: calls.append(("publish", name, results_dir))
                        or tmp_path / f"{name}.json")
    monkeypatch.setattr(zoo_robustness, "record_robustness",
                        lambda name, cases, *, conditions, results_dir, add, mirror: calls.append(
                            ("robustness", name, cases, conditions, results_dir, add, mirror)) or tmp_path / "r.json")
    assert cli.main(["zoo", "publish", "paper-cta-win-dae-2v", "--results", "r"]) == 0
    assert cli.main(["zoo", "robustness", "unet-3view", "--cases", "BG001", "--conditions", "nominal",
                     "doubled noise"]) == 0
    assert cli.main(["zoo", "robustness"]) == 0
    assert cli.main(["zoo", "robustness", "unet-3view", "--add", "--conditions", "doubled noise"]) == 0
    assert cli.main(["zoo", "robustness", "--mirror", "--conditions", "nominal"]) == 0
    assert calls == [("publish", "paper-cta-win-dae-2v", "r"),
                     ("robustness", "unet-3view", ["BG001"], ["nominal", "doubled noise"], "results", False, False),
                     ("robustness", zoo.DEFAULT_MODELS[2], None, None, "results", False, False),
                     ("robustness", "unet-3view", None, ["doubled noise"], "results", True, False),
                     ("robustness", zoo.DEFAULT_MODELS[2], None, ["nominal"], "results", False, True)]
    capsys.readouterr()
    assert cli.main(["zoo", "publish"]) == 2  # which recipe? said in one line, no traceback
    err = capsys.readouterr().err
    assert "needs the recipe's name" in err and "Traceback" not in err


def test_python_dash_m_angio_is_the_angio_command():
    # the Makefile's `make study RETRAIN=1` runs `python -m angio zoo retrain`
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "angio", "zoo", "list"], capture_output=True, text=True, check=True)
    from angio import zoo

    assert all(name in out.stdout for name in zoo.RECIPES)


def test_train_recipe_passes_its_bounds_and_publishes(monkeypatch, capsys, tmp_path):
    from angio import zoo

    calls = []

    def fake_train(name, *, results_dir, progress, max_epochs, time_budget_s):
        calls.append(("train", name, results_dir, max_epochs, time_budget_s))
        return type("T", (), {"epoch": 3, "checkpoint": tmp_path / "best.pt"})()

    monkeypatch.setattr(zoo, "train_recipe", fake_train)
    monkeypatch.setattr(zoo, "publish", lambda name, *, results_dir: calls.append(("publish", name))
                        or tmp_path / f"{name}.json")
    assert cli.main(["train", "--recipe", "unet-3view", "--time-budget", "60", "--max-epochs", "5",
                     "--results", "r"]) == 0
    assert cli.main(["train", "--recipe", "unet-3view", "--no-publish"]) == 0
    monkeypatch.setattr(zoo, "continuable_run", lambda name, *, results_dir: calls.append(("continue", name))
                        or tmp_path / "last.pt")
    assert cli.main(["train", "--recipe", "unet-3view", "--no-publish", "--continue-shipped"]) == 0
    assert calls == [("train", "unet-3view", "r", 5, 60.0), ("publish", "unet-3view"),
                     ("train", "unet-3view", "results", None, None),
                     ("continue", "unet-3view"), ("train", "unet-3view", "results", None, None)]
    assert "selected epoch 3" in capsys.readouterr().out


def test_mirror_tta_is_chosen_forced_or_refused(tmp_path, capsys):
    from angio import zoo
    from angio.reconstruct import _use_mirror

    ckpt = tiny_checkpoint(tmp_path / "tiny.pt")
    files = [str(tmp_path / f"v{k}.png") for k in range(2)]
    for k, name in enumerate(files):
        write_png(name, noise((16, 16), seed=k))
    base = ["reconstruct", *files, "--angles", "0", "90", "--checkpoint", str(ckpt)]
    probs = {}
    for flag in ([], ["--mirror"]):  # a checkpoint of one's own: off unless asked for
        out = tmp_path / ("mirror" if flag else "plain")
        assert cli.main([*base, *flag, "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        said = json.loads((out / "README.json").read_text())["mirror_tta"]
        assert said.startswith("yes") == bool(flag) and ("mirrored views" in printed) == bool(flag)
        with np.load(out / "probability.npz") as z:
            probs[bool(flag)] = z["probability"]
    assert not np.allclose(probs[False], probs[True])  # the mirrored prediction was averaged in
    # views that are not their own mirror image (45 pairs with 135): refused, before any work
    assert cli.main(["reconstruct", *files, "--angles", "0", "45", "--checkpoint", str(ckpt), "--allow-other-views",
                     "--mirror", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--mirror needs views" in err and "Traceback" not in err and not (tmp_path / "o").exists()
    # automatic: the zoo's chosen entries on symmetric views only
    name = sorted(zoo.MIRROR_MODELS)[0]
    assert _use_mirror(None, name, np.array([0.0, 90.0])) is True
    assert _use_mirror(None, name, np.array([0.0, 90.4])) is True  # within the angle tolerance
    assert _use_mirror(None, name, np.array([0.0, 45.0])) is False
    assert _use_mirror(None, "unet-3view", np.array([0.0, 45.0, 90.0])) is False
    assert _use_mirror(None, None, np.array([0.0, 90.0])) is False
    assert _use_mirror(False, name, np.array([0.0, 90.0])) is False


# ------------------------------------------------------------------------------ interrupts


def _interrupted(*args, **kwargs):
    raise KeyboardInterrupt


def test_an_interrupted_command_says_so_in_one_line_and_exits_130(monkeypatch, capsys):
    monkeypatch.setattr(cli, "cmd_zoo", _interrupted)
    assert cli.main(["zoo", "list"]) == 130
    captured = capsys.readouterr()
    assert captured.err == "angio: interrupted\n" and captured.out == ""


@pytest.mark.parametrize("module, argv, patch", [
    ("angio", ["zoo", "list"], ("angio.cli", "cmd_zoo")),
    ("angio.study", ["run", "--profile", "tiny"], ("angio.study", "run")),
    ("angio.train", ["--config", "c.json", "--data", "m:f"], ("angio.train.cli", "main")),
])
def test_python_dash_m_entry_points_exit_130_on_an_interrupt(monkeypatch, capsys, module, argv, patch):
    import importlib
    import runpy
    import sys

    monkeypatch.setattr(importlib.import_module(patch[0]), patch[1], _interrupted)
    monkeypatch.setattr(sys, "argv", [f"python -m {module}", *argv])
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(module, run_name="__main__")
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.endswith(": interrupted\n") and err.count("\n") == 1 and "Traceback" not in err


def test_an_interrupt_while_writing_outputs_leaves_nothing_behind(tmp_path, monkeypatch):
    from angio import mesh
    from angio import reconstruct as rec

    prob = np.zeros((16, 16, 16), np.float32)
    prob[6:10, 6:10, 6:10] = 1.0
    monkeypatch.setattr(mesh, "save_mesh", _interrupted)
    monkeypatch.setattr(rec, "save_mesh", _interrupted, raising=False)  # where reconstruct imports it by name
    with pytest.raises(KeyboardInterrupt):
        write_outputs(Reconstruction(prob, 1.5, np.array([0.0, 90.0]), prob[None]), tmp_path / "rec")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one


def test_sigint_to_python_dash_m_angio_exits_130_without_a_traceback(tmp_path):
    """A real Ctrl-C: the command blocks reading a named pipe given as its view, and gets SIGINT there."""
    import errno
    import os
    import signal
    import subprocess
    import sys
    import time

    if not hasattr(os, "mkfifo"):
        pytest.skip("needs POSIX named pipes")
    view = tmp_path / "view.dcm"
    os.mkfifo(view)
    proc = subprocess.Popen(
        [sys.executable, "-m", "angio", "reconstruct", str(view), "--angles", "0", "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # even if the test runner ignores it
    writer, deadline = None, time.monotonic() + 60
    try:
        while writer is None:  # opening the write end succeeds once the command has opened the pipe to read it
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the command never opened its view: {proc.communicate()}")
            try:
                writer = os.open(view, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO
                time.sleep(0.02)
        proc.send_signal(signal.SIGINT)  # the command now waits for the pipe's first bytes
        out, err = proc.communicate(timeout=60)
    finally:
        if writer is not None:
            os.close(writer)
        proc.kill()
    assert proc.returncode == 130 and err == "angio: interrupted\n" and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["view.dcm"]
