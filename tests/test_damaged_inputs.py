"""Damaged files: every reader turns a corrupted or truncated file into an InputError naming it.

Valid files (an SWC tree, a CT series, an XA run, PNG/TIFF/DICOM views) are damaged by seeded
random byte mutations: truncation at a random point, random bytes overwritten, a range zeroed,
the first bytes replaced by garbage. Reading a damaged file either succeeds with arrays of the
right shape and type (a changed pixel value or coordinate is still a valid file) or raises
:class:`angio.InputError` whose message names the file, never any other exception.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import write_ct_series, write_view
from test_xa import dsa_run, write_xa

import angio
from angio.io import read_dicom_series, read_xa
from angio.reconstruct import is_xa, read_images
from angio.swc import read_swc

SEED = 34  # the number
N_MUTATIONS = 32  # per reader, 8 of each kind
MUTATIONS = ("truncate", "flip bytes", "zero a range", "garbage header")
SWC = "# a small tree\n1 1 0 0 0 1.0 -1\n2 3 1 0 0 0.5 1\n3 3 2 0 0 0.25 2\n4 3 1 1 0 0.5 2\n5 3 2 1.5 0 0.5 4\n"


@pytest.fixture(autouse=True)
def _fixed_uids(monkeypatch):
    """Deterministic UIDs of full length, so that the seeded mutations hit the same bytes on every run."""
    import dicom_factory

    numbers = itertools.count(10**37)
    monkeypatch.setattr(dicom_factory, "generate_uid", lambda *a, **k: f"1.2.826.0.1.3680043.8.498.{next(numbers)}")


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """``data`` damaged by one mutation of ``kind`` (see :data:`MUTATIONS`)."""
    out = bytearray(data)
    if kind == "truncate":
        return bytes(out[: rng.integers(0, len(out))])
    if kind == "flip bytes":
        for i in rng.integers(0, len(out), size=rng.integers(1, 9)):
            out[i] = int(rng.integers(256))
        return bytes(out)
    if kind == "zero a range":
        start = int(rng.integers(0, len(out)))
        end = min(len(out), start + int(rng.integers(1, 65)))
        out[start:end] = bytes(end - start)
        return bytes(out)
    n = int(rng.integers(1, 257))  # garbage header: the DICOM preamble, magic and file meta, a PNG/TIFF header
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes() + bytes(out[n:])


def read_damaged(read: Callable[[Path], object], path: Path, label: str) -> object | None:
    """``read(path)``, or ``None`` when it refused ``path`` with an InputError naming it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the libraries warn about what they skip
            return read(path)
    except angio.InputError as exc:
        assert path.name in str(exc), f"{label}: the message does not name {path.name}: {exc}"
        return None
    except Exception as exc:  # anything else is a leak
        raise AssertionError(f"{label}: {type(exc).__name__} instead of angio.InputError: {exc}") from exc


def damage_and_read(tmp_path: Path, make: Callable[[Path], Path], read: Callable[[Path], object],
                    check: Callable[[object], bool]) -> Counter:
    """Damage :data:`N_MUTATIONS` fresh valid files, read each; count the outcomes by mutation."""
    rng = np.random.default_rng(SEED)
    outcomes = Counter()
    for k in range(N_MUTATIONS):
        kind = MUTATIONS[k % len(MUTATIONS)]
        path = make(tmp_path / f"case{k:02d}")
        path.write_bytes(mutate(path.read_bytes(), kind, rng))
        label = f"mutation {k} ({kind}) of {path.name}"
        result = read_damaged(read, path, label)
        if result is not None:
            assert check(result), f"{label}: read, but the result is wrong"
        outcomes[kind, "read" if result is not None else "refused"] += 1
    return outcomes


def assert_damaged(outcomes: Counter) -> None:
    """The mutations did damage: a quarter of the files at least were refused (a changed pixel is not damage)."""
    refused = sum(n for (_, outcome), n in outcomes.items() if outcome == "refused")
    assert refused >= N_MUTATIONS // 4, outcomes


def _swc(case: Path) -> Path:
    case.mkdir()
    path = case / "tree.swc"
    path.write_text(SWC)
    return path


def test_damaged_swc_files(tmp_path):
    def check(tree):
        n = len(tree)
        return (n > 0 and tree.points.shape == (n, 3) and tree.points.dtype == np.float64
                and tree.radius.shape == (n,) and tree.parent.shape == (n,) and tree.parent.dtype == np.int64)

    assert_damaged(damage_and_read(tmp_path, _swc, read_swc, check))


def test_damaged_slice_of_a_dicom_series(tmp_path):
    stored = np.arange(4 * 6 * 6, dtype=np.int16).reshape(4, 6, 6) * 7 - 500
    pick = np.random.default_rng(SEED + 1)

    def make(case: Path) -> Path:
        paths = write_ct_series(case, stored, shuffle_seed=int(pick.integers(1000)))
        return paths[pick.integers(len(paths))]  # the slice to damage: first, last or inside the stack

    def check(volume):
        return volume.array.shape == stored.shape and volume.array.dtype == np.float32

    outcomes = damage_and_read(tmp_path, make, lambda path: read_dicom_series(path.parent), check)
    assert_damaged(outcomes)


