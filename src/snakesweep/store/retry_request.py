"""Retry requests: the files through which ``--config retry=failed`` reruns failed trials.

Why files: Snakemake reruns a job whose output exists only when something it can see changed
(an input newer than the output, another set of inputs, params, code). A new request is a new
input of the failed trial's training job, so Snakemake reruns that job and, through the new
record, the leaderboard, ``best.yaml`` and the plots; nothing else runs. A request stays an input
of its trial's job afterwards (every request on disk is), so later runs see the same inputs and
do nothing.

A request is named by the trial, the budget and the number of segments the failed record
counted (``contract.RETRY_REQUEST_PATH``): the same failure always asks for the same request,
in the controller and again inside a SLURM job that re-reads the workflow, and a trial that
fails again asks for a new one at the next retry. Writing a request moves the failed record
into it (the record is written first into the request, then removed), so that the old error
is kept and a pack (which keeps its members' existing records) trains the member again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from snakesweep.store import contract
from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json

#: The values of the ``retry`` switch, and which record statuses each retrains.
RETRY_VALUES = {"failed": ("failed",)}

_NAME = re.compile(
    "^"
    + re.escape(os.path.basename(contract.RETRY_REQUEST_PATH))
    .replace(r"\{trial_id\}", "(?P<trial_id>[0-9a-f]+)")
    .replace(r"\{budget\}", r"(?P<budget>\d+)")
    .replace(r"\{segments\}", r"(?P<segments>\d+)")
    + "$"
)


def request_path(root: str | os.PathLike, trial_id: str, budget: int | str, segments: int) -> str:
    """Where the request to retry ``trial_id``'s record at ``budget`` after ``segments`` lives."""
    name = contract.RETRY_REQUEST_PATH.format(trial_id=trial_id, budget=budget, segments=segments)
    return f"{root}/{name}"


def read_requests(root: str | os.PathLike) -> dict[tuple[str, int], list[str]]:
    """Every request on disk, by (trial id, budget), oldest first: one listing per run."""
    folder = Path(root) / contract.RETRY_DIR
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    found: dict[tuple[str, int], list[tuple[int, str]]] = {}
    for name in names:
        match = _NAME.match(name)
        if match:
            key = (match["trial_id"], int(match["budget"]))
            found.setdefault(key, []).append(
                (int(match["segments"]), f"{root}/{contract.RETRY_DIR}/{name}")
            )
    return {key: [path for _, path in sorted(paths)] for key, paths in found.items()}


def wanted_request(
    root: str | os.PathLike, record: Mapping[str, Any] | None, statuses: tuple[str, ...]
) -> str | None:
    """The request that retries ``record`` if its status is one of ``statuses``, else None."""
    if not record or record.get("status") not in statuses:
        return None
    segments = record.get("segments")
    return request_path(
        root,
        str(record["trial_id"]),
        int(record["budget"]),
        segments if isinstance(segments, int) else 0,
    )


def write_request(
    request: str | os.PathLike,
    record_path: str | os.PathLike,
    log: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Write the request with the record it retries, then remove that record; the request.

    ``log``: where to say in one line what is retried and why it was failed.
    """
    record = read_json(Path(record_path))
    content = {"requested_at": time.time(), "record": str(record_path), "replaces": record}
    write_json(request, content)
    Path(record_path).unlink(missing_ok=True)
    if log is not None:
        old = record or {}
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(
            f"retry of {record_path}; it was {old.get('status', 'missing')}: {old.get('error')}\n"
        )
    return content
