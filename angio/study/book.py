"""Build the HTML book (Jupyter Book 1.x) from ``book/`` and the executed notebooks.

``angio study book`` (or ``python -m angio.study book``) runs :func:`build_book` after
``angio study run`` has written ``results/notebooks/``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from angio.study.headline import HEADLINE_FIGURE, headline_markdown
from angio.study.prose import substitutions
from angio.study.runner import REPO_ROOT, notebooks
from angio.zoo.cards import model_cards_page  # the zoo imports the study: import when building

__all__ = ["build_book", "card_label", "label_cards", "card_links", "entries_used", "glue_text",
           "with_substitutions"]

#: A model card's title on the book's *Model cards* page (:func:`angio.zoo.cards.model_cards_page`).
_CARD_TITLE = re.compile(r"^## Model card: `([^`]+)`\s*$", re.MULTILINE)


def card_label(name: str) -> str:
    """The MyST target of entry ``name``'s model card on the book's *Model cards* page."""
    return f"card-{name}".lower()


def label_cards(page: str) -> str:
    """The *Model cards* page with a MyST target (:func:`card_label`) before each card's title.

    The chapters link an entry's card with ``{ref}`` (:func:`card_links`); the book build
    (``-n -W``) fails on a link to a card that is not on the page.
    """
    return _CARD_TITLE.sub(lambda m: f"({card_label(m.group(1))})=\n{m.group(0)}", page)


def card_links(names) -> str:
    """MyST links to the model cards of the entries ``names``, in order: ``"{ref}`a <card-a>`, ..."``."""
    return ", ".join(f"{{ref}}`{n} <{card_label(n)}>`" for n in dict.fromkeys(names))


def glue_text(**values) -> None:
    """Glue each value, as text, for the chapter's prose (``{glue:text}`key```); nothing is displayed.

    Numbers belong in the prose only this way (or in generated Markdown): format them here
    (``pct=f"{x:.1%}"``); a value that is not a string is glued as ``str(value)``.
    """
    from myst_nb import glue

    for key, value in values.items():
        glue(key, value if isinstance(value, str) else str(value), display=False)


def entries_used(names, *, what: str = "This chapter's results come from") -> object:
    """A chapter's list of the zoo entries it used, linked to their model cards, as MyST Markdown.

    Displayed by a notebook cell whose metadata asks myst-nb to read it as MyST
    (``{"mystnb": {"markdown_format": "myst"}}``), so the links resolve in the book.
    """
    from IPython.display import Markdown

    names = list(dict.fromkeys(names))
    if not names:
        raise ValueError("entries_used needs at least one zoo entry")
    return Markdown(f"{what} the model zoo's "
                    + ("entry " if len(names) == 1 else "entries ") + card_links(names)
                    + " (each name links its model card: data, training, test metrics per tree).")


def with_substitutions(config: str, values: dict[str, str]) -> str:
    """The book's ``_config.yml`` text with ``values`` added to ``parse.myst_substitutions``.

    Parameters
    ----------
    config : str
        The configuration (YAML).
    values : dict of str to str
        ``{key: text}``, read by the pages as ``{{ key }}``; they replace keys of the same name.

    Returns
    -------
    str
        The configuration as YAML (its comments are not kept).
    """
    import yaml

    data = yaml.safe_load(config) or {}
    parse = data.setdefault("parse", {})
    parse["myst_substitutions"] = {**(parse.get("myst_substitutions") or {}), **values}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=1000)


def build_book(*, results_dir: str | os.PathLike = "results", out_dir: str | os.PathLike = "_build",
               warnings_as_errors: bool = True) -> Path:
    """Build the HTML book from ``book/`` and the executed notebooks; returns ``index.html``.

    The book's sources are staged in ``out_dir/src`` (``_config.yml``, ``_toc.yml``,
    ``book/`` and ``results/notebooks/``), so any results folder can be published, and
    Jupyter Book (1.x, offline, no execution) writes ``out_dir/html``. Two pages are
    generated into the staged ``book/`` (never into the repository's): ``headline.md``
    (:func:`~angio.study.headline.headline_markdown`) and ``model_cards.md``, the zoo's
    model cards (:func:`angio.zoo.cards.model_cards_page`), each card with the MyST target
    that the chapters' links point to (:func:`label_cards`). The staged ``_config.yml``
    carries the figures that the pages of ``book/`` quote, computed from the zoo's records
    (:func:`angio.study.prose.substitutions`), as MyST substitutions: a page writes
    ``{{ key }}``, and the build (``-W``) fails on a key that is not defined.
    """
    results = Path(results_dir).resolve()
    executed = results / "notebooks"
    missing = [nb.name for nb in notebooks() if not (executed / nb.name).exists()]
    if missing:
        raise FileNotFoundError(f"{executed}: executed notebooks missing ({', '.join(missing)}); "
                                "run `python -m angio.study run` (or `make study`) first")
    out = Path(out_dir).resolve()
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "results").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "_toc.yml", src / "_toc.yml")
    (src / "_config.yml").write_text(with_substitutions((REPO_ROOT / "_config.yml").read_text(), substitutions()))
    shutil.copytree(REPO_ROOT / "book", src / "book")
    (src / "book" / "headline.md").write_text(headline_markdown(results))
    (src / "book" / "model_cards.md").write_text(label_cards(model_cards_page()))
    if (results / "figures" / HEADLINE_FIGURE).exists():
        shutil.copy2(results / "figures" / HEADLINE_FIGURE, src / "book" / HEADLINE_FIGURE)
    shutil.copytree(executed, src / "results" / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    html = out / "html"
    if html.exists():
        shutil.rmtree(html)
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build", str(src),
           "--path-output", str(src), "--builder", "html"]
    if warnings_as_errors:
        cmd += ["-W", "-n", "--keep-going"]
    subprocess.run(cmd, check=True)
    shutil.move(str(src / "_build" / "html"), str(html))
    return html / "index.html"
