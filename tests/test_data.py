"""Bundled BraVa cases, their orientation, and the patient-level split."""

import hashlib

import numpy as np
import pytest

from angio import data
from angio.swc import Tree


def test_fifty_cases_listed_and_attributed():
    cases = data.list_cases()
    assert len(cases) == 50 and cases == sorted(cases)
    text = data.source_text()
    assert "Wright SN" in text and "cng.gmu.edu/brava" in text


def test_archive_is_byte_identical_to_source():
    raw = data.swc_bytes("BG001")
    assert hashlib.sha256(raw).hexdigest().startswith("5b69c6c4")
    assert b"\r\n" in raw  # CRLF kept


def test_every_case_loads_in_volume_frame():
    for case in data.list_cases():
        tree = data.load_tree(case)
        assert tree.frame == "zyx" and tree.name == case and len(tree) > 2000
        lo, hi = tree.bounds()
        assert np.all(hi - lo < 180.0), case  # fits the default field of view


def test_bh0027_truncated_line_handled_quietly(recwarn):
    tree = data.load_tree("BH0027")
    assert len(tree) == 3406
    assert not [w for w in recwarn if "truncated" in str(w.message)]


def test_orientation_major_arteries_inferior_and_rotation_proper():
    """The root (a carotid or the basilar) is at the inferior end of z, thick arteries low."""
    for case in data.list_cases():
        tree = data.load_tree(case)
        z = tree.points[:, 0]
        root = tree.points[tree.parent == -1][0]
        assert root[0] <= np.quantile(z, 0.1), case
        assert np.median(z[tree.radius >= 1.5]) < np.median(z), case
    # In (x, y, z) order on both sides the map is a proper rotation (no mirror image).
    assert np.linalg.det(data._SWC_TO_VOLUME[::-1]) == pytest.approx(1.0)


def test_to_volume_frame_rotates_and_is_idempotent():
    t = Tree(points=np.array([[1.0, 2.0, 3.0]]), radius=np.ones(1), parent=np.array([-1]))
    v = data.to_volume_frame(t)
    np.testing.assert_array_equal(v.points, [[2.0, -3.0, 1.0]])
    assert data.to_volume_frame(v) is v


def test_split_is_deterministic_disjoint_and_complete():
    a = data.split_cases(seed=0)
    b = data.split_cases(seed=0)
    c = data.split_cases(seed=1)
    assert a == b and a != c
    assert len(a.test) == 5 and len(a.train) == 45
    assert not set(a.train) & set(a.test)
    assert sorted(a.train + a.test) == data.list_cases()


def test_split_rejects_bad_arguments():
    with pytest.raises(ValueError, match="both sides"):
        data.Split(train=("A", "B"), test=("B",))
    with pytest.raises(ValueError, match="n_test"):
        data.split_cases(["A", "B"], n_test=2)
    with pytest.raises(ValueError, match="duplicate"):
        data.split_cases(["A", "A", "B"], n_test=1)
    with pytest.raises(KeyError, match="unknown case"):
        data.swc_bytes("NOPE")