def test_damaged_xa_runs(tmp_path):
    def make(case: Path) -> Path:
        case.mkdir()
        return write_xa(case / "run.dcm", dsa_run(3, 2, 8))

    def read(path: Path):
        is_xa(path)  # as the command line asks first: never raises
        return read_xa(path)

    def check(view):
        return view.image.shape == (8, 8) and view.image.dtype == np.float32 and 0 <= view.frame < 3

    assert_damaged(damage_and_read(tmp_path, make, read, check))


def _write_image(path: Path) -> Path:
    import imageio.v3 as iio

    image = (np.arange(64).reshape(8, 8) * 50).astype(np.uint16)
    if path.suffix == ".dcm":
        write_view(path, image)
    else:
        iio.imwrite(path, image.astype(np.uint8) if path.suffix == ".png" else image)
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif", ".dcm"])
def test_damaged_2d_views(tmp_path, suffix):
    def make(case: Path) -> Path:
        case.mkdir()
        return _write_image(case / f"view{suffix}")

    def check(images):
        return images.shape == (1, 8, 8) and images.dtype == np.float32 and np.isfinite(images).all()

    assert_damaged(damage_and_read(tmp_path, make, lambda path: read_images([path]), check))


def test_a_series_slice_with_an_overwritten_header_is_named_not_skipped(tmp_path):
    # no 'DICM' prefix any more, but the file still holds the series' UID: a damaged slice, not a stray file
    paths = write_ct_series(tmp_path, np.zeros((3, 4, 4), np.int16))
    last = paths[-1]
    last.write_bytes(b"\xff" * 140 + last.read_bytes()[140:])
    with pytest.raises(angio.InputError, match="holds the UID of series") as info:
        read_dicom_series(tmp_path)
    assert last.name in str(info.value)


@pytest.mark.parametrize("content", [b"", bytes(100)], ids=["empty", "zeros"])
def test_a_series_file_cut_within_its_preamble_is_named_not_skipped(tmp_path, content):
    paths = write_ct_series(tmp_path, np.zeros((3, 4, 4), np.int16))
    paths[0].write_bytes(content)
    with pytest.raises(angio.InputError, match="start of a DICOM preamble") as info:
        read_dicom_series(tmp_path)
    assert paths[0].name in str(info.value)


def test_a_damaged_series_uid_names_the_files_of_each_series(tmp_path):
    paths = write_ct_series(tmp_path, np.zeros((3, 4, 4), np.int16), series_uid="1.2.826.0.1.3680043.8.498.77")
    data = paths[1].read_bytes()
    paths[1].write_bytes(data.replace(b"1.2.826.0.1.3680043.8.498.77", b"1.2.826.0.1.3680043.8.498.78"))
    with pytest.raises(angio.InputError, match="holds 2 DICOM series") as info:
        read_dicom_series(tmp_path)
    assert all(p.name in str(info.value) for p in paths)


@pytest.mark.parametrize("reader", ["series", "xa"])
def test_an_element_with_a_broken_value_representation_names_the_file(tmp_path, reader):
    # pydicom converts a value when it is first used: the reader must fail when it reads the file, naming it
    if reader == "series":
        path = write_ct_series(tmp_path, np.zeros((3, 4, 4), np.int16))[1]
        element, read = b"\x20\x00\x32\x00DS", lambda: read_dicom_series(tmp_path)  # ImagePositionPatient
    else:
        path = write_xa(tmp_path / "run.dcm", dsa_run(3, 2, 8))
        element, read = b"\x18\x00\x10\x15DS", lambda: read_xa(path)  # PositionerPrimaryAngle
    data = path.read_bytes()
    assert data.count(element) == 1
    path.write_bytes(data.replace(element, element[:4] + b"Dh"))
    with pytest.raises(angio.InputError, match="damaged or truncated") as info:
        read()
    assert path.name in str(info.value)


def test_a_tiff_declaring_more_rows_than_it_holds_is_refused(tmp_path):
    import tifffile

    path = _write_image(tmp_path / "view.tif")
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["ImageLength"]
        offset, size = tag.valueoffset, {3: 2, 4: 4}[int(tag.dtype)]  # SHORT or LONG
        order = "little" if tif.byteorder == "<" else "big"
    data = bytearray(path.read_bytes())
    data[offset:offset + size] = (9).to_bytes(size, order)  # 9 rows declared, 8 stored
    path.write_bytes(bytes(data))
    with pytest.raises(angio.InputError, match="fewer than") as info:
        read_images([path])
    assert path.name in str(info.value)
