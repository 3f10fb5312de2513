"""Markdown and prose text shared by every page the package writes.

The zoo's model cards (:mod:`angio.zoo.cards`), the README's results block
(:mod:`angio.study.readme`) and the book's pages (:mod:`angio.study`) build their tables
with :func:`markdown_table` and their lists with :func:`join_and`. This module imports
nothing from the package, so any layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["markdown_cell", "markdown_table", "join_and"]


def markdown_cell(value: Any) -> str:
    """Text for a Markdown table cell: ``str(value)`` with whitespace runs folded to one space and ``|`` escaped."""
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(header: Sequence[Any], rows: Sequence[Sequence[Any]], align: str | None = None) -> list[str]:
    """A Markdown (GitHub) table, one line per row.

    Parameters
    ----------
    header : sequence
        The column titles.
    rows : sequence of sequences
        The cells, row by row; each cell is written as :func:`markdown_cell` of it.
    align : str, optional
        One letter per column: ``"r"`` right-aligns it (``---:``), anything else leaves it
        to the renderer (``---``). Default: no column aligned.

    Returns
    -------
    list of str
        The header line, the rule, then one line per row (no newlines).
    """
    marks = align or "-" * len(header)
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in marks) + "|"
    out = ["| " + " | ".join(markdown_cell(h) for h in header) + " |", rule]
    out += ["| " + " | ".join(markdown_cell(c) for c in r) + " |" for r in rows]
    return out


def join_and(items: Sequence[Any]) -> str:
    """``"a, b and c"``: a list as the prose writes it (``"a"`` for one item, ``""`` for none)."""
    items = [str(i) for i in items]
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
