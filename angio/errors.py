"""Exceptions raised by :mod:`angio`."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad user input: a malformed file, an inconsistent DICOM series, a wrong shape.

    The message always names the offending file (and line or slice where that
    applies) and says what is wrong, so it can be shown to a user as is.
    Subclasses :class:`ValueError`, so ``except ValueError`` also catches it.
    """
