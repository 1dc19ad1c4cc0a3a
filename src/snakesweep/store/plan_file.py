"""``results/<sweep>/plan.json``: the trial set of the config a sweep last ran with.

Written when a run starts (Snakemake's ``onstart``, never at dry-run), read by
``snakesweep status`` without ``--config``, so that trials left on disk by an older
config of the same sweep are known to be stale instead of being mixed in; and by
``snakesweep export optuna``, which needs the search space (``space``: the config's
``strategy`` and ``parameters`` as written) to give each parameter its Optuna distribution.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json

PLAN_FILE = "plan.json"


def write_plan(
    root: str | os.PathLike,
    metric: str,
    mode: str,
    trials: Mapping[str, Mapping[str, Any]],
    space: Mapping[str, Any] | None = None,
    rounds: int | None = None,
) -> None:
    """Record the plan; ``space`` is ``{"strategy": ..., "parameters": ...}`` from the config.

    ``rounds``: with a model-based strategy, how many rounds are planned; ``trials`` then
    holds the rounds known when the run started, the others are in their round files."""
    plan: dict[str, Any] = {
        "metric": metric,
        "mode": mode,
        "trials": {t: dict(p) for t, p in trials.items()},
    }
    if space is not None:
        plan["space"] = dict(space)
    if rounds is not None:
        plan["rounds"] = rounds
    write_json(Path(root) / PLAN_FILE, plan)


def read_plan(root: str | os.PathLike) -> dict[str, Any] | None:
    """The plan of the last run, or None if there is none (or it cannot be read).

    A plan written before ``space`` was recorded has no ``space`` key.
    """
    plan = read_json(Path(root) / PLAN_FILE)
    return plan if plan is not None and isinstance(plan.get("trials"), dict) else None
