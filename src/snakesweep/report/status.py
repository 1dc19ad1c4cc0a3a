"""Where a sweep stands, read from its results folder at any time, even while it runs.

Each trial's state comes from its folder alone (see ``docs/results.md``):

* ``completed``, ``pruned``, ``diverged``, ``failed``: the status of its result
  record with the highest budget (``result-<budget>.json``), unless a later
  segment for a higher budget has started;
* ``running``: a segment started (``segments.jsonl``) and has not ended, and no
  result exists for its budget;
* ``waiting``: the last segment saved its state and ended with outcome
  ``continue`` (the next job will continue it), or the trial completed a
  pruning rung and waits for the rung's decision or for its next job;
* ``pruned`` also covers a trial that completed a rung below its full budget
  (``params.epochs``) and that a rung decision (``rungs/bracket*-rung*.json``) did not promote;
* ``pending``: planned (with the sweep's config) or present on disk, but no
  segment has started.

Reading never locks or writes anything; files being written are read as they
are (a line cut short is skipped), so the answer is at worst one epoch old.
This module derives the states; :mod:`snakesweep.report.tables` turns them into pandas
tables, :mod:`snakesweep.report.status_text` formats those for ``snakesweep status`` and
:mod:`snakesweep.report.status_config` finds the plan (``--config`` or the last run's).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from snakesweep.cluster.host_process import pid_alive
from snakesweep.report.results import best_epoch, is_finite
from snakesweep.store import contract
from snakesweep.store.jsonl import read_json
from snakesweep.store.round_file import read_rounds
from snakesweep.store.trial_folder import (
    read_metrics,
    read_params,
    read_provenance,
    read_segments,
    result_records,
    segment_counts,
)

#: Trial states, in leaderboard order.
STATES = ("completed", "running", "waiting", "pruned", "diverged", "failed", "pending")
FINISHED = ("completed", "pruned", "diverged", "failed")


class StatusError(ValueError):
    """The sweep folder or the options cannot give a status (the message says why)."""


@dataclass
class TrialStatus:
    """One trial as it stands."""

    trial_id: str
    state: str
    params: dict[str, Any] = field(default_factory=dict)
    #: Last epoch reported in metrics.jsonl (or by the result record).
    epochs_done: int = 0
    #: Budget of the newest result or of the segment under way.
    budget: int | None = None
    #: The metric at the last epoch reported (a finished trial: its record's final value).
    value: float | None = None
    best: float | None = None
    best_epoch: int | None = None
    segments: int = 0
    restarts: int = 0
    #: The segment under way or last run: where and since when.
    host: str | None = None
    slurm_job_id: str | None = None
    started: float | None = None
    #: Modification time of metrics.jsonl: when the last epoch was reported.
    updated: float | None = None
    #: For a running trial on this host: whether its job's process still exists.
    alive: bool | None = None
    error: str | None = None
    #: The log file its newest result record names (finished trials).
    log: str | None = None
    #: With a model-based strategy: the round that suggested it (its round file's number).
    round: int | None = None


@dataclass
class SweepStatus:
    root: str
    metric: str | None
    mode: str | None
    time: float
    #: Trials in leaderboard order, pending ones last.
    trials: list[TrialStatus]
    #: Number of planned trials (with a config), else None.
    planned: int | None = None
    #: Trial folders on disk that the plan does not hold (an older config of the sweep).
    stale: list[str] = field(default_factory=list)
    #: Where the plan came from: "--config FILE", the last run's plan.json, or None.
    plan_source: str | None = None
    #: Trials found on disk that the config does not plan (an earlier version of the sweep).
    not_in_plan: int = 0
    #: What each trial's folder holds, by trial id (read once; not part of ``to_json``).
    files: dict[str, TrialFiles] = field(default_factory=dict)
    #: With a model-based strategy: rounds with a round file, and rounds planned (None if
    #: unknown: no plan, or not a sweep in rounds).
    rounds_written: int = 0
    rounds_planned: int | None = None
    #: Round number -> the trial ids of its round file (not part of ``to_json``).
    round_trials: dict[int, list[str]] = field(default_factory=dict)

    @property
    def rounds(self) -> dict[str, int | None] | None:
        """Rounds done (every trial finished), running (written, some trial not finished)
        and to come (planned, not written yet; None when the plan is unknown)."""
        if not self.rounds_written and not self.rounds_planned:
            return None
        state = {t.trial_id: t.state for t in self.trials}
        done = sum(
            all(state.get(tid) in FINISHED for tid in ids) for ids in self.round_trials.values()
        )
        return {
            "done": done,
            "running": self.rounds_written - done,
            "to_come": None
            if self.rounds_planned is None
            else max(0, self.rounds_planned - self.rounds_written),
            "planned": self.rounds_planned,
        }

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for trial in self.trials:
            counts[trial.state] = counts.get(trial.state, 0) + 1
        return counts

    @property
    def best(self) -> tuple[TrialStatus | None, str | None]:
        """The best completed trial; if none, the best last value among running and waiting ones."""
        for pool in (("completed",), ("running", "waiting")):
            candidates = [t for t in self.trials if t.state in pool and is_finite(t.value)]
            if candidates and self.mode:
                return ranked(candidates, self.mode)[0], pool[0]
        return None, None

    def to_json(self) -> dict[str, Any]:
        best, source = self.best
        return {
            "root": self.root,
            "metric": self.metric,
            "mode": self.mode,
            "time": self.time,
            "planned": self.planned,
            "not_in_plan": self.not_in_plan,
            "stale": self.stale,
            "plan_source": self.plan_source,
            "counts": self.counts,
            "rounds": self.rounds,
            "best": asdict(best) if best else None,
            "best_from": source,
            "trials": [asdict(t) for t in self.trials],
        }


# -- reading one trial -------------------------------------------------------------------------


@dataclass
class TrialFiles:
    """What a trial folder holds, read once."""

    trial_id: str
    params: dict[str, Any]
    records: dict[int, dict[str, Any]]
    events: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    metrics_mtime: float | None
    provenance: dict[str, Any] | None


def read_trial_files(trial_dir: str | os.PathLike) -> TrialFiles:
    trial_dir = Path(trial_dir)
    metrics_path = trial_dir / contract.METRICS_FILE
    try:
        mtime = metrics_path.stat().st_mtime
    except OSError:
        mtime = None
    return TrialFiles(
        trial_id=trial_dir.name,
        params=read_params(trial_dir),
        records=result_records(trial_dir),
        events=read_segments(trial_dir),
        metrics=read_metrics(trial_dir),
        metrics_mtime=mtime,
        provenance=read_provenance(trial_dir),
    )


def process_alive(host: str | None, pid: Any) -> bool | None:
    """Whether process ``pid`` exists, if it ran on this host; None when that cannot be told."""
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return None
    return pid_alive(pid)


def rung_decisions(root: str | os.PathLike) -> set[str]:
    """Trials that a synchronous rung decision (``rungs/bracket*-rung*.json``) did not promote."""
    pruned: set[str] = set()
    for path in sorted(Path(root).glob(contract.RUNG_DECISION_GLOB)):
        decision = read_json(path) or {}
        pruned.update(t for t in decision.get("pruned") or [] if isinstance(t, str))
    return pruned


def trial_status(
    files: TrialFiles, metric: str | None, mode: str | None, not_promoted: Iterable[str] = ()
) -> TrialStatus:
    """The state of one trial from its files (see the module docstring).

    A trial whose newest record completed a budget below its full budget
    (``params.epochs``) stopped at a pruning rung: ``pruned`` if it is in
    ``not_promoted``, else ``waiting`` (for the rung's decision or its next job).
    """
    starts = [e for e in files.events if e.get("event") == "start"]
    counts = segment_counts(files.events)
    ended = {e.get("segment"): e for e in files.events if e.get("event") == "end"}
    last_start = starts[-1] if starts else None
    last_end = ended.get(last_start.get("segment")) if last_start else None
    segment_budget = _int(last_start.get("budget")) if last_start else None
    record_budget = max(files.records) if files.records else None
    record = files.records[record_budget] if record_budget is not None else None

    if last_start is None:
        state = record["status"] if record else "pending"
    elif record is not None and (segment_budget is None or record_budget >= segment_budget):
        state = record.get("status", "failed")
    elif last_end is None:
        state = "running"
    elif last_end.get("outcome") == "continue":
        state = "waiting"
    else:  # ended, its result not written yet (or lost): report what the segment said
        state = last_end.get("outcome") or "running"
    if state not in STATES:
        state = "failed"
    full_budget = _int(files.params.get("epochs"))
    if (
        state == "completed"
        and full_budget is not None
        and record_budget is not None
        and record_budget < full_budget
    ):
        state = "pruned" if files.trial_id in set(not_promoted) else "waiting"

    history = epochs_of(files, state)
    epochs_done = _int(history[-1].get("epoch")) if history else 0
    value = None
    if metric and history:
        value = _finite(history[-1].get(metric))
    if record is not None and state in FINISHED:
        value = _finite(record.get("final"))
        epochs_done = _int(record.get("epochs_done")) or epochs_done
    best, best_epoch = _best(history, metric, mode)
    params = files.params or (record or {}).get("params") or {}
    alive = None
    if state == "running" and last_start is not None:
        alive = process_alive(last_start.get("host"), last_start.get("pid"))
    return TrialStatus(
        trial_id=files.trial_id,
        state=state,
        params=dict(params),
        epochs_done=epochs_done or 0,
        budget=(
            record_budget
            if state in FINISHED and record_budget is not None
            else segment_budget or record_budget
        ),
        value=value,
        best=best,
        best_epoch=best_epoch,
        segments=counts.segments,
        restarts=counts.restarts,
        host=last_start.get("host") if last_start else None,
        slurm_job_id=last_start.get("slurm_job_id") if last_start else None,
        started=last_start.get("time") if last_start else None,
        updated=files.metrics_mtime,
        alive=alive,
        error=(record or {}).get("error") if state in FINISHED else None,
        log=(record or {}).get("log") if state in FINISHED else None,
    )


def epochs_of(files: TrialFiles, state: str) -> list[dict[str, Any]]:
    """The per-epoch metrics a trial's state is read from: a finished trial's newest record's
    history (metrics.jsonl may since hold another run's epochs: a Hyperband revisit), else
    ``metrics.jsonl`` as it stands."""
    if state in FINISHED and files.records:
        return list(files.records[max(files.records)].get("history") or files.metrics)
    return files.metrics


# -- the whole sweep ---------------------------------------------------------------------------


def metric_and_mode(
    files: Iterable[TrialFiles], metric: str | None = None, mode: str | None = None
) -> tuple[str | None, str | None]:
    """Fill in the metric and mode not given, from result records, else provenance files."""
    files = list(files)
    for source in ("records", "provenance"):
        if metric and mode:
            break
        for f in files:
            docs = list(f.records.values()) if source == "records" else [f.provenance or {}]
            for doc in docs:
                if not metric and isinstance(doc.get("metric"), str):
                    metric = doc["metric"]
                if not mode and doc.get("mode") in ("min", "max") and doc.get("metric") == metric:
                    mode = doc["mode"]
    return metric, mode


def scan_sweep(
    root: str | os.PathLike,
    metric: str | None = None,
    mode: str | None = None,
    planned: Mapping[str, Mapping[str, Any]] | None = None,
    now: float | None = None,
    rounds_planned: int | None = None,
) -> SweepStatus:
    """The status of every trial of the sweep in ``root`` (``results/<sweep>``).

    ``planned`` (trial id -> parameters, from the config's plan) restricts the
    trials to the plan and counts those without a folder as pending. With rounds
    (``rounds/round-<k>.json``), the trials of the planned rounds (all written ones if
    ``rounds_planned`` is None) belong to the plan too: they are suggested as the sweep runs.
    """
    root = Path(root)
    rounds = read_rounds(root)
    if rounds_planned is not None:
        rounds = {k: r for k, r in rounds.items() if k < rounds_planned}
    round_of = {e["trial_id"]: k for k, r in rounds.items() for e in r["trials"]}
    if planned is not None and rounds:
        planned = {
            **planned,
            **{e["trial_id"]: e["params"] for r in rounds.values() for e in r["trials"]},
        }
    trials_dir = root / contract.TRIALS_DIR
    if not root.is_dir() and planned is None:
        raise StatusError(f"{root}: no such sweep folder (expected results/<sweep>)")
    names = (
        sorted(p.name for p in trials_dir.iterdir() if p.is_dir()) if trials_dir.is_dir() else []
    )
    not_in_plan = 0
    stale: list[str] = []
    if planned is not None:
        stale = [n for n in names if n not in planned]
        not_in_plan = len(stale)
        names = [n for n in names if n in planned]
    files = [read_trial_files(trials_dir / name) for name in names]
    metric, mode = metric_and_mode(files, metric, mode)
    not_promoted = rung_decisions(root)
    trials = [trial_status(f, metric, mode, not_promoted) for f in files]
    if planned is not None:
        on_disk = set(names)
        trials += [
            TrialStatus(
                trial_id=tid, state="pending", params=dict(params), budget=params.get("epochs")
            )
            for tid, params in planned.items()
            if tid not in on_disk
        ]
    for trial in trials:
        trial.round = round_of.get(trial.trial_id)
    return SweepStatus(
        root=str(root),
        metric=metric,
        mode=mode,
        time=time.time() if now is None else now,
        trials=order(trials, mode),
        planned=len(planned) if planned is not None else None,
        not_in_plan=not_in_plan,
        stale=stale,
        files={f.trial_id: f for f in files},
        rounds_written=len(rounds),
        rounds_planned=rounds_planned,
        round_trials={k: [e["trial_id"] for e in r["trials"]] for k, r in rounds.items()},
    )


def ranked(trials: Iterable[TrialStatus], mode: str) -> list[TrialStatus]:
    """Best value first (finite values before the rest), ties by trial id."""

    def key(t: TrialStatus) -> tuple:
        finite = is_finite(t.value)
        score = (t.value if mode == "min" else -t.value) if finite else math.inf
        return (not finite, score, t.trial_id)

    return sorted(trials, key=key)


def order(trials: Iterable[TrialStatus], mode: str | None) -> list[TrialStatus]:
    """Leaderboard order: by state (see :data:`STATES`), then by value within a state."""
    trials = list(trials)
    out = []
    for state in STATES:
        group = [t for t in trials if t.state == state]
        out += ranked(group, mode) if mode else sorted(group, key=lambda t: t.trial_id)
    return out


def _finite(value: Any) -> float | None:
    return float(value) if is_finite(value) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _best(
    history: Sequence[Mapping[str, Any]], metric: str | None, mode: str | None
) -> tuple[float | None, int | None]:
    if not metric or not mode:
        return None, None
    rows = [r for r in history if "epoch" in r]
    return best_epoch(rows, metric, mode)
