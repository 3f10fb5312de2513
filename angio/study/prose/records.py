"""What the prose reads of a zoo record, shared by the autoencoders' and the U-Nets' fragments.

The paper's Table 1 at the zoo's grid for one setting, a training's sessions, how a session
ended and the minutes of an epoch; and :data:`REPRODUCED_WITHIN`, the distance to a cell of
the paper's Table 1 that counts as reproduced.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from angio.study import zoo_tables

__all__ = ["REPRODUCED_WITHIN"]

#: The IoU distance to a cell of the paper's Table 1 that counts as reproduced (the
#: reproduction issue's target: 10 points; as :func:`angio.study.headline.reproduction_paragraph`).
REPRODUCED_WITHIN = 0.10


def _by_setting(dae: Mapping[str, Any], setting: str) -> dict[int, tuple[str, Any]]:
    return {e.experiment.n_views: (n, e) for n, e in dae.items() if zoo_tables.setting_of(e) == setting}


def _table1(dae: Mapping[str, Any], setting: str) -> tuple[dict[int, dict], dict[int, dict]]:
    otsu = {r["views"]: r for r in zoo_tables.table1(dae, target="otsu", settings=(setting,))}
    exact = {r["views"]: r for r in zoo_tables.table1(dae, target="exact", settings=(setting,))}
    return otsu, exact


def _sessions(t: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(t.get("sessions") or [{"hardware": t["hardware"], "first_epoch": 0,
                                       "epochs_after": t["epochs_run"], "wall_s": t["wall_time_s"]}])


def _ended(t: Mapping[str, Any], session: Mapping[str, Any]) -> str:
    if session.get("stopped_by_budget"):
        return "the time budget"
    return "patience" if t["stopped_by_patience"] else "hand"


def _epoch_minutes(curve: Sequence[Mapping[str, Any]]) -> float:
    """The median minutes of an epoch (training and validation) over a recorded curve."""
    return statistics.median(r["time_s"] for r in curve) / 60

