"""The trial folder's format, written, read and interpreted in one place.

A trial folder (``<root>/trials/<trial_id>/``) holds ``params.json``,
``metrics.jsonl`` (one object per epoch, appended by the training script),
``segments.jsonl`` (a ``start`` and an ``end`` event per job segment, appended
by the launcher, and an ``exit`` event after a segment that stopped itself at a
deadline: how long its exit path took), ``checkpoints/timings.json`` (the
session's measured timings), one result record per finished budget
(``result-<budget>.json``) and ``provenance.json``. Every module that needs to
know what these files say (the launcher, ``status``, provenance, ASHA, the
results layer) asks this one, so that "restarts" or "finished at this budget"
mean the same thing everywhere; and every writer (the launcher, the session, tests
building folders) writes through this one, so that readers and writers cannot drift.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakesweep.store import contract
from snakesweep.store.atomic import append_line, write_bytes, write_json
from snakesweep.store.jsonl import read_json, read_jsonl

PROVENANCE_FILE = contract.PROVENANCE_FILE
RESULT_PATTERN = re.compile(
    "^" + re.escape(contract.RESULT_FILE).replace(r"\{budget\}", r"(\d+)") + "$"
)


def result_path(trial_dir: str | os.PathLike, budget: int | str) -> Path:
    """Where the record of a trial at ``budget`` epochs lives."""
    return Path(trial_dir) / contract.RESULT_FILE.format(budget=budget)


def packed_result_path(trial_dir: str | os.PathLike, budget: int | str) -> Path:
    """Where a packed trial's own record at ``budget`` epochs lives (copied to ``result_path``)."""
    return Path(trial_dir) / contract.PACKED_RESULT_FILE.format(budget=budget)


# -- writing -----------------------------------------------------------------------------------


def write_params(trial_dir: str | os.PathLike, trial_id: str, params: Mapping[str, Any]) -> Path:
    """``params.json``: the trial id and its full parameter set (epochs included)."""
    path = Path(trial_dir) / contract.PARAMS_FILE
    write_json(path, {"trial_id": trial_id, "params": dict(params)})
    return path


def write_lineage(trial_dir: str | os.PathLike, entries: Sequence[Mapping[str, Any]]) -> None:
    """``lineage.json`` of a PBT member: per generation, the trial whose checkpoint it started
    from (its own id when kept) and the parameters it trained with (docs/pbt.md)."""
    write_json(Path(trial_dir) / contract.LINEAGE_FILE, {"generations": [dict(e) for e in entries]})


