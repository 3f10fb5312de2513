"""Atomic outputs: complete or absent, never half-written, with ordinary permissions."""

import os
import stat

import pytest

import angio
from angio.atomic import atomic_folder, atomic_path, atomic_write, atomic_write_text
from angio.errors import InputError


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


def test_folder_below_a_file_is_refused_naming_it(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="afile is a file"):
        with atomic_folder(tmp_path / "afile" / "out"):
            pass


def test_replaced_folder_keeps_the_users_permissions(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    os.chmod(out, 0o750)
    with atomic_folder(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def test_unwritable_parent_is_an_input_error(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    with pytest.raises(InputError, match="cannot write there"):
        with atomic_folder(tmp_path / "out"):
            pass
