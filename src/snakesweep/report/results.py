"""Trial result records, ranking and the leaderboard.

A record is the JSON file a training job leaves for one budget. Ranking is by
the metric at the trial's last epoch (what the trained model actually scores),
ties broken by trial id so that the same results always give the same order.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from snakesweep.search.samplers import SAMPLERS
from snakesweep.store.jsonl import read_json
from snakesweep.store.number_format import format_number

STATUSES = ("completed", "pruned", "diverged", "failed")
#: Order of statuses on the leaderboard: finished trials first.
_STATUS_ORDER = {status: i for i, status in enumerate(STATUSES)}


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def best_epoch(
    history: Sequence[Mapping[str, Any]], metric: str, mode: str
) -> tuple[float | None, int | None]:
    """Best finite value of ``metric`` over the epochs and the epoch it came from (first wins)."""
    best: tuple[float | None, int | None] = (None, None)
    for row in history:
        value = row.get(metric)
        if not is_finite(value):
            continue
        if best[0] is None or (value < best[0] if mode == "min" else value > best[0]):
            best = (float(value), int(row["epoch"]))
    return best


def sort_key(record: Mapping[str, Any], mode: str) -> tuple:
    """Leaderboard order: status, then final metric (best first), then trial id."""
    value = record.get("final")
    finite = is_finite(value)
    score = (value if mode == "min" else -value) if finite else math.inf
    return (
        _STATUS_ORDER.get(record.get("status"), len(STATUSES)),
        not finite,
        score,
        record["trial_id"],
    )


def rank(records: Iterable[Mapping[str, Any]], mode: str) -> list[Mapping[str, Any]]:
    return sorted(records, key=lambda r: sort_key(r, mode))


def best_trial(
    records: Iterable[Mapping[str, Any]], mode: str, budget: int | None = None
) -> Mapping[str, Any] | None:
    """The best completed trial with a finite final metric (at ``budget`` epochs, if given)."""
    eligible = [
        r
        for r in records
        if r.get("status") == "completed"
        and is_finite(r.get("final"))
        and (budget is None or r.get("epochs_done") == budget)
    ]
    ranked = rank(eligible, mode)
    return ranked[0] if ranked else None


def read_records(paths: Iterable[str | os.PathLike]) -> list[dict[str, Any]]:
    """The result records at ``paths``; each must exist and hold a JSON object."""
    records = []
    for path in paths:
        record = read_json(path)
        if record is None:
            raise ValueError(f"{path}: not a readable result record (JSON object)")
        records.append(record)
    return records


def leaderboard_rows(records: Iterable[Mapping[str, Any]], mode: str) -> list[dict[str, Any]]:
    """One flat row per trial, ranked; parameters become ``param_<name>`` columns.

    Every row has a column for every parameter of any trial: a trial without one (its
    ``when`` condition was false) has None there, an empty cell in the CSV.
    """
    records = list(records)
    names = sorted({name for record in records for name in record.get("params", {})})
    rows = []
    for position, record in enumerate(rank(records, mode), start=1):
        row = {
            "rank": position,
            "trial_id": record["trial_id"],
            "status": record["status"],
            "final": record.get("final"),
            "best": record.get("best"),
            "best_epoch": record.get("best_epoch"),
            "epochs_done": record.get("epochs_done"),
            "budget": record.get("budget"),
            "wall_time_s": record.get("wall_time_s"),
            "restarts": record.get("restarts", 0),
            "rung": record.get("rung"),
        }
        params = record.get("params", {})
        for name in names:
            row[f"param_{name}"] = params.get(name)
        row["error"] = record.get("error") or ""
        row["log"] = record.get("log") or ""
        rows.append(row)
    return rows


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> None:
    from snakesweep.store.atomic import write_bytes

    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_value(v) for k, v in row.items()})
    write_bytes(path, buffer.getvalue().encode())


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def format_table(rows: Sequence[Mapping[str, Any]], metric: str, top: int = 10) -> str:
    """A plain-text table of the first ``top`` leaderboard rows, for the terminal."""
    params = [
        c for c in (rows[0] if rows else {}) if c.startswith("param_") and c != "param_epochs"
    ]
    header = ["#", "trial_id", "status", metric, "best", "epochs", "rung", "restarts"] + [
        p[6:] for p in params
    ]
    lines = [header]
    for row in rows[:top]:
        lines.append(
            [
                str(row["rank"]),
                row["trial_id"],
                row["status"],
                format_number(row["final"]),
                format_number(row["best"]),
                f"{row['epochs_done']}/{row['budget']}",
                format_number(row.get("rung")),
                str(row["restarts"]),
            ]
            + [format_number(row.get(p)) for p in params]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
    if len(rows) > top:
        text += f"\n... {len(rows) - top} more in the leaderboard"
    return text


def best_config(
    record: Mapping[str, Any],
    sweep: str,
    metric: str,
    mode: str,
    sweep_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A standalone sweep config that re-runs exactly the best trial (``--configfile best.yaml``).

    Everything that shaped the trial is copied from ``sweep_config`` (script, resources,
    checkpoint, tracking, results_dir, ...); the trial's parameters become fixed values, the
    sweep becomes a one-point grid without pruning, so the re-run trains the full budget.
    """
    params = dict(record["params"])
    epochs = params.pop("epochs")
    config = copy.deepcopy(dict(sweep_config or {}))
    config.pop("n_trials", None)
    for key in ("round_size", *SAMPLERS):  # a model-based search's settings: not a grid's
        config.pop(key, None)
    config.update(
        {
            "sweep": f"{sweep}-best",
            "metric": metric,
            "mode": mode,
            "epochs": epochs,
            "strategy": "grid",
            "parameters": {
                name: {"kind": "fixed", "value": value} for name, value in sorted(params.items())
            },
            "pruning": {"method": "none"},
        }
    )
    return config


def status_counts(records: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    return counts


def dumps_record(record: Mapping[str, Any]) -> str:
    return json.dumps(record, indent=2, sort_keys=True)
