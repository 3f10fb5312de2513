"""XA DICOM in: frame choice, subtraction, photometry, geometry tags and clear errors."""

import json

import numpy as np
import pytest
from dicom_factory import new_instance
from pydicom.dataset import Dataset
from pydicom.uid import XRayAngiographicImageStorage

import angio
from angio.io import pair_planes, read_xa

PLANTED_NAME = "Plantedxa^Patientqq"


def write_xa(path, frames, *, photometric="MONOCHROME2", study_uid=None, drop=(), extra=None, **tags):
    """An XA file of ``frames`` with the positioner ``tags``; ``extra`` maps keywords to values set last."""
    frames = np.asarray(frames, dtype=np.uint16)
    ds = new_instance(XRayAngiographicImageStorage)
    ds.Modality = "XA"
    ds.PatientName, ds.PatientID = PLANTED_NAME, "PLANTED-XA-ID"
    ds.StudyInstanceUID = study_uid or "1.2.826.0.1.3680043.8.498.1"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.2"
    geometry = {"PositionerPrimaryAngle": 30.0, "PositionerSecondaryAngle": -10.0,
                "DistanceSourceToDetector": 1100.0, "DistanceSourceToPatient": 750.0,
                "ImagerPixelSpacing": [0.3, 0.3]}
    geometry.update(tags)
    for key, value in geometry.items():
        if key not in drop:
            setattr(ds, key, value)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.PixelData = frames.tobytes()
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
    return path


def corrupt(path, valid: bytes, broken: bytes):
    """Replace the one stored value ``valid`` by ``broken`` (same length) in the file: a value its VR forbids."""
    data = path.read_bytes()
    assert data.count(valid) == 1 and len(valid) == len(broken)
    path.write_bytes(data.replace(valid, broken))
    return path