def read_lineage(trial_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """A member's lineage entries (empty for a trial outside PBT)."""
    data = read_json(Path(trial_dir) / contract.LINEAGE_FILE)
    return list(data.get("generations", [])) if data else []


def segment_start(
    segment: int,
    budget: int,
    time: float,
    host: str,
    pid: int,
    slurm_job_id: str | None,
) -> dict[str, Any]:
    """The event a job appends to ``segments.jsonl`` when it starts the training script."""
    return {
        "event": "start",
        "segment": segment,
        "budget": budget,
        "time": time,
        "host": host,
        "pid": pid,
        "slurm_job_id": slurm_job_id,
    }


def segment_end(
    segment: int,
    time: float,
    exit_code: int,
    outcome: str,
    progressed: bool = True,
    stop_requested: bool = False,
) -> dict[str, Any]:
    """The event a job appends when the script exited: its code and the outcome made of it."""
    return {
        "event": "end",
        "segment": segment,
        "time": time,
        "exit_code": exit_code,
        "outcome": outcome,
        "progressed": progressed,
        "stop_requested": stop_requested,
    }


def append_segment_event(trial_dir: str | os.PathLike, event: Mapping[str, Any]) -> None:
    append_line(Path(trial_dir) / contract.SEGMENTS_FILE, json.dumps(dict(event)))


def append_metrics(trial_dir: str | os.PathLike, row: Mapping[str, Any]) -> None:
    """One epoch's metrics (``{"epoch": n, ...}``) appended to ``metrics.jsonl``."""
    append_line(Path(trial_dir) / contract.METRICS_FILE, json.dumps(dict(row)))


def metrics_bytes(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The content of a ``metrics.jsonl`` holding exactly ``rows``."""
    return "".join(json.dumps(dict(r)) + "\n" for r in rows).encode()


def write_metrics(trial_dir: str | os.PathLike, rows: Sequence[Mapping[str, Any]]) -> None:
    """Replace ``metrics.jsonl`` with ``rows`` at once (a resume drops unsaved epochs)."""
    write_bytes(Path(trial_dir) / contract.METRICS_FILE, metrics_bytes(rows))


def write_result(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """A result record (``result_path``), written atomically: readers see all of it or none."""
    write_json(path, dict(record))


# -- reading -----------------------------------------------------------------------------------


def read_segments(trial_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(Path(trial_dir) / contract.SEGMENTS_FILE)


def read_metrics(trial_dir: str | os.PathLike) -> list[dict[str, Any]]:
    return read_jsonl(Path(trial_dir) / contract.METRICS_FILE)


def read_timings(trial_dir: str | os.PathLike) -> dict[str, float]:
    """The session's measured timings (``step_s``, ``save_s``, ``stopped_at``...); ``{}`` if none."""
    data = read_json(Path(trial_dir) / contract.CHECKPOINT_DIR / contract.TIMINGS_FILE)
    if not isinstance(data, Mapping):
        return {}
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float) and v >= 0}


#: How many of a trial's last measured exits the ``auto`` margin looks at.
EXIT_SAMPLES = 3


def exit_seconds(events: Sequence[Mapping[str, Any]]) -> float | None:
    """The slowest of the trial's last measured exit paths (stop decision to requeue), if any."""
    measured = [e.get("exit_s") for e in events if e.get("event") == "exit"]
    recent = [float(x) for x in measured if isinstance(x, int | float)][-EXIT_SAMPLES:]
    return max(recent, default=None)


def read_params(trial_dir: str | os.PathLike) -> dict[str, Any]:
    """The trial's parameters from ``params.json`` (empty if it is not written yet)."""
    data = read_json(Path(trial_dir) / contract.PARAMS_FILE) or {}
    params = data.get("params")
    return dict(params) if isinstance(params, Mapping) else {}


def read_provenance(trial_dir: str | os.PathLike) -> dict[str, Any] | None:
    return read_json(Path(trial_dir) / PROVENANCE_FILE)


def progress_mark(trial_dir: str | os.PathLike) -> tuple[int, int | None]:
    """What a segment's progress is measured by: the last epoch reported, the newest checkpoint.

    Two marks taken before and after a segment differ exactly when it made progress; file times
    are used so that the launcher never has to import torch to read a checkpoint.
    """
    epochs = [row.get("epoch") for row in read_metrics(trial_dir)]
    last_epoch = max((e for e in epochs if isinstance(e, int)), default=0)
    folder = Path(trial_dir) / contract.CHECKPOINT_DIR
    stamps = [p.stat().st_mtime_ns for p in folder.iterdir()] if folder.is_dir() else []
    return last_epoch, max(stamps, default=None)


