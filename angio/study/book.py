"""Build the HTML book (Jupyter Book 1.x) from ``book/`` and the executed notebooks.

``angio study book`` (or ``python -m angio.study book``) runs :func:`build_book` after
``angio study run`` has written ``results/notebooks/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from angio.study.headline import HEADLINE_FIGURE, headline_markdown
from angio.study.runner import REPO_ROOT, notebooks

__all__ = ["build_book"]


def build_book(*, results_dir: str | os.PathLike = "results", out_dir: str | os.PathLike = "_build",
               warnings_as_errors: bool = True) -> Path:
    """Build the HTML book from ``book/`` and the executed notebooks; returns ``index.html``.

    The book's sources are staged in ``out_dir/src`` (``_config.yml``, ``_toc.yml``,
    ``book/`` and ``results/notebooks/``), so any results folder can be published, and
    Jupyter Book (1.x, offline, no execution) writes ``out_dir/html``.
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
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO_ROOT / name, src / name)
    shutil.copytree(REPO_ROOT / "book", src / "book")
    (src / "book" / "headline.md").write_text(headline_markdown(results))
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
