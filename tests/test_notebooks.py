"""The study notebooks end to end with the tiny profile: papermill, nbval, the book, a browser.

These are slow (several minutes in all): `make test` runs them; plain `pytest` skips them.
"""

import json
import os
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from angio import study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Run every notebook with papermill, profile ``tiny``, into a fresh results folder."""
    results = tmp_path_factory.mktemp("results")
    study.run("tiny", results_dir=results, log=lambda *a: None)
    return results


def test_every_notebook_ran_without_errors_and_wrote_its_tables(executed):
    for path in study.notebooks():
        nb = nbformat.read(executed / "notebooks" / path.name, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, path.name
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert injected and 'profile = "tiny"' in injected[0].source, path.name
    tables = ("ground_truth", "view_sweep", "view_sweep_paper_setting", "biplane", "zoo", "zoo_robustness",
              "zoo_geometry")
    for table in tables:
        rows = json.loads((executed / "metrics" / f"{table}.json").read_text())["rows"]
        assert rows and all(0.0 <= r["iou"] <= 1.0 for r in rows), table
    assert list((executed / "meshes").glob("*.stl")) and list((executed / "meshes").glob("*.vtp"))


def test_nbval_on_tiny_parameterized_notebooks(tmp_path, executed):
    """Nbval (lax) re-runs every notebook with the tiny parameters injected by papermill."""
    import papermill as pm

    for path in study.notebooks():
        pm.execute_notebook(str(path), str(tmp_path / path.name), prepare_only=True,
                            parameters={"profile": "tiny", "results_dir": str(executed)})
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
                           "-o", "addopts=", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


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
    for chapter in ("01_data", "08_meshes", "11_model_zoo"):
        html = (book / "results" / "notebooks" / f"{chapter}.html").read_text()
        assert html.count('<div class="angio-scene"><iframe') == 1, chapter
        assert "srcdoc=" in html and "vtk" in html.lower()
    tables = (book / "results" / "notebooks" / "06_view_sweep.html").read_text()
    assert "Table 1: this run" in tables and "paper IoU" in tables and "paper MAE" in tables
    biplane = (book / "results" / "notebooks" / "07_biplane.html").read_text()
    assert "L1 + conditional GAN" in biplane and "quoted by the paper" in biplane and "paper-cta-dae-2v" in biplane
    intro = (book / "book" / "intro.html").read_text()
    assert "Measured in this build" in intro and "unet-biplane" in intro  # the headline is this run's
    assert "How many views are needed?" in intro and '<img alt="The two input views' in intro
    assert (book / "_images" / "headline.png").exists() or list(book.glob("_images/headline*.png"))
    zoo = (book / "results" / "notebooks" / "11_model_zoo.html").read_text()
    assert "Against the exact mask at 0.5 mm" in zoo and "Dice under acquisition errors" in zoo
    assert "View consistency as a test-time refinement" in zoo and "View consistency record re-measured" in zoo
    key = zoo.split('<div class="angio-scene-key"', 1)[1].split("</div>", 1)[0]  # the scene's legend, in HTML
    assert all(f"{name} (" in key and " voxels)" in key for name in ("true positive", "false negative"))
    assert "<img" in tables  # the IoU-vs-views figure


@pytest.mark.browser
@pytest.mark.parametrize("chapter", ["01_data", "08_meshes", "11_model_zoo"])
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
