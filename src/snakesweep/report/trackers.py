"""Optional copies of each trial's metrics in experiment trackers: TensorBoard and W&B (offline).

Both are off by default and switched on in the sweep config::

    tracking:
      tensorboard: true   # event files in <trial_dir>/tensorboard/
      wandb: true         # an offline W&B run in <trial_dir>/wandb/ (`wandb sync` uploads it)

The launcher writes them after every segment from ``metrics.jsonl``, so a training
script needs no change. A tracker whose package is missing fails the sweep at
parse time (a dry run shows it) with :class:`TrackerUnavailable`; an error while
writing is reported in the trial's log and never fails the trial.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json

TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"
#: What W&B already holds of a trial: the last epoch logged.
WANDB_STATE = "snakesweep-logged.json"

#: tracker -> (modules it needs, how to install them)
REQUIREMENTS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (
        ("tensorboard", "torch"),
        "pip install 'snakesweep[tracking]' (or: pip install tensorboard)",
    ),
    "wandb": (("wandb",), "pip install wandb"),
}


class TrackerUnavailable(RuntimeError):
    """A tracker is switched on in the config but its package cannot be imported."""


def enabled(tracking: Mapping[str, Any] | None) -> list[str]:
    """The trackers switched on in the config's ``tracking`` section, in a fixed order."""
    tracking = tracking or {}
    return [name for name in REQUIREMENTS if tracking.get(name)]


def missing_modules(modules: Sequence[str]) -> list[str]:
    """The modules among ``modules`` that this Python cannot import (checked without importing)."""
    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def check_trackers(tracking: Mapping[str, Any] | None) -> list[str]:
    """Return the enabled trackers; raise :class:`TrackerUnavailable` if one cannot be used."""
    problems = []
    names = enabled(tracking)
    for name in names:
        modules, install = REQUIREMENTS[name]
        missing = missing_modules(modules)
        if missing:
            problems.append(
                f"tracking.{name}: true needs the Python package(s) {missing}, which this "
                f"environment ({sys.executable}) does not have; install with `{install}`, "
                f"or set tracking.{name}: false"
            )
    if problems:
        raise TrackerUnavailable(
            "\n  ".join(["tracking is switched on but unavailable:", *problems])
        )
    return names


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """The numeric values of one metrics row (epoch aside); NaN and inf are kept."""
    return {
        key: float(value)
        for key, value in row.items()
        if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def write_tensorboard(
    trial_dir: str | os.PathLike,
    history: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
) -> Path:
    """(Re)write ``<trial_dir>/tensorboard/`` from the whole history: one scalar per metric and epoch.

    Rewriting from scratch keeps the event files equal to ``metrics.jsonl`` even
    after a resume dropped epochs reported after the last checkpoint.
    """
    from torch.utils.tensorboard import SummaryWriter

    trial_dir = Path(trial_dir)
    target = trial_dir / TENSORBOARD_DIR
    staging = trial_dir / f".{TENSORBOARD_DIR}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    writer = SummaryWriter(log_dir=str(staging))
    try:
        writer.add_text("params", _params_markdown(params), global_step=0)
        for row in history:
            for key, value in scalars(row).items():
                writer.add_scalar(key, value, global_step=int(row["epoch"]))
    finally:
        writer.close()
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
    return target


def write_wandb(
    trial_dir: str | os.PathLike,
    trial_id: str,
    history: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    sweep: str,
) -> int:
    """Log the epochs W&B does not have yet to an offline run (id = trial id); return how many."""
    trial_dir = Path(trial_dir)
    state_path = trial_dir / WANDB_DIR / WANDB_STATE
    last = (read_json(state_path) or {}).get("last_epoch", 0)
    new = [row for row in history if int(row["epoch"]) > last]
    if not new:
        return 0
    import wandb

    os.environ["WANDB_MODE"] = "offline"
    os.environ.setdefault("WANDB_SILENT", "true")  # not a banner per trial in Snakemake's output
    (trial_dir / WANDB_DIR).mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=sweep,
        group=sweep,
        name=trial_id,
        id=trial_id,
        resume="allow",
        dir=str(trial_dir),
        config=dict(params),
        mode="offline",
    )
    try:
        for row in new:
            run.log(scalars(row), step=int(row["epoch"]))
    finally:
        run.finish()
    write_json(state_path, {"last_epoch": int(new[-1]["epoch"])})
    return len(new)


def sync_trackers(
    tracking: Mapping[str, Any] | None,
    trial_dir: str | os.PathLike,
    trial_id: str,
    params: Mapping[str, Any],
    sweep: str,
    history: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """Write the history to every enabled tracker; return ``{tracker: what happened}``.

    An error is caught and returned, not raised: tracking never fails a trial.
    """
    report: dict[str, str] = {}
    for name in enabled(tracking):
        try:
            if name == "tensorboard":
                path = write_tensorboard(trial_dir, history, params)
                report[name] = f"wrote {len(history)} epochs to {path}"
            elif name == "wandb":
                count = write_wandb(trial_dir, trial_id, history, params, sweep)
                report[name] = f"logged {count} new epochs offline to {Path(trial_dir) / WANDB_DIR}"
        except Exception as error:  # noqa: BLE001 (reported, never fatal)
            report[name] = f"error: {type(error).__name__}: {error}"
    return report


def _params_markdown(params: Mapping[str, Any]) -> str:
    lines = ["| parameter | value |", "| --- | --- |"]
    for name, value in sorted(params.items()):
        text = (
            json.dumps(value)
            if not isinstance(value, float) or math.isfinite(value)
            else str(value)
        )
        lines.append(f"| {name} | {text} |")
    return "\n".join(lines)