def dsa_run(n_frames=5, peak=3, size=16):
    """A run: background 1000, a vessel whose attenuation rises then falls, peaking at ``peak``."""
    frames = np.full((n_frames, size, size), 1000.0)
    strength = np.exp(-0.5 * (np.arange(n_frames) - peak) ** 2)
    strength[0] = 0.0  # the mask frame, before the injection
    for k in range(n_frames):
        frames[k, :, size // 2] *= np.exp(-0.8 * strength[k])
    return frames.round()


def vessel_frame(size=16):
    """One frame of :func:`dsa_run` with contrast in its vessel (not blank)."""
    return dsa_run(2, 1, size)[1:]


def test_peak_filling_frame_and_subtraction(tmp_path):
    path = write_xa(tmp_path / "run.dcm", dsa_run())
    view = read_xa(path)
    assert view.frame == 3 and view.n_frames == 5 and not view.subtracted
    sub = read_xa(path, subtract=True)
    assert sub.subtracted and sub.frame == 3
    assert sub.image[:, 8].min() == pytest.approx(0.8, abs=0.01)  # log(mask / frame) on the vessel
    assert np.abs(sub.image[:, :8]).max() == 0.0  # background cancels
    assert read_xa(path, frame=1).frame == 1
    with pytest.raises(angio.InputError, match="frame 9 does not exist"):
        read_xa(path, frame=9)


def test_geometry_from_positioner_tags(tmp_path):
    view = read_xa(write_xa(tmp_path / "a.dcm", dsa_run(1, 0)))
    g = view.geometry
    assert g.angle_deg == pytest.approx(30.0 + 180.0) and g.tilt_deg == pytest.approx(-10.0)
    assert g.source_isocenter_mm == 750.0 and g.source_detector_mm == 1100.0
    assert g.pixel_mm == (0.3, 0.3) and g.detector_shape == (16, 16)
    assert g.magnification == pytest.approx(1100 / 750)


@pytest.mark.parametrize("tag, flag", [("DistanceSourceToPatient", "--spd"), ("DistanceSourceToDetector", "--sdd"),
                                       ("ImagerPixelSpacing", "--pixel-spacing"),
                                       ("PositionerPrimaryAngle", "--angles")])
def test_missing_geometry_names_tag_and_flag(tmp_path, tag, flag):
    path = write_xa(tmp_path / "a.dcm", dsa_run(1, 0), drop=(tag,))
    with pytest.raises(angio.InputError, match=f"{tag} is missing; supply it with {flag}") as info:
        read_xa(path)
    assert "a.dcm" in str(info.value)
    overrides = {"DistanceSourceToPatient": {"source_patient_mm": 700}, "DistanceSourceToDetector":
                 {"source_detector_mm": 1000}, "ImagerPixelSpacing": {"pixel_mm": (0.2, 0.2)},
                 "PositionerPrimaryAngle": {"primary_deg": 90}}[tag]
    assert read_xa(path, **overrides).geometry is not None


def test_monochrome1_is_inverted_and_colour_refused(tmp_path):
    frames = dsa_run(1, 0)
    m2 = read_xa(write_xa(tmp_path / "m2.dcm", frames)).image
    m1 = read_xa(write_xa(tmp_path / "m1.dcm", 4095 - frames, photometric="MONOCHROME1")).image
    np.testing.assert_allclose(m1, m2)
    bad = write_xa(tmp_path / "rgb.dcm", frames, photometric="PALETTE COLOR")
    with pytest.raises(angio.InputError, match="PALETTE COLOR.*not supported"):
        read_xa(bad)


def test_planes_of_different_studies_are_not_paired(tmp_path):
    a = write_xa(tmp_path / "a.dcm", dsa_run(1, 0))
    b = write_xa(tmp_path / "b.dcm", dsa_run(1, 0), study_uid="1.2.826.0.1.3680043.8.498.77",
                 PositionerPrimaryAngle=-90.0)
    with pytest.raises(angio.InputError, match="different studies"):
        pair_planes([read_xa(a), read_xa(b)], [a, b])
    c = write_xa(tmp_path / "c.dcm", dsa_run(1, 0), PositionerPrimaryAngle=-90.0)
    assert len(pair_planes([read_xa(a), read_xa(c)], [a, c])) == 2


def test_no_patient_data_crosses_the_boundary(tmp_path):
    view = read_xa(write_xa(tmp_path / "a.dcm", dsa_run()))
    text = repr(view.__dict__ if hasattr(view, "__dict__") else view) + repr(view)
    assert "Plantedxa" not in text and "PLANTED-XA-ID" not in text


def test_not_dicom_is_an_input_error(tmp_path):
    (tmp_path / "x.dcm").write_text("hello")
    with pytest.raises(angio.InputError, match="x.dcm"):
        read_xa(tmp_path / "x.dcm")


@pytest.mark.slow
def test_synthetic_biplane_xa_reconstructs_end_to_end(tmp_path):
    """Planes A (frontal, PA) and B (lateral, RAO 90) of a held-out tree, as a C-arm records them."""
    from angio import metrics, zoo
    from angio.conebeam import CArmGeometry, cone_mip
    from angio.reconstruct import reconstruct_xa

    entry = zoo.entries()[zoo.default_model(2, "cone")]  # the model reconstruct_xa uses
    case = entry.record["test"]["cases"][0]
    vols = entry.volumes(case, tmp_path / "results")
    n, h = entry.spec.size, entry.spec.voxel_mm
    files = []
    for name, primary in (("planeA.dcm", 0.0), ("planeB.dcm", -90.0)):
        g = CArmGeometry.from_dicom(primary, 0.0, source_detector_mm=1100.0, source_patient_mm=750.0,
                                    pixel_mm=(h * 1100 / 750,) * 2, detector_shape=(n, n))
        image = cone_mip(vols.unit_intensity(), [g], spacing_mm=h)[0][::-1]  # first row superior
        files.append(write_xa(tmp_path / name, (4000 * image[None]).round(), PositionerPrimaryAngle=primary,
                              PositionerSecondaryAngle=0.0, ImagerPixelSpacing=list(g.pixel_mm)))
    # through the command line, as a user runs it, with no angles typed
    from angio import cli

    out = tmp_path / "recon"
    assert cli.main(["reconstruct", *map(str, files), "--vessels", "bright", "--out", str(out)]) == 0  # contrast bright
    with np.load(out / "probability.npz") as z:
        probability, angles = z["probability"], z["angles_deg"]
    assert sorted(angles.tolist()) == [0.0, 90.0]  # from the headers
    assert probability.shape == (n, n, n)
    assert repr(entry.name) in json.loads((out / "README.json").read_text())["model"]
    from angio.zoo.robustness import read_robustness

    rows = read_robustness(entry.name)["rows"]
    recorded = next(r["dice"] for r in rows if r["case"] == case
                    and r["condition"] == "cone beam, cone-ray back-projection")
    demagnified = entry.test_row(case)["dice"]  # the entry's own record: views demagnified to the isocentre
    # the XA path (integer pixels, positioner tags, a virtual detector at the isocentre, the
    # cone's own rays) gives what the zoo recorded for this case on the same C-arm's views ...
    good = metrics.dice(probability, vols.exact)
    print(f"XA path Dice {good:.4f}, recorded {recorded:.4f}, demagnified {demagnified:.4f} ({entry.name})")
    assert good > 0.95 * recorded and good > demagnified
    # ... and the geometry read from the headers matters: the same planes with their angles swapped
    # (one prediction, without the mirror average: the gap is a factor of two, not a rounding)
    swapped = reconstruct_xa(files, vessels="bright", angles=[90.0, 0.0], mirror=False)
    assert good > 2 * metrics.dice(swapped.probability, vols.exact)


def test_cli_names_a_missing_xa_tag_and_its_flag(tmp_path, capsys):
    from angio import cli

    a = write_xa(tmp_path / "a.dcm", dsa_run(1, 0), drop=("DistanceSourceToPatient",))
    b = write_xa(tmp_path / "b.dcm", dsa_run(1, 0), PositionerPrimaryAngle=-90.0)
    code = cli.main(["reconstruct", str(a), str(b), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "DistanceSourceToPatient is missing; supply it with --spd" in err and "a.dcm" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_xa_views_keep_the_c_arms_rays(tmp_path):
    """The isocentre-plane grid is a virtual detector on the same rays: a point lands where it did."""
    from angio.io import read_xa
    from angio.reconstruct import xa_views

    a = write_xa(tmp_path / "a.dcm", vessel_frame(32), PositionerPrimaryAngle=0.0, PositionerSecondaryAngle=0.0)
    b = write_xa(tmp_path / "b.dcm", vessel_frame(32), PositionerPrimaryAngle=-90.0, PositionerSecondaryAngle=0.0)
    n, fov = 12, 6.0  # the real detectors: 32 x 0.3 mm = 9.6 mm, 6.5 mm at the isocentre
    images, views, angles = xa_views([a, b], n, fov, vessels="bright")
    assert images.shape == (2, n, n) and images.min() >= 0.0 and images.max() <= 1.0
    assert sorted(angles.tolist()) == [0.0, 90.0]  # parallel-contract angles, any side of the patient
    points = np.random.default_rng(0).uniform(-2.5, 2.5, (20, 3))  # (x, y, z) mm, inside the grid
    for path, virtual in zip((a, b), views):
        real = read_xa(path).geometry
        assert virtual.source_isocenter_mm == real.source_isocenter_mm == virtual.source_detector_mm
        assert virtual.angle_deg == real.angle_deg and virtual.pixel_mm == (fov / n, fov / n)
        rows, cols = real.project(points)
        # real detector pixels -> mm at the detector -> mm at the isocentre -> virtual pixels
        scale = np.array(real.pixel_mm) / real.magnification / (fov / n)
        expect_r = (rows - (real.detector_shape[0] - 1) / 2) * scale[0] + (n - 1) / 2
        expect_c = (cols - (real.detector_shape[1] - 1) / 2) * scale[1] + (n - 1) / 2
        got_r, got_c = virtual.project(points)
        np.testing.assert_allclose(got_r, expect_r, atol=1e-9)
        np.testing.assert_allclose(got_c, expect_c, atol=1e-9)


def test_estimated_magnification_is_kept_when_it_agrees_with_the_distances(tmp_path):
    path = write_xa(tmp_path / "a.dcm", dsa_run(1, 0), EstimatedRadiographicMagnificationFactor=1.45)
    assert read_xa(path).estimated_magnification == pytest.approx(1.45)  # 1100 / 750 = 1.467: 1.1% apart
    assert read_xa(write_xa(tmp_path / "b.dcm", dsa_run(1, 0))).estimated_magnification is None


def test_estimated_magnification_contradicting_the_distances_is_refused(tmp_path):
    path = write_xa(tmp_path / "a.dcm", dsa_run(1, 0), EstimatedRadiographicMagnificationFactor=1.2)
    with pytest.raises(angio.InputError) as info:
        read_xa(path)
    message = str(info.value)
    assert "a.dcm" in message and "EstimatedRadiographicMagnificationFactor 1.2 disagrees" in message
    assert "1100 / 750 = 1.467" in message and "--sdd and --spd" in message
    # distances typed on the command line win over the file's own
    view = read_xa(path, source_detector_mm=900.0, source_patient_mm=750.0)
    assert view.geometry.source_detector_mm == 900.0 and view.estimated_magnification == pytest.approx(1.2)


@pytest.mark.parametrize("stored, problem", [(b"abc   ", "'abc' is not a number"), (b"-1.5  ", "is not a positive")])
def test_unusable_estimated_magnification_is_refused(tmp_path, stored, problem):
    path = write_xa(tmp_path / "a.dcm", dsa_run(1, 0), EstimatedRadiographicMagnificationFactor=9.8765)
    corrupt(path, b"9.8765", stored)
    with pytest.raises(angio.InputError, match=f"a.dcm: EstimatedRadiographicMagnificationFactor .*{problem}"):
        read_xa(path)


def test_missing_distance_beside_a_magnification_factor_says_the_ratio_is_not_enough(tmp_path):
    path = write_xa(tmp_path / "a.dcm", dsa_run(1, 0), drop=("DistanceSourceToDetector",),
                    EstimatedRadiographicMagnificationFactor=1.45)
    with pytest.raises(angio.InputError) as info:
        read_xa(path)
    message = str(info.value)
    assert "a.dcm" in message and "DistanceSourceToDetector is missing; supply it with --sdd" in message
    assert "EstimatedRadiographicMagnificationFactor 1.45 gives only the ratio of the two distances" in message


@pytest.mark.parametrize("extra, problem", [
    ({"PerFrameFunctionalGroupsSequence": [Dataset(), Dataset()]}, "per-frame geometry (possibly more than one plane)"),
    ({"PositionerPrimaryAngleIncrement": [0.0, 2.0, 4.0, 6.0, 8.0]}, "rotational run (per-frame positioner angles)"),
])
def test_a_file_holding_more_than_one_plane_is_refused(tmp_path, extra, problem):
    path = write_xa(tmp_path / "run.dcm", dsa_run(), extra=extra)
    with pytest.raises(angio.InputError) as info:
        read_xa(path)
    assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)


def test_planes_of_different_sizes_are_not_paired(tmp_path):
    a = write_xa(tmp_path / "a.dcm", vessel_frame(16))
    b = write_xa(tmp_path / "b.dcm", vessel_frame(20), PositionerPrimaryAngle=-90.0)
    with pytest.raises(angio.InputError) as info:
        pair_planes([read_xa(a), read_xa(b)], [a, b])
    assert "frames differ in size (a.dcm 16x16, b.dcm 20x20)" in str(info.value)


def _encapsulated(path, syntax, codestream=b"\xff\x4f\xff\x51" + bytes(60)):
    """Rewrite the XA file at ``path`` as compressed with ``syntax``, holding ``codestream`` as its one frame."""
    import pydicom
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path


def test_compressed_pixels_without_a_decoder_are_refused(tmp_path):
    from pydicom import uid
    from pydicom.pixels import get_decoder

    candidates = [uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEGExtended12Bit]
    missing = [ts for ts in candidates if not get_decoder(ts).is_available]
    if not missing:
        pytest.skip("every candidate compression has an installed decoder here")
    path = _encapsulated(write_xa(tmp_path / "a.dcm", vessel_frame()), missing[0])
    with pytest.raises(angio.InputError) as info:
        read_xa(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the pixel data use the compressed transfer syntax {missing[0].name}")
    assert "no installed decoder handles it" in message and "Install" in message


def test_compressed_pixels_that_fail_to_decode_are_refused(tmp_path):
    from pydicom import uid
    from pydicom.pixels import get_decoder

    if not get_decoder(uid.JPEG2000Lossless).is_available:
        pytest.skip("no JPEG 2000 decoder installed")
    path = _encapsulated(write_xa(tmp_path / "a.dcm", vessel_frame()), uid.JPEG2000Lossless)
    with pytest.raises(angio.InputError, match="a.dcm: cannot decode the pixel data .*JPEG 2000"):
        read_xa(path)


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # pydicom, about the broken NumberOfFrames
@pytest.mark.parametrize("extra, declared", [
    ({"Rows": 60000, "Columns": 60000}, "declares 60000 x 60000 pixels per frame"),
    ({"Rows": 1024, "Columns": 1024, "NumberOfFrames": 300}, "declares 300 frames of 1024 x 1024 pixels"),
    ({"Rows": 5000, "Columns": 5000, "SamplesPerPixel": 3}, "declares 5000 x 5000 pixels x 3 samples per frame"),
    ({"NumberOfFrames": 987654}, "NumberOfFrames 'many!!' is not a whole number"),
])
def test_xa_declaring_an_absurd_size_is_refused_before_decoding(tmp_path, monkeypatch, extra, declared):
    path = write_xa(tmp_path / "bomb.dcm", vessel_frame(), extra=extra)  # 512 bytes of pixel data
    if extra.get("NumberOfFrames") == 987654:
        corrupt(path, b"987654", b"many!!")
    monkeypatch.setattr(Dataset, "pixel_array", property(lambda ds: pytest.fail("the pixel data were decoded")))
    with pytest.raises(angio.InputError) as info:
        read_xa(path)
    assert str(info.value).startswith(f"{path}: {declared}")


def test_xa_frames_are_read_through_the_modality_and_voi_luts(tmp_path):
    stored = np.array([[100, 300, 600, 2000]] * 4)
    lut = {"RescaleSlope": 2.0, "RescaleIntercept": -100.0, "WindowCenter": 1000.0, "WindowWidth": 1001.0}
    view = read_xa(write_xa(tmp_path / "m2.dcm", stored[None], extra=lut))
    # by hand: modality 2 s - 100 = -100 (stored 0) .. 8090 (stored 4095); window (PS3.3 C.11.2.1.2.1, LINEAR):
    # c = 999.5, w = 1000; x <= 499.5 -> -100, x > 1499.5 -> 8090, else ((x - c) / w + 0.5) * 8190 - 100
    expected = np.array([-100.0, (0.0005 * 8190) - 100, (0.6005 * 8190) - 100, 8090.0])  # x = 100, 500, 1100, 3900
    np.testing.assert_allclose(view.image[0], expected, rtol=1e-6)
    inverted = read_xa(write_xa(tmp_path / "m1.dcm", stored[None], photometric="MONOCHROME1", extra=lut))
    np.testing.assert_allclose(inverted.image[0], -100 + 8090 - expected, rtol=1e-6)  # within the display range


def test_a_blank_plane_is_refused(tmp_path):
    from angio.reconstruct import xa_views

    a = write_xa(tmp_path / "a.dcm", vessel_frame(), PositionerPrimaryAngle=0.0, PositionerSecondaryAngle=0.0)
    b = write_xa(tmp_path / "b.dcm", dsa_run(1, 0), PositionerPrimaryAngle=-90.0, PositionerSecondaryAngle=0.0)
    with pytest.raises(angio.InputError) as info:
        xa_views([a, b], 12, 6.0)
    assert str(info.value).startswith(f"{b}: blank") and "a.dcm" not in str(info.value)


def test_the_planes_shared_frame_of_reference_is_found(tmp_path):
    from angio.reconstruct import _shared_frame_of_reference

    a = write_xa(tmp_path / "a.dcm", vessel_frame())
    b = write_xa(tmp_path / "b.dcm", vessel_frame(), PositionerPrimaryAngle=-90.0)
    assert _shared_frame_of_reference([a, b]) == "1.2.826.0.1.3680043.8.498.2"  # as write_xa writes it
    c = write_xa(tmp_path / "c.dcm", vessel_frame(), extra={"FrameOfReferenceUID": "1.2.826.0.1.3680043.8.498.3"})
    assert _shared_frame_of_reference([a, c]) == ""
    d = write_xa(tmp_path / "d.dcm", vessel_frame(), drop=(), extra={"FrameOfReferenceUID": ""})
    assert _shared_frame_of_reference([d, d]) == ""


@pytest.mark.parametrize("patch, problem", [("7", "positive multiple of"), ("-8", "positive number of voxels")])
def test_cli_refuses_an_unusable_patch_for_xa_files(tmp_path, capsys, patch, problem):
    from angio import cli

    a = write_xa(tmp_path / "a.dcm", vessel_frame(), PositionerSecondaryAngle=0.0, PositionerPrimaryAngle=0.0)
    b = write_xa(tmp_path / "b.dcm", vessel_frame(), PositionerSecondaryAngle=0.0, PositionerPrimaryAngle=-90.0)
    code = cli.main(["reconstruct", str(a), str(b), "--patch", patch, "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "--patch" in err and problem in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


IDENTIFYING = {  # planted in every plane; none may reach any output
    "PatientName": "Plantedqz^Xavier", "PatientID": "PLANTEDQZ-ID", "PatientBirthDate": "18870213",
    "InstitutionName": "Plantedqz Hospital", "InstitutionAddress": "1 Plantedqz Road",
    "ReferringPhysicianName": "Plantedqz^Doctor", "OperatorsName": "Plantedqz^Operator",
    "AccessionNumber": "PLANTEDQZ-ACC", "StudyID": "PLANTEDQZ", "StudyDescription": "Plantedqz angio",
    "SeriesDescription": "Plantedqz run", "ContrastBolusAgent": "Plantedqz contrast",
}


@pytest.mark.slow
def test_planted_patient_data_reaches_no_output(tmp_path, capfd):
    """A biplane XA study full of planted identifiers, through the CLI: no output byte holds one."""
    import pydicom

    from angio import cli

    size = 64
    frame = np.full((size, size), 3000.0)
    frame[8:56, 30:34] = 600.0  # a dark vertical vessel, displayed as X-rays show it
    frame[30:34, 12:52] = 600.0
    planes = [write_xa(tmp_path / name, frame[None], PositionerPrimaryAngle=angle, PositionerSecondaryAngle=0.0,
                       ImagerPixelSpacing=[1.4, 1.4], extra=IDENTIFYING)
              for name, angle in (("planeA.dcm", 0.0), ("planeB.dcm", -90.0))]
    out = tmp_path / "recon"
    # one prediction: the mirror average's second one reads no header (the end-to-end test above runs it)
    assert cli.main(["reconstruct", *map(str, planes), "--level", "0.05", "--no-mirror", "--out", str(out)]) == 0
    captured = capfd.readouterr()
    files = [p for p in out.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"README.json", "probability.npz", "surface.stl", "surface.vtp"} <= names
    assert any(p.parent.name == "dicom" for p in files)
    planted = [v.encode() for v in IDENTIFYING.values()] + [b"Plantedqz", b"PLANTEDQZ", b"Xavier"]
    planted += [v.upper() for v in planted] + [v.lower() for v in planted]
    for blob, where in [(p.read_bytes(), str(p)) for p in files] + [(captured.out.encode(), "stdout"),
                                                                   (captured.err.encode(), "stderr")]:
        found = [v for v in planted if v in blob]
        assert not found, f"{where} holds {found}"
    # the series lies in the planes' frame of reference, so it overlays them
    series = sorted((out / "dicom").iterdir())
    assert {pydicom.dcmread(p).FrameOfReferenceUID for p in series} == {"1.2.826.0.1.3680043.8.498.2"}
