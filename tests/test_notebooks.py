"""The study notebooks end to end with the tiny profile: nbval, papermill, the book, a browser.

The notebooks run once, under nbval (``--nbval-lax``: every cell runs without an error), with
the parameters ``angio study run`` injects; ``tests/nbval_outputs.py`` writes each back with the
outputs nbval received, where ``angio study run`` writes its executed copies, and the tests
below and the book build read those. The runner itself (papermill) runs one chapter again and
must give the same outputs.

These are slow (several minutes in all): `make test` runs them; plain `pytest` skips them.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from angio import study
from angio.study.runner import prepare

pytestmark = pytest.mark.slow

#: Runs pytest with nbval and tests/nbval_outputs.py loaded, without putting tests/ on the kernel's path.
_NBVAL = ("import sys, pytest; sys.path.insert(0, sys.argv.pop(1)); import nbval_outputs; "
          "sys.exit(pytest.main(sys.argv[1:], plugins=[nbval_outputs]))")


@pytest.fixture(scope="module")
def nbval_run(tmp_path_factory):
    """Every notebook run once by nbval (lax), profile ``tiny``, into a fresh results folder.

    Returns the results folder and the finished nbval process; its notebooks are the executed
    copies (``results/notebooks``, as ``angio study run`` leaves them).
    """
    results = tmp_path_factory.mktemp("results")
    folder = prepare("tiny", results_dir=results)[0].parent
    # -s: nbval prints "unhandled iopub msg" for an output it cannot keep (see the test below)
    proc = subprocess.run([sys.executable, "-c", _NBVAL, str(Path(__file__).parent), "-q", "-s", "-p",
                           "no:cacheprovider", "-W", "ignore", "--nbval-lax", "-o", "addopts=", str(folder)],
                          capture_output=True, text=True, cwd=folder)
    return results, proc


@pytest.fixture(scope="module")
def executed(nbval_run):
    """The results folder of the notebooks' one run (see :func:`nbval_run`)."""
    return nbval_run[0]


