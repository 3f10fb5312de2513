"""The model zoo: trained weights shipped with the package, each with its recipe and record.

A reproducible study does not retrain a dozen 3D networks every time it runs: it needs the
weights, the exact recipe that made them and one command that remakes them (the MONAI
"bundle" idea: weights + recipe + record). A :class:`Recipe` fixes everything that changes
the weights (experiment, volume spec, split, seed, patch size, selection and stopping rule);
:func:`train_recipe` trains it (resumable, into ``results/zoo/<name>/``) until its patience
runs out, and :func:`publish` evaluates the selected epoch on the held-out test
cases, writes the slim checkpoint ``angio/_data/zoo/<name>.pt`` and its record
``<name>.json``:

- ``recipe``: the recipe as a dict (and the :class:`~angio.train.TrainConfig` it made);
- ``split``: the train, validation and test case ids;
- ``training``: epochs run, the selected epoch, optimizer steps, wall time, whether the
  patience rule stopped it, the hardware and library versions, and the validation curve;
- ``test``: per-case metrics on the test cases against the exact and the Otsu mask,
  computed with the *shipped* weights (so :func:`check_entry` can reproduce them);
- ``commit`` (the git commit of the code that trained it, ``+dirty`` when the tree had
  uncommitted changes) and ``sha256`` of the ``.pt`` file.

One module per job:

:mod:`~angio.zoo.recipes`
    What makes each entry (:class:`Recipe`, :data:`RECIPES`) and which entry
    ``angio reconstruct`` uses for a number of views (:data:`DEFAULT_MODELS`).
:mod:`~angio.zoo.runs`
    Training a recipe (resumable, across sessions) and publishing it.
:mod:`~angio.zoo.entries`
    The shipped entries: records read, weights loaded, checksums verified.
:mod:`~angio.zoo.evaluation`
    An entry measured on cases; the quality targets.
:mod:`~angio.zoo.robustness`
    An entry measured under acquisition errors, recorded once and re-checked.
:mod:`~angio.zoo.gpu_runs`
    Learning curves of the recipes trained side by side on a lent GPU.
:mod:`~angio.zoo.cards`
    A model card per entry, generated from its record.

Command line: ``angio train --recipe NAME`` (train and publish one entry),
``angio zoo list`` (the shipped entries), ``angio zoo card NAME``.

Selection uses the validation split only; the test cases are evaluated once, after the
epoch has been chosen.

Records keep the recipe their weights were made with. When a recipe's selection or stopping
rule changes after its entry was published (:data:`RULE_FIELDS`), the record is not rewritten:
:func:`recipe_changes` lists what differs, and the recorded curve shows what the new rule
would have done with the same epochs (:func:`angio.train.selection.replay_rule`), until the entry
is retrained.
"""

from __future__ import annotations

from angio.records import sha256
from angio.zoo.entries import ZOO_DIR, ZooEntry, default_model, entries, load_entry
from angio.zoo.evaluation import QUALITY_TARGETS, check_entry, evaluate_entry, target_status
from angio.zoo.gpu_runs import GPU_RUNS, gpu_runs, side_by_side
from angio.zoo.recipes import (
    CONE_MODELS,
    CONTINUED_ON_CPU,
    DEFAULT_MODELS,
    DEFAULT_SPEC,
    MIRROR_MODELS,
    PAPER_CURRICULUM,
    PAPER_VIEWS,
    RECIPES,
    RULE_FIELDS,
    ZOO_UNET,
    Recipe,
    get_recipe,
    recipe_changes,
    retrain_order,
)
from angio.zoo.robustness import robustness_table
from angio.zoo.runs import continuable_run, publish, reopen_run, reopen_shipped, retrain, train_recipe

__all__ = ["Recipe", "RECIPES", "DEFAULT_MODELS", "CONE_MODELS", "MIRROR_MODELS", "default_model", "ZOO_DIR",
           "train_recipe", "publish", "entries", "load_entry", "check_entry", "ZooEntry", "DEFAULT_SPEC",
           "QUALITY_TARGETS", "evaluate_entry", "robustness_table", "target_status", "sha256", "retrain",
           "retrain_order", "ZOO_UNET", "GPU_RUNS", "gpu_runs", "side_by_side", "PAPER_VIEWS", "PAPER_CURRICULUM",
           "CONTINUED_ON_CPU", "RULE_FIELDS", "get_recipe", "recipe_changes", "reopen_run", "reopen_shipped",
           "continuable_run"]
