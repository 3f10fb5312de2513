"""The book's headline: this build's answer to "how many views?", a figure and the numbers.

:func:`headline_markdown` reads ``results/metrics/zoo.json`` (written by chapter 9 from the
shipped weights, on the held-out test trees) and, when chapter 9 saved it,
``results/figures/headline.png``; it returns a short Markdown section that
:func:`angio.study.build_book` writes next to the intro page (with the figure), so the
numbers and the picture on the first page are the ones this build measured. The section
ends with :func:`reproduction_paragraph`: how close the paper's autoencoder comes to the
paper's Table 1, from the shipped zoo records (their test metrics, measured at publication).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from angio import paper, zoo
from angio.markdown import join_and, markdown_table
from angio.study import zoo_tables

__all__ = ["headline_markdown", "reproduction_paragraph", "HEADLINE_FIGURE"]

#: The figure chapter 9 saves for the intro page (``results/figures/<this>``).
HEADLINE_FIGURE = "headline.png"


def _means(rows: list[dict], method: str) -> dict[str, float] | None:
    part = [r for r in rows if r["method"] == method and r["target"] == "exact"]
    if not part:
        return None
    out = {m: float(np.mean([r[m] for r in part])) for m in ("dice", "cldice", "iou")}
    return {**out, "views": part[0]["views"], "trees": len(part)}


def _answer(rows: list[dict]) -> str:
    """The "how many views?" paragraph, from the default models' measured means."""
    two, three = (_means(rows, zoo.DEFAULT_MODELS.get(n, "")) for n in (2, 3))
    if two is None:
        return ""
    text = (f"**How many views are needed?** With two orthogonal views the biplane model "
            f"(`{zoo.DEFAULT_MODELS[2]}`) recovers the vessels of trees it never saw with a Dice of "
            f"{two['dice']:.2f} against the exact mask (clDice {two['cldice']:.2f}, "
            f"{two['trees']} test trees)")
    if three is not None:
        text += (f"; a third view at 45° raises that to {three['dice']:.2f} (`{zoo.DEFAULT_MODELS[3]}`, "
                 f"{three['dice'] - two['dice']:+.2f}). Two views fix where a vessel can lie but not which "
                 "crossings of their rays are real; a third view rules many of those crossings out")
    goals = zoo.QUALITY_TARGETS
    met = two["dice"] >= goals[2]["dice"] and (three is None or three["dice"] >= goals[3]["dice"])
    text += (f". This project's targets are Dice {goals[2]['dice']:.2f} from two views and "
             f"{goals[3]['dice']:.2f} from three" + (" (met)" if met else ", not met yet"))
    shipped = zoo.entries()
    unfinished = [n for n in (zoo.DEFAULT_MODELS.get(2), zoo.DEFAULT_MODELS.get(3))
                  if n in shipped and not shipped[n].record["training"].get("stopped_by_patience")]
    if unfinished and not met:
        text += ("; the shipped networks were still improving on the validation trees when their "
                 "training budget ran out (chapter 9)")
    text += (". The paper's autoencoder, on private CT "
             f"angiograms and against an Otsu ground truth, reached {100 * paper.TABLE1[3]['iou']:.1f}% "
             f"IoU from three views and {100 * paper.TABLE1[2]['iou']:.1f}% from two (Wu et al., "
             "ISVC 2023, Table 1); our models' IoU is in the table below.")
    return text + "\n"


#: ``"a, b and c"`` (:func:`angio.markdown.join_and`), under the name the book's prose modules import.
_and = join_and


def _pcts(rows: list[dict], key: str) -> str:
    return _and([f"{100 * r[key]:.1f}%" for r in rows])


def _views(rows: list[dict]) -> str:
    return _and([str(r["views"]) for r in rows])


