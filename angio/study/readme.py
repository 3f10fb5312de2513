"""The README's results block, computed from the model zoo's records rather than typed.

``README.md`` holds one generated block between :data:`START` and :data:`END`: the paper's
Table 1 at the zoo's grid (the paper's autoencoder retrained at each view count, IoU against
Otsu's threshold beside the paper's cells, :func:`angio.study.zoo_tables.table1`, with the
verdict of :func:`angio.study.headline.reproduction_paragraph`) and the study's U-Nets
against the exact vessel mask (Dice, clDice and IoU, mean ± sd over the test trees, how long
and where each trained, and their margin over the paper's autoencoder,
:func:`angio.study.zoo_tables.iou_margin`).

``python -m angio.study readme`` rewrites the block in place (atomically) after the zoo
changes; ``--check`` only says whether it is current (exit status 1 if not), as
``tests/test_readme.py`` does.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from angio import paper, zoo
from angio.atomic import atomic_write_text
from angio.errors import InputError
from angio.markdown import markdown_table
from angio.study import zoo_tables
from angio.study.headline import reproduction_paragraph
from angio.study.runner import REPO_ROOT
from angio.study.tables import mean_table
from angio.study.zoo_tables import views_text

__all__ = ["START", "END", "COMMAND", "README", "results_block", "readme_block", "replace_block", "write_readme",
           "main"]

#: The markers around the generated block (each on its own line).
START = "<!-- results:start -->"
END = "<!-- results:end -->"
#: The command that rewrites the block.
COMMAND = "python -m angio.study readme"
#: The repository's README.
README = REPO_ROOT / "README.md"

#: Table 1's columns after the paper's: (setting, target) of :func:`~angio.study.zoo_tables.table1`.
_TABLE1_COLUMNS = (("rotational", "otsu", "vessels only"), ("rotational", "exact", "vessels only, vs exact mask"),
                   ("cta-window", "otsu", "CTA + skull, windowed Otsu"), ("cta", "otsu", "CTA + skull, raw-HU Otsu"))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def _table1_lines(dae: Mapping[str, Any]) -> list[str]:
    cells = {}
    for target in ("otsu", "exact"):
        for r in zoo_tables.table1(dae, target=target):
            cells[r["setting"], target, r["views"]] = r
    views = [n for n in zoo.PAPER_VIEWS if any(k[2] == n for k in cells)]
    if not views:
        return []
    cases = sorted({r["cases"] for r in cells.values()})
    rows = []
    for n in views:
        ours = cells.get(("rotational", "otsu", n))
        diff = ours.get("diff_iou") if ours else None
        rows.append([n, _pct(paper.TABLE1.get(n, {}).get("iou")), _pct(ours["iou"] if ours else None),
                     "—" if diff is None else f"{100 * diff:+.1f}"]
                    + [_pct(cells[s, t, n]["iou"]) if (s, t, n) in cells else "—" for s, t, _ in _TABLE1_COLUMNS[1:]])
    trees = " or ".join(str(c) for c in cases)
    lines = [f"**The paper's Table 1, retrained at the zoo's grid.** Test IoU of the paper's autoencoder at each "
             f"view count (`paper-dae-<n>v`, `paper-cta-win-dae-<n>v`, `paper-cta-dae-<n>v`), mean over {trees} "
             "held-out BraVa trees, scored as the paper scores: against the Otsu threshold each was trained for "
             "(one column against the exact vessel mask). The paper's cells are its own, on CT angiograms of "
             f"{paper.SETUP['patients']} patients at {paper.SETUP['volume']}³; Δ is ours minus the paper's, in IoU "
             "points.", ""]
    lines += markdown_table(["views", "paper", _TABLE1_COLUMNS[0][2], "Δ", *(c[2] for c in _TABLE1_COLUMNS[1:])],
                            rows, "rrrrrrr")
    repro = reproduction_paragraph(zoo_tables.table1(dae, target="otsu", settings=("rotational",)),
                                   zoo_tables.table1(dae, target="exact", settings=("rotational",)))
    return lines + (["", repro.strip()] if repro else [])


def _views(entry: Any) -> str:
    return views_text(entry)


def _trained(rows: Sequence[Mapping[str, Any]]) -> str:
    """Minutes per machine over an entry's sessions (:func:`~angio.study.zoo_tables.session_rows`)."""
    minutes: dict[str, float] = {}
    for r in rows:
        machine = re.sub(r", 1 threads$", ", 1 thread", r["machine"])
        minutes[machine] = minutes.get(machine, 0.0) + r["minutes"]
    return " + ".join(f"{m:.0f} min on {machine}" for machine, m in minutes.items())


