"""The figures the book's prose quotes, computed from the zoo's records.

House rule: a number in a chapter's sentences comes from the code that computed it, never
typed by hand. The chapters (notebooks) glue these fragments (``study.glue_text(**...)``, read
by ``{glue:text}`key``` in their Markdown); the Markdown pages of ``book/`` read them as MyST
substitutions (``{{ key }}``), which :func:`angio.study.build_book` writes into the staged
``_config.yml`` from :func:`substitutions`. Every fragment function returns ``{key: text}`` with the
grammar of one entry or several; the keys are unique across functions. The fragments are plain
text (``{glue:text}`` shows Markdown as typed), except a few that only the Markdown pages read
(``cone_table``, a table; entry names in code spans and bold cells in ``cone_val``,
``mirror_val``, ``mirror_test`` and ``consist_test``).

The sources are the zoo's records (``angio/_data/zoo/<name>.json``), the robustness, view
consistency and ground-truth records beside them, the GPU sessions' logs
(``angio/_data/zoo/gpu_runs/``) and, for what a record replaced, :data:`SUPERSEDED`: the
summaries of shipped records that later records replaced (a record keeps its sessions, not
the metrics it replaced), written from the repository's history by
:func:`superseded_from_history`.

One job per module (each imports only those above it; everything public is re-exported
here, as ``prose.X``):

:mod:`~angio.study.prose.words`
    Numbers and words as the prose writes them: :func:`pct`, :func:`count_word`,
    :func:`ordinal`, :func:`span`, :func:`lr_text` and the grammar of one or several.
:mod:`~angio.study.prose.history`
    What later records replaced: :data:`SUPERSEDED`, :data:`SUPERSEDED_ENTRIES`,
    :func:`superseded_from_history`, :func:`write_superseded`, :func:`read_superseded` and
    :func:`before`.
:mod:`~angio.study.prose.records`
    What the fragments read of a zoo record (its sessions, Table 1 per setting), and
    :data:`REPRODUCED_WITHIN`.
:mod:`~angio.study.prose.autoencoders`
    The paper's autoencoder: :func:`continued`, :func:`windowed`, :func:`raw_cta`,
    :func:`margins` and :func:`grid`.
:mod:`~angio.study.prose.curriculum`
    The vessels-only runs that start from the weights of more views: :func:`curriculum`
    (and :data:`LEFT_BACKGROUND`).
:mod:`~angio.study.prose.unets`
    The U-Nets: :func:`unets`, :func:`cone_beam`, :func:`calibration`, :func:`mirror`,
    :func:`consistency`, and the lent GPU's sessions (:func:`gpu_sessions`).
:mod:`~angio.study.prose.acquisition`
    Chapter 9's reading of the robustness records: :func:`conditions`,
    :func:`robustness_reading`, :func:`jitter_reading` and :func:`mirror_reading`.
:mod:`~angio.study.prose.training`
    Chapter 9's account of the U-Nets' training (:func:`zoo_training`), the biplane network
    per CPU-hour (:func:`cpu_hours`) and its target's gap after the levers tried
    (:func:`lever_gap`).

This module gathers them into :func:`substitutions`.
"""

from __future__ import annotations

from angio.study.prose.acquisition import conditions, jitter_reading, mirror_reading, robustness_reading
from angio.study.prose.autoencoders import continued, grid, margins, raw_cta, windowed
from angio.study.prose.curriculum import LEFT_BACKGROUND, curriculum
from angio.study.prose.ground_truth import otsu_two_grids
from angio.study.prose.history import (
    SUPERSEDED,
    SUPERSEDED_ENTRIES,
    before,
    read_superseded,
    superseded_from_history,
    write_superseded,
)
from angio.study.prose.records import REPRODUCED_WITHIN
from angio.study.prose.training import cpu_hours, lever_gap, zoo_training
from angio.study.prose.unets import (
    DAE_LOG,
    UNET_LOG,
    UNETS,
    calibration,
    cone_beam,
    consistency,
    gpu_sessions,
    mirror,
    unets,
)
from angio.study.prose.words import count_word, lr_text, ordinal, pct, span
from angio.zoo import entries

__all__ = ["otsu_two_grids",
           "SUPERSEDED", "REPRODUCED_WITHIN", "LEFT_BACKGROUND", "pct", "count_word", "ordinal", "span", "lr_text",
           "read_superseded", "superseded_from_history", "write_superseded", "before",
           "continued", "windowed", "curriculum", "raw_cta", "margins", "unets", "cone_beam", "calibration",
           "mirror", "consistency", "gpu_sessions", "grid", "substitutions", "conditions", "robustness_reading",
           "jitter_reading", "mirror_reading", "zoo_training", "cpu_hours", "lever_gap",
           "SUPERSEDED_ENTRIES", "UNETS", "UNET_LOG", "DAE_LOG"]


def substitutions() -> dict[str, str]:
    """Every fragment of this package, for the MyST substitutions of the book's Markdown pages.

    :func:`angio.study.build_book` writes them into the staged ``_config.yml``
    (``parse.myst_substitutions``); a page reads one as ``{{ key }}``, and the build
    (``-W``) fails on a key that is not here.
    """
    shipped = entries()
    dae = {n: e for n, e in shipped.items() if e.record["recipe"]["experiment"]["model"] == "dae"}
    superseded = read_superseded()
    out: dict[str, str] = {}
    for part in (continued(dae, superseded), windowed(dae), curriculum(dae, superseded), raw_cta(dae),
                 margins(shipped), unets(shipped, superseded), cone_beam(shipped), calibration(shipped),
                 mirror(shipped), consistency(), gpu_sessions(shipped), grid(dae), conditions(shipped),
                 robustness_reading(shipped), jitter_reading(shipped), mirror_reading(shipped),
                 zoo_training(shipped, superseded), cpu_hours(shipped), lever_gap(shipped)):
        clash = set(part) & set(out)
        if clash:
            raise ValueError(f"prose keys defined twice: {sorted(clash)}")
        out.update(part)
    return out
