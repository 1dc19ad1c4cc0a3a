"""Which trials ``snakesweep status`` expects: the plan of a config file or of the last run.

With ``--config FILE`` the plan is computed from the file exactly as the workflow
does (``build_sweep``); without it, from ``results/<sweep>/plan.json``, which every
run writes when it starts. Trial folders that the plan does not hold are stale.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakesweep.report.status import StatusError
from snakesweep.store.plan_file import PLAN_FILE, read_plan


@dataclass(frozen=True)
class StatusPlan:
    """What a status is read against: the folder, the planned trials, the metric and mode."""

    root: str
    #: Trial id -> parameters; None when no plan is known (only trials on disk count).
    trials: Mapping[str, Mapping[str, Any]] | None = None
    metric: str | None = None
    mode: str | None = None
    #: Where the plan came from, for the text: "--config FILE" or the last run's plan.json.
    source: str | None = None
    #: With a model-based strategy, the number of planned rounds.
    rounds: int | None = None


def planned_trials(config_path: str | os.PathLike) -> tuple[Any, dict[str, Any]]:
    """The sweep plan of a config file: (Sweep, config). Raises StatusError if it is invalid."""
    import yaml

    from snakesweep.search.space import ConfigError
    from snakesweep.search.sweep import build_sweep

    try:
        # From the open file, so a syntax error names the file as well as the line.
        with open(config_path) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as error:
        raise StatusError(f"--config {config_path}: cannot read it: {error}") from None
    if not isinstance(config, dict):
        raise StatusError(f"--config {config_path}: not a mapping of config keys")
    try:
        return build_sweep(config), config
    except ConfigError as error:
        raise StatusError(f"--config {config_path}: invalid sweep config: {error}") from None


def status_plan(
    root: str | None,
    config_path: str | os.PathLike | None = None,
    metric: str | None = None,
    mode: str | None = None,
) -> StatusPlan:
    """The plan for ``root``: from ``config_path`` if given, else the last run's ``plan.json``.

    ``metric`` and ``mode`` given on the command line win over the plan's.
    """
    planned = None
    source = None
    rounds = None
    if config_path:
        sweep, _ = planned_trials(config_path)
        planned = sweep.trials
        rounds = len(sweep.rounds.sizes) if sweep.rounds is not None else None
        metric = metric or sweep.metric
        mode = mode or sweep.mode
        root = root or str(sweep.root)
        source = f"--config {config_path}"
    if root is None:
        raise StatusError("name the sweep's results folder (results/<sweep>) or give --config")
    if planned is None and (plan := read_plan(root)) is not None:
        # The trial set of the config the sweep last ran with: older trials are stale.
        planned = plan["trials"]
        rounds = plan.get("rounds")
        metric = metric or plan.get("metric")
        mode = mode or plan.get("mode")
        source = f"the last run ({Path(root) / PLAN_FILE}; --config FILE for another)"
    return StatusPlan(
        root=str(root), trials=planned, metric=metric, mode=mode, source=source, rounds=rounds
    )
