"""Tests for :mod:`angio.io`: DICOM series reading/writing and resampling to a cube."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest
from dicom_factory import ct_slice, write_ct_series
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.pixels import get_decoder
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, generate_uid

import angio
import angio.io
import angio.io.writing
from angio.io import read_dicom_series, resample_to_cube, write_dicom_series
from angio.volume import Volume

RNG = np.random.default_rng(1234)


def stored_values(shape=(6, 8, 10)) -> np.ndarray:
    return RNG.integers(-1000, 3000, size=shape).astype(np.int16)


def patient_position(volume: Volume, index_zyx) -> np.ndarray:
    """Patient (x, y, z) mm of voxel index (z, y, x), written independently of angio.io."""
    z, y, x = index_zyx
    dz, dy, dx = volume.spacing
    d = volume.direction
    return np.asarray(volume.origin) + x * dx * d[:, 0] + y * dy * d[:, 1] + z * dz * d[:, 2]


# ---------------------------------------------------------------------------------- reading


def test_public_api_and_error_type():
    assert issubclass(angio.InputError, ValueError)
    for name in ("read_dicom_series", "write_dicom_series", "resample_to_cube"):
        assert name in angio.io.__all__


def test_read_orders_by_position_not_name_or_instance(tmp_path):
    stored = stored_values()
    paths = write_ct_series(tmp_path, stored, dz=1.25, origin=(-10.0, 20.0, 30.0),
                            pixel_spacing=(0.6, 0.4))
    # file names and InstanceNumbers are both scrambled relative to z
    assert sorted(paths) != paths
    instances = [int(pydicom.dcmread(p).InstanceNumber) for p in paths]
    assert instances != sorted(instances)

    vol = read_dicom_series(tmp_path)
    assert vol.array.dtype == np.float32 and vol.shape == stored.shape
    np.testing.assert_array_equal(vol.array, stored.astype(np.float32) - 1024)
    assert vol.spacing == pytest.approx((1.25, 0.6, 0.4))
    assert vol.origin == pytest.approx((-10.0, 20.0, 30.0))
    np.testing.assert_allclose(vol.direction, np.eye(3))
    assert vol.meta["Modality"] == "CT"
    assert "SeriesDescription" not in vol.meta  # free text: removed by de-identification


def test_read_oblique_series_sorted_along_normal(tmp_path):
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    iop = (c, s, 0.0, 0.0, 0.0, -1.0)  # coronal-ish, rotated: normal = row x col
    normal = np.cross(iop[:3], iop[3:])
    stored = stored_values((5, 4, 6))
    write_ct_series(tmp_path, stored, dz=2.0, origin=(1.0, 2.0, 3.0), orientation=iop)
    vol = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(vol.array, stored - 1024.0)
    expected = np.column_stack([iop[:3], iop[3:], normal])
    np.testing.assert_allclose(vol.direction, expected, atol=1e-9)
    assert vol.spacing[0] == pytest.approx(2.0)


def test_read_applies_per_slice_slope_and_intercept(tmp_path):
    stored = stored_values((4, 5, 5))
    slopes = [0.5, 1.0, 2.0, 0.25]
    intercepts = [-1000.0, -1024.0, 10.5, 0.0]
    write_ct_series(tmp_path, stored, slopes=slopes, intercepts=intercepts)
    vol = read_dicom_series(tmp_path)
    expected = stored * np.array(slopes)[:, None, None] + np.array(intercepts)[:, None, None]
    np.testing.assert_allclose(vol.array, expected, rtol=1e-6)


def test_read_skips_non_dicom_files_dicomdir_and_subfolders(tmp_path):
    stored = stored_values((3, 4, 4))
    write_ct_series(tmp_path, stored)
    (tmp_path / "README.txt").write_text("not a DICOM file")
    shutil.copy(get_testdata_file("DICOMDIR"), tmp_path / "DICOMDIR")
    no_pixels = ct_slice(stored[0], position=(0, 0, 99), series_uid="1.2.3.4",
                         study_uid="1.2.3")
    for keyword in ("Rows", "Columns", "PixelData", "ImagePositionPatient"):
        delattr(no_pixels, keyword)
    no_pixels.save_as(tmp_path / "report.dcm", enforce_file_format=True)
    write_ct_series(tmp_path / "sub", stored_values((2, 4, 4)))  # not read: no recursion
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # skipping non-images is silent
        vol = read_dicom_series(tmp_path)
    assert vol.shape == (3, 4, 4)


def test_read_pydicom_ct_small_single_slice(tmp_path):
    source = get_testdata_file("CT_small.dcm")
    shutil.copy(source, tmp_path / "CT_small.dcm")
    ds = pydicom.dcmread(source)
    vol = read_dicom_series(tmp_path)
    assert vol.shape == (1, ds.Rows, ds.Columns)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(vol.array[0], expected)
    assert vol.spacing == pytest.approx((5.0, *(float(v) for v in ds.PixelSpacing)))
    assert vol.origin == pytest.approx(tuple(float(v) for v in ds.ImagePositionPatient))
    assert "PatientName" not in vol.meta and "InstitutionName" not in vol.meta
    assert "CompressedSamples" not in repr(vol.meta)


def test_single_slice_without_thickness_warns_and_uses_1mm(tmp_path):
    ds = ct_slice(stored_values((1, 4, 4))[0], position=(0, 0, 0), series_uid="1.2.3.4",
                  study_uid="1.2.3")
    del ds.SliceThickness
    ds.save_as(tmp_path / "one.dcm", enforce_file_format=True)
    with pytest.warns(UserWarning, match="dz = 1.0"):
        vol = read_dicom_series(tmp_path)
    assert vol.spacing[0] == 1.0


def test_in_plane_shift_between_slices_warns(tmp_path):
    paths = write_ct_series(tmp_path, stored_values((4, 4, 4)), shuffle_seed=None)
    for k, path in enumerate(paths):  # a gantry-tilt-like shear: y shifts 0.5 mm per slice
        ds = pydicom.dcmread(path)
        ds.ImagePositionPatient = [0.0, 0.5 * k, float(k)]
        ds.save_as(path, enforce_file_format=True)
    with pytest.warns(UserWarning, match="shifted in-plane"):
        read_dicom_series(tmp_path)


def test_two_series_need_series_uid(tmp_path):
    write_ct_series(tmp_path, stored_values((3, 4, 4)), series_uid="1.2.826.0.1.1",
                    description="arterial")
    write_ct_series(tmp_path, stored_values((5, 4, 4)), series_uid="1.2.826.0.1.2",
                    description="venous", shuffle_seed=7)
    with pytest.raises(angio.InputError) as info:
        read_dicom_series(tmp_path)
    message = str(info.value)
    for part in ("1.2.826.0.1.1", "3 slice", "1.2.826.0.1.2", "5 slice", "series_uid=", str(tmp_path)):
        assert part in message
    # SeriesDescription is free text that DICOM de-identification (PS3.15 Annex E) removes
    assert "arterial" not in message and "venous" not in message
    assert read_dicom_series(tmp_path, series_uid="1.2.826.0.1.2").shape == (5, 4, 4)
    with pytest.raises(angio.InputError, match="1.2.826.9.9.*not in"):
        read_dicom_series(tmp_path, series_uid="1.2.826.9.9")


def test_missing_slice_is_named(tmp_path):
    paths = write_ct_series(tmp_path, stored_values((8, 4, 4)), dz=2.0, origin=(0, 0, 10.0))
    paths[3].unlink()
    paths[4].unlink()  # z = 16 and 18 mm missing
    with pytest.raises(angio.InputError, match="Missing slices") as info:
        read_dicom_series(tmp_path)
    message = str(info.value)
    assert "14.000 mm" in message and "20.000 mm" in message
    assert paths[2].name in message and paths[5].name in message
    assert "about 2 slice(s) missing" in message


def test_duplicate_positions(tmp_path):
    paths = write_ct_series(tmp_path, stored_values((4, 4, 4)))
    shutil.copy(paths[1], tmp_path / "copy_of_slice")
    ds = pydicom.dcmread(tmp_path / "copy_of_slice")
    ds.SOPInstanceUID = generate_uid()
    ds.save_as(tmp_path / "copy_of_slice", enforce_file_format=True)
    with pytest.raises(angio.InputError, match="Duplicated slice position"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize(
    ("keyword", "value", "what"),
    [
        ("size", None, "Rows x Columns"),
        ("PixelSpacing", [0.7, 0.5], "PixelSpacing"),
        ("ImageOrientationPatient", [1, 0, 0, 0, 0.8, 0.6], "ImageOrientationPatient"),
    ],
)
def test_inconsistent_slice_names_file(tmp_path, keyword, value, what):
    paths = write_ct_series(tmp_path, stored_values((4, 6, 6)))
    odd = paths[2]
    ds = pydicom.dcmread(odd)
    if keyword == "size":
        ds.set_pixel_data(np.zeros((5, 6), np.int16), "MONOCHROME2", 16,
                          generate_instance_uid=False)
    else:
        setattr(ds, keyword, value)
    ds.save_as(odd, enforce_file_format=True)
    with pytest.raises(angio.InputError, match=what) as info:
        read_dicom_series(tmp_path)
    assert odd.name in str(info.value)


def _write_compressed(folder, transfer_syntax):
    paths = write_ct_series(folder, stored_values((2, 4, 4)))
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not really a codestream"])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
    return paths


def test_jpeg2000_that_cannot_be_decoded(tmp_path):
    paths = _write_compressed(tmp_path, JPEG2000Lossless)
    with pytest.raises(RuntimeError):  # pydicom itself refuses these bytes (no or failing decoder)
        _ = pydicom.dcmread(paths[0]).pixel_array
    with pytest.raises(angio.InputError) as info:
        read_dicom_series(tmp_path)
    message = str(info.value)
    assert "JPEG 2000" in message and "1.2.840.10008.1.2.4.90" in message
    assert "pylibjpeg-openjpeg" in message
    assert any(p.name in message for p in paths)


@pytest.mark.skipif(
    get_decoder(JPEGLSLossless).is_available, reason="a JPEG-LS decoder is installed"
)
def test_compressed_without_decoder_names_syntax_and_package(tmp_path):
    _write_compressed(tmp_path, JPEGLSLossless)
    with pytest.raises(angio.InputError, match="no installed decoder") as info:
        read_dicom_series(tmp_path)
    message = str(info.value)
    assert "JPEG-LS Lossless" in message and "1.2.840.10008.1.2.4.80" in message
    assert "pyjpegls" in message


def test_folder_errors(tmp_path):
    with pytest.raises(angio.InputError, match="does not exist"):
        read_dicom_series(tmp_path / "nope")
    (tmp_path / "file.dcm").write_text("x")
    with pytest.raises(angio.InputError, match="not a folder"):
        read_dicom_series(tmp_path / "file.dcm")
    (tmp_path / "empty").mkdir()
    with pytest.raises(angio.InputError, match="empty"):
        read_dicom_series(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("hello")
    with pytest.raises(angio.InputError, match="No DICOM image"):
        read_dicom_series(tmp_path / "junk")


# ---------------------------------------------------------------------------------- writing


def test_round_trip_hu_is_exact(tmp_path):
    hu = stored_values((5, 6, 7)).astype(np.float32)
    vol = Volume(hu, spacing=(0.8, 0.45, 0.55), origin=(-12.5, 33.0, 101.25))
    paths = write_dicom_series(vol, tmp_path / "out")
    assert [p.name for p in paths] == [f"slice_{k:04d}.dcm" for k in range(1, 6)]
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.pixel_array.dtype == np.int16
    assert [int(pydicom.dcmread(p).InstanceNumber) for p in paths] == [1, 2, 3, 4, 5]
    back = read_dicom_series(tmp_path / "out")
    np.testing.assert_array_equal(back.array, hu)
    assert back.spacing == pytest.approx(vol.spacing, abs=1e-9)
    assert back.origin == pytest.approx(vol.origin, abs=1e-9)


@pytest.mark.parametrize("scale", [1.0, 4000.0])
def test_round_trip_float_within_half_step(tmp_path, scale):
    data = (RNG.random((4, 5, 6)) * scale - (1000 if scale > 1 else 0)).astype(np.float32)
    c, s = np.cos(0.3), np.sin(0.3)
    direction = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
    vol = Volume(data, spacing=(1.5, 0.5, 0.5), origin=(1, 2, 3), direction=direction)
    paths = write_dicom_series(vol, tmp_path / "out")
    half_step = float(pydicom.dcmread(paths[0]).RescaleSlope) / 2
    back = read_dicom_series(tmp_path / "out")
    assert np.max(np.abs(back.array - data)) <= half_step * 1.001 + 1e-6 * np.abs(data).max()
    np.testing.assert_allclose(back.direction, direction, atol=1e-9)
    assert back.origin == pytest.approx((1, 2, 3))


def test_round_trip_bool_mask(tmp_path):
    mask = RNG.random((3, 4, 5)) > 0.5
    write_dicom_series(Volume(mask), tmp_path / "mask", series_description="vessel mask")
    back = read_dicom_series(tmp_path / "mask")
    np.testing.assert_array_equal(back.array, mask.astype(np.float32))
    assert pydicom.dcmread(next((tmp_path / "mask").iterdir())).SeriesDescription == "vessel mask"


def test_rescale_argument(tmp_path):
    data = np.linspace(0, 1, 4 * 3 * 3, dtype=np.float32).reshape(4, 3, 3)
    paths = write_dicom_series(Volume(data), tmp_path / "a", rescale=(0.001, 0.0))
    ds = pydicom.dcmread(paths[0])
    assert float(ds.RescaleSlope) == 0.001 and float(ds.RescaleIntercept) == 0.0
    np.testing.assert_allclose(read_dicom_series(tmp_path / "a").array, data, atol=0.0005 + 1e-7)
    with pytest.raises(angio.InputError, match="do not fit in 16 bits"):
        write_dicom_series(Volume(data * 1000), tmp_path / "b", rescale=(0.001, 0.0))
    with pytest.raises(angio.InputError, match="slope"):
        write_dicom_series(Volume(data), tmp_path / "c", rescale=(0.0, 0.0))


def test_frame_of_reference_of_the_source_is_kept_or_a_new_one_made(tmp_path):
    source = "1.2.826.0.1.3680043.8.498.12345"
    paths = write_dicom_series(Volume(np.zeros((3, 2, 2))), tmp_path / "kept", frame_of_reference_uid=source)
    assert {pydicom.dcmread(p).FrameOfReferenceUID for p in paths} == {source}
    fresh = [pydicom.dcmread(p) for p in write_dicom_series(Volume(np.zeros((3, 2, 2))), tmp_path / "new")]
    assert len({ds.FrameOfReferenceUID for ds in fresh}) == 1 and fresh[0].FrameOfReferenceUID != source
    for bad in ("", "1.02.3", "Plantedqz", "1." + "2" * 70):
        with pytest.raises(angio.InputError, match="frame_of_reference_uid must be a DICOM UID"):
            write_dicom_series(Volume(np.zeros((3, 2, 2))), tmp_path / "bad", frame_of_reference_uid=bad)
    assert not (tmp_path / "bad").exists()


def test_left_handed_direction_is_written_as_same_physical_voxels(tmp_path):
    data = stored_values((4, 3, 3)).astype(np.float32)
    vol = Volume(data, spacing=(2.0, 1.0, 1.0), origin=(0, 0, 50.0),
                 direction=np.diag([1.0, 1.0, -1.0]))
    write_dicom_series(vol, tmp_path / "out")
    back = read_dicom_series(tmp_path / "out")
    np.testing.assert_array_equal(back.array, data[::-1])
    np.testing.assert_allclose(back.direction, np.eye(3))
    np.testing.assert_allclose(patient_position(back, (0, 0, 0)), patient_position(vol, (3, 0, 0)))


def test_write_validates_volume(tmp_path):
    bad = Volume(np.zeros((2, 3, 3), np.float32))
    bad.array[0, 0, 0] = np.nan
    with pytest.raises(angio.InputError, match="finite"):
        write_dicom_series(bad, tmp_path / "out")
    skew = Volume(np.zeros((2, 3, 3)), direction=[[1, 0, 0], [1, 1, 0], [0, 0, 1]])
    with pytest.raises(angio.InputError, match="orthonormal"):
        write_dicom_series(skew, tmp_path / "out")
    with pytest.raises(angio.InputError, match="modality"):
        write_dicom_series(Volume(np.zeros((2, 3, 3))), tmp_path / "out", modality="ct scan")
    assert not (tmp_path / "out").exists()


PLANTED = {
    "PatientName": "Zyxwvut^Quentinbb",
    "PatientID": "PID-98765-PLANT",
    "PatientBirthDate": "19230405",
    "InstitutionName": "Planted Memorial Hospital",
    "ReferringPhysicianName": "Drplanted^Xavierq",
    "AccessionNumber": "ACC77331PLANT",
    # free-text descriptors listed by PS3.15 Annex E
    "SeriesDescription": "Series of Zyxwvut Quentinbb",
    "ContrastBolusAgent": "Planted-Omnipaque given by Drplanted",
    "StudyDescription": "Planted study 19230405",
}


def test_privacy_no_identifying_data_survives_read_write(tmp_path):
    series_uid = generate_uid()
    write_ct_series(tmp_path / "in", stored_values((3, 4, 4)), series_uid=series_uid,
                    extra={**PLANTED, "BodyPartExamined": "HEAD"})
    vol = read_dicom_series(tmp_path / "in")
    assert not set(PLANTED) & set(vol.meta)
    assert vol.meta["BodyPartExamined"] == "HEAD"
    vol.meta.update(PLANTED)  # even if a caller puts them there, the writer ignores them
    paths = write_dicom_series(vol, tmp_path / "out")
    planted = [v.encode() for v in PLANTED.values()] + [series_uid.encode()]
    for path in paths:
        raw = path.read_bytes()
        assert not [v for v in planted if v in raw], path
        ds = pydicom.dcmread(path)
        assert ds.PatientName == "ANONYMOUS" and ds.PatientID == "ANGIO3D"
        for keyword in ("PatientBirthDate", "PatientSex", "InstitutionName",
                        "ReferringPhysicianName", "AccessionNumber", "OtherPatientIDs",
                        "InstitutionAddress", "StudyDate"):
            assert not ds.get(keyword), keyword
        assert ds.BodyPartExamined == "HEAD"
        assert ds.SeriesInstanceUID != series_uid


def test_privacy_of_real_ct_slice(tmp_path):
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    paths = write_dicom_series(read_dicom_series(tmp_path), tmp_path / "out")
    raw = paths[0].read_bytes()
    for secret in (b"CompressedSamples", b"1CT1", b"JFK IMAGING", b"CT01_OC0"):
        assert secret not in raw


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_refuses_non_empty_folder_without_overwrite(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("precious")
    with pytest.raises(angio.InputError, match="overwrite=True"):
        write_dicom_series(Volume(np.zeros((3, 2, 2))), target)
    assert _snapshot(target) == {"keep.txt": b"precious"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_overwrite_replaces_content_and_empty_folder_is_fine(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    write_dicom_series(Volume(np.zeros((2, 2, 2))), target)  # empty folder: no overwrite needed
    (target / "stale.txt").write_text("old")
    paths = write_dicom_series(Volume(np.ones((3, 2, 2))), target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    np.testing.assert_array_equal(read_dicom_series(target).array, np.ones((3, 2, 2)))


def test_failure_mid_write_keeps_old_folder_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "out"
    write_dicom_series(Volume(np.full((4, 3, 3), 7.0)), target)
    before = _snapshot(target)
    real_save = angio.io.writing._save_slice
    calls = []

    def failing_save(ds, path):
        calls.append(path)
        if path.name == "slice_0003.dcm":
            raise OSError("disk full (simulated)")
        real_save(ds, path)

    monkeypatch.setattr(angio.io.writing, "_save_slice", failing_save)
    with pytest.raises(OSError, match="simulated"):
        write_dicom_series(Volume(np.zeros((6, 3, 3))), target, overwrite=True)
    assert len(calls) == 3
    assert _snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with pytest.raises(OSError, match="simulated"):  # a new target is not created either
        write_dicom_series(Volume(np.zeros((6, 3, 3))), tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# ------------------------------------------------------------------------------- resampling


def _source_index(vol: Volume, out: Volume) -> list[np.ndarray]:
    """Per axis (z, y, x): the input voxel index that each output index samples."""
    n = out.shape[0]
    return [(size - 1) / 2 + (np.arange(n) - (n - 1) / 2) * out.spacing[0] / sp
            for size, sp in zip(vol.shape, vol.spacing)]


def _outer_and(masks: list[np.ndarray]) -> np.ndarray:
    return masks[0][:, None, None] & masks[1][None, :, None] & masks[2][None, None, :]


def test_resample_shape_spacing_and_linear_field_is_physically_exact():
    # A field linear in patient coordinates is reproduced exactly by trilinear sampling, so
    # every output voxel inside the input must hold f(its own physical position).
    c, s = np.cos(0.4), np.sin(0.4)
    direction = np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])
    vol = Volume(np.zeros((20, 30, 40), np.float32), spacing=(2.0, 0.5, 0.75),
                 origin=(-5.0, 12.0, 40.0), direction=direction)
    grad = np.array([0.3, -0.2, 0.5])
    vol.array[:] = np.einsum("i,i...->...", grad, _positions(vol))

    out = resample_to_cube(vol, 32)
    assert out.shape == (32, 32, 32) and out.array.dtype == np.float32
    assert out.spacing == pytest.approx((1.25, 1.25, 1.25))  # 40 mm largest extent / 32
    np.testing.assert_allclose(out.direction, direction)
    expected = np.einsum("i,i...->...", grad, _positions(out))
    index = _source_index(vol, out)
    inside = _outer_and([(i >= 0) & (i <= size - 1) for i, size in zip(index, vol.shape)])
    assert inside.sum() > 1000
    np.testing.assert_allclose(out.array[inside], expected[inside], atol=1e-3)
    # beyond the input's voxel boxes: the fill, by default the input's minimum
    within = _outer_and([(i >= -0.5) & (i < size - 0.5) for i, size in zip(index, vol.shape)])
    assert (~within).any() and np.all(out.array[~within] == vol.array.min())


def _positions(vol: Volume) -> np.ndarray:
    """Patient (x, y, z) mm of every voxel, shape (3, Z, Y, X)."""
    zz, yy, xx = np.indices(vol.shape)
    dz, dy, dx = vol.spacing
    steps = np.stack([xx * dx, yy * dy, zz * dz])
    return (np.asarray(vol.origin)[:, None, None, None]
            + np.tensordot(np.asarray(vol.direction), steps, axes=1))


def test_resample_keeps_bright_voxel_position():
    vol = Volume(np.zeros((10, 12, 14), np.float32), spacing=(3.0, 1.0, 2.0), origin=(5, -5, 9))
    vol.array[6, 4, 9] = 1000.0
    out = resample_to_cube(vol, 64, spacing_mm=0.5)  # upsampling: the peak is sampled
    peak = np.unravel_index(np.argmax(out.array), out.shape)
    distance = patient_position(out, peak) - patient_position(vol, (6, 4, 9))
    assert np.all(np.abs(distance) <= 0.5 / 2 + 1e-6)


def test_resample_keeps_blob_centroid_when_downsampling():
    zz, yy, xx = np.indices((20, 30, 40))
    dz, dy, dx = 2.0, 0.5, 0.75
    centre = np.array([9.3, 17.2, 22.6])  # voxel index (z, y, x)
    r2 = ((zz - centre[0]) * dz) ** 2 + ((yy - centre[1]) * dy) ** 2 + ((xx - centre[2]) * dx) ** 2
    vol = Volume(np.exp(-r2 / (2 * 3.0**2)).astype(np.float32), spacing=(dz, dy, dx),
                 origin=(3, 4, 5))
    out = resample_to_cube(vol, 24)
    idx = np.indices(out.shape).reshape(3, -1)
    weights = out.array.reshape(-1)
    centroid = (idx * weights).sum(axis=1) / weights.sum()
    step = out.spacing[0]
    moved = patient_position(out, centroid) - patient_position(vol, centre)
    assert np.all(np.abs(moved) < step / 2)


def test_resample_centre_pads_and_crops():
    vol = Volume(np.ones((8, 20, 40), np.float32), spacing=(1.0, 1.0, 1.0))
    out = resample_to_cube(vol, 20, fill=-5.0)  # spacing 2 mm: content 4 x 10 x 20 voxels
    assert out.spacing == (2.0, 2.0, 2.0)
    filled = out.array > 0
    zs, ys, xs = (np.flatnonzero(filled.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    assert list(zs) == list(range(8, 12)) and list(ys) == list(range(5, 15))
    assert list(xs) == list(range(20))
    assert set(np.unique(out.array)) == {-5.0, 1.0}
    # default fill is the minimum, and the cube centre stays at the same physical place
    vol.array[0] = -1000.0
    out = resample_to_cube(vol, 20)
    assert out.array.min() == -1000.0 and out.array[0, 0, 0] == -1000.0
    np.testing.assert_allclose(patient_position(out, (9.5, 9.5, 9.5)),
                               patient_position(vol, (3.5, 9.5, 19.5)))
    # crop: a 1 mm grid of a 40 mm long volume into 10 voxels keeps the central 10 mm
    ramp = Volume(np.broadcast_to(np.arange(40, dtype=np.float32), (8, 20, 40)).copy())
    crop = resample_to_cube(ramp, 10, spacing_mm=1.0)
    np.testing.assert_array_equal(crop.array[5, 5], np.arange(15, 25, dtype=np.float32))
    assert crop.origin == pytest.approx((15.0, 5.0, -1.0))


def test_resample_validates_arguments():
    vol = Volume(np.zeros((2, 2, 2)))
    for kwargs in ({"n": 0}, {"n": 2.5}, {"spacing_mm": -1.0}, {"order": 7}):
        with pytest.raises(angio.InputError):
            resample_to_cube(vol, **{"n": 4, **kwargs})


@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.99])
def test_truncated_end_slice_is_refused_not_dropped(tmp_path, where, fraction):
    paths = write_ct_series(tmp_path, stored_values((5, 8, 8)))
    victim = paths[0] if where == "first" else paths[-1]
    data = victim.read_bytes()
    victim.write_bytes(data[: int(len(data) * fraction)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the cut-off value
        with pytest.raises(angio.InputError) as info:
            read_dicom_series(tmp_path)
    assert victim.name in str(info.value)


@pytest.mark.parametrize("slope, what", [("0", "RescaleSlope"), ("1e30", "RescaleSlope"),
                                         ("NaN", "RescaleSlope"), ("inf", "RescaleSlope")])
def test_unusable_rescale_is_refused_naming_the_file(tmp_path, slope, what):
    paths = write_ct_series(tmp_path, stored_values((3, 4, 4)))
    ds = pydicom.dcmread(paths[1])
    ds.RescaleSlope = slope
    ds.save_as(paths[1], enforce_file_format=True)
    with pytest.raises(angio.InputError, match=what) as info:
        read_dicom_series(tmp_path)
    assert paths[1].name in str(info.value)

