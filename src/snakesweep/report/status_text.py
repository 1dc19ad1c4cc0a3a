"""``snakesweep status`` as text: counts, best so far, running trials, leaderboard, pending.

Formatted from the sweep's pandas tables (:mod:`snakesweep.report.tables`), numbers as
everywhere else (``snakesweep.store.number_format``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from snakesweep.report.status import STATES, SweepStatus
from snakesweep.report.tables import SweepTables, from_status, trial_params
from snakesweep.report.tables import rows as table_rows
from snakesweep.store.number_format import format_number


class _Trial:
    """One row of the trials table, with the names the text uses."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.trial_id: str = row["trial_id"]
        self.state: str = row["status"]
        self.params = trial_params(row)
        self.epochs_done: int = row["epochs"] or 0
        self.budget: int | None = row["budget"]
        self.value: float | None = row["final"]
        self.best: float | None = row["best"]
        self.segments: int = row["segments"] or 0
        self.host: str | None = row["host"]
        self.slurm_job_id: str | None = row["slurm_job_id"]
        self.started: float | None = row["started"]
        self.updated: float | None = row["updated"]
        self.alive: bool | None = row["alive"]
        self.error: str | None = row["error"]


def format_status(
    status: SweepTables | SweepStatus, top: int = 20, now: float | None = None
) -> str:
    """The status as text for a terminal: counts, best so far, running trials, leaderboard."""
    if isinstance(status, SweepStatus):
        status = from_status(status)
    now = status.time if now is None else now
    metric = status.metric or "metric"
    trials = [_Trial(row) for row in table_rows(status.trials)]
    counts = dict.fromkeys(STATES, 0)
    for t in trials:
        counts[t.state] = counts.get(t.state, 0) + 1
    total = len(trials)
    lines = [
        f"snakesweep status: {status.root}  ({status.metric or '?'}, {status.mode or '?'})  "
        + time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
        f"{total} trials: " + ", ".join(f"{counts[s]} {s}" for s in STATES),
    ]
    if status.planned is None:
        lines.append("  (trials on disk only: pass --config to count the planned ones not started)")
    elif status.plan_source:
        lines.append(f"  (trial set of {status.plan_source})")
    if status.rounds is not None:
        r = status.rounds
        to_come = "?" if r["to_come"] is None else r["to_come"]
        lines.append(
            f"rounds: {r['done']} done, {r['running']} running, {to_come} to come"
            + (f" (of {r['planned']})" if r["planned"] is not None else "")
        )
    if status.stale:
        lines.append(
            f"  ({len(status.stale)} STALE trial folder(s) on disk, from an older config of this "
            "sweep, not counted: "
            + ", ".join(status.stale[:5])
            + (" ..." if len(status.stale) > 5 else "")
            + ")"
        )
    if status.metric is None or status.mode is None:
        lines.append(
            "  metric or mode unknown (no result or provenance names it yet): "
            "pass --metric NAME --mode min|max, or --config"
        )
    best = next((t for t in trials if t.trial_id == status.best), None)
    source = status.best_from
    if best is None:
        lines.append("best so far: -")
    else:
        lines.append(
            f"best so far: {best.trial_id}  {metric}={format_number(best.value)}  "
            f"({best.state}, {best.epochs_done}/{format_number(best.budget)} epochs"
            + (", not finished: no trial has completed yet" if source == "running" else "")
            + ")"
        )
    running = [t for t in trials if t.state in ("running", "waiting")]
    if running:
        lines += ["", "running:"]
        rows = [
            ["trial_id", "state", "epoch", metric, "host", "slurm job", "segment for", "last epoch"]
        ]
        for t in running:
            rows.append(
                [
                    t.trial_id,
                    t.state + (" (no process)" if t.alive is False else ""),
                    f"{t.epochs_done}/{format_number(t.budget)}",
                    format_number(t.value),
                    t.host or "-",
                    t.slurm_job_id or "-",
                    _ago(now, t.started) if t.state == "running" else "-",
                    (_ago(now, t.updated) + " ago") if t.updated else "-",
                ]
            )
        lines += ["  " + line for line in _table(rows)]
    shown = [t for t in trials if t.state != "pending"]
    if shown:
        varying = _varying_params(shown)
        rows = [["#", "trial_id", "state", metric, "best", "epochs", "segments", *varying]]
        for position, t in enumerate(shown[: top or None], start=1):
            rows.append(
                [
                    str(position),
                    t.trial_id,
                    t.state,
                    format_number(t.value),
                    format_number(t.best),
                    f"{t.epochs_done}/{format_number(t.budget)}",
                    str(t.segments),
                    *(format_number(t.params.get(p)) for p in varying),
                ]
            )
        lines += ["", "leaderboard:"] + ["  " + line for line in _table(rows)]
        if top and len(shown) > top:
            lines.append(f"  ... {len(shown) - top} more (--top 0 shows all)")
        for t in shown:
            if t.state == "failed" and t.error:
                lines.append(f"FAILED {t.trial_id}: {t.error}")
    pending = [t for t in trials if t.state == "pending"]
    if pending:
        # One planned trial varies nothing: show all its parameters then.
        varying = _varying_params(pending)
        if len(pending) == 1:
            varying = sorted(set(pending[0].params) - {"epochs"})
        rows = [["trial_id", "epochs", *varying]]
        for t in pending[: top or None]:
            rows.append(
                [
                    t.trial_id,
                    format_number(t.budget),
                    *(format_number(t.params.get(p)) for p in varying),
                ]
            )
        lines += ["", "pending (planned, not started):"] + ["  " + line for line in _table(rows)]
        if top and len(pending) > top:
            lines.append(f"  ... {len(pending) - top} more (--top 0 shows all)")
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _varying_params(trials: Sequence[_Trial]) -> list[str]:
    names = sorted({n for t in trials for n in t.params} - {"epochs"})
    return [n for n in names if len({repr(t.params.get(n)) for t in trials}) > 1]


def _ago(now: float, then: float | None) -> str:
    if not isinstance(then, (int, float)):
        return "-"
    seconds = max(0, int(now - then))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
