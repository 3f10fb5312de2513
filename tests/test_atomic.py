"""Atomic outputs: complete or absent, never half-written, with ordinary permissions."""

import os
import stat

import pytest

import angio
from angio.atomic import atomic_folder, atomic_path, atomic_write, atomic_write_text


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_replace_atomically_and_get_umask_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        target = tmp_path / "a.json"
        atomic_write_text(target, "one")
        assert target.read_text() == "one" and mode(target) == 0o644

        def fail(fh):
            fh.write(b"half")
            raise RuntimeError("killed")

        with pytest.raises(RuntimeError):
            atomic_write(target, fail)
        assert target.read_text() == "one"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
        with atomic_path(tmp_path / "m.stl", keep_suffix=True) as tmp:
            assert tmp.name.startswith(".m.stl.") and tmp.suffix == ".stl"
            tmp.write_bytes(b"solid")
        assert (tmp_path / "m.stl").read_bytes() == b"solid"
    finally:
        os.umask(umask)


def test_folders_swap_in_whole_or_not_at_all(tmp_path):
    target = tmp_path / "out"
    with atomic_folder(target) as tmp:
        (tmp / "x").write_text("new")
        assert not target.exists()
    assert (target / "x").read_text() == "new" and mode(target) & 0o055
    with pytest.raises(angio.InputError, match="not empty"):
        with atomic_folder(target):
            pass
    with pytest.raises(RuntimeError):
        with atomic_folder(target, overwrite=True) as tmp:
            (tmp / "y").write_text("partial")
            raise RuntimeError("crash")
    assert sorted(p.name for p in target.iterdir()) == ["x"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    with atomic_folder(target, overwrite=True) as tmp:
        (tmp / "z").write_text("replacement")
    assert sorted(p.name for p in target.iterdir()) == ["z"]
    (tmp_path / "file").write_text("")
    with pytest.raises(angio.InputError, match="is a file"):
        with atomic_folder(tmp_path / "file"):
            pass
