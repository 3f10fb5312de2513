"""Exceptions raised by :mod:`angio`, and :func:`reading_errors` that turns a reader's failures into them."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

__all__ = ["InputError", "reading_errors"]


class InputError(ValueError):
    """Bad user input: a malformed file, an inconsistent DICOM series, a wrong shape.

    The message always names the offending file (and line or slice where that
    applies) and says what is wrong, so it can be shown to a user as is.
    Subclasses :class:`ValueError`, so ``except ValueError`` also catches it.
    """


@contextlib.contextmanager
def reading_errors(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Re-raise whatever the block raises while it reads ``path`` as an :class:`InputError` naming the file.

    A damaged or truncated file makes the libraries underneath raise almost anything
    (pydicom's errors, ``ValueError``, ``struct.error``, ``OSError``, ``EOFError``,
    ``UnicodeDecodeError``, ...); the reader's caller sees one
    ``InputError("<path>: <what> (<type>: <message>)")`` instead. An :class:`InputError`
    passes through unchanged, and so do ``KeyboardInterrupt`` and ``SystemExit`` (not
    :class:`Exception`).

    Parameters
    ----------
    path : str or path-like
        The file being read, named in the message.
    what : str
        What went wrong, in words (e.g. ``"damaged DICOM file"``).
    """
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: {what} ({type(exc).__name__}: {exc})") from exc
