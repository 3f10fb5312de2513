"""Which epoch ships and when a run stops: the selection and patience rule, live or replayed.

:func:`improved_on` says whether an epoch beats the selected one; :func:`patience_exhausted`
whether a run has gone ``patience`` validations without progress; :func:`replay_rule`
applies a rule to a recorded validation curve (a record made under an older rule shows what
the current one would have done with the same epochs). The rule never changes what an epoch
computes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["improved_on", "patience_exhausted", "replay_rule"]


#: Validation quantities for which a lower value is better (the others: higher).
_LOWER_IS_BETTER = frozenset({"loss", "mse", "mae"})


def _key(quantity: str) -> str:
    return "val_loss" if quantity == "loss" else f"val_{quantity}"


def _better(quantity: str, value: float, than: float) -> bool:
    return value < than if quantity in _LOWER_IS_BETTER else value > than


def improved_on(select: str, row: Mapping[str, Any], history: Mapping[str, Any], select_from: int = 0) -> bool:
    """Whether the epoch ``row`` beats the best so far by the selection rule ``select``.

    Epochs before ``select_from`` never do.
    """
    key = _key(select)
    value = row.get(key)
    if value is None or row["epoch"] < select_from:
        return False
    best = history.get("best_epoch")
    if best is None:
        return True
    previous = next(r[key] for r in history["epochs"] if r["epoch"] == best)
    return _better(select, value, previous)


def _last_progress(rows: Sequence[Mapping[str, Any]], watch: Sequence[str], select_from: int) -> int:
    """The last epoch (from ``select_from`` on) at which a quantity of ``watch`` reached a new best; -1 if none."""
    best: dict[str, float] = {}
    last = -1
    for row in rows:
        if row["epoch"] < select_from or row.get("val_loss") is None:
            continue
        for q in watch:
            value = row.get(_key(q))
            if value is not None and (q not in best or _better(q, value, best[q])):
                best[q] = value
                last = row["epoch"]
    return last


def patience_exhausted(patience: int | None, history: Mapping[str, Any], *, watch: Sequence[str] = (),
                       select_from: int = 0) -> bool:
    """True when ``patience`` validations have passed without progress.

    Progress is the selected epoch (``history["best_epoch"]``, chosen by :func:`fit` with
    the run's ``select`` and ``select_from``) or an epoch at which a quantity of ``watch``
    (``"loss"`` or a metric name) reached its best value among the validations from
    ``select_from`` on. Before any epoch has been selected, patience is never exhausted.
    With the defaults this is the classic rule: ``patience`` validations after the best one.
    """
    if patience is None or history.get("best_epoch") is None:
        return False
    rows = history["epochs"]
    last = max(history["best_epoch"], _last_progress(rows, watch, select_from))
    later = [r for r in rows if r["epoch"] > last and r.get("val_loss") is not None]
    return len(later) >= patience


def replay_rule(rows: Sequence[Mapping[str, Any]], *, select: str, patience: int | None,
                watch: Sequence[str] = (), select_from: int = 0) -> dict[str, int | None]:
    """Apply a selection and stopping rule to a recorded validation curve, epoch by epoch.

    The rule decides only which epoch is kept and when the run ends, never what an epoch
    computes, so over the epochs a run recorded (its ``history["epochs"]``) any rule gives
    exactly what :func:`fit` with that rule would have done.

    Parameters
    ----------
    rows : sequence of mapping
        History rows in epoch order (``epoch``, ``val_loss``, ``val_<metric>``; ``None``
        where an epoch was not validated).
    select, patience, watch, select_from
        The rule: :class:`~angio.train.config.TrainConfig`'s ``select``, ``patience``,
        ``patience_watch`` and ``select_from``.

    Returns
    -------
    dict
        ``best_epoch``: the epoch the rule selects (``None``: none eligible yet);
        ``stopped_after``: the last epoch the rule lets run (``None``: it would not have
        stopped within ``rows``).
    """
    history: dict[str, Any] = {"epochs": [], "best_epoch": None}
    for row in rows:
        history["epochs"].append(row)
        if improved_on(select, row, history, select_from):
            history["best_epoch"] = row["epoch"]
        if patience_exhausted(patience, history, watch=watch, select_from=select_from):
            return {"best_epoch": history["best_epoch"], "stopped_after": row["epoch"]}
    return {"best_epoch": history["best_epoch"], "stopped_after": None}