def test_every_notebook_ran_without_errors_and_wrote_its_tables(executed):
    for path in study.notebooks():
        nb = nbformat.read(executed / "notebooks" / path.name, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, path.name
        assert all(c.execution_count for c in nb.cells if c.cell_type == "code"), path.name  # every cell ran
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and 'profile = "tiny"' in injected[0].source, path.name
    tables = ("ground_truth", "view_sweep", "view_sweep_paper_setting", "biplane", "zoo", "zoo_robustness",
              "zoo_geometry")
    for table in tables:
        rows = json.loads((executed / "metrics" / f"{table}.json").read_text())["rows"]
        assert rows and all(0.0 <= r["iou"] <= 1.0 for r in rows), table
    assert list((executed / "meshes").glob("*.stl")) and list((executed / "meshes").glob("*.vtp"))


def test_nbval_on_tiny_parameterized_notebooks(nbval_run):
    """Nbval (lax) runs every notebook with the tiny parameters injected as ``angio study run`` injects them."""
    _, proc = nbval_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # an output nbval cannot keep (a progress bar's clear_output, an updated display) would be
    # missing from the executed copies the other tests and the book read
    assert "unhandled iopub msg" not in proc.stdout, proc.stdout[-3000:]


def _shown(nb) -> list[list[tuple]]:
    """Per code cell, what it showed: each output's kind, its MIME types, and its text."""
    def one(o):
        if o.output_type == "stream":
            return o.output_type, o.name, o.text
        return o.output_type, tuple(sorted(o.get("data", {}))), o.get("data", {}).get("text/plain")
    return [[one(o) for o in c.outputs] for c in nb.cells if c.cell_type == "code"]


def test_the_study_runner_writes_what_the_nbval_run_wrote(executed):
    """``angio study run``'s papermill, on the same results, shows what the nbval run kept of one chapter.

    Chapter 4 has text, tables and figures (each drawn by a cell ending in ``;``); papermill
    runs it again in place, reusing the volumes the first run cached.
    """
    path = executed / "notebooks" / "04_ground_truth.ipynb"
    kept = nbformat.read(path, as_version=4)
    (again,) = study.run("tiny", results_dir=executed, only=["04_ground_truth"], log=lambda *a: None)
    ran = nbformat.read(again, as_version=4)
    assert again == path and _shown(ran) == _shown(kept)
    assert any(o[0] == "display_data" and "image/png" in o[1] for cell in _shown(ran) for o in cell)
    assert ran.metadata["language_info"] == kept.metadata["language_info"]


def _outputs(nb, kind: str) -> list[str]:
    """Every output of one kind (``"text/html"`` or ``"stream"``) of an executed notebook, in order."""
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if kind == "stream" and o.get("output_type") == "stream":
                out.append(o["text"])
            elif kind in o.get("data", {}):
                out.append(o["data"][kind])
    return out


def test_no_result_of_the_study_comes_from_a_run_shorter_than_its_recipe(executed):
    """Every table the chapters present as a result names zoo entries, each a run of its recipe.

    A result table is marked ``angio-result`` and names the entries its rows come from
    (:func:`angio.figures.table`'s ``entries``); a profile's minutes-long live run is not a zoo
    entry, and an entry trained at another grid or with shorter epochs than its recipe is
    refused by :func:`angio.study.zoo_tables.short_runs`.
    """
    import re

    from angio import zoo
    from angio.study import zoo_tables

    shipped = zoo.entries()
    results = {}
    for path in study.notebooks():
        nb = nbformat.read(executed / "notebooks" / path.name, as_version=4)
        tables = [t for html in _outputs(nb, "text/html")
                  for t in re.findall(r"<table [^>]*>(?:<caption>.*?</caption>)?", html)]
        marked = [t for t in tables if "angio-result" in t]
        for t in marked:
            names = re.search(r'data-entries="([^"]*)"', t).group(1).split()
            assert names and zoo_tables.short_runs(shipped, names) == {}, (path.name, t[:200])
        # a table captioned as the paper's Table 1 or 2 is always one of the study's results
        papers = [t for t in tables if re.search(r"<caption>Table [12]\b", t)]
        assert all("angio-result" in t for t in papers), path.name
        results[path.stem] = (len(marked), len(papers))
    for chapter in ("06_view_sweep", "07_biplane", "08_meshes"):
        assert results[chapter][0] >= 1, chapter
    assert results["06_view_sweep"][1] >= 1 and results["07_biplane"][1] >= 1
    live = nbformat.read(executed / "notebooks" / "05_training.ipynb", as_version=4)
    beside = [t for t in _outputs(live, "text/html") if "the live run beside" in t]
    assert beside and "angio-result" not in beside[0]  # the live run's row is a demonstration


def test_the_meshes_chapter_draws_every_reconstruction_it_lists(executed):
    """Chapter 8's scene: the exact mask and, for every entry shown, each error surface non-empty."""
    import re

    nb = nbformat.read(executed / "notebooks" / "08_meshes.ipynb", as_version=4)
    (table,) = [t for t in _outputs(nb, "text/html") if "place in the scene" in t]
    shown = re.search(r'data-entries="([^"]*)"', table).group(1).split()
    assert len(shown) >= 2
    text = "".join(_outputs(nb, "stream"))
    truth = re.search(r"^exact mask: (\d+) triangles$", text, re.M)
    assert truth and int(truth.group(1)) > 0
    drawn = set()
    for name in shown:
        line = re.search(rf"^{re.escape(name)}: true positive (\d+) triangles, false positive (\d+) triangles, "
                         rf"false negative (\d+) triangles$", text, re.M)
        assert line, name
        assert all(int(n) > 0 for n in line.groups()), line.group(0)
        drawn.add(name)
    assert drawn == set(shown)
    (scene,) = [h for h in _outputs(nb, "text/html") if '<div class="angio-scene"><iframe' in h]
    assert "srcdoc=" in scene and "false negative" in scene.split("</iframe>", 1)[1]
    assert list((executed / "meshes").glob("*_exact_mask.stl"))


@pytest.fixture(scope="module")
def book(executed, tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    index = study.build_book(results_dir=executed, out_dir=out, warnings_as_errors=True)
    return index.parent


def test_book_has_every_chapter_and_embedded_scenes(book):
    assert (book / "index.html").exists()
    for path in study.notebooks():
        assert (book / "results" / "notebooks" / f"{path.stem}.html").exists(), path.stem
    for page in ("intro", "method", "data", "gpu", "limitations"):
        assert (book / "book" / f"{page}.html").exists(), page
    for chapter in ("01_data", "08_meshes", "09_model_zoo"):
        html = (book / "results" / "notebooks" / f"{chapter}.html").read_text()
        assert html.count('<div class="angio-scene"><iframe') == 1, chapter
        assert "srcdoc=" in html and "vtk" in html.lower()
    tables = (book / "results" / "notebooks" / "06_view_sweep.html").read_text()
    assert "Table 1 at 0.5 mm" in tables and "paper IoU" in tables and "paper MAE" in tables
    assert "this run&#x27;s autoencoder" not in tables and "angio-result" in tables
    # the chapters link the model cards of the entries they used, and their glued numbers resolved
    cards = (book / "book" / "model_cards.html").read_text()
    for chapter, entry in (("05_training", "paper-dae-10v"), ("06_view_sweep", "paper-dae-90v"),
                           ("07_biplane", "unet-biplane"), ("08_meshes", "unet-biplane")):
        page = (book / "results" / "notebooks" / f"{chapter}.html").read_text()
        assert f"model_cards.html#card-{entry}" in page, chapter
        assert "{glue:" not in page and "pasted-text" in page, chapter
    assert 'id="card-unet-biplane"' in cards
    biplane = (book / "results" / "notebooks" / "07_biplane.html").read_text()
    assert "L1 + conditional GAN" in biplane and "quoted by the paper" in biplane and "paper-cta-dae-2v" in biplane
    assert "U-Net (sum + min): unet-biplane" in biplane and "Otsu on the min back-projection" in biplane
    intro = (book / "book" / "intro.html").read_text()
    assert "Measured in this build" in intro and "unet-biplane" in intro  # the headline is this run's
    assert "How many views are needed?" in intro and '<img alt="The two input views' in intro
    assert (book / "_images" / "headline.png").exists() or list(book.glob("_images/headline*.png"))
    zoo = (book / "results" / "notebooks" / "09_model_zoo.html").read_text()
    assert "Against the exact mask at 0.5 mm" in zoo and "Dice under acquisition errors" in zoo
    assert "View consistency as a test-time refinement" in zoo and "View consistency record re-measured" in zoo
    key = zoo.split('<div class="angio-scene-key"', 1)[1].split("</div>", 1)[0]  # the scene's legend, in HTML
    assert all(f"{name} (" in key and " voxels)" in key for name in ("true positive", "false negative"))
    assert "<img" in tables  # the IoU-vs-views figure


@pytest.mark.browser
@pytest.mark.parametrize("chapter", ["01_data", "08_meshes", "09_model_zoo"])
def test_each_scene_is_framed_on_the_vessels_in_headless_chromium(book, tmp_path, chapter):
    """Every 3D scene of the book, rendered by a browser: not blank, and the camera on the vessels."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (make test installs it)")
    # Render the scene page itself (the iframe's srcdoc) full-window, as the book's iframe shows it.
    html = (book / "results" / "notebooks" / f"{chapter}.html").read_text()
    import html as html_lib
    import re

    srcdoc = html_lib.unescape(re.search(r'srcdoc="([^"]*)"', html).group(1))
    height = int(re.search(r'style="width:100%;height:(\d+)px', html).group(1))
    page = tmp_path / "scene.html"
    page.write_text(srcdoc)
    shot = tmp_path / "scene.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", f"--window-size=960,{height}",
                    "--virtual-time-budget=10000", page.as_uri()],
                   check=True, capture_output=True, timeout=180)
    from PIL import Image

    from angio.mesh import framing

    f = framing(np.asarray(Image.open(shot).convert("RGB")))  # the scenes' background is white
    assert f.drawn > 0.005, f"{chapter}: scene looks blank ({f})"
    # framed on the vessels: they span most of the frame's width or height, not a speck in a corner
    assert max(f.width, f.height) > 0.6, f"{chapter}: vessels fill too little of the frame ({f})"

