"""A pytest plugin for an nbval run: each notebook is written back with the outputs nbval received.

nbval executes every code cell of a notebook in one kernel and checks it (``--nbval-lax``:
that it runs without an error), but keeps what the cell displayed only in memory
(``IPyNbCell.test_outputs``). With this plugin loaded (``pytest.main(..., plugins=[module])``),
once a notebook's last cell has run the notebook file is rewritten in place with those outputs,
numbered execution counts and the kernel's ``language_info``: an executed notebook as
``angio study run`` (papermill) writes it, less papermill's timing metadata. So one execution
serves nbval's check and the tests and the book build that read the executed notebooks
(``tests/test_notebooks.py``).

nbval runs cells without storing them in the kernel's history, and IPython decides whether a
trailing ``;`` silences a cell's result from the last cell in that history: under nbval every
``figure(...);`` cell also returns its figure as a result. The result of a cell whose source
ends with ``;`` is dropped here by IPython's own rule, as a notebook kernel (papermill's) drops it.

A cell nbval did not run (skipped, or after the kernel died) keeps no output and no execution
count, so a reader can tell.
"""

from __future__ import annotations

import nbformat
import pytest

#: Per notebook collector: {code cell number: the outputs nbval received}.
_received: dict = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    yield
    if call.when == "call" and getattr(item, "test_outputs", None) is not None:
        _received.setdefault(item.parent, {})[item.cell_num] = list(item.test_outputs)


def pytest_runtest_teardown(item, nextitem):
    if hasattr(item, "cell_num") and (nextitem is None or nextitem.parent is not item.parent):
        _write(item.parent, _received.pop(item.parent, {}))


def _silenced(source: str) -> bool:
    """Whether IPython shows no result for a cell of this source (its last token is ``;``)."""
    from IPython.core.displayhook import DisplayHook
    from IPython.core.inputtransformer2 import TransformerManager

    return DisplayHook.semicolon_at_end_of_expression(TransformerManager().transform_cell(source))


def _write(notebook, received: dict) -> None:
    from ipykernel.ipkernel import IPythonKernel

    nb = notebook.nb  # the notebook as nbval read it, cells in order
    count = 0
    for num, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        if num not in received:
            cell.outputs, cell.execution_count = [], None
            continue
        count += 1
        outputs = [nbformat.from_dict(dict(o)) for o in received[num]]
        if _silenced(cell.source):
            outputs = [o for o in outputs if o.output_type != "execute_result"]
        for out in outputs:
            if out.output_type == "execute_result":
                out.execution_count = count
        cell.outputs, cell.execution_count = outputs, count
    nb.metadata["language_info"] = dict(IPythonKernel.language_info)
    nbformat.write(nb, str(notebook.path))
