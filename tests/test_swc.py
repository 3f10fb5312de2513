"""SWC reader: tolerant layout, strict content, errors naming file and line."""

import warnings

import numpy as np
import pytest

import angio
from angio.swc import parse_swc, read_swc

GOOD = "1 1 0 0 0 1.0 -1\n2 3 1 0 0 0.5 1\n3 3 2 0 0 0.0 2\n4 3 1 1 0 0.5 2\n"


def test_reads_points_radii_and_parents(tmp_path):
    path = tmp_path / "t.swc"
    path.write_text(GOOD)
    tree = read_swc(path)
    assert len(tree) == 4
    np.testing.assert_array_equal(tree.points[1], [1, 0, 0])
    np.testing.assert_array_equal(tree.radius, [1.0, 0.5, 0.0, 0.5])  # zero radius kept
    np.testing.assert_array_equal(tree.parent, [-1, 0, 1, 1])
    assert tree.frame == "swc-xyz" and tree.name == "t.swc"
    assert tree.length_mm == pytest.approx(3.0)


def test_crlf_blank_lines_comments_and_unordered_ids(tmp_path):
    text = "# header\r\n\r\n4 3 1 1 0 0.5 2\r\n1 1 0 0 0 1.0 -1\r\n  \r\n2 3 1 0 0 0.5 1\r\n"
    path = tmp_path / "crlf.swc"
    path.write_bytes(text.encode())
    tree = read_swc(path)
    assert len(tree) == 3
    # row 0 is id 4, whose parent id 2 is row 2
    np.testing.assert_array_equal(tree.parent, [2, -1, 1])


def test_truncated_last_line_is_dropped_with_warning(tmp_path):
    path = tmp_path / "cut.swc"
    path.write_text(GOOD + "5 3 3 3 3 1.2")
    with pytest.warns(UserWarning, match=r"cut\.swc:5: last line is truncated"):
        tree = read_swc(path)
    assert len(tree) == 4


@pytest.mark.parametrize(
    "text, where, what",
    [
        ("1 1 0 0 0 1 -1\n2 3 1 0 0 1\n3 3 1 0 0 1 1\n", ":2:", "expected 7 columns"),
        ("1 1 0 0 0 1 -1\n2 3 x 0 0 1 1\n", ":2:", "not a number"),
        ("1 1 0 0 0 1 -1\n2 3 0 0 0 -1 1\n", ":2:", "negative radius"),
        ("1 1 0 0 0 1 -1\n2 3 0 nan 0 1 1\n", ":2:", "non-finite"),
        ("1 1 0 0 0 1 -1\n2 3 0 0 0 1 7\n", ":2:", "parent id 7 does not exist"),
        ("1 1 0 0 0 1 -1\n1 3 0 0 0 1 1\n", ":2:", "duplicate point id 1"),
        ("1 1 0 0 0 1 2\n2 3 0 0 0 1 1\n", "", "no root"),
        ("\n# nothing\n", "", "empty SWC"),
        # a root plus a separate cycle 2 -> 3 -> 4 -> 2
        ("1 1 0 0 0 1 -1\n2 3 1 0 0 1 4\n3 3 2 0 0 1 2\n4 3 3 0 0 1 3\n", ":2:", "cycle"),
        ("1 1 0 0 0 1 -1\n99999999999999999999999 3 0 0 0 1 1\n", ":2:", "id out of range"),
        ("1 1 0 0 0 1 -1\n2 3 1e30 0 0 1 1\n", ":2:", "absurd coordinate"),
        ("1 1 0 0 0 1 -1\n2 3 0 0 0 1e30 1\n", ":2:", "absurd coordinate or radius"),
    ],
)
def test_malformed_files_raise_input_error_naming_file_and_line(tmp_path, text, where, what):
    path = tmp_path / "bad.swc"
    path.write_text(text)
    with pytest.raises(angio.InputError, match=what) as info:
        read_swc(path)
    assert str(path) + where in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(angio.InputError, match="cannot read"):
        read_swc(tmp_path / "nope.swc")
    path = tmp_path / "bin.swc"
    path.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(angio.InputError, match="bin.swc"):
        read_swc(path)


def test_parse_bytes_names_source():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = parse_swc(GOOD.encode(), source="mem.swc")
    assert tree.name == "mem.swc"
    child, par = tree.segments
    np.testing.assert_array_equal(child, [1, 2, 3])
    np.testing.assert_array_equal(par, [0, 1, 1])
