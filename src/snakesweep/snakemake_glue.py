"""The few calls the Snakefile makes into snakesweep, with errors in Snakemake's terms.

Every config problem found while the workflow is parsed or started ends the run here and
nowhere else (:func:`fail`), so they all read the same way and stop Snakemake before any job
runs or any results folder exists.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from snakesweep.config_check import check_config, continuation_retries_problem
from snakesweep.report.trackers import TrackerUnavailable, check_trackers
from snakesweep.search.space import ConfigError
from snakesweep.search.sweep import Sweep, build_sweep
from snakesweep.store.retry_request import RETRY_VALUES

#: The run switch that retries trials (``--config retry=failed``): not a key of the sweep.
RETRY_KEY = "retry"


def fail(message: str) -> NoReturn:
    """Print ``message`` alone to stderr and exit 1.

    A ``WorkflowError`` would add Snakemake's traceback lines (Snakefile, this module) under the
    message, which tell a user nothing about their config.
    """
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(1)


def check_sweep_config(config: Mapping[str, Any], schema_path: str | os.PathLike) -> None:
    """Fail the parse with readable config errors, one line per bad key."""
    try:
        check_config(config, schema_path)
    except ConfigError as error:
        fail(str(error))


def take_retry_switch(config: dict[str, Any]) -> tuple[str, ...]:
    """Remove ``retry`` from ``config`` and return the record statuses it retrains (none: ``()``).

    It is a switch of one run, not part of the sweep: left in ``config`` it would change the
    leaderboard's params (so the next plain run would aggregate again) and the config that
    ``best.yaml`` and provenance describe.
    """
    if RETRY_KEY not in config:
        return ()
    value = config.pop(RETRY_KEY)
    if value not in RETRY_VALUES:
        fail(f"retry: {value!r} is not allowed; allowed values: {sorted(RETRY_VALUES)}")
    return RETRY_VALUES[value]


def sweep_plan(config: Mapping[str, Any]) -> Sweep:
    """The sweep's plan (trials, brackets); a config it cannot plan fails the parse."""
    try:
        return build_sweep(config)
    except ConfigError as error:
        fail(f"invalid sweep config: {error}")


def check_tracking(config: Mapping[str, Any]) -> None:
    """Fail the parse when a tracker switched on in ``tracking`` cannot be imported."""
    try:
        check_trackers(config.get("tracking") or {})
    except TrackerUnavailable as error:
        fail(str(error))


def check_continuation_retries(workflow: Any, config: Mapping[str, Any]) -> None:
    """Stop a run (from ``onstart``, before any job) whose ``retries`` cannot continue a trial
    as often as ``checkpoint.max_continuations`` allows.

    Snakemake knows ``retries`` (profile or ``--retries``) only once it executes:
    ``workflow.execution_settings`` is None while the Snakefile is parsed, so a dry
    run cannot check it.
    """
    settings = getattr(workflow, "execution_settings", None)
    if settings is None:
        return
    problem = continuation_retries_problem(
        int(settings.retries), int(config["checkpoint"]["max_continuations"])
    )
    if problem:
        fail(problem)
