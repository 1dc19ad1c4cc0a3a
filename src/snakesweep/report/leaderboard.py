"""Writing the leaderboard files and the end-of-run summary, from the sweep's pandas tables.

The trials come from ``snakesweep.load`` (:mod:`snakesweep.report.tables`), restricted to the
trials the workflow planned, so their states are those of ``snakesweep status``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from snakesweep.report.results import (
    best_config,
    best_trial,
    format_table,
    leaderboard_rows,
    status_counts,
    write_csv,
)
from snakesweep.report.tables import load, trial_records
from snakesweep.search.pbt import ancestry, replay_schedule
from snakesweep.store import contract
from snakesweep.store.atomic import write_bytes
from snakesweep.store.trial_folder import read_lineage


def finished_trials(
    root: str | os.PathLike,
    trial_ids: Iterable[str],
    metric: str,
    mode: str,
    budget: int,
    rung_budgets: Sequence[int] = (),
) -> tuple[list[dict[str, Any]], int]:
    """The finished trials among ``trial_ids`` as leaderboard records, and how many are not.

    A trial that completed a rung below ``budget`` and that the rung's decision did not
    promote is ``pruned``; every record's ``budget`` is the full one (epochs read ``1/9``).
    """
    ids = list(trial_ids)
    tables = load(root, metric, mode, trials=ids)
    records = trial_records(tables, budget, rung_budgets)
    return records, len(ids) - len(records)


def write_leaderboard(
    root: str | os.PathLike,
    trial_ids: Iterable[str],
    csv_path: str | os.PathLike,
    best_path: str | os.PathLike,
    sweep: str,
    metric: str,
    mode: str,
    budget: int,
    rung_budgets: Sequence[int] = (),
    sweep_config: Mapping[str, Any] | None = None,
) -> None:
    """Rank the trials into ``csv_path`` and write the best trial's config to ``best_path``."""
    records, _ = finished_trials(root, trial_ids, metric, mode, budget, rung_budgets)
    write_csv(leaderboard_rows(records, mode), csv_path)
    best = best_trial(records, mode, budget=budget)
    counts = status_counts(records)
    print(f"{len(records)} trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    if best is None:
        text = (
            f"# Sweep {sweep!r}: no trial completed with a finite {metric}; nothing to reuse.\n"
            f"# See {Path(csv_path).name} for each trial's status and error.\n"
        )
    else:
        header = (
            f"# Best trial of sweep {sweep!r}: {metric} = {best['final']!r} ({mode}) after "
            f"{best['epochs_done']} epochs, trial {best['trial_id']}.\n"
            f"# A standalone sweep of this one trial. Re-train it (from the directory the sweep ran in):\n"
            f"#   snakemake --profile profiles/local --configfile {best_path}\n"
        )
        config = best_config(best, sweep, metric, mode, sweep_config)
        if (sweep_config or {}).get("pbt") and "schedule" not in sweep_config["pbt"]:
            config = pbt_replay_config(config, root, best["trial_id"], sweep_config["pbt"])
        body = yaml.safe_dump(config, sort_keys=False)
        text = header + f"# trial_id: {best['trial_id']}\n" + body
        print(f"best: {best['trial_id']} {metric}={best['final']!r}")
    write_bytes(best_path, text.encode())


def pbt_replay_config(
    config: Mapping[str, Any], root: str | os.PathLike, best: str, block: Mapping[str, Any]
) -> dict[str, Any]:
    """best.yaml of a PBT sweep: the winner's whole schedule, retrained from scratch.

    The winning model went through other members' folders (each clone continues its parent's
    model); its start values are those of the member it began as, and ``pbt.schedule`` holds
    the mutated values of every later generation (docs/pbt.md#replaying-the-winner).
    """
    generations = int(config["epochs"]) // int(block["interval"])
    trials = Path(root) / contract.TRIALS_DIR
    lineages = {d.name: read_lineage(d) for d in trials.iterdir() if d.is_dir()}
    start, schedule = replay_schedule(ancestry(lineages, best, generations), list(block["mutate"]))
    start.pop("epochs", None)
    replay = dict(config)
    replay["parameters"] = {
        name: {"kind": "fixed", "value": value} for name, value in sorted(start.items())
    }
    replay["pbt"] = {
        "interval": int(block["interval"]),
        "mutate": sorted(block["mutate"]),
        "schedule": schedule,
    }
    return replay


def no_result_message(sweep: str, metric: str) -> str:
    """The first line of a sweep that produced nothing to reuse (the run then exits 1)."""
    return (
        f"snakesweep: sweep {sweep!r} produced NO USABLE RESULT: no trial completed with a "
        f"finite {metric}; exiting with status 1 (see the failures below)"
    )


def sweep_has_result(
    root: str | os.PathLike,
    trial_ids: Iterable[str],
    metric: str,
    mode: str,
    budget: int,
    rung_budgets: Sequence[int] = (),
) -> bool:
    """Whether some trial completed the full budget with a finite metric (a best trial exists)."""
    records, _ = finished_trials(root, trial_ids, metric, mode, budget, rung_budgets)
    return best_trial(records, mode, budget=budget) is not None


#: Said under the failed trials at the end of a run (docs/retry.md).
RETRY_HINT = "once the cause is fixed, retry the failed trials: snakemake --config retry=failed"


def summary(
    root: str | os.PathLike,
    trial_ids: Iterable[str],
    metric: str,
    mode: str,
    budget: int,
    rung_budgets: Sequence[int] = (),
    top: int = 10,
) -> str:
    """The end-of-run text: status counts, the top of the leaderboard, failed trials' logs.

    A sweep without a usable result (no trial completed with a finite metric) says so first.
    """
    root = Path(root)
    records, missing = finished_trials(root, trial_ids, metric, mode, budget, rung_budgets)
    rows = leaderboard_rows(records, mode)
    counts = {s: n for s, n in status_counts(records).items() if n}
    lines = []
    if best_trial(records, mode, budget=budget) is None:
        lines.append(no_result_message(root.name, metric))
    lines += [
        f"snakesweep: {root.name}: {len(rows)} trials ("
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + (f", {missing} not finished" if missing else "")
        + ")",
        format_table(rows, metric, top=top),
    ]
    failed = [row for row in rows if row["status"] == "failed"]
    for row in failed:
        lines.append(f"FAILED {row['trial_id']}: {row['error']} (log: {row['log']})")
    if failed:
        lines.append(RETRY_HINT)
    lines.append(
        f"leaderboard: {root / contract.LEADERBOARD_FILE}   best config: {root / contract.BEST_FILE}"
    )
    return "\n".join(lines)
