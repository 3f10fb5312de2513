"""Atomic file and folder output: a result is either complete under its final name, or absent.

Every writer in the package goes through these helpers: the content is written to a
temporary sibling (same folder, so the final rename is atomic on POSIX file systems), flushed
and fsynced, given the permissions a plain ``open`` would have given it (temporary files are
created private), and renamed into place. A failure or a kill at any moment leaves the
previous content untouched and at most a hidden ``.<name>.*`` temporary behind, which the
next writer of the same name does not mind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from angio.errors import InputError

__all__ = ["atomic_write", "atomic_write_text", "atomic_path", "atomic_folder", "TEMP_SUFFIX"]

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish_mode(path: Path, *, folder: bool = False) -> None:
    """Give ``path`` the permissions ``open``/``mkdir`` would have: 0o666/0o777 minus the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary file name next to ``path``; on success it replaces ``path``.

    The temporary file is ``.<name>.<random>.tmp`` (``.tmp<suffix>`` with ``keep_suffix``, for
    writers that pick the format from the extension, such as VTK).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = TEMP_SUFFIX + (path.suffix if keep_suffix else "")
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _publish_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically: ``write(fh)`` fills a binary temporary file that replaces it.

    If ``write`` raises, the temporary file is removed and ``path`` is left as it was.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)
        fh.flush()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text to ``path`` atomically."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces ``target`` once the block succeeds.

    Parameters
    ----------
    target : path-like
        Final folder. It may not be a file; if it exists and is not empty, ``overwrite``
        must be true, and its old content is replaced only after the new one is complete.
    overwrite : bool
        Allow replacing a non-empty ``target``.

    Raises
    ------
    angio.InputError
        ``target`` is a file, or a non-empty folder without ``overwrite``.
    """
    target = Path(target).absolute()
    if target.exists() and not target.is_dir():
        raise InputError(f"{target}: is a file, not a folder")
    blocking = next((p for p in target.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"{target}: cannot create the folder: {blocking} is a file")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise InputError(f"{target}: folder is not empty; choose another folder, or pass "
                         "overwrite=True (--overwrite on the command line) to replace its content")
    existing_mode = stat.S_IMODE(target.stat().st_mode) if target.is_dir() else None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent))
    except PermissionError as exc:
        raise InputError(f"{target}: cannot write there ({exc.strerror}: {exc.filename})") from None
    try:
        yield tmp
        _publish_mode(tmp, folder=True)
        if existing_mode is not None:  # a folder the user made keeps the permissions they gave it
            os.chmod(tmp, existing_mode)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)


def _swap_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` folder to ``target``, replacing an existing one."""
    if not target.exists():
        os.replace(tmp, target)
        return
    backup = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, backup)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)