def result_records(trial_dir: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """The trial's result records by budget (unreadable ones left out)."""
    try:
        names = os.listdir(trial_dir)
    except OSError:
        return {}
    records = {}
    for name in names:
        match = RESULT_PATTERN.match(name)
        if match:
            record = read_json(Path(trial_dir) / name)
            if record is not None:
                records[int(match.group(1))] = record
    return records


def finished_end(events: Sequence[Mapping[str, Any]], budget: int) -> Mapping[str, Any] | None:
    """The end event of a segment that finished the trial at ``budget`` (not a continue), if any."""
    ends = [e for e in events if e.get("event") == "end"]
    if not ends or ends[-1].get("outcome") in (None, "continue"):
        return None
    if not isinstance(ends[-1].get("exit_code"), int):
        return None
    budgets = {e.get("segment"): e.get("budget") for e in events if e.get("event") == "start"}
    return ends[-1] if budgets.get(ends[-1].get("segment")) == budget else None


@dataclass(frozen=True)
class SegmentCounts:
    """How a trial's segments follow each other; each later segment is exactly one of
    a resume, a relaunch, a promotion or a revisit.

    * ``resumes``: segments after one that saved its state and asked to go on
      (outcome ``continue``: time limit, preemption, SIGTERM);
    * ``relaunches``: segments at the same budget after one that ended without
      finishing it otherwise (lost to SIGKILL or a node failure, failed and run again);
    * ``promotions``: segments that took the trial on to a higher budget (rungs);
    * ``revisits``: segments at a lower budget than the one before (a Hyperband bracket
      that shares the trial with another trains it to its own, lower rung);
    * ``restarts`` = resumes + relaunches: extra segments at the same budget, the
      figure in result records, the leaderboard, ``status`` and provenance.
    """

    segments: int
    resumes: int
    relaunches: int
    promotions: int
    revisits: int = 0

    @property
    def restarts(self) -> int:
        return self.resumes + self.relaunches


def pair_segments(
    events: Sequence[Mapping[str, Any]], running: bool = False
) -> list[dict[str, Any]]:
    """Job segments from ``segments.jsonl`` events, paired by segment number.

    A segment without an end event is ``running`` if it is the last one and
    ``running`` is true, else ``lost`` (its job died without a word).
    """
    starts = [e for e in events if e.get("event") == "start"]
    ends = {e.get("segment"): e for e in events if e.get("event") == "end"}
    segments = []
    for index, start in enumerate(starts):
        end = ends.get(start.get("segment"))
        last = index == len(starts) - 1
        outcome = end.get("outcome") if end else ("running" if last and running else "lost")
        segments.append(
            {
                "segment": start.get("segment"),
                "budget": start.get("budget"),
                "host": start.get("host"),
                "pid": start.get("pid"),
                "slurm_job_id": start.get("slurm_job_id"),
                "start": start.get("time"),
                "end": end.get("time") if end else None,
                "duration_s": (
                    round(end["time"] - start["time"], 3)
                    if end and _is_number(end.get("time")) and _is_number(start.get("time"))
                    else None
                ),
                "exit_code": end.get("exit_code") if end else None,
                "outcome": outcome,
            }
        )
    return segments


def count_segments(segments: Sequence[Mapping[str, Any]]) -> SegmentCounts:
    """The one definition of resumes, relaunches, restarts and promotions (see SegmentCounts)."""
    resumes = relaunches = promotions = revisits = 0
    for before, after in zip(segments, segments[1:], strict=False):
        if before.get("outcome") == "continue":
            resumes += 1
        elif _number(after.get("budget")) > _number(before.get("budget")):
            promotions += 1
        elif _number(after.get("budget")) < _number(before.get("budget")):
            revisits += 1
        else:
            relaunches += 1
    return SegmentCounts(len(segments), resumes, relaunches, promotions, revisits)


def segment_counts(events: Sequence[Mapping[str, Any]]) -> SegmentCounts:
    return count_segments(pair_segments(events))


def wall_time(events: Sequence[Mapping[str, Any]]) -> float:
    """Seconds spent in segments that ended (running and lost ones have no end time)."""
    return sum(s["duration_s"] or 0.0 for s in pair_segments(events))


def slurm_job_ids(events: Sequence[Mapping[str, Any]]) -> list[str]:
    """The SLURM job ids the trial ran in, in order of first use."""
    ids: list[str] = []
    for segment in pair_segments(events):
        if segment["slurm_job_id"] and segment["slurm_job_id"] not in ids:
            ids.append(segment["slurm_job_id"])
    return ids


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else 0.0
