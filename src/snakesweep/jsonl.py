"""Reading the append-only JSON-lines logs of a trial (metrics, segments).

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
