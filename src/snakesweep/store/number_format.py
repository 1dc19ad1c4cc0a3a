"""The one number format of the leaderboard, ``status`` and the session's epoch lines.

Why here: a value printed by a trial's log line and by the leaderboard must read the same,
and the session (inside the script) and the reports (outside) both print them.
"""

from __future__ import annotations

from typing import Any


def format_number(value: Any) -> str:
    """A value as tables and progress lines show it: 4 significant digits, "-" for none.

    The one number format of the leaderboard, ``status`` and the session's epoch lines.
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
