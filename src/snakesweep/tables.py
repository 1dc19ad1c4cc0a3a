"""A sweep's results as pandas tables: the public way to analyse a sweep.

``snakesweep.load("results/<sweep>")`` reads the sweep folder (through
:mod:`snakesweep.trial_folder`, with the states of :mod:`snakesweep.status`) and
returns :class:`SweepTables`: ``trials``, one row per trial, and ``metrics``, one
row per trial and reported epoch. Like Optuna's ``trials_dataframe()``, the
parameters are columns named ``params_<name>``. Safe to call while the sweep runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from snakesweep.status import scan_sweep
from snakesweep.trial_folder import read_metrics, read_segments, slurm_job_ids, wall_time

#: The columns of ``trials`` before the ``params_<name>`` ones, in order.
TRIAL_COLUMNS = (
    "trial_id",
    "status",
    "final",
    "best",
    "best_epoch",
    "epochs",
    "budget",
    "segments",
    "restarts",
    "wall_time_s",
    "slurm_job_ids",
    "error",
)


@dataclass
class SweepTables:
    """The tables of one sweep, and the metric they are ranked by."""

    root: str
    metric: str | None
    mode: str | None
    #: One row per trial, best first (as the leaderboard), pending trials last.
    trials: pd.DataFrame
    #: One row per trial and epoch: ``trial_id``, ``epoch`` and a column per reported metric.
    metrics: pd.DataFrame


def load(
    root: str | os.PathLike, metric: str | None = None, mode: str | None = None
) -> SweepTables:
    """The trials and per-epoch metrics of the sweep in ``root`` (``results/<sweep>``).

    ``metric`` and ``mode`` default to those the sweep's records name.
    ``final`` is the metric at the trial's last epoch (a finished trial: its
    record's), ``best`` and ``best_epoch`` the best value over its epochs,
    ``epochs`` the last epoch reported.
    """
    status = scan_sweep(root, metric=metric, mode=mode)
    trial_rows, metric_rows = [], []
    for trial in status.trials:
        trial_dir = Path(root) / "trials" / trial.trial_id
        events = read_segments(trial_dir)
        trial_rows.append(
            {
                "trial_id": trial.trial_id,
                "status": trial.state,
                "final": trial.value,
                "best": trial.best,
                "best_epoch": trial.best_epoch,
                "epochs": trial.epochs_done,
                "budget": trial.budget,
                "segments": trial.segments,
                "restarts": trial.restarts,
                "wall_time_s": round(wall_time(events), 3),
                "slurm_job_ids": slurm_job_ids(events),
                "error": trial.error,
                **{f"params_{k}": v for k, v in sorted(trial.params.items())},
            }
        )
        for row in read_metrics(trial_dir):
            if "epoch" in row:
                metric_rows.append({"trial_id": trial.trial_id, **row})
    trials = pd.DataFrame(trial_rows)
    if trials.empty:
        trials = pd.DataFrame(columns=list(TRIAL_COLUMNS))
    metrics = pd.DataFrame(metric_rows)
    if metrics.empty:
        metrics = pd.DataFrame(columns=["trial_id", "epoch"])
    else:
        first = ["trial_id", "epoch"]
        metrics = metrics[first + [c for c in metrics.columns if c not in first]]
        metrics = metrics.sort_values(first, kind="stable").reset_index(drop=True)
    return SweepTables(
        root=str(root), metric=status.metric, mode=status.mode, trials=trials, metrics=metrics
    )
