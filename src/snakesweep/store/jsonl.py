"""The one reader of snakesweep's JSON files and append-only JSON-lines logs.

They are appended to while other processes read them, and a killed writer can
leave its last line cut short, so readers skip lines that are not whole objects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file; a missing file is empty, a garbled line skipped."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def read_json(path: str | os.PathLike) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if it is missing, unreadable or not an object.

    Records are written atomically (``snakesweep.store.atomic``), so a half-written file
    is not expected; a garbled one is treated as absent rather than crash a reader.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