def _unet_lines(shipped: Mapping[str, Any]) -> list[str]:
    unets = {name: e for name, e in shipped.items() if e.experiment.model == "unet"}
    if not unets:
        return []
    defaults = [n for n in zoo.DEFAULT_MODELS.values() if n in unets]
    order = defaults + sorted(set(unets) - set(defaults))
    exact = [r for r in zoo_tables.record_rows(unets) if r["target"] == "exact"]
    means = {r["entry"]: r for r in mean_table(exact, by=("entry",))}
    sessions = zoo_tables.session_rows(unets)
    rows = []
    for name in order:
        m = means[name]
        rows.append([f"`{name}`", _views(unets[name]), *(f"{m[k]:.3f} ± {m[k + '_std']:.3f}" for k in
                                                         ("dice", "cldice", "iou")),
                     _trained([s for s in sessions if s["entry"] == name])])
    trees = " or ".join(str(c) for c in sorted({m["cases"] for m in means.values()}))
    uses = [f"`{zoo.DEFAULT_MODELS[n]}` for {n} views" for n in sorted(zoo.DEFAULT_MODELS)
            if zoo.DEFAULT_MODELS[n] in unets]
    uses += [f"`{zoo.CONE_MODELS[n]}` for {n} XA planes" for n in sorted(zoo.CONE_MODELS)
             if zoo.CONE_MODELS[n] in unets]
    uses_text = f" (`angio reconstruct` uses {', '.join(uses)})" if uses else ""
    lines = [f"**The study's U-Nets**{uses_text}, against the exact vessel mask on the same {trees} test trees, "
             "mean ± sd over the trees:", ""]
    lines += markdown_table(["entry", "views", "Dice", "clDice", "IoU", "trained"], rows, "llrrrl")
    margins = zoo_tables.iou_margin(shipped, zoo.DEFAULT_MODELS)
    text = []
    if margins:
        text.append("Against the exact mask " + " and ".join(f"`{r['model']}`" for r in margins)
                    + " lead the paper's autoencoder at the same views by "
                    + " and ".join(f"{r['margin']:.2f} IoU ({r['views']} views, against `{r['baseline']}`)"
                                   for r in margins) + ".")
    goals = []
    for n, name in sorted(zoo.DEFAULT_MODELS.items()):
        targets = zoo.QUALITY_TARGETS.get(n)
        if targets and name in means:
            status = zoo.target_status(means[name], n)
            goals.append(" and ".join(f"{'Dice' if k == 'dice' else 'clDice'} ≥ {v:.2f}" for k, v in targets.items())
                         + f" from {n} views ({'met' if status == 'met' else 'not met yet'})")
    if goals:
        text.append("The project's targets: " + "; ".join(goals) + ".")
    return lines + (["", " ".join(text)] if text else [])


def results_block(folder: str | os.PathLike | None = None) -> str:
    """The README's results block, markers included, from the zoo's records.

    Parameters
    ----------
    folder : path-like, optional
        Zoo folder (default :data:`angio.zoo.ZOO_DIR`).

    Returns
    -------
    str
        Markdown from :data:`START` to :data:`END` (no trailing newline): the paper's Table 1
        at the zoo's grid with the reproduction verdict, then the U-Nets' test metrics
        against the exact mask with their training time and their margin over the paper's
        autoencoder. Parts without shipped entries are left out.
    """
    shipped = zoo.entries(folder)
    dae = {name: e for name, e in shipped.items() if e.experiment.model == "dae"}
    parts = [_table1_lines(dae), _unet_lines(shipped)]
    body: list[str] = []
    for part in parts:
        if part:
            body += part + [""]
    body += ["Every entry's model card (data, training cost, per-tree metrics, robustness): `angio zoo card NAME`, "
             "or the book's *Model cards* page."]
    head = f"<!-- Written by `{COMMAND}` from the zoo's records (angio/_data/zoo/); do not edit by hand. -->"
    return "\n".join([START, head, "", *body, END])


def _span(text: str, path: os.PathLike | str) -> tuple[int, int]:
    starts, ends = text.count(START), text.count(END)
    if starts != 1 or ends != 1:
        raise InputError(f"{path}: expected one {START} and one {END} line, found {starts} and {ends}")
    i, j = text.index(START), text.index(END) + len(END)
    if j < i:
        raise InputError(f"{path}: {END} comes before {START}")
    return i, j


def readme_block(text: str, path: os.PathLike | str = "README.md") -> str:
    """The block of ``text`` from :data:`START` to :data:`END`, markers included.

    Parameters
    ----------
    text : str
        The README's text.
    path : path-like or str
        Where the text came from (for the error message).

    Returns
    -------
    str
        The block, from the start of :data:`START` to the end of :data:`END`.

    Raises
    ------
    angio.InputError
        If the markers are missing, repeated or out of order (the message names ``path``).
    """
    i, j = _span(text, path)
    return text[i:j]


def replace_block(text: str, block: str, path: os.PathLike | str = "README.md") -> str:
    """``text`` with its block (see :func:`readme_block`) replaced by ``block``.

    Parameters
    ----------
    text : str
        The README's text.
    block : str
        The new block, markers included (e.g. :func:`results_block`).
    path : path-like or str
        Where the text came from (for the error message).

    Returns
    -------
    str
        The text with everything from :data:`START` to :data:`END` replaced.
    """
    i, j = _span(text, path)
    return text[:i] + block + text[j:]


def write_readme(path: str | os.PathLike = README, *, check: bool = False) -> bool:
    """Rewrite the results block of ``path`` from the zoo's records (atomically).

    Parameters
    ----------
    path : path-like
        The README (default: the repository's ``README.md``).
    check : bool
        Only compare; leave the file as it is.

    Returns
    -------
    bool
        Whether the block was (with ``check``: would be) changed.
    """
    path = Path(path)
    text = path.read_text()
    new = replace_block(text, results_block(), path)
    if new != text and not check:
        atomic_write_text(path, new)
    return new != text


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m angio.study readme [--check] [--readme PATH]``; returns the exit status."""
    ap = argparse.ArgumentParser(prog=COMMAND, description="Rewrite the README's results block from the zoo's "
                                 "records.")
    ap.add_argument("--readme", default=str(README), help="the README to rewrite (default: the repository's)")
    ap.add_argument("--check", action="store_true", help="only check that the block is current (exit 1 if not)")
    args = ap.parse_args(list(argv) if argv is not None else None)
    try:
        changed = write_readme(args.readme, check=args.check)
    except InputError as exc:
        print(f"{COMMAND}: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{args.readme}: results block {'out of date: run `' + COMMAND + '`' if changed else 'current'}")
        return 1 if changed else 0
    print(f"{args.readme}: results block {'rewritten' if changed else 'already current'}")
    return 0