def reproduction_paragraph(otsu: list[dict], exact: list[dict], *, within: float = 0.10) -> str:
    """The "does the paper's Table 1 hold?" paragraph, from the zoo's vessels-only Table 1 rows.

    Parameters
    ----------
    otsu, exact : list of dict
        Rows of :func:`angio.study.zoo_tables.table1` for the ``"rotational"`` setting
        against Otsu (with the paper's cells, ``paper_iou``) and against the exact mask.
    within : float, optional
        The IoU distance to the paper's cell that counts as reproduced (the reproduction
        issue's target: 10 points).

    Returns
    -------
    str
        One Markdown paragraph naming the view counts within ``within`` of the paper and
        those not yet, with our IoU against Otsu and the exact mask and the paper's cells;
        empty when no row has a paper cell.
    """
    rows = [r for r in otsu if r.get("paper_iou") is not None]
    if not rows:
        return ""
    vs_exact = {r["views"]: r for r in exact}
    close = [r for r in rows if abs(r["iou"] - r["paper_iou"]) <= within + 1e-12]
    far = [r for r in rows if r not in close]
    head = ("**Does the paper's Table 1 hold?** Retrained at 0.5 mm on the study's vessels-only volumes "
            "(subtracted angiograms, without the skull of the paper's CT angiograms), the paper's autoencoder ")
    if close:
        text = head + (f"comes within {100 * within:.0f} IoU points of the paper's cells at {_views(close)} "
                       f"views ({_pcts(close, 'iou')} against Otsu")
        hit = [vs_exact[r["views"]] for r in close if r["views"] in vs_exact]
        if len(hit) == len(close):
            text += f", {_pcts(hit, 'iou')} against the exact vessel mask"
        text += f"; the paper {_pcts(close, 'paper_iou')})"
        if far:
            text += f" but not yet at {_views(far)} ({_pcts(far, 'iou')}; the paper {_pcts(far, 'paper_iou')})"
    else:
        text = head + (f"does not yet come within {100 * within:.0f} IoU points of the paper's cells "
                       f"({_pcts(rows, 'iou')} at {_views(rows)} views; the paper {_pcts(rows, 'paper_iou')})")
    return text + ". Chapter 6 has every cell of both settings and how long each run trained.\n"


def headline_markdown(results_dir: str | os.PathLike = "results") -> str:
    """Markdown for the intro page: the figure, the answer and the measured Dice/clDice/IoU.

    Parameters
    ----------
    results_dir : path-like
        The study's results folder (``metrics/zoo.json``, ``figures/headline.png``).

    Returns
    -------
    str
        A placeholder sentence when chapter 9 has not run. The figure is referenced as
        ``headline.png`` beside the page (``build_book`` copies it there).
    """
    results = Path(results_dir)
    path = results / "metrics" / "zoo.json"
    if not path.exists():
        return ("*The headline numbers appear here once chapter 9 (the model zoo) has run: "
                "`angio study run` then `angio study book`.*\n")
    rows = json.loads(path.read_text())["rows"]
    means = {method: _means(rows, method) for method in dict.fromkeys(r["method"] for r in rows)}
    lines = markdown_table(["views", "model", "test trees", "Dice", "clDice", "IoU"],
                           [[m["views"], method, m["trees"], *(f"{m[k]:.3f}" for k in ("dice", "cldice", "iou"))]
                            for method, m in means.items() if m is not None])
    figure = ""
    if (results / "figures" / HEADLINE_FIGURE).exists():
        figure = (f"```{{figure}} {HEADLINE_FIGURE}\n:alt: The two input views of a held-out tree and the 3D "
                  "reconstructions coloured by their errors\n:width: 100%\n\n"
                  "A held-out tree (chapter 9). Left: the frontal and lateral projections a biplane C-arm "
                  "records. Right: the reconstructions from two and from three views, grey where they agree "
                  "with the exact vessel mask, red where they add vessel that is not there, blue where they "
                  "miss it.\n```\n\n")
    dae = zoo.entries(model="dae")
    repro = reproduction_paragraph(zoo_tables.table1(dae, target="otsu", settings=("rotational",)),
                                   zoo_tables.table1(dae, target="exact", settings=("rotational",)))
    return (figure + _answer(rows) + "\nMeasured in this build on held-out BraVa trees at 0.5 mm voxels, "
            "against the exact vessel mask (chapter 9):\n\n" + "\n".join(lines) + "\n"
            + ("\n" + repro if repro else ""))
