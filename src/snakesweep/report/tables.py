"""A sweep's results as pandas tables: the public way to analyse a sweep, and the one the
leaderboard, ``snakesweep status`` and the plots are built from.

``snakesweep.load("results/<sweep>")`` reads the sweep folder (through
:mod:`snakesweep.store.trial_folder`, with the states of :mod:`snakesweep.report.status`) and
returns :class:`SweepTables`: ``trials``, one row per trial, and ``metrics``, one
row per trial and reported epoch. Like Optuna's ``trials_dataframe()``, the
parameters are columns named ``params_<name>``. Safe to call while the sweep runs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from snakesweep.report.status import FINISHED, SweepStatus, epochs_of, scan_sweep
from snakesweep.store import contract
from snakesweep.store.trial_folder import read_lineage, slurm_job_ids, wall_time

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
    "log",
    "host",
    "slurm_job_id",
    "started",
    "updated",
    "alive",
    "round",
)
#: Whole-number columns: pandas' nullable integers, so a missing value does not make them floats.
INT_COLUMNS = ("best_epoch", "epochs", "budget", "segments", "restarts", "round")
PARAM_PREFIX = "params_"
#: The columns of ``lineage`` before the ``params_<name>`` ones.
LINEAGE_COLUMNS = ["trial_id", "generation", "parent", "cloned"]


@dataclass
class SweepTables:
    """The tables of one sweep, the metric they are ranked by, and what the status adds."""

    root: str
    metric: str | None
    mode: str | None
    #: One row per trial, best first (as the leaderboard), pending trials last.
    trials: pd.DataFrame
    #: One row per trial and epoch: ``trial_id``, ``epoch`` and a column per reported metric.
    metrics: pd.DataFrame
    #: When the folder was read (Unix time).
    time: float = 0.0
    #: The best trial so far and the states it was chosen among ("completed" or "running").
    best: str | None = None
    best_from: str | None = None
    #: Number of planned trials (with a plan), trial folders the plan does not hold, its source.
    planned: int | None = None
    stale: list[str] = field(default_factory=list)
    plan_source: str | None = None
    #: Population based training (docs/pbt.md): one row per member and generation, with
    #: ``generation``, ``parent`` (the trial whose checkpoint it continued; its own id when
    #: kept), ``cloned`` and ``params_<name>``; empty for other sweeps.
    lineage: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LINEAGE_COLUMNS))
    #: With a model-based strategy: rounds done, running, to come (``SweepStatus.rounds``).
    rounds: dict[str, int | None] | None = None


def load(
    root: str | os.PathLike,
    metric: str | None = None,
    mode: str | None = None,
    trials: Mapping[str, Mapping[str, Any]] | Iterable[str] | None = None,
) -> SweepTables:
    """The trials and per-epoch metrics of the sweep in ``root`` (``results/<sweep>``).

    ``metric`` and ``mode`` default to those the sweep's records name.
    ``final`` is the metric at the trial's last epoch (a finished trial: its
    record's), ``best`` and ``best_epoch`` the best value over its epochs,
    ``epochs`` the last epoch reported; ``metrics`` holds the epochs these are read from
    (a finished trial: its newest record's history). ``trials`` (ids, or ids -> parameters)
    restricts the tables to a plan; planned trials without a folder are pending.
    ``round`` is the round that suggested the trial (strategy tpe; missing otherwise).
    """
    planned = None
    if trials is not None:
        planned = dict(trials) if isinstance(trials, Mapping) else dict.fromkeys(trials, {})
    return from_status(scan_sweep(root, metric=metric, mode=mode, planned=planned))


def from_status(status: SweepStatus) -> SweepTables:
    """The tables of a scanned sweep (``status.scan_sweep``), its order kept."""
    trial_rows, metric_rows = [], []
    for trial in status.trials:
        files = status.files.get(trial.trial_id)
        events = files.events if files else []
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
                "log": trial.log,
                "host": trial.host,
                "slurm_job_id": trial.slurm_job_id,
                "started": trial.started,
                "updated": trial.updated,
                "alive": trial.alive,
                "round": trial.round,
                **{PARAM_PREFIX + k: v for k, v in sorted(trial.params.items())},
            }
        )
        for row in epochs_of(files, trial.state) if files else []:
            if "epoch" in row:
                metric_rows.append({"trial_id": trial.trial_id, **row})
    best, best_from = status.best
    lineage_rows = []
    for trial in status.trials:
        folder = os.path.join(status.root, contract.TRIALS_DIR, trial.trial_id)
        for entry in read_lineage(folder):
            lineage_rows.append(
                {
                    "trial_id": trial.trial_id,
                    "generation": entry["generation"],
                    "parent": entry["parent"],
                    "cloned": entry["parent"] != trial.trial_id,
                    **{PARAM_PREFIX + k: v for k, v in sorted(entry["params"].items())},
                }
            )
    lineage = pd.DataFrame(lineage_rows, columns=None if lineage_rows else LINEAGE_COLUMNS)
    return SweepTables(
        root=status.root,
        metric=status.metric,
        mode=status.mode,
        trials=trials_frame(trial_rows),
        metrics=metrics_frame(metric_rows),
        time=status.time,
        best=best.trial_id if best else None,
        best_from=best_from,
        planned=status.planned,
        stale=list(status.stale),
        plan_source=status.plan_source,
        lineage=lineage,
        rounds=status.rounds,
    )


def trials_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The ``trials`` table of rows keyed by column (a column a row lacks is missing there)."""
    if not rows:
        return pd.DataFrame(columns=list(TRIAL_COLUMNS))
    frame = pd.DataFrame(rows)
    params = [c for c in frame.columns if c.startswith(PARAM_PREFIX)]
    for column in TRIAL_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame = frame[list(TRIAL_COLUMNS) + params]
    for column in INT_COLUMNS:
        frame[column] = frame[column].astype("Int64")
    for column in params:
        present = [r[column] for r in rows if r.get(column) is not None]
        # An integer parameter some trials lack stays integer (pandas would make it float).
        if len(present) < len(rows) and present and all(_is_int(v) for v in present):
            frame[column] = frame[column].astype("Int64")
    frame["alive"] = frame["alive"].astype(object)
    return frame


def metrics_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The ``metrics`` table: ``trial_id``, ``epoch`` first, sorted by them."""
    if not rows:
        return pd.DataFrame(columns=["trial_id", "epoch"])
    frame = pd.DataFrame(rows)
    first = ["trial_id", "epoch"]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    return frame.sort_values(first, kind="stable").reset_index(drop=True)


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a table as plain Python values, a missing value (NaN, NA) as None."""
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def trial_params(row: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's parameters from its ``params_<name>`` columns (those it has)."""
    return {
        k[len(PARAM_PREFIX) :]: v
        for k, v in row.items()
        if k.startswith(PARAM_PREFIX) and v is not None
    }


def trial_records(
    tables: SweepTables,
    budget: int | None = None,
    rung_budgets: Sequence[int] = (),
    states: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """The finished trials (or those in ``states``) as result-record-shaped dicts, in table order.

    What the leaderboard and the plots are made from: ``status``, ``final``, ``best``,
    ``best_epoch``, ``epochs_done``, ``budget`` (the full ``budget``, so epochs read
    ``done/full``), ``rung`` (index of the largest of ``rung_budgets`` reached),
    ``wall_time_s``, ``restarts``, ``params``, ``error``, ``log`` and ``history``.
    """
    states = set(FINISHED if states is None else states)
    history: dict[str, list[dict[str, Any]]] = {}
    for row in rows(tables.metrics):
        history.setdefault(row["trial_id"], []).append(
            {k: v for k, v in row.items() if k != "trial_id" and v is not None}
        )
    rungs = sorted(rung_budgets) or ([budget] if budget is not None else [])
    out = []
    for row in rows(tables.trials):
        if row["status"] not in states:
            continue
        done = row["epochs"] or 0
        reached = [i for i, b in enumerate(rungs) if b <= done]
        out.append(
            {
                "trial_id": row["trial_id"],
                "status": row["status"],
                "final": row["final"],
                "best": row["best"],
                "best_epoch": row["best_epoch"],
                "epochs_done": row["epochs"],
                "budget": budget if budget is not None else row["budget"],
                "wall_time_s": row["wall_time_s"],
                "restarts": row["restarts"],
                "rung": reached[-1] if reached else None,
                "params": trial_params(row),
                "error": row["error"],
                "log": row["log"],
                "history": history.get(row["trial_id"], []),
                "round": row.get("round"),
            }
        )
    return out


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        return value.item()  # a numpy scalar
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
