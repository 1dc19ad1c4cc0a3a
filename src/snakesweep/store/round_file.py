"""``results/<sweep>/rounds/round-<k>.json``: one round of a model-based search, as written.

A round file is the record of what the sampler suggested in round ``k``: the trials (index,
id, parameters), the round's seed, a digest of the finished trials it learned from, the
search settings and the versions of the libraries that made it. It is written once, by the
round's checkpoint rule, and never rewritten: a rerun reads it (``snakesweep.search.rounds``
makes the content; this module only places, writes and reads it).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from snakesweep.store.atomic import write_json
from snakesweep.store.jsonl import read_json

#: Below the sweep root: the folder of round files and one round's file.
ROUNDS_DIR = "rounds"
ROUND_PATH = ROUNDS_DIR + "/round-{round}.json"
#: Below the sweep root: a round's outcome, written once every trial of the round finished.
ROUND_SUMMARY_PATH = ROUNDS_DIR + "/round-{round}-records.json"
_ROUND_NAME = re.compile(r"^round-(\d+)\.json$")


def round_path(root: str | os.PathLike, k: int) -> Path:
    return Path(root) / ROUND_PATH.format(round=k)


def write_round(path: str | os.PathLike, content: dict[str, Any]) -> None:
    """Write a round file atomically (a killed writer leaves no half file to be read back)."""
    write_json(path, content)


def read_round(path: str | os.PathLike) -> dict[str, Any] | None:
    """The round in ``path``, or None if there is none (or it is not a round file)."""
    data = read_json(path)
    if data is None or not isinstance(data.get("trials"), list) or "round" not in data:
        return None
    return data


def read_rounds(root: str | os.PathLike) -> dict[int, dict[str, Any]]:
    """Every round file of the sweep in ``root``, by round number (none: an empty dict)."""
    folder = Path(root) / ROUNDS_DIR
    if not folder.is_dir():
        return {}
    rounds = {}
    for path in folder.iterdir():
        match = _ROUND_NAME.match(path.name)
        if match:
            data = read_round(path)
            if data is not None:
                rounds[int(match.group(1))] = data
    return dict(sorted(rounds.items()))


def write_round_summary(path: str | os.PathLike, k: int, records: list[dict[str, Any]]) -> None:
    """The outcome of round ``k``: each trial's status and final metric, in index order."""
    write_json(
        path,
        {
            "round": k,
            "trials": [
                {"trial_id": r["trial_id"], "status": r.get("status"), "final": r.get("final")}
                for r in records
            ],
        },
    )


def trial_rounds(rounds: dict[int, dict[str, Any]]) -> dict[str, tuple[int, int]]:
    """trial id -> (round, index in round), over the given rounds."""
    where = {}
    for k, data in rounds.items():
        for entry in data["trials"]:
            where.setdefault(entry["trial_id"], (k, int(entry["index"])))
    return where
